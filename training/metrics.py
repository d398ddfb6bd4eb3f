"""3D pose metrics: MPJPE family, PCK, Pose Structure Score, bone lengths, reprojection, jitter.

All functions take numpy arrays in metres (pixels for reprojection errors) and are NaN-aware:
a joint that is NaN in either prediction or ground truth is left out, and a pose with too few
valid joints contributes nothing. Means follow the Human3.6M protocol: over joints, then poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.alignment import similarity
from calibration.errors import TriangulumError


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim < 2:
        raise TriangulumError(
            f"Prediction {pred.shape} and ground truth {gt.shape} must have the same shape "
            "(..., J, 3); align the joint sets first."
        )
    return pred, gt


def _nanmean(x: np.ndarray, axis=None) -> np.ndarray | float:
    """Mean over non-NaN entries, NaN where there are none (without numpy's warning)."""
    valid = ~np.isnan(x)
    n = valid.sum(axis=axis)
    s = np.where(valid, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / n
    return float(out) if np.ndim(out) == 0 else out


def _pose_mean(errors: np.ndarray) -> float:
    """(..., J) errors -> mean over joints per pose, then over poses."""
    return float(_nanmean(_nanmean(errors.reshape(-1, errors.shape[-1]), axis=1)))


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean error per joint: (..., J, D) x2 -> (..., J), NaN where either is missing."""
    pred, gt = _pair(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error of (..., J, 3) poses, in the input unit."""
    return _pose_mean(joint_errors(pred, gt))


def _root_centre(points: np.ndarray, root: int) -> np.ndarray:
    return points - points[..., root : root + 1, :]


def relative_mpjpe(pred: np.ndarray, gt: np.ndarray, root: int) -> float:
    """MPJPE after subtracting each pose's root joint (Human3.6M: pelvis, index 6). (..., J, 3)."""
    pred, gt = _pair(pred, gt)
    return mpjpe(_root_centre(pred, root), _root_centre(gt, root))


def _masked(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten to (N, J, D) and zero joints missing in either; returns (pred, gt, mask (N, J))."""
    d = pred.shape[-1]
    p = pred.reshape(-1, pred.shape[-2], d)
    g = gt.reshape(-1, gt.shape[-2], d)
    mask = ~(np.isnan(p).any(-1) | np.isnan(g).any(-1))
    return np.where(mask[..., None], p, 0.0), np.where(mask[..., None], g, 0.0), mask


def scale_align(pred: np.ndarray, gt: np.ndarray, root: int | None = None) -> np.ndarray:
    """Least-squares scale s = <p, g> / <p, p> applied to each pose: (..., J, 3) -> (..., J, 3).

    With `root`, both poses are root-centred first (Rhodin et al.'s N-MPJPE); the result is then
    root-centred too. Poses without a valid joint come back NaN.
    """
    pred, gt = _pair(pred, gt)
    if root is not None:
        pred, gt = _root_centre(pred, root), _root_centre(gt, root)
    p, g, mask = _masked(pred, gt)
    pp = (p * p).sum(axis=(1, 2))
    pg = (p * g).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(mask.any(1) & (pp > 0), pg / pp, np.nan)
    return pred * s.reshape(pred.shape[:-2] + (1, 1))


def n_mpjpe(pred: np.ndarray, gt: np.ndarray, root: int | None = None) -> float:
    """MPJPE after least-squares scale alignment of each pose (see scale_align). (..., J, 3)."""
    aligned = scale_align(pred, gt, root)
    if root is not None:
        gt = _root_centre(np.asarray(gt, dtype=np.float64), root)
    return mpjpe(aligned, gt)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity transform (scale, rotation, translation) of each pred pose onto its gt pose.

    (..., J, 3) x2 -> (..., J, 3). Umeyama's least-squares solution; the rotation is kept proper
    (det +1) so a mirrored prediction is not "fixed" by a reflection. Poses with fewer than three
    valid joints come back NaN; missing joints are transformed too (they stay NaN).
    """
    pred, gt = _pair(pred, gt)
    if pred.shape[-1] != 3:
        raise TriangulumError(f"Procrustes alignment needs 3D points, got shape {pred.shape}.")
    p, g, mask = _masked(pred, gt)
    scale, rot, shift = similarity(p, g, mask.astype(np.float64))
    full = pred.reshape(p.shape)
    out = scale[:, None, None] * np.einsum("nik,njk->nji", rot, full) + shift[:, None]
    out[mask.sum(axis=1) < 3] = np.nan
    return out.reshape(pred.shape)


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after per-pose Procrustes alignment (protocol 2). (..., J, 3)."""
    return mpjpe(procrustes_align(pred, gt), gt)


def pck(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.150) -> float:
    """Fraction of valid joints whose error is below `threshold` (metres). (..., J, 3)."""
    err = joint_errors(pred, gt)
    valid = ~np.isnan(err)
    if not valid.any():
        return float("nan")
    return float((err[valid] < threshold).mean())


def normalise_poses(poses: np.ndarray, root: int) -> np.ndarray:
    """Root-centre and L2-normalise each pose: (N, J, 3) -> (N, J*3) unit vectors."""
    flat = _root_centre(np.asarray(poses, dtype=np.float64), root).reshape(len(poses), -1)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return flat / norm


def _nearest(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the nearest centre: (N, D), (K, D) -> (N,), (N,)."""
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]
    label = d2.argmin(axis=1)
    return label, np.maximum(d2[np.arange(len(x)), label], 0.0)


def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """Deterministic k-means (k-means++ start, Lloyd iterations): (N, D) -> (k, D) centres.

    An emptied cluster is re-seeded at the point farthest from its centre, so k centres are
    always returned.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < k:
        raise TriangulumError(f"k-means needs at least k={k} poses, got {len(x)}; lower k.")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        _, d2 = _nearest(x, np.array(centres))
        total = d2.sum()
        if total <= 0:  # all remaining points coincide with a centre
            centres.append(x[rng.integers(len(x))])
        else:
            centres.append(x[rng.choice(len(x), p=d2 / total)])
    centres = np.array(centres)
    for _ in range(iterations):
        label, d2 = _nearest(x, centres)
        new = centres.copy()
        for c in range(k):
            members = label == c
            if members.any():
                new[c] = x[members].mean(axis=0)
            else:
                far = int(d2.argmax())
                new[c] = x[far]
                d2[far] = 0.0
        if np.allclose(new, centres):
            break
        centres = new
    return centres


def pose_structure_score(
    pred: np.ndarray, gt: np.ndarray, root: int, k: int = 50, seed: int = 0,
    training: np.ndarray | None = None,
) -> float:
    """Pose Structure Score (EpipolarPose): share of poses whose prediction lands in the same
    k-means cluster as its ground truth. Clusters come from `training` poses (M, J, 3) when
    given (EpipolarPose fits them on the training set), else from the ground-truth poses,
    after root-centring and L2 normalisation. (N, J, 3) x2 -> float; poses with a NaN are
    left out.
    """
    pred, gt = _pair(pred, gt)
    pred = pred.reshape(-1, *pred.shape[-2:])
    gt = gt.reshape(-1, *gt.shape[-2:])
    ok = ~(np.isnan(pred).any(axis=(1, 2)) | np.isnan(gt).any(axis=(1, 2)))
    p, g = normalise_poses(pred[ok], root), normalise_poses(gt[ok], root)
    ok = ~(np.isnan(p).any(1) | np.isnan(g).any(1))  # zero-size poses cannot be normalised
    p, g = p[ok], g[ok]
    fit = g
    if training is not None:
        t = np.asarray(training, dtype=np.float64)
        t = t[~np.isnan(t).any(axis=(1, 2))]
        fit = normalise_poses(t, root)
        fit = fit[~np.isnan(fit).any(1)]
    centres = kmeans(fit, k, seed=seed)
    return float((_nearest(p, centres)[0] == _nearest(g, centres)[0]).mean())


def face_forward(poses: np.ndarray, left: int, right: int) -> np.ndarray:
    """Turn each pose about the vertical (Z) so that its left-right line (joint `left` minus
    `right`) points along +Y: (N, J, 3) -> (N, J, 3). World-frame poses then compare by
    posture, not by where the person faced (PSS on world coordinates needs this)."""
    poses = np.asarray(poses, dtype=np.float64)
    d = poses[:, left, :2] - poses[:, right, :2]
    a = np.pi / 2 - np.arctan2(d[:, 1], d[:, 0])
    c, s = np.cos(a), np.sin(a)
    R = np.zeros((len(poses), 3, 3))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    return np.einsum("nij,nkj->nki", R, poses)


@dataclass(frozen=True)
class BoneLengthStats:
    """Per bone over frames: mean and std (population, ddof=0) length, cv = std / mean,
    count = frames where both ends are valid. Each (B,)."""

    mean: np.ndarray
    std: np.ndarray
    cv: np.ndarray
    count: np.ndarray


def bone_lengths(points: np.ndarray, bones) -> np.ndarray:
    """Bone lengths per frame: (F, J, 3), (B, 2) index pairs -> (F, B), NaN where an end is."""
    points = np.asarray(points, dtype=np.float64)
    bones = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
    return np.linalg.norm(points[..., bones[:, 1], :] - points[..., bones[:, 0], :], axis=-1)


def bone_length_stats(points: np.ndarray, bones) -> BoneLengthStats:
    """Mean, std and coefficient of variation of each bone's length over the frames of a take.

    points: (F, J, 3); bones: (B, 2) (parent, child) joint indices.
    """
    lengths = bone_lengths(points, bones).reshape(-1, len(np.asarray(bones).reshape(-1, 2)))
    mean = _nanmean(lengths, axis=0)
    std = np.sqrt(_nanmean((lengths - mean) ** 2, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = std / mean
    return BoneLengthStats(mean, std, cv, (~np.isnan(lengths)).sum(axis=0))


@dataclass(frozen=True)
class ReprojectionStats:
    """Summary of reprojection errors in pixels over valid entries of a (C, F, J) array.

    share_above: fraction above `threshold`; per_camera (C,) and per_joint (J,) means.
    """

    mean: float
    median: float
    p95: float
    share_above: float
    threshold: float
    count: int
    per_camera: np.ndarray
    per_joint: np.ndarray


def reprojection_stats(errors: np.ndarray, threshold: float = 10.0) -> ReprojectionStats:
    """Statistics of reprojection errors (C, F, J) in pixels; NaN entries are ignored."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 3:
        raise TriangulumError(
            f"Reprojection errors must be shaped (cameras, frames, joints), got {errors.shape}."
        )
    valid = errors[~np.isnan(errors)]
    per_camera = _nanmean(errors.reshape(errors.shape[0], -1), axis=1)
    per_joint = _nanmean(errors.transpose(2, 0, 1).reshape(errors.shape[2], -1), axis=1)
    if valid.size == 0:
        nan = float("nan")
        return ReprojectionStats(nan, nan, nan, nan, threshold, 0, per_camera, per_joint)
    return ReprojectionStats(
        mean=float(valid.mean()),
        median=float(np.median(valid)),
        p95=float(np.percentile(valid, 95)),
        share_above=float((valid > threshold).mean()),
        threshold=float(threshold),
        count=int(valid.size),
        per_camera=per_camera,
        per_joint=per_joint,
    )


def acceleration(points: np.ndarray, fps: float) -> np.ndarray:
    """Acceleration magnitude by central second differences: (F, J, 3) -> (F-2, J), units/s^2."""
    if fps <= 0:
        raise TriangulumError(f"Frame rate must be positive, got {fps}.")
    points = np.asarray(points, dtype=np.float64)
    acc = (points[2:] - 2.0 * points[1:-1] + points[:-2]) * fps**2
    return np.linalg.norm(acc, axis=-1)


def jitter(points: np.ndarray, fps: float) -> float:
    """Mean acceleration magnitude over frames and joints of a (F, J, 3) take, in m/s^2.

    A steady or uniformly moving body scores 0; frame-to-frame noise scores high. Triplets of
    frames with a missing sample are left out.
    """
    return float(_nanmean(acceleration(points, fps)))


# PCP limbs of the multi-person benchmarks (Shelf, Campus), by joint name so that every
# skeleton that has or can derive the ends (thorax, pelvis: DERIVED) is scored the same way.
# The benchmarks' head limb runs from the neck to the head top; skeletons without a head top
# (BlazePose, COCO, BODY_25) use the nose, which is stated wherever the figure is printed.
PCP_LIMBS: dict[str, tuple[tuple[str, str], ...]] = {
    "head": (("thorax", "nose"),),
    "torso": (("pelvis", "thorax"),),
    "upper_arms": (("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow")),
    "lower_arms": (("left_elbow", "left_wrist"), ("right_elbow", "right_wrist")),
    "upper_legs": (("left_hip", "left_knee"), ("right_hip", "right_knee")),
    "lower_legs": (("left_knee", "left_ankle"), ("right_knee", "right_ankle")),
}


def pcp_limbs(pred: np.ndarray, gt: np.ndarray, skeleton, alpha: float = 0.5) -> tuple[np.ndarray, list[str]]:
    """Percentage of Correct Parts, per limb: a limb is correct when the mean distance of its two
    predicted ends to the true ones is at most `alpha` times its true length.

    pred, gt: (..., J, 3) of `skeleton` -> correct (..., L) 1.0 / 0.0, NaN where the true limb is
    unknown (a NaN prediction counts as wrong: a missed person scores 0); and the PCP_LIMBS
    class of each of the L limbs.
    """
    from engines.skeleton import named_points

    ends = [e for limbs in PCP_LIMBS.values() for e in limbs]
    classes = [c for c, limbs in PCP_LIMBS.items() for _ in limbs]
    names = [n for e in ends for n in e]
    p = named_points(pred, skeleton, names).reshape(*np.shape(pred)[:-2], len(ends), 2, 3)
    g = named_points(gt, skeleton, names).reshape(*np.shape(gt)[:-2], len(ends), 2, 3)
    length = np.linalg.norm(g[..., 0, :] - g[..., 1, :], axis=-1)
    error = np.linalg.norm(p - g, axis=-1).mean(-1)
    correct = np.where(np.isfinite(error), error <= alpha * length, False).astype(np.float64)
    return np.where(np.isfinite(length), correct, np.nan), classes


@dataclass
class MultiPersonPcp:
    """PCP of a multi-person take. classes (K,) limb classes; per_person (G, K) percent per true
    person and class; person_average (G,) percent per true person over all their limbs;
    average () percent: the mean of person_average; matched (G, F): the prediction each true
    person was matched to per frame (-1 absent or none); id_switches (G,): times a true
    person's matched prediction changed between frames."""

    classes: list[str]
    per_person: np.ndarray
    person_average: np.ndarray
    average: float
    matched: np.ndarray
    id_switches: np.ndarray


def match_people(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """One frame: each true person's closest prediction by MPJPE, one prediction per person
    (Hungarian). pred (Q, J, 3), gt (G, J, 3) NaN where absent -> (G,) index into pred or -1."""
    from scipy.optimize import linear_sum_assignment

    out = np.full(len(gt), -1)
    if not len(pred) or not len(gt):
        return out
    cost = _nanmean(np.linalg.norm(pred[:, None] - gt[None], axis=-1), axis=-1)  # (Q, G)
    ok = np.isfinite(cost)
    rows, cols = linear_sum_assignment(np.where(ok, cost, 1e9))
    for q, g in zip(rows, cols, strict=True):
        if ok[q, g]:
            out[g] = q
    return out


def match_frames(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """`match_people` in every frame: pred (Q, F, J, 3), gt (G, F, J, 3) NaN where absent ->
    (G, F) index into pred, -1 where the true person is absent or unmatched."""
    G, F = gt.shape[:2]
    present = np.isfinite(gt).all(-1).any(-1)  # (G, F)
    matched = np.full((G, F), -1)
    for f in range(F):
        here = np.flatnonzero(present[:, f])
        if len(here):
            matched[here, f] = match_people(pred[:, f], gt[here, f])
    return matched


def multi_person_pcp(pred: np.ndarray, gt: np.ndarray, skeleton, alpha: float = 0.5,
                     matched: np.ndarray | None = None) -> MultiPersonPcp:
    """PCP over a take: pred (Q, F, J, 3) predicted people, gt (G, F, J, 3) true people, NaN where
    a person is absent. Each frame, every true person present is matched to the closest
    prediction (`match_frames`, or the given `matched` (G, F)); a true person with no
    prediction scores 0 on every limb."""
    F = gt.shape[1]
    if not np.isfinite(gt).all(-1).any():
        raise TriangulumError("no true person is present in any frame; nothing to score.")
    matched = match_frames(pred, gt) if matched is None else matched
    guess = np.where((matched >= 0)[..., None, None], pred[np.maximum(matched, 0), np.arange(F)], np.nan)
    scores, classes = pcp_limbs(guess, gt, skeleton, alpha)  # (G, F, L), NaN where absent
    per_limb = _nanmean(scores, axis=1)  # (G, L)
    names = list(PCP_LIMBS)
    per_person = np.stack([_nanmean(per_limb[:, [i for i, k in enumerate(classes) if k == n]], axis=-1)
                           for n in names], -1) * 100
    person_average = _nanmean(per_limb, axis=-1) * 100
    switches = np.array([int((np.diff(m[m >= 0]) != 0).sum()) for m in matched])
    return MultiPersonPcp(names, per_person, person_average, float(_nanmean(person_average)), matched, switches)
