"""Qualisys Track Manager calibration export (`.qca.txt`, XML).

Reading rules (QTM stores intrinsics in sub-pixel units of 1/64 px of the sensor):

    fx, fy = focalLengthU / 64, focalLengthV / 64
    cx, cy = centerPointU / 64 - fov_video.left, centerPointV / 64 - fov_video.top
    size   = (fov_video.right - left + 1, fov_video.bottom - top + 1)
    k1 k2 p1 p2 k3 = radialDistortion1, radialDistortion2, tangentalDistortion1,
                     tangentalDistortion2, radialDistortion3, all / 64
    R = diag(1, -1, -1) @ M,  t = -R @ C,   M = transform r11..r33 (row-major),
                                            C = transform x, y, z in mm -> m

The world frame is QTM's: Z up, metres after conversion. `skew` is taken in the same
1/64 px units as the other intrinsics (it is 0 in every file we have seen).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.formats import fields
from calibration.rig import Rig

SUBPIXEL = 64.0
# QTM's camera frame has y and z flipped with respect to OpenCV's.
FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def read_qualisys(path: str | Path) -> Rig:
    """Read a Qualisys `.qca.txt` calibration file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TriangulumError(f"calibration file {path} does not exist.") from None
    return rig_from_qualisys_xml(data, str(path))


def rig_from_qualisys_xml(data: bytes | str, source: str) -> Rig:
    """Rig from the text of a `.qca.txt` file; `source` names it in errors."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise TriangulumError(
            f"{source}: not well-formed XML ({exc}); the file is truncated or damaged, export it again from QTM."
        ) from None
    if root.tag != "calibration":
        raise TriangulumError(f"{source}: XML root is <{root.tag}>, not <calibration>; this is not a Qualisys calibration.")
    block = root.find("cameras")
    if block is None:
        fields.fail(source, None, "cameras", "is missing")
    cameras = [_camera(elem, i, source) for i, elem in enumerate(block.findall("camera"))]
    meta = {"source": Path(source).name, "source_format": "qualisys", "world": "Z-up"}
    return fields.rig(source, cameras, meta)


def _child(elem: ET.Element, tag: str, source: str, name: str) -> ET.Element:
    child = elem.find(tag)
    if child is None:
        fields.fail(source, name, tag, "is missing")
    return child


def _attr(elem: ET.Element, key: str, source: str, name: str, default: float | None = None) -> float:
    value = elem.get(key)
    if value is None and default is not None:
        return default
    return fields.number(value, source, name, key)


def _camera(elem: ET.Element, index: int, source: str) -> Camera:
    name = elem.get("serial") or f"cam{index + 1:02d}"
    view_rotation = _attr(elem, "viewrotation", source, name, default=0.0)
    if view_rotation != 0:
        fields.fail(source, name, "viewrotation", f"is {view_rotation:g}; rotated views are not supported, "
                    "export the calibration with the view rotation at 0")
    fov = _child(elem, "fov_video", source, name)
    left, top = _attr(fov, "left", source, name), _attr(fov, "top", source, name)
    right, bottom = _attr(fov, "right", source, name), _attr(fov, "bottom", source, name)
    if right < left or bottom < top:
        fields.fail(source, name, "fov_video", f"is empty (left {left:g}, right {right:g}, top {top:g}, bottom {bottom:g})")
    size = (int(right - left + 1), int(bottom - top + 1))

    intr = _child(elem, "intrinsic", source, name)
    u = lambda key, default=None: _attr(intr, key, source, name, default) / SUBPIXEL  # noqa: E731
    for key in ("focalLengthU", "focalLengthV"):
        fields.check_focal(_attr(intr, key, source, name), source, name, key)
    fx, fy = u("focalLengthU"), u("focalLengthV")
    cx, cy = u("centerPointU") - left, u("centerPointV") - top
    K = np.array([[fx, u("skew", 0.0), cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    dist = np.array([u("radialDistortion1"), u("radialDistortion2"), u("tangentalDistortion1"),
                     u("tangentalDistortion2"), u("radialDistortion3", 0.0)])

    tf = _child(elem, "transform", source, name)
    M = np.array([[_attr(tf, f"r{i}{j}", source, name) for j in (1, 2, 3)] for i in (1, 2, 3)])
    fields.check_rotation(M, source, name, "transform")
    C = np.array([_attr(tf, k, source, name) for k in ("x", "y", "z")]) / 1000.0
    R = FLIP_YZ @ M
    return fields.camera(source, name, size, K, dist, R, -R @ C)
