"""Calibration from a person instead of a board (the EpipolarPose idea).

The body joints of one person, detected in every view at the same instants, are
point correspondences: joint j at frame f is the same 3D point in all cameras. With
the intrinsics known:

1. relative poses of camera pairs from essential matrices of those correspondences
   (RANSAC), the best pair first;
2. triangulation of the joints, then the other cameras by PnP against them;
3. bundle adjustment of camera poses and joint positions with a robust loss, an
   outlier cull and a second pass;
4. metric scale from the person's height (the user gives it), floor and Z-up from
   the feet.

Pure geometry on arrays: which joints are the eyes or the feet is given by the
caller (engines/ knows the skeletons; calibration does not import it).
"""

from __future__ import annotations

import itertools
import warnings as py_warnings  # `warnings` is the name of the solver's message lists
from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.bundle_adjust import BundleOptions, BundleResult, Observations, bundle_adjust
from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.frames import Progress
from calibration.rig import Rig
from calibration.world_frame import (
    fit_parallel_planes,
    frame_from_floor,
    transform_points,
    transform_rig,
)

# Standing eye height as a fraction of stature (adult anthropometry: the eyes sit
# about half a head, ~6.5 % of stature, below the top of the head).
EYE_HEIGHT_RATIO = 0.936


@dataclass
class PersonOptions:
    """min_confidence: keypoints below it are ignored; ransac_px: epipolar RANSAC
    threshold; f_scale: robust loss scale (px) of the adjustment; outlier_px: floor of
    the post-adjustment cull (also 4x the median error); height: the person's stature
    in metres (None: the scale stays arbitrary); top: joint indices of the eyes; feet:
    groups of foot joints that sit at one height above the floor, e.g. ((left heel,
    right heel), (left toe, right toe)); trunk: hips and shoulders (their mean stands
    for the centre of mass; default: every joint but the feet); top_ratio: eye height / stature; height_percentile:
    which per-frame height counts as standing upright; max_frames: frames used, evenly
    spaced (consecutive video frames add little but time); min_support: the share of each
    camera's confident keypoints the final adjustment must keep (`check_support`)."""

    min_confidence: float = 0.5
    ransac_px: float = 4.0
    f_scale: float = 2.0
    outlier_px: float = 10.0
    min_correspondences: int = 30
    height: float | None = None
    top: tuple[int, ...] = ()
    feet: tuple[tuple[int, ...], ...] = ()
    trunk: tuple[int, ...] = ()
    top_ratio: float = EYE_HEIGHT_RATIO
    height_percentile: float = 90.0
    root: int | None = None
    max_frames: int | None = 100
    min_support: float = 0.5


@dataclass
class PersonResult:
    """rig: the posed cameras (Z-up world on the floor if feet were given, metres if the
    height was); points: (F, J, 3) adjusted joints (NaN where not reconstructed);
    errors: (M,) px of the kept observations; pair_inliers: (C, C) epipolar inliers."""

    rig: Rig
    frames: np.ndarray
    points: np.ndarray
    errors: np.ndarray
    obs: Observations
    obs_track: np.ndarray
    pair_inliers: np.ndarray
    order: list[str]
    scale: float | None
    stature_unscaled: float | None
    bundle: BundleResult
    warnings: list[str] = field(default_factory=list)

    def tracks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Kept observations as tracks for the quality report.

        -> (points (C, N, 2) px NaN where unseen, frame (N,), world position (N, 3))
        """
        J = self.points.shape[1]
        uniq, inv = np.unique(self.obs_track, return_inverse=True)
        pts = np.full((len(self.rig), len(uniq), 2), np.nan)
        pts[self.obs.camera, inv.ravel()] = self.obs.points
        return pts, self.frames[uniq // J], self.points.reshape(-1, 3)[uniq]

    def summary(self) -> str:
        lines = [f"from person: median reprojection error {np.median(self.errors):.2f} px over {len(self.errors)} keypoints, "
                 f"{int(np.isfinite(self.points[..., 0]).sum())} joint positions",
                 f"  cameras added in order {self.order}"]
        if self.scale is not None:
            lines.append(f"  scale from the person's height: x{self.scale:.4f}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def normalised(rig: Rig, keypoints: np.ndarray) -> np.ndarray:
    """Distorted pixels to normalised image coordinates. (C, F, J, 2) -> (C, F, J, 2)"""
    und = rig.undistort(keypoints)
    out = np.empty_like(und)
    for c, cam in enumerate(rig.cameras):
        K = cam.K
        y = (und[c, ..., 1] - K[1, 2]) / K[1, 1]
        out[c, ..., 0] = (und[c, ..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
        out[c, ..., 1] = y
    return out


def relative_pose(xa: np.ndarray, xb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pose of camera b relative to camera a from normalised correspondences.

    xa, xb: (N, 2); threshold: RANSAC threshold in normalised units
    -> (R (3, 3), t (3,) unit length, inlier mask (N,)); x_b = R x_a + t.
    """
    E, mask = cv2.findEssentialMat(xa, xb, np.eye(3), method=cv2.RANSAC, prob=0.999, threshold=threshold, maxIters=2000)
    if E is None or E.shape != (3, 3):
        if E is not None and E.shape[0] > 3:
            E = E[:3]
        else:
            return np.eye(3), np.zeros(3), np.zeros(len(xa), bool)
    n, R, t, mask2 = cv2.recoverPose(E, xa, xb, np.eye(3), mask=mask.copy())
    return R, t.ravel(), mask2.ravel() > 0


def _posed(rig: Rig, poses: dict[int, tuple[np.ndarray, np.ndarray]]) -> Rig:
    return Rig([Camera(rig.cameras[c].name, rig.cameras[c].size, rig.cameras[c].K, rig.cameras[c].dist, R, t)
                for c, (R, t) in sorted(poses.items())])


def _triangulate(rig: Rig, poses: dict[int, tuple[np.ndarray, np.ndarray]], pts: np.ndarray, valid: np.ndarray,
                 threshold: float) -> np.ndarray:
    """Tracks seen by >= 2 posed cameras, RANSAC-triangulated. pts: (C, N, 2) -> (N, 3)"""
    cams = sorted(poses)
    sub = _posed(rig, poses)
    x = np.where(valid[cams][..., None], pts[cams], np.nan)
    return sub.triangulate(x, method="ransac", threshold=threshold)


def calibrate_from_person(
    keypoints: np.ndarray,
    confidence: np.ndarray,
    intrinsics: Rig,
    options: PersonOptions | None = None,
    progress: Progress | None = None,
) -> PersonResult:
    """Pose the cameras of `intrinsics` from one person's 2D joints.

    keypoints: (C, F, J, 2) distorted pixels, cameras in the rig's order, frame f of
    every camera at the same instant; confidence: (C, F, J) in [0, 1].
    """
    options = options or PersonOptions()
    keypoints = np.asarray(keypoints, np.float64)
    confidence = np.asarray(confidence, np.float64)
    C = len(intrinsics)
    if keypoints.ndim != 4 or keypoints.shape[0] != C or keypoints.shape[-1] != 2:
        raise TriangulumError(f"keypoints have shape {keypoints.shape}; expected ({C}, frames, joints, 2) for cameras {intrinsics.names}.")
    if confidence.shape != keypoints.shape[:-1]:
        raise TriangulumError(f"confidences have shape {confidence.shape}; expected {keypoints.shape[:-1]}.")
    frames = np.arange(keypoints.shape[1])
    if options.max_frames is not None and len(frames) > options.max_frames:
        frames = np.unique(np.linspace(0, len(frames) - 1, options.max_frames).round().astype(int))
        keypoints, confidence = keypoints[:, frames], confidence[:, frames]
    _, F, J, _ = keypoints.shape
    N = F * J
    valid = (confidence >= options.min_confidence) & np.isfinite(keypoints).all(-1)
    pts = keypoints.reshape(C, N, 2)
    valid = valid.reshape(C, N)
    norm = normalised(intrinsics, keypoints).reshape(C, N, 2)
    focal = np.mean([[c.K[0, 0], c.K[1, 1]] for c in intrinsics.cameras])
    thr = options.ransac_px / focal
    for c in range(C):
        if valid[c].sum() < options.min_correspondences:
            raise TriangulumError(
                f"camera '{intrinsics.names[c]}': only {int(valid[c].sum())} confident keypoints; the person must be "
                "visible in every camera (lower --min-confidence or record longer)."
            )
    # 1. Pairwise essential matrices.
    inliers = np.zeros((C, C), np.int64)
    rel: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for a, b in itertools.combinations(range(C), 2):
        common = np.where(valid[a] & valid[b])[0]
        if len(common) < options.min_correspondences:
            continue
        R, t, mask = relative_pose(norm[a, common], norm[b, common], thr)
        rel[(a, b)] = (R, t, common[mask])
        inliers[a, b] = inliers[b, a] = int(mask.sum())
    if progress is not None:
        progress("essential matrices", 1, 1)
    if not rel:
        raise TriangulumError("no two cameras see the person's joints at the same frames; check that the videos are synchronised and show the person.")
    # 2. Best pair, triangulate, add cameras by PnP.
    a, b = max(rel, key=lambda k: inliers[k])
    if options.root is not None and options.root in (a, b) and options.root == b:
        a, b = b, a
    R, t, _ = rel[(a, b)] if (a, b) in rel else rel[(b, a)]
    if (a, b) not in rel:  # swapped for the root: invert the pair's pose
        R, t = R.T, -R.T @ t
    poses = {a: (np.eye(3), np.zeros(3)), b: (R, t)}
    order = [intrinsics.names[a], intrinsics.names[b]]
    # Inlier thresholds in world units are unknown (unit baseline); use pixels throughout.
    X = _triangulate(intrinsics, poses, pts, valid, 3 * options.ransac_px)
    while len(poses) < C:
        best, best_n = None, 0
        for c in range(C):
            if c in poses:
                continue
            n = int((valid[c] & np.isfinite(X).all(1)).sum())
            if n > best_n:
                best, best_n = c, n
        if best is None or best_n < 6:
            missing = [intrinsics.names[c] for c in range(C) if c not in poses]
            raise TriangulumError(f"camera(s) {missing} see too few of the joints the other cameras reconstructed; "
                                  "film the person where these cameras see them too.")
        idx = np.where(valid[best] & np.isfinite(X).all(1))[0]
        cam = intrinsics.cameras[best]
        ok, rvec, tvec, inl = cv2.solvePnPRansac(
            X[idx], pts[best, idx], cam.K, cam.dist, reprojectionError=3 * options.ransac_px,
            iterationsCount=2000, confidence=0.9999, flags=cv2.SOLVEPNP_EPNP,
        )
        if not ok or inl is None or len(inl) < 6:
            raise TriangulumError(f"camera '{cam.name}': its view of the person does not fit the others (PnP failed); "
                                  "check that its video is synchronised with the rest.")
        sel = idx[inl.ravel()]
        rvec, tvec = cv2.solvePnPRefineLM(X[sel], pts[best, sel], cam.K, cam.dist, rvec, tvec)
        poses[best] = (cv2.Rodrigues(rvec)[0], tvec.ravel())
        order.append(cam.name)
        X = _triangulate(intrinsics, poses, pts, valid, 3 * options.ransac_px)
    if progress is not None:
        progress("initial poses", 1, 1)
    # 3. Bundle adjustment over cameras and joint positions.
    res, obs, tracks = adjust(_posed(intrinsics, poses), pts, valid, X, options, fixed=(a,))
    if progress is not None:
        progress("bundle adjustment", 1, 1)
    check_support(intrinsics.names, np.bincount(obs.camera, minlength=C), valid.sum(1), options.min_support)
    points = np.full((N, 3), np.nan)
    seen = np.bincount(obs.element, minlength=len(tracks))
    # A joint left with one view after the cull is unconstrained: report it as missing.
    points[tracks[seen >= 2]] = res.structure[seen >= 2]
    rig = res.rig
    warnings: list[str] = []
    for i in range(C):
        for j in range(i + 1, C):
            if inliers[i, j] < options.min_correspondences:
                warnings.append(f"cameras {intrinsics.names[i]} and {intrinsics.names[j]} share only {inliers[i, j]} "
                                "consistent joint views; they are linked through other cameras.")
    # 4. Floor, up and scale.
    scale = stature = None
    P = points.reshape(F, J, 3)
    if options.feet:
        rig, P, scale, stature = floor_and_scale(rig, P, options, warnings)
    elif options.height is not None:
        warnings.append("the person's height was given without foot joints; the scale and the floor were not set.")
    rig.metadata.update({"adjusted": True, "source": "from-person"})
    for c, cam in enumerate(rig.cameras):
        e = res.errors[obs.camera == c]
        cam.rmse = float(np.sqrt(np.mean(e**2))) if e.size else None
    # Reorder cameras as given (posing order differs).
    rig = Rig([rig[n] for n in intrinsics.names], rig.metadata)
    return PersonResult(rig, frames, P, res.errors, obs, tracks[obs.element], inliers, order, scale, stature, res, warnings)


def adjust(rig0: Rig, pts: np.ndarray, valid: np.ndarray, X: np.ndarray, options: PersonOptions,
           fixed: tuple[int, ...] = (0,), intrinsics: tuple[str, ...] = ()) -> tuple[BundleResult, Observations, np.ndarray]:
    """Robust bundle adjustment of posed cameras and joint positions, an outlier cull and a
    second pass. pts (C, N, 2) px, valid (C, N), X (N, 3) initial joints (NaN: not
    reconstructed); intrinsics: names to refine too (see BundleOptions).
    -> (result, kept observations, the indices into N of the adjusted tracks)."""
    tracks = np.where(np.isfinite(X).all(1))[0]
    cam_i, trk_i = np.nonzero(valid[:, tracks])
    obs = Observations(cam_i, trk_i, pts[cam_i, tracks[trk_i]])
    # Start from observations that agree with the initial reconstruction.
    err0 = np.linalg.norm(rig0.project(X[tracks])[cam_i, trk_i] - obs.points, axis=-1)
    keep = np.isfinite(err0) & (err0 < 5 * options.outlier_px)
    obs = obs.subset(keep)
    bopts = BundleOptions(f_scale=options.f_scale, fixed_cameras=fixed, intrinsics=intrinsics)
    res = bundle_adjust(rig0, obs, X[tracks], bopts)
    limit = max(options.outlier_px, 4 * float(np.nanmedian(res.errors)))
    keep = np.isfinite(res.errors) & (res.errors <= limit)
    if (~keep).any():
        obs = obs.subset(keep)
        res = bundle_adjust(res.rig, obs, res.structure, bopts)
    return res, obs, tracks


def check_support(names: list[str], kept: np.ndarray, confident: np.ndarray, min_support: float) -> np.ndarray:
    """Per camera, the share of its confident keypoints that the final adjustment kept: (C,).

    A camera under `min_support` does not agree with the others. The adjustment then fits the
    rest and culls that camera's keypoints as outliers, so the median error of what is kept
    looks excellent while the camera's pose is wrong (a view following someone else put a
    camera metres and tens of degrees off at 1.5 px median error). That is an error, never a
    result."""
    support = kept / np.maximum(confident, 1)
    bad = [f"{n} ({100 * s:.0f} %)" for n, s in zip(names, support, strict=True) if s < min_support]
    if bad:
        raise TriangulumError(
            f"camera(s) {', '.join(bad)} agree with the others on too few of their confident keypoints "
            f"(under {100 * min_support:.0f} %; the others: "
            + ", ".join(f"{n} {100 * s:.0f} %" for n, s in zip(names, support, strict=True) if s >= min_support)
            + "). Such a view most likely follows another person, or the camera moved during the take, or its "
            "intrinsics or sync are wrong; no calibration was written. Film the person alone, or check that camera.")
    return support


def _upright(P: np.ndarray, feet: np.ndarray, still: np.ndarray, trunk: list[int]) -> np.ndarray | None:
    """Up from balance: a person's centre of mass stays above the feet they stand on.

    P: (F, J, 3); feet: (F, K, 3); still: (F, K) planted feet -> unit up (3,) or None.
    Median over frames of the direction from the planted feet to the trunk's centre.
    """
    with np.errstate(all="ignore"):
        trunk_c = np.nanmean(P[:, trunk], 1)  # (F, 3)
    dirs = []
    for f in range(len(P)):
        if still[f].any() and np.isfinite(trunk_c[f]).all():
            v = trunk_c[f] - feet[f][still[f]].mean(0)
            dirs.append(v / np.linalg.norm(v))
    if len(dirs) < 3:
        return None
    up = np.median(np.array(dirs), 0)
    return up / np.linalg.norm(up)


def floor_and_scale(rig: Rig, P: np.ndarray, options: PersonOptions, warnings: list[str]):
    """Z-up floor frame from the feet and metric scale from the stature. P: (F, J, 3).

    The floor is fitted through the planted (still) foot positions when they cover an
    area (the person walked about), one offset per foot keypoint since heels and toes
    sit at different heights (world_frame.fit_parallel_planes). When they do not (standing or balancing in one
    spot: one or two blobs, which any plane fits) the floor is square to the body's
    up direction: from the planted feet to the trunk (balance keeps the centre of mass
    over the support), else feet -> eyes where that is longest (standing upright).
    Either way it passes through the lowest planted feet.
    """
    feet_idx = [j for group in options.feet for j in group]
    top_idx = list(options.top) or [j for j in range(P.shape[1]) if j not in feet_idx]
    foot_tracks = P[:, feet_idx]  # (F, K, 3)
    feet = foot_tracks.reshape(-1, 3)
    feet = feet[np.isfinite(feet).all(-1)]
    if len(feet) < 3:
        warnings.append("the feet were not reconstructed; the floor and scale were not set.")
        return rig, P, None, None
    with py_warnings.catch_warnings():  # frames without the top or the feet are NaN, as wanted
        py_warnings.simplefilter("ignore", RuntimeWarning)
        axis = np.nanmean(P[:, top_idx], 1) - np.nanmean(P[:, feet_idx], 1)  # (F, 3)
    axis = axis[np.isfinite(axis).all(-1)]
    if len(axis) == 0:
        warnings.append("the body's upright direction could not be measured; the floor and scale were not set.")
        return rig, P, None, None
    lengths = np.linalg.norm(axis, axis=-1)
    size = float(np.median(lengths))  # feet -> eyes, unscaled units
    # Feet on the floor stand still; a raised foot moves. Keep the still ones.
    step = np.linalg.norm(np.diff(foot_tracks, axis=0), axis=-1)  # (F-1, K)
    still = np.zeros(foot_tracks.shape[:2], bool)
    still[1:] = step < 0.01 * size
    still[:-1] |= step < 0.01 * size
    still &= np.isfinite(foot_tracks).all(-1)
    up = _upright(P, foot_tracks, still, list(options.trunk) or [j for j in range(P.shape[1]) if j not in feet_idx])
    if up is None:  # no planted foot: the body is longest when upright
        tall = lengths >= np.percentile(lengths, options.height_percentile)
        up = np.median(axis[tall] / lengths[tall, None], 0)
        up /= np.linalg.norm(up)
    col = {j: k for k, j in enumerate(feet_idx)}
    groups = [np.concatenate([foot_tracks[still[:, col[j]], col[j]] for j in group]) for group in options.feet]
    normal = None
    if sum(len(g) for g in groups) >= 10:
        n, _, masks = fit_parallel_planes(groups, up, 0.03 * size)
        spread = np.concatenate([g[m] - g[m].mean(0) for g, m in zip(groups, masks, strict=True) if m.sum() >= 2] or [np.zeros((1, 3))])
        sv = np.linalg.svd(spread, compute_uv=False) / np.sqrt(len(spread))
        # Planted feet that cover an area (the person walked) pin the floor's tilt.
        if len(sv) > 1 and sv[1] > 0.1 * size and np.degrees(np.arccos(np.clip(n @ up, -1, 1))) < 30:
            normal = n
    if normal is None:
        normal = up
        warnings.append("the feet stayed in one spot, so the floor's tilt comes from the body's balance over its feet "
                        "(expect some degrees of error); walk across the capture volume for a level floor.")
    planted = np.concatenate(groups) if groups else np.zeros((0, 3))
    feet = planted if len(planted) >= 3 else feet
    offset = float(np.percentile(feet @ normal, 5))  # the lowest foot positions touch the floor
    centre_feet = np.median(feet, 0)
    forward = rig.cameras[0].R[2]  # first camera's viewing direction, levelled
    R, t = frame_from_floor(normal, offset, normal, centre_feet, forward)
    rig = transform_rig(rig, 1.0, R, t)
    rig.metadata["world"] = "z-up, floor from the feet"
    P = transform_points(P, 1.0, R, t)
    scale = stature = None
    if options.height is not None:
        if not options.top:
            warnings.append("no eye joints were given; the scale was not set from the height.")
        else:
            with py_warnings.catch_warnings():
                py_warnings.simplefilter("ignore", RuntimeWarning)
                eye_z = np.nanmean(P[:, list(options.top), 2], axis=1)  # (F,)
            eye_z = eye_z[np.isfinite(eye_z)]
            if eye_z.size == 0:
                warnings.append("the eyes were not reconstructed; the scale was not set from the height.")
            else:
                stature = float(np.percentile(eye_z, options.height_percentile)) / options.top_ratio
                scale = options.height / stature
                rig = transform_rig(rig, scale, np.eye(3), np.zeros(3))
                P = P * scale
    return rig, P, scale, stature
