"""C3D export through the `c3d` library: float points in millimetres, world Z up.

C3D's convention is millimetres (POINT:UNITS "mm"); a missing joint has residual -1, a present
one residual 0 (valid, no residual estimate). Readers must go by the residual: the library
leaves a missing point's coordinate slots holding that point's last written values.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import c3d
import numpy as np

from app.export.conventions import check_take
from engines.skeleton import Skeleton


def write_c3d(path: str | Path, joints: np.ndarray, skeleton: Skeleton, fps: float) -> Path:
    """Write a take (F, J, 3) world metres as a C3D file (mm). Returns the path."""
    joints = check_take(joints, skeleton, fps)
    path = Path(path)
    writer = c3d.Writer(point_rate=float(fps), analog_rate=0.0, point_scale=-1.0, point_units="mm")
    writer.set_point_labels(list(skeleton.joints))
    writer.set_screen_axis(X="+X", Y="+Z")  # tells viewers that Z is up
    missing = np.isnan(joints).any(axis=-1)
    no_analog = np.zeros((0, 0), dtype=np.float32)
    frames = []
    for pts, miss in zip(joints * 1000.0, missing, strict=True):
        block = np.zeros((len(pts), 5), dtype=np.float32)
        block[:, :3] = np.where(miss[:, None], 0.0, pts)
        block[miss, 3] = -1.0
        frames.append((block, no_analog))
    writer.add_frames(frames)
    with path.open("wb") as f, warnings.catch_warnings():
        # A points-only file is normal for us; the library warns about it regardless.
        warnings.filterwarnings("ignore", message="No analog data found")
        writer.write(f)
    return path
