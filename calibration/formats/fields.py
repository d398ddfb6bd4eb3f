"""Checked reading of calibration values, shared by the importers.

Every error names the file, the camera and the field as they are spelled in the
file, so that a user can find the bad value and fix it by hand.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.rig import Rig

# The tolerance `Camera.validate` applies; checked here first so that the error can
# name the field of the source format rather than ours.
ROTATION_TOLERANCE = 1e-5


def fail(source: str, camera: str | None, field: str, problem: str) -> NoReturn:
    """Raise the one-sentence error every importer uses."""
    where = f"{source}: camera '{camera}'" if camera is not None else source
    raise TriangulumError(f"{where}: field '{field}' {problem}.")


def number(value: Any, source: str, camera: str | None, field: str) -> float:
    """A finite float from a file value (str or number)."""
    if value is None:
        fail(source, camera, field, "is missing")
    try:
        out = float(value)
    except (TypeError, ValueError):
        fail(source, camera, field, f"is not a number ({value!r})")
    if not np.isfinite(out):
        fail(source, camera, field, f"is not finite ({value!r})")
    return out


def array(
    value: Any, source: str, camera: str | None, field: str, shapes: tuple[tuple[int, ...], ...]
) -> np.ndarray:
    """A finite float array of one of the allowed shapes -> array of that shape."""
    if value is None:
        fail(source, camera, field, "is missing")
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        fail(source, camera, field, "is not a numeric array")
    if out.shape not in shapes:
        expected = " or ".join(str(list(s)) for s in shapes)
        fail(source, camera, field, f"has shape {list(out.shape)}; expected {expected}")
    if not np.all(np.isfinite(out)):
        fail(source, camera, field, "contains non-finite values")
    return out


def check_rotation(R: np.ndarray, source: str, camera: str, field: str) -> None:
    """Fail unless R (3, 3) is a proper rotation (orthonormal, det +1)."""
    ortho = float(np.abs(R @ R.T - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if ortho > ROTATION_TOLERANCE:
        fail(source, camera, field, f"is not orthonormal (|R R^T - I| = {ortho:.2g}); the file is corrupt or not a rotation")
    if det < 0:
        fail(source, camera, field, f"has determinant {det:.3f}; a rotation must have +1 (the axes are mirrored)")


def check_focal(value: float, source: str, camera: str, field: str) -> None:
    if value < 0:
        fail(source, camera, field, f"is negative ({value:g}); a focal length must be positive")
    if value == 0:
        fail(source, camera, field, "is zero; a focal length must be positive")


def camera(source: str, name: str, size: tuple[int, int], K: np.ndarray, dist: np.ndarray,
           R: np.ndarray, t: np.ndarray, rmse: float | None = None) -> Camera:
    """Build a Camera; its own validation errors get the file name in front."""
    try:
        return Camera(name, size, K, dist, R, t, rmse)
    except TriangulumError as exc:
        raise TriangulumError(f"{source}: {exc}") from None


def rig(source: str, cameras: list[Camera], metadata: dict[str, Any]) -> Rig:
    """Build a Rig; an empty or duplicated camera list is the file's fault."""
    if not cameras:
        raise TriangulumError(f"{source}: the file holds no usable camera; check that it is a complete calibration.")
    try:
        return Rig(cameras, metadata)
    except TriangulumError as exc:
        raise TriangulumError(f"{source}: {exc}") from None
