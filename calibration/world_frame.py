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
