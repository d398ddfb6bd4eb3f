"""One calibrated camera: intrinsics, distortion and pose, with a numpy API.

The arithmetic lives in `calibration.geometry` (torch); these methods convert and
call it, so numpy and torch users get the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from calibration import geometry as geo
from calibration.errors import TriangulumError


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


@dataclass
class Camera:
    """A pinhole camera with OpenCV distortion.

    name: unique within a rig; size: (width, height) px; K: (3, 3);
    dist: (5,) [k1, k2, p1, p2, k3]; R: (3, 3) and t: (3,) world->camera, metres.
    rmse: reprojection RMSE of its calibration in px, if known.
    """

    name: str
    size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rmse: float | None = None

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64)
        dist = np.asarray(self.dist, dtype=np.float64).ravel()
        if dist.size > 5 or dist.size < 4:
            self._fail("distortions", f"has {dist.size} values; expected 4 or 5 (k1 k2 p1 p2 [k3])")
        self.dist = np.pad(dist, (0, 5 - dist.size))
        self.R = np.asarray(self.R, dtype=np.float64)
        self.t = np.asarray(self.t, dtype=np.float64).ravel()
        self.size = tuple(int(round(float(s))) for s in self.size)  # type: ignore[assignment]
        self.validate()

    def _fail(self, field_name: str, problem: str) -> None:
        raise TriangulumError(f"camera '{self.name}': {field_name} {problem}.")

    def validate(self) -> None:
        """Raise TriangulumError naming the field if the parameters are impossible."""
        if len(self.size) != 2 or min(self.size) <= 0:
            self._fail("size", f"is {list(self.size)}; expected [width, height] > 0")
        if self.K.shape != (3, 3) or not np.all(np.isfinite(self.K)):
            self._fail("matrix", f"has shape {self.K.shape} or non-finite values; expected a 3x3 matrix")
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            self._fail("matrix", f"has focal lengths fx={self.K[0, 0]:g}, fy={self.K[1, 1]:g}; both must be positive")
        if not np.allclose(self.K[2], [0, 0, 1]) or abs(self.K[1, 0]) > 1e-9:
            self._fail("matrix", "is not an intrinsic matrix (last row must be [0, 0, 1])")
        if not np.all(np.isfinite(self.dist)):
            self._fail("distortions", "contains non-finite values")
        if self.R.shape != (3, 3) or not np.all(np.isfinite(self.R)):
            self._fail("rotation", "is not a finite 3x3 rotation")
        ortho = np.abs(self.R @ self.R.T - np.eye(3)).max()
        if ortho > 1e-5 or np.linalg.det(self.R) < 0:
            self._fail("rotation", f"is not a proper rotation (|R R^T - I| = {ortho:.2g}, det = {np.linalg.det(self.R):.3f})")
        if self.t.shape != (3,) or not np.all(np.isfinite(self.t)):
            self._fail("translation", f"has shape {self.t.shape}; expected 3 finite values in metres")

    # --- derived quantities -------------------------------------------------
    @property
    def P(self) -> np.ndarray:
        """Projection matrix K [R | t] for undistorted pixels. -> (3, 4)"""
        return geo.projection_matrix(_t(self.K), _t(self.R), _t(self.t)).numpy()

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, metres. -> (3,)"""
        return geo.camera_center(_t(self.R), _t(self.t)).numpy()

    @property
    def rvec(self) -> np.ndarray:
        """Rotation as a Rodrigues vector. -> (3,)"""
        return geo.matrix_to_rodrigues(_t(self.R)).numpy()

    # --- geometry ------------------------------------------------------------
    def project(self, X: np.ndarray) -> np.ndarray:
        """World points to distorted pixels. X: (..., 3) -> (..., 2); NaN behind the camera."""
        X = np.asarray(X, dtype=np.float64)
        flat = _t(X.reshape(-1, 3))
        x = geo.project(flat, _t(self.K), _t(self.dist), _t(self.R), _t(self.t))
        return x.numpy().reshape(*X.shape[:-1], 2)

    def undistort_pixels(self, x: np.ndarray) -> np.ndarray:
        """Distorted pixels to undistorted pixels (same K). x: (..., 2) -> (..., 2)"""
        x = np.asarray(x, dtype=np.float64)
        out = geo.undistort_pixels(_t(x.reshape(-1, 2)), _t(self.K), _t(self.dist))
        return out.numpy().reshape(x.shape)

    def scaled(self, sx: float, sy: float | None = None) -> Camera:
        """The same camera for images resized by (sx, sy), e.g. heatmap resolution."""
        sy = sx if sy is None else sy
        S = np.diag([sx, sy, 1.0])
        # Pixel centres stay centres: x' + 0.5 = s (x + 0.5)
        S[0, 2], S[1, 2] = 0.5 * (sx - 1), 0.5 * (sy - 1)
        size = (round(self.size[0] * sx), round(self.size[1] * sy))
        return Camera(self.name, size, S @ self.K, self.dist.copy(), self.R.copy(), self.t.copy(), self.rmse)
