"""caliscope's `camera_array.toml`.

One table per camera under ``[cameras.N]`` (N = caliscope's camera id) with
``size = [W, H]``, ``matrix``, ``distortions`` [k1 k2 p1 p2 k3], ``rotation``
world->camera (a 3x3 matrix in older files, a Rodrigues vector in newer ones),
``translation`` in metres and ``error`` = the calibration RMSE in px. Cameras are
named ``cam_N`` as caliscope names them in its own exports. A camera with
``ignore = true`` is left out; one with neither rotation nor translation has only
intrinsics (caliscope has not posed it yet) and is left out with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from calibration.camera import Camera
from calibration.errors import read_toml
from calibration.formats import fields
from calibration.rig import Rig
from calibration.rig_io import rotation_from_field

log = logging.getLogger(__name__)


def read_caliscope(path: str | Path) -> Rig:
    """Read a caliscope `camera_array.toml`."""
    data = read_toml(path, "calibration file", "the file is truncated or damaged.")
    return rig_from_caliscope_dict(data, str(path))


def is_caliscope(data: dict[str, Any]) -> bool:
    """Whether a parsed TOML document has caliscope's ``[cameras.N]`` layout."""
    cams = data.get("cameras")
    return isinstance(cams, dict) and bool(cams) and all(isinstance(v, dict) for v in cams.values())


def rig_from_caliscope_dict(data: dict[str, Any], source: str) -> Rig:
    """Rig from a parsed `camera_array.toml`; `source` names the file in errors."""
    if not isinstance(data.get("cameras"), dict):
        fields.fail(source, None, "cameras", "is missing (expected [cameras.N] tables)")
    cameras = []
    for key, table in data["cameras"].items():
        name = f"cam_{key}"
        if not isinstance(table, dict):
            fields.fail(source, name, f"cameras.{key}", "is not a table")
        if table.get("ignore", False):
            continue
        cam = _camera(table, name, source)
        if cam is not None:
            cameras.append(cam)
    meta = {"source": Path(source).name, "source_format": "caliscope"}
    return fields.rig(source, cameras, meta)


def _camera(table: dict[str, Any], name: str, source: str) -> Camera | None:
    if table.get("fisheye", False):
        fields.fail(source, name, "fisheye", "is true; fisheye lenses are not supported, calibrate with the standard model")
    if table.get("rotation_count", 0) not in (0, None):
        fields.fail(source, name, "rotation_count", f"is {table['rotation_count']}; rotated views are not supported, "
                    "set the rotation to 0 in caliscope and recalibrate")
    # caliscope writes `size` for every camera, so its absence means a damaged file.
    size = fields.array(table.get("size"), source, name, "size", ((2,),))
    posed = [k for k in ("rotation", "translation") if table.get(k) not in (None, "null")]
    if not posed:
        log.warning("%s: camera '%s' has no extrinsics (not posed by caliscope); it is left out.", source, name)
        return None
    K = fields.array(table.get("matrix"), source, name, "matrix", ((3, 3),))
    fields.check_focal(K[0, 0], source, name, "matrix")
    fields.check_focal(K[1, 1], source, name, "matrix")
    dist = fields.array(table.get("distortions"), source, name, "distortions", ((4,), (5,), (1, 4), (1, 5)))
    rot = fields.array(table.get("rotation"), source, name, "rotation", ((3,), (3, 1), (3, 3)))
    R = rotation_from_field(rot.reshape(3) if rot.size == 3 else rot, f"{source}: camera '{name}'")
    fields.check_rotation(R, source, name, "rotation")
    t = fields.array(table.get("translation"), source, name, "translation", ((3,), (3, 1)))
    error = table.get("error")
    rmse = None if error in (None, "null") else fields.number(error, source, name, "error")
    return fields.camera(source, name, (int(size[0]), int(size[1])), K, dist.ravel(), R, t.ravel(), rmse)
