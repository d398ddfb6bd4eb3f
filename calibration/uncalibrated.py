"""Cameras and the person together from the views alone: calibration-free capture.

MetaPose's stages (../shared/REFERENCE.md), on one person's 2D joints and BlazePose's per-view
metric 3D pose (its "world" landmarks: metres, hip-centred, in the camera's axes):

1. **Initialisation.** Each view's 3D pose is the same body seen in that camera's axes, so a
   rigid alignment of every view's poses to the first view's gives the cameras' rotations (one
   rotation per frame, then a robust average over the take: a frame whose monocular pose is
   mirrored or wrong is outvoted). With the rotations and the body known, the projection
   equations are linear in the camera positions and the person's path: one least-squares
   solve gives both, in metres (BlazePose's metric scale).
2. **Learned refinement** (engines/metapose.py): a feed-forward network moves cameras and pose
   towards agreement with the 2D; it is given to `solve_uncalibrated` as `refine`.
3. **Bundle adjustment** of camera poses, focal lengths and joints over the take (robust
   loss, cull, second pass: calibration.from_person.adjust), then the floor, up and metric
   scale from the person's height (calibration.from_person.floor_and_scale).

Intrinsics are unknown: each camera starts from a stated average focal length (FOCAL_RATIO x
the image's long side, a 60 degree field of view across it; webcams, phones and studio
cameras lie within about +-20 % of it), the principal point at the image centre and no
distortion; stage 3 refines one focal length per camera (square pixels). A similarity of the world stays free and is fixed by the
height and the floor. Pure geometry on arrays, as calibration.from_person.
"""

from __future__ import annotations

import time
import warnings as py_warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from calibration.alignment import rotation_angle_deg
from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.from_person import (
    PersonOptions,
    adjust,
    check_support,
    floor_and_scale,
    normalised,
)
from calibration.rig import Rig

FOCAL_RATIO = 0.866  # f / long side = 0.5 / tan(30 deg): a 60 degree field of view across the long side
MAX_ROTATION_SPREAD_DEG = 20.0  # frames whose view-to-view rotation is further from the average are outvoted


@dataclass
class Stage:
    """One stage's outcome: seconds it took, reprojection error of the 2D it used (px), and the
    rig and joints it ended with (the world of the first camera until the floor is set)."""

    name: str
    seconds: float
    median_px: float
    p95_px: float
    rig: Rig
    points: np.ndarray  # (F, J, 3)


@dataclass
class FreeResult:
    """rig: the estimated cameras (Z-up world on the floor, metres from the height); points
    (F, J, 3) the adjusted joints at `frames`; stages: each stage's outcome in order; support:
    (C,) share of each camera's confident keypoints the adjustment kept."""

    rig: Rig
    frames: np.ndarray
    points: np.ndarray
    stages: list[Stage]
    support: np.ndarray
    scale: float | None
    warnings: list[str] = field(default_factory=list)


def guess_intrinsics(names: list[str], sizes: list[tuple[int, int]], focal_ratio: float = FOCAL_RATIO) -> Rig:
    """Cameras with the stated average focal length, centred principal point, no distortion,
    unposed. sizes: (width, height) per camera."""
    cams = []
    for name, (w, h) in zip(names, sizes, strict=True):
        f = focal_ratio * max(w, h)
        K = np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])
        cams.append(Camera(name, (int(w), int(h)), K, np.zeros(5), np.eye(3), np.zeros(3)))
    return Rig(cams, {"intrinsics": f"guessed: focal {focal_ratio:g} x long side, centred, no distortion"})


def rotation_between(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The rotation R with b ~ R a (weighted Kabsch, no reflection) of points each view centred on
    its own usable joints. a, b (N, 3); w (N,). Unlike calibration.alignment.similarity it does
    not centre them again on the N shared joints (what stage 1 measured and ships with)."""
    H = (a * w[:, None]).T @ b
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    return Vt.T @ D @ U.T


def average_rotation(Rs: np.ndarray, weights: np.ndarray, spread_deg: float = MAX_ROTATION_SPREAD_DEG) -> tuple[np.ndarray, np.ndarray]:
    """Robust chordal average of rotations. Rs (N, 3, 3), weights (N,) -> (R (3, 3), inliers (N,))."""

    def project(M: np.ndarray) -> np.ndarray:
        U, _, Vt = np.linalg.svd(M)
        return U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt

    # Start from the rotation with most weighted neighbours (a median), then average its inliers.
    angles = rotation_angle_deg(Rs[:, None], Rs[None])
    start = int(np.argmax(((angles < spread_deg) * weights[None]).sum(1)))
    R = Rs[start]
    for _ in range(3):
        inl = rotation_angle_deg(Rs, R) < spread_deg
        R = project(np.einsum("n,nij->ij", weights * inl, Rs))
    return R, rotation_angle_deg(Rs, R) < spread_deg


def initialise(keypoints: np.ndarray, confidence: np.ndarray, world: np.ndarray, intrinsics: Rig,
               min_confidence: float = 0.5) -> tuple[Rig, np.ndarray]:
    """Stage 1: cameras and joints from the per-view metric 3D poses and the 2D.

    keypoints (C, F, J, 2) distorted px; confidence (C, F, J); world (C, F, J, 3) each view's
    hip-centred metric 3D pose in its camera's axes (x right, y down, z away), NaN where absent
    -> (rig posed in the first camera's frame, joints (F, J, 3) in metres).
    """
    C, F, J, _ = keypoints.shape
    ok, centred = _usable(keypoints, confidence, world, min_confidence)
    Rs = np.zeros((C, 3, 3))
    Rs[0] = np.eye(3)
    for c in range(1, C):
        per_frame, weight = [], []
        for f in range(F):
            both = ok[0, f] & ok[c, f]
            if both.sum() < 6:
                continue
            w = np.minimum(confidence[0, f, both], confidence[c, f, both])
            per_frame.append(rotation_between(centred[0, f, both], centred[c, f, both], w))
            weight.append(w.sum())
        if len(per_frame) < 3:
            raise TriangulumError(f"camera '{intrinsics.names[c]}' and '{intrinsics.names[0]}' see the person's 3D pose "
                                  f"together in only {len(per_frame)} frames; the person must be visible in every camera.")
        Rs[c], _ = average_rotation(np.array(per_frame), np.array(weight))
    return place(Rs, keypoints, confidence, world, intrinsics, min_confidence)


def _usable(keypoints: np.ndarray, confidence: np.ndarray, world: np.ndarray, min_confidence: float):
    ok = (confidence >= min_confidence) & np.isfinite(keypoints).all(-1) & np.isfinite(world).all(-1)
    with py_warnings.catch_warnings():  # a frame with nothing usable stays NaN
        py_warnings.simplefilter("ignore", RuntimeWarning)
        centred = world - np.nanmean(np.where(ok[..., None], world, np.nan), axis=2, keepdims=True)
    return ok, centred


def place(Rs: np.ndarray, keypoints: np.ndarray, confidence: np.ndarray, world: np.ndarray, intrinsics: Rig,
          min_confidence: float = 0.5) -> tuple[Rig, np.ndarray]:
    """Camera positions and the person from camera rotations Rs (C, 3, 3) (world = the first
    camera's axes; arrays as in `initialise`): the body is every view's 3D pose turned into the
    world and averaged, and one linear least squares gives its path and the cameras' positions.
    -> (posed rig, joints (F, J, 3) m)."""
    C, F, J, _ = keypoints.shape
    ok, centred = _usable(keypoints, confidence, world, min_confidence)
    # The body in the first camera's axes: every view's pose turned into them, averaged.
    turned = np.einsum("cki,cfjk->cfji", Rs, np.nan_to_num(centred))  # R_c^T w: (C, F, J, 3)
    wts = np.where(ok, confidence, 0.0)
    denom = wts.sum(0)
    body = np.where((denom > 0)[..., None], (turned * wts[..., None]).sum(0) / np.maximum(denom, 1e-9)[..., None], np.nan)
    # Linear least squares for the path H (F, 3) and camera translations t_c (c >= 1):
    # camera point Y = R_c (body + H) + t_c; its normalised image point (x, y) gives
    # Y_x - x Y_z = 0 and Y_y - y Y_z = 0.
    norm = normalised(intrinsics, keypoints)
    use = ok & np.isfinite(body).all(-1)[None]
    rows, rhs, wrow = [], [], []
    nvar = 3 * F + 3 * (C - 1)
    for c in range(C):
        ff, jj = np.nonzero(use[c])
        if not len(ff):
            continue
        x = norm[c, ff, jj]  # (M, 2)
        for k in range(2):
            a = Rs[c][k][None] - x[:, k:k + 1] * Rs[c][2][None]  # (M, 3)
            A = np.zeros((len(ff), nvar))
            A[np.arange(len(ff))[:, None], 3 * ff[:, None] + np.arange(3)] = a
            if c > 0:
                e = np.zeros((len(ff), 3))
                e[:, k] = 1.0
                e[:, 2] = -x[:, k]
                A[:, 3 * F + 3 * (c - 1): 3 * F + 3 * c] = e
            rows.append(A)
            rhs.append(-(a * body[ff, jj]).sum(-1))
            wrow.append(confidence[c, ff, jj])
    A, b, w = np.concatenate(rows), np.concatenate(rhs), np.concatenate(wrow)
    seen = np.abs(A[:, :3 * F]).reshape(len(A), F, 3).sum((0, 2)) > 0
    cols = np.concatenate([np.repeat(seen, 3), np.ones(3 * (C - 1), bool)])
    sol = np.full(nvar, np.nan)
    sol[cols] = np.linalg.lstsq(A[:, cols] * w[:, None], b * w, rcond=None)[0]
    H = sol[:3 * F].reshape(F, 3)
    ts = np.vstack([np.zeros(3), sol[3 * F:].reshape(C - 1, 3)])
    rig = Rig([Camera(cam.name, cam.size, cam.K, cam.dist, Rs[c], ts[c]) for c, cam in enumerate(intrinsics.cameras)],
              dict(intrinsics.metadata))
    return rig, body + H[:, None]


def reprojection(rig: Rig, points: np.ndarray, keypoints: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pixel errors of the valid observations. points (F, J, 3), keypoints (C, F, J, 2), valid (C, F, J) -> (M,)."""
    err = np.linalg.norm(rig.project(points) - keypoints, axis=-1)
    err = err[valid & np.isfinite(err)]
    return err


def solve_uncalibrated(
    keypoints: np.ndarray,
    confidence: np.ndarray,
    world: np.ndarray,
    intrinsics: Rig,
    options: PersonOptions | None = None,
    refine: Callable[[Rig, np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[Rig, np.ndarray]] | None = None,
    refine_focal: bool = True,
) -> FreeResult:
    """Cameras and joints from one person's views (module docstring).

    keypoints (C, F, J, 2) distorted px, frame f of every camera at one instant; confidence
    (C, F, J); world (C, F, J, 3) BlazePose's per-view metric 3D pose; intrinsics: the cameras'
    names and sizes with a starting K (guess_intrinsics); refine: stage 2, (rig, joints,
    keypoints, confidence, world) -> (rig, joints), None to skip it; refine_focal: estimate one
    focal length per camera in stage 3 (with three or more cameras).
    """
    options = options or PersonOptions()
    C = len(intrinsics)
    if keypoints.shape[0] != C or world.shape[:3] != keypoints.shape[:3]:
        raise TriangulumError(f"keypoints {keypoints.shape} and 3D poses {world.shape} do not match the {C} cameras "
                              f"{intrinsics.names}.")
    frames = np.arange(keypoints.shape[1])
    if options.max_frames is not None and len(frames) > options.max_frames:
        frames = np.unique(np.linspace(0, len(frames) - 1, options.max_frames).round().astype(int))
    kp, cf, wl = keypoints[:, frames], confidence[:, frames], world[:, frames]
    _, F, J, _ = kp.shape
    valid = (cf >= options.min_confidence) & np.isfinite(kp).all(-1)
    for c in range(C):
        if valid[c].sum() < options.min_correspondences:
            raise TriangulumError(f"camera '{intrinsics.names[c]}': only {int(valid[c].sum())} confident keypoints; "
                                  "the person must be visible in every camera.")
    stages = []

    def record(name: str, t0: float, rig: Rig, P: np.ndarray) -> None:
        e = reprojection(rig, P, kp, valid)
        stages.append(Stage(name, time.perf_counter() - t0, float(np.median(e)) if e.size else np.nan,
                            float(np.percentile(e, 95)) if e.size else np.nan, rig, P))

    t0 = time.perf_counter()
    rig, P = initialise(kp, cf, wl, intrinsics, options.min_confidence)
    record("1 initialisation (monocular 3D)", t0, rig, P)
    warnings: list[str] = []
    if refine is not None:
        t0 = time.perf_counter()
        rig2, P2 = refine(rig, P, kp, cf, wl)
        record("2 learned refinement", t0, rig2, P2)
        # The refinement is kept only where it agrees with the views better than its start (it
        # learned on synthetic studios; a take unlike them must not pay for it).
        if stages[-1].median_px < stages[-2].median_px:
            rig, P = rig2, P2
        else:
            warnings.append(f"the learned refinement did not bring the cameras closer to the views "
                            f"({stages[-2].median_px:.1f} -> {stages[-1].median_px:.1f} px median); the "
                            "adjustment started from the initialisation.")
    t0 = time.perf_counter()
    pts = kp.reshape(C, F * J, 2)
    res, obs, tracks = adjust(rig, pts, valid.reshape(C, -1), P.reshape(-1, 3), options, fixed=(0,))
    if refine_focal and C < 3:
        # Two cameras aimed at one person have (nearly) intersecting optical axes, where two
        # focal lengths cannot be told from the epipolar geometry (Bougnoux's degeneracy).
        warnings.append("with two cameras the focal lengths cannot be estimated from the person; the stated average "
                        f"({FOCAL_RATIO:g} x the long side) was kept, so distances may be off by 10-20 %. Calibrate "
                        "the intrinsics with a board for accurate sizes.")
    if refine_focal and C >= 3:
        # Focal lengths only once the poses have settled: from a far start they trade off against depth.
        X = np.full((F * J, 3), np.nan)
        X[tracks] = res.structure
        res, obs, tracks = adjust(res.rig, pts, valid.reshape(C, -1), X, options, fixed=(0,),
                                  intrinsics=("f",))
    points = np.full((F * J, 3), np.nan)
    seen = np.bincount(obs.element, minlength=len(tracks))
    points[tracks[seen >= 2]] = res.structure[seen >= 2]
    support = check_support(intrinsics.names, np.bincount(obs.camera, minlength=C), valid.reshape(C, -1).sum(1),
                            options.min_support)
    rig = res.rig
    for cam in rig.cameras:
        ratio = cam.K[0, 0] / max(cam.size)
        if not 0.35 <= ratio <= 2.5:
            raise TriangulumError(f"camera '{cam.name}': the estimated focal length ({cam.K[0, 0]:.0f} px, {ratio:.2f} x "
                                  "the long side) is implausible, so the views do not pin the cameras down; calibrate the "
                                  "intrinsics with a board (`triangulum calib intrinsics`) and pose the cameras with "
                                  "`triangulum calib from-person`.")
    P = points.reshape(F, J, 3)
    scale = None
    if options.feet:
        rig, P, scale, _ = floor_and_scale(rig, P, options, warnings)
    record("3 bundle adjustment", t0, rig, P)
    rig.metadata.update({"adjusted": True, "source": "calibration-free"})
    for c, cam in enumerate(rig.cameras):
        e = res.errors[obs.camera == c]
        cam.rmse = float(np.sqrt(np.mean(e**2))) if e.size else None
    return FreeResult(rig, frames, P, stages, support, scale, warnings)
