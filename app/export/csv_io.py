"""Plain CSV of joint trajectories: one row per frame, world Z-up metres.

Header: ``frame,time,<joint>_x,<joint>_y,<joint>_z,...``; frame is 0-based, time = frame / fps
seconds; a missing joint is three empty fields.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from app.export.conventions import check_take, text_rows
from calibration.errors import TriangulumError
from engines.skeleton import Skeleton


def write_csv(path: str | Path, joints: np.ndarray, skeleton: Skeleton, fps: float) -> Path:
    """Write a take (F, J, 3) world metres as CSV. Returns the path."""
    joints = check_take(joints, skeleton, fps)
    path = Path(path)
    header = ["frame", "time"] + [f"{n}_{a}" for n in skeleton.joints for a in "xyz"]
    lines = [",".join(header)]
    for i, row in enumerate(text_rows(joints.reshape(len(joints), -1), ",")):
        lines.append(f"{i},{i / fps:.6f},{row}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_csv(path: str | Path) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Read a file written by write_csv: (joint names, times (F,), joints (F, J, 3))."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise TriangulumError(f"Cannot read CSV file {path}: {exc.strerror}.") from None
    if not rows or rows[0][:2] != ["frame", "time"] or (len(rows[0]) - 2) % 3:
        raise TriangulumError(f"{path} is not a joint CSV (expected frame,time,<joint>_x,...).")
    cols = rows[0][2:]
    names = tuple(c[:-2] for c in cols[::3])
    try:
        table = np.array(
            [[float(c) if c else np.nan for c in r] for r in rows[1:] if r], dtype=np.float64
        ).reshape(-1, len(rows[0]))
    except ValueError:
        raise TriangulumError(f"{path}: a value is not a number or a row is short.") from None
    return names, table[:, 1], table[:, 2:].reshape(len(table), len(names), 3)
