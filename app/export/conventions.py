"""What every exporter agrees on: input checks and the world -> Y-up axis change.

Exporters take a take as joints ``(F, J, 3)`` in metres in the calibration's world frame
(Z up), NaN for a missing joint. Formats that expect Y up (TRC for OpenSim, BVH for Blender)
use the cyclic permutation ``(X, Y, Z)_file = (Y, Z, X)_world``, the same as Pose2Sim's
TRC files; being cyclic it is a proper rotation, so handedness is kept.
"""

from __future__ import annotations

import numpy as np

from calibration.errors import TriangulumError
from engines.skeleton import Skeleton

WORLD_TO_YUP = (1, 2, 0)  # file axis i takes world axis WORLD_TO_YUP[i]
YUP_TO_WORLD = (2, 0, 1)


def world_to_yup(points: np.ndarray) -> np.ndarray:
    """World Z-up (..., 3) -> Y-up file axes (..., 3): (X, Y, Z)_file = (Y, Z, X)_world."""
    return np.asarray(points)[..., list(WORLD_TO_YUP)]


def yup_to_world(points: np.ndarray) -> np.ndarray:
    """Inverse of world_to_yup: (..., 3) -> (..., 3)."""
    return np.asarray(points)[..., list(YUP_TO_WORLD)]


def check_take(joints: np.ndarray, skeleton: Skeleton, fps: float) -> np.ndarray:
    """Validate a take for export; returns it as float64 (F, J, 3)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (skeleton.num_joints, 3) or len(joints) == 0:
        raise TriangulumError(
            f"Cannot export joints shaped {joints.shape}: skeleton {skeleton.name} needs "
            f"(frames >= 1, {skeleton.num_joints}, 3) in metres."
        )
    if not np.isfinite(fps) or fps <= 0:
        raise TriangulumError(f"Cannot export at frame rate {fps}; give a positive fps.")
    if np.isinf(joints).any():
        raise TriangulumError("Cannot export infinite joint positions; mark missing joints NaN.")
    return joints


def text_rows(values: np.ndarray, sep: str, missing: str = "") -> list[str]:
    """Rows of a (F, N) array as text, 6 decimals, NaN written as `missing` (default empty)."""
    template = sep.join(["%.6f"] * values.shape[1])
    # "%.6f" renders NaN as "nan", and no number contains those letters
    return [(template % tuple(row)).replace("nan", missing) for row in values]
