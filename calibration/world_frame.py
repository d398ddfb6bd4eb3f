"""Choosing the world frame of a rig: from a board on the floor, a camera, or floor points.

A change of world frame is a similarity X' = s R X + t. Applied to a rig it keeps
every image projection unchanged (see `transform_rig`).
"""

from __future__ import annotations

import numpy as np

from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.rig import Rig


def transform_rig(rig: Rig, s: float, R: np.ndarray, t: np.ndarray) -> Rig:
    """The same cameras in the world X' = s R X + t (projections unchanged).

    R: (3, 3) rotation; t: (3,) metres (of the new frame). x_c' = s x_c, so
    R_c' = R_c R^T and t_c' = s t_c - R_c' t.
    """
    R = np.asarray(R, np.float64)
    t = np.asarray(t, np.float64)
    cams = []
    for c in rig.cameras:
        Rc = c.R @ R.T
        cams.append(Camera(c.name, c.size, c.K, c.dist, Rc, s * c.t - Rc @ t, c.rmse))
    return Rig(cams, dict(rig.metadata))


def transform_points(X: np.ndarray, s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """X: (..., 3) -> s R X + t, (..., 3)"""
    return s * np.asarray(X) @ np.asarray(R).T + np.asarray(t)


def frame_from_board(R_board: np.ndarray, t_board: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World frame from a board lying face-up on the floor: origin at its top-left corner,
    X along its columns, Y against its rows, Z up (out of the printed face).

    R_board, t_board: the board->current-world pose. -> (R, t) mapping the current world
    into the new one (use with transform_rig, s = 1).
    """
    # Board axes in the current world: x columns, y rows, z into the board (= down).
    bx, by, bz = R_board[:, 0], R_board[:, 1], R_board[:, 2]
    axes = np.stack([bx, -by, -bz])  # rows: new X, Y, Z in current-world coordinates
    return axes, -axes @ t_board


def frame_from_camera(rig: Rig, name: str) -> tuple[np.ndarray, np.ndarray]:
    """World frame = the named camera's frame (x right, y down, z forward)."""
    cam = rig[name]
    return cam.R.copy(), cam.t.copy()


def fit_plane(points: np.ndarray, threshold: float = 0.03, iterations: int = 200, seed: int = 0) -> tuple[np.ndarray, float, np.ndarray]:
    """RANSAC plane through 3D points, refined on its inliers by least squares.

    points: (N, 3) -> (unit normal (3,), offset d with n.X = d, inlier mask (N,))
    """
    P = np.asarray(points, np.float64)
    P = P[np.isfinite(P).all(1)]
    if len(P) < 3:
        raise TriangulumError("cannot find the floor: fewer than three foot positions were triangulated.")
    rng = np.random.default_rng(seed)
    best = np.zeros(len(P), bool)
    for _ in range(iterations):
        a, b, c = P[rng.choice(len(P), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-9:
            continue
        n /= np.linalg.norm(n)
        inl = np.abs(P @ n - n @ a) < threshold
        if inl.sum() > best.sum():
            best = inl
    Q = P[best] if best.sum() >= 3 else P
    centre = Q.mean(0)
    n = np.linalg.svd(Q - centre)[2][-1]
    full = np.isfinite(points).all(-1)
    mask = np.zeros(len(points), bool)
    mask[full] = np.abs(P @ n - n @ centre) < threshold
    return n, float(n @ centre), mask


def _cone(normal: np.ndarray, max_deg: float, step_deg: float) -> np.ndarray:
    """Unit vectors within max_deg of normal on a grid of step_deg. -> (K, 3)"""
    n = normal / np.linalg.norm(normal)
    a = np.cross(n, [1.0, 0, 0] if abs(n[0]) < 0.9 else [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(n, a)
    g = np.radians(np.arange(-max_deg, max_deg + 1e-9, step_deg))
    u, v = np.meshgrid(g, g)
    keep = np.hypot(u, v) <= np.radians(max_deg) + 1e-12
    d = n + np.tan(u[keep])[:, None] * a + np.tan(v[keep])[:, None] * b
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _plane_inliers(groups: list[np.ndarray], normals: np.ndarray, threshold: float) -> np.ndarray:
    """For each candidate normal, how many points lie within threshold of their group's
    floor (its 10th height percentile). normals: (K, 3) -> (K,)"""
    total = np.zeros(len(normals), np.int64)
    for g in groups:
        if len(g) == 0:
            continue
        h = normals @ g.T  # (K, N)
        d = np.percentile(h, 10, axis=1, keepdims=True)
        total += (np.abs(h - d) < threshold).sum(1)
    return total


def fit_parallel_planes(groups: list[np.ndarray], normal: np.ndarray, threshold: float,
                        max_tilt_deg: float = 30.0) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """One plane normal shared by several groups of points, each with its own offset.

    Heel and toe keypoints sit at different heights above the floor; fitting one plane
    through both tilts it. Each group (say, both heels over time) gets its own offset;
    the normal is common. The normal is searched within max_tilt_deg of the guess
    `normal` for the most points near their group's floor (coarse grid, then finer),
    then refined by least squares on those points; points further than `threshold`
    (a raised foot) do not count.

    groups: list of (N_k, 3) -> (unit normal (3,), offsets (K,), inlier masks)
    """
    guess = np.asarray(normal, np.float64) / np.linalg.norm(normal)
    groups = [np.asarray(g, np.float64).reshape(-1, 3) for g in groups]
    best = guess
    for span, step in ((max_tilt_deg, 2.0), (2.0, 0.25)):
        cands = _cone(best, span, step)
        score = _plane_inliers(groups, cands, threshold)
        # Among the best-supported normals prefer the one nearest the guess.
        top = np.flatnonzero(score == score.max())
        best = cands[top[np.argmax(cands[top] @ guess)]]
    n = best
    for _ in range(5):
        offsets = np.array([np.percentile(g @ n, 10) if len(g) else 0.0 for g in groups])
        masks = [np.abs(g @ n - d) < threshold for g, d in zip(groups, offsets, strict=True)]
        centred = [g[m] - g[m].mean(0) for g, m in zip(groups, masks, strict=True) if m.sum() >= 2]
        if not centred:
            break
        new = np.linalg.svd(np.concatenate(centred), full_matrices=False)[2][-1]
        new = new if new @ n > 0 else -new
        if _plane_inliers(groups, new[None], threshold)[0] < _plane_inliers(groups, n[None], threshold)[0]:
            break
        n = new
    offsets = np.array([np.percentile(g @ n, 10) if len(g) else 0.0 for g in groups])
    masks = [np.abs(g @ n - d) < threshold for g, d in zip(groups, offsets, strict=True)]
    offsets = np.array([np.median(g[m] @ n) if m.any() else np.nan for g, m in zip(groups, masks, strict=True)])
    return n, offsets, masks


def frame_from_floor(normal: np.ndarray, offset: float, up_hint: np.ndarray, origin_hint: np.ndarray,
                     forward_hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World frame with Z up along the floor normal, origin on the floor below
    `origin_hint` and X along `forward_hint` projected on the floor.

    -> (R, t) mapping the current world into the new one (s = 1).
    """
    n = np.asarray(normal, np.float64)
    if n @ up_hint < 0:
        n, offset = -n, -offset
    f = np.asarray(forward_hint, np.float64) - (forward_hint @ n) * n
    if np.linalg.norm(f) < 1e-9:
        f = np.cross(n, [1.0, 0, 0]) if abs(n[0]) < 0.9 else np.cross(n, [0, 1.0, 0])
    x = f / np.linalg.norm(f)
    y = np.cross(n, x)
    axes = np.stack([x, y, n])
    o = origin_hint - (origin_hint @ n - offset) * n
    return axes, -axes @ o
