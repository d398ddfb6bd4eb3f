"""Geometry of the 3D view as plain arrays (no Qt): camera frustums, scene extent, preset
views, joint sizes and the motion trail. World frame as in the calibration: metres, Z up."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from calibration import geometry as geo
from calibration.camera import Camera
from calibration.rig import Rig

# name -> (elevation, azimuth) in degrees, as pyqtgraph's orbit camera takes them (Z up).
PRESET_VIEWS: dict[str, tuple[float, float]] = {
    "perspective": (20.0, -60.0),
    "front": (0.0, -90.0),
    "side": (0.0, 0.0),
    "top": (90.0, -90.0),
}


def frustum_segments(camera: Camera, depth: float = 0.4) -> np.ndarray:
    """Line segments of a camera's viewing pyramid, cut `depth` metres in front of it.

    -> (16, 3): 4 edges from the centre to the image corners, then the 4 sides of the image
    rectangle, as (start, end) rows, world metres.
    """
    w, h = camera.size
    corners = torch.tensor([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]], dtype=torch.float64)
    K, dist = torch.as_tensor(camera.K), torch.as_tensor(camera.dist)
    normalised = geo.undistort(geo.remove_intrinsics(corners, K), dist).numpy()  # (4, 2)
    rays = np.concatenate([normalised, np.ones((4, 1))], axis=1) * depth  # camera frame
    world = (rays - camera.t) @ camera.R  # R^T (x_c - t), row-wise
    centre = camera.center
    edges = [(centre, p) for p in world] + [(world[i], world[(i + 1) % 4]) for i in range(4)]
    return np.array([p for pair in edges for p in pair])


def scene_extent(rig: Rig | None, points: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Centre (3,) on the floor and radius (m) of the region worth showing: the camera centres'
    footprint, or the finite points (N, 3) when there is no rig; 2 m around the origin otherwise."""
    if rig is not None and len(rig):
        xyz = np.array([c.center for c in rig.cameras])
    elif points is not None and np.isfinite(points).any():
        xyz = np.asarray(points, np.float64).reshape(-1, 3)
        xyz = xyz[np.isfinite(xyz).all(axis=1)]
    else:
        return np.zeros(3), 2.0
    centre = xyz.mean(axis=0)
    centre[2] = 0.0
    radius = float(np.max(np.linalg.norm(xyz[:, :2] - centre[:2], axis=1)))
    return centre, max(radius, 1.0)


def joint_sizes(confidence: np.ndarray, smallest: float = 4.0, largest: float = 14.0) -> np.ndarray:
    """Marker size in px per joint from its confidence in [0, 1]: (J,) -> (J,); NaN -> smallest."""
    c = np.nan_to_num(np.clip(np.asarray(confidence, np.float64), 0.0, 1.0), nan=0.0)
    return smallest + (largest - smallest) * c


def joint_confidence(confidences: np.ndarray) -> np.ndarray:
    """One confidence per 3D joint: the mean over the views that report one. (C, J) -> (J,), 0 if none."""
    c = np.asarray(confidences, np.float64)
    finite = np.isfinite(c)
    count = finite.sum(axis=0)
    total = np.where(finite, c, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


@dataclass
class Trail:
    """The recent positions of some joints, for drawing where they went.

    joints: indices of the traced joints; length: how many poses to keep.
    """

    joints: tuple[int, ...]
    length: int = 60

    def __post_init__(self) -> None:
        self._history: deque[np.ndarray] = deque(maxlen=self.length)

    def clear(self) -> None:
        self._history.clear()

    def add(self, joints3d: np.ndarray) -> None:
        """Append one pose (J, 3); joints not in the pose are skipped."""
        joints3d = np.asarray(joints3d, np.float64)
        picked = [j for j in self.joints if j < len(joints3d)]
        self._history.append(joints3d[picked])

    def __len__(self) -> int:
        return len(self._history)

    def segments(self) -> np.ndarray:
        """Segments between consecutive positions of each traced joint: (2S, 3), finite only."""
        if len(self._history) < 2:
            return np.zeros((0, 3))
        path = np.stack(self._history)  # (T, K, 3)
        starts, ends = path[:-1].reshape(-1, 3), path[1:].reshape(-1, 3)
        keep = np.isfinite(starts).all(axis=1) & np.isfinite(ends).all(axis=1)
        out = np.empty((2 * int(keep.sum()), 3))
        out[0::2], out[1::2] = starts[keep], ends[keep]
        return out
