"""Our rig file: TOML readable by Anipose, FreeMoCap and Pose2Sim.

One table per camera::

    [cam01]
    name = "cam01"
    size = [1088, 1920]                  # width, height in px
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2, k3]
    rotation = [rx, ry, rz]              # Rodrigues, world->camera
    translation = [tx, ty, tz]           # metres, world->camera
    rmse = 0.41                          # ours, optional: calibration RMSE in px

and a ``[metadata]`` table (Anipose keeps ``adjusted`` and ``error`` there; we add
``triangulum_version``, ``units``, ``world`` and whatever produced the file).
Other tools skip keys they do not know, so the extras are safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
import torch

from calibration import geometry as geo
from calibration.camera import Camera
from calibration.errors import TriangulumError, read_toml
from calibration.rig import Rig

FORMAT_VERSION = 1


def _field(table: dict, key: str, where: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if key not in table:
        raise TriangulumError(f"{where}: field '{key}' is missing.")
    try:
        value = np.asarray(table[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TriangulumError(f"{where}: field '{key}' is not numeric ({exc}).") from None
    if shape is not None and value.shape != shape:
        raise TriangulumError(f"{where}: field '{key}' has shape {value.shape}; expected {shape}.")
    if not np.all(np.isfinite(value)):
        raise TriangulumError(f"{where}: field '{key}' contains non-finite values.")
    return value


def rotation_from_field(value: np.ndarray, where: str) -> np.ndarray:
    """A rotation given as a Rodrigues vector (3,) or a matrix (3, 3) -> (3, 3)."""
    if value.shape == (3,):
        return geo.rodrigues_to_matrix(torch.as_tensor(value)).numpy()
    if value.shape == (3, 3):
        return value
    raise TriangulumError(f"{where}: field 'rotation' has shape {value.shape}; expected a Rodrigues vector (3) or a 3x3 matrix.")


def camera_from_table(table: dict, key: str, source: str) -> Camera:
    """Build a Camera from one Anipose/Pose2Sim-style TOML table."""
    name = str(table.get("name", key))
    where = f"{source}: camera '{name}'"
    size = _field(table, "size", where, (2,))
    K = _field(table, "matrix", where, (3, 3))
    dist = _field(table, "distortions", where).ravel()
    R = rotation_from_field(_field(table, "rotation", where), where)
    t = _field(table, "translation", where).ravel()
    if table.get("fisheye", False):
        raise TriangulumError(f"{where}: fisheye cameras are not supported by this reader; recalibrate with the standard model.")
    rmse = table.get("rmse", table.get("error"))
    try:
        return Camera(name, (int(size[0]), int(size[1])), K, dist, R, t, None if rmse is None else float(rmse))
    except TriangulumError as exc:
        raise TriangulumError(f"{source}: {exc}") from None


def rig_from_toml_dict(data: dict, source: str) -> Rig:
    """Rig from a parsed Anipose/Pose2Sim/Triangulum TOML document."""
    cameras = [
        camera_from_table(value, key, source)
        for key, value in data.items()
        if key != "metadata" and isinstance(value, dict)
    ]
    if not cameras:
        raise TriangulumError(f"{source}: no camera tables found; is this a rig TOML file?")
    meta = data.get("metadata", {})
    return Rig(cameras, dict(meta) if isinstance(meta, dict) else {})


def load_rig(path: str | Path) -> Rig:
    """Read a rig TOML (ours, Anipose, FreeMoCap or Pose2Sim)."""
    data = read_toml(path, "calibration file",
                     "is it truncated or another format? Try 'triangulum calib convert'.")
    return rig_from_toml_dict(data, str(path))


def rig_to_toml_dict(rig: Rig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cam in rig.cameras:
        table: dict[str, Any] = {
            "name": cam.name,
            "size": [int(cam.size[0]), int(cam.size[1])],
            "matrix": cam.K.tolist(),
            "distortions": cam.dist.tolist(),
            "rotation": cam.rvec.tolist(),
            "translation": cam.t.tolist(),
        }
        if cam.rmse is not None:
            table["rmse"] = float(cam.rmse)
        out[cam.name] = table
    meta = {k: v for k, v in rig.metadata.items() if v is not None}
    meta.setdefault("adjusted", False)
    errors = [c.rmse for c in rig.cameras if c.rmse is not None]
    meta.setdefault("error", float(np.mean(errors)) if errors else 0.0)
    meta["triangulum_version"] = FORMAT_VERSION
    meta.setdefault("units", "m")
    out["metadata"] = meta
    return out


def _inline(value: Any) -> str:
    """One TOML value on one line: matrices stay readable, floats keep full precision."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return tomli_w.dumps({"v": value})[4:].strip()
    return "[" + ", ".join(_inline(v) for v in value) + "]"


def dumps_rig(rig: Rig) -> str:
    """The rig as TOML text: compact camera tables, then [metadata]."""
    data = rig_to_toml_dict(rig)
    meta = data.pop("metadata")
    parts = []
    for key, table in data.items():
        lines = [f"[{tomli_w.dumps({key: 0}).split(' =')[0]}]"]
        lines += [f"{k} = {_inline(v)}" for k, v in table.items()]
        parts.append("\n".join(lines))
    parts.append(tomli_w.dumps({"metadata": meta}).strip())
    return "\n\n".join(parts) + "\n"


def save_rig(rig: Rig, path: str | Path) -> Path:
    """Write the rig TOML atomically (a crash never leaves half a calibration)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps_rig(rig), encoding="utf-8")
    tmp.replace(path)
    return path
