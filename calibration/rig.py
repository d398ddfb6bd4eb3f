"""A rig of calibrated cameras: the small API everything else uses.

    rig.project(X)                   world points -> pixels in every camera
    rig.triangulate(points, ...)     pixels in every camera -> world points
    rig.reprojection_error(X, pts)   per camera, per point, in pixels
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from calibration import geometry as geo
from calibration import triangulation as tri
from calibration.camera import Camera
from calibration.errors import TriangulumError

METHODS = ("dlt", "svd", "robust", "ransac")
CROP_TOLERANCE_PX = 16  # a source this much narrower/shorter than calibrated is taken as cropped


@dataclass
class Rig:
    """Cameras in a fixed order. Arrays indexed by camera follow `names`."""

    cameras: list[Camera]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [c.name for c in self.cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TriangulumError(f"the rig names camera(s) {dupes} more than once; camera names must be unique.")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def __len__(self) -> int:
        return len(self.cameras)

    def __getitem__(self, name: str) -> Camera:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise TriangulumError(f"camera '{name}' is not in the calibration (it has {self.names}).")

    def subset(self, names: list[str]) -> Rig:
        """A rig with only these cameras, in this order."""
        return Rig([self[n] for n in names], dict(self.metadata))

    def stacked(self) -> dict[str, torch.Tensor]:
        """Camera parameters as float64 tensors: K (C,3,3), dist (C,5), R (C,3,3), t (C,3), P (C,3,4)."""
        K = torch.as_tensor(np.stack([c.K for c in self.cameras]))
        R = torch.as_tensor(np.stack([c.R for c in self.cameras]))
        t = torch.as_tensor(np.stack([c.t for c in self.cameras]))
        dist = torch.as_tensor(np.stack([c.dist for c in self.cameras]))
        return {"K": K, "dist": dist, "R": R, "t": t, "P": geo.projection_matrix(K, R, t)}

    def project(self, X: np.ndarray) -> np.ndarray:
        """World points to distorted pixels. X: (..., 3) -> (C, ..., 2)"""
        X = np.asarray(X, dtype=np.float64)
        s = self.stacked()
        flat = torch.as_tensor(X.reshape(1, -1, 3)).expand(len(self), -1, -1)
        x = geo.project(flat, s["K"], s["dist"], s["R"], s["t"])
        return x.numpy().reshape(len(self), *X.shape[:-1], 2)

    def undistort(self, points: np.ndarray) -> np.ndarray:
        """Distorted to undistorted pixels per camera. points: (C, ..., 2) -> (C, ..., 2)"""
        points = np.asarray(points, dtype=np.float64)
        self._check_views(points)
        s = self.stacked()
        flat = torch.as_tensor(points.reshape(len(self), -1, 2))
        return geo.undistort_pixels(flat, s["K"], s["dist"]).numpy().reshape(points.shape)

    def triangulate(
        self,
        points: np.ndarray,
        weights: np.ndarray | None = None,
        method: str = "dlt",
        return_weights: bool = False,
        **options: Any,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Triangulate distorted pixel observations.

        points: (C, ..., 2), NaN where a camera did not see the point;
        weights: (C, ...) per-view confidences or None -> (..., 3) metres, NaN where
        fewer than two views remain. `method`: "dlt" (weighted linear), "svd" (DLT by
        SVD), "robust" (GeoMed/WSS; options sigma, wss_threshold, on_reject) or
        "ransac" (options threshold px, huber_delta). With `return_weights` also the weights
        the solve used, (C, ...): the given ones (1 where None) for the DLTs, the GeoMed
        weights times the given ones for "robust", the inlier indicator for "ransac".

        These are the geometric solvers; the product's method names (engines.heads.METHODS,
        including the learned head, which `calibration` cannot import) map onto them in
        app.process.reconstruct.
        """
        if method not in METHODS:
            raise TriangulumError(f"unknown triangulation method '{method}'; choose one of {METHODS}.")
        und = self.undistort(points)
        C = len(self)
        batch = und.shape[1:-1]
        x = torch.as_tensor(und.reshape(C, -1, 2)).transpose(0, 1)  # (N, C, 2)
        w = None
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (C, *batch):
                raise TriangulumError(f"weights have shape {weights.shape}; expected {(C, *batch)} to match the points.")
            w = torch.as_tensor(weights.reshape(C, -1)).transpose(0, 1)
        # Per-point options (e.g. the robust kernel width) are given in the points' batch shape.
        options = {k: torch.as_tensor(np.asarray(v, np.float64).reshape(-1))
                   if isinstance(v, np.ndarray) and v.shape == batch else v for k, v in options.items()}
        P = self.stacked()["P"]
        geo = None
        if method == "dlt":
            X = tri.triangulate_dlt(P, x, w)
        elif method == "svd":
            X = tri.triangulate_dlt_svd(P, x, w)
        elif method == "robust":
            res = tri.triangulate_robust(P, x, w, **options)
            X, geo = res.points, res.weights
        else:
            X = tri.triangulate_ransac(P, x, w, **options)
        if not return_weights:
            return X.numpy().reshape(*batch, 3)
        # Only when asked: the RANSAC inlier test is a second projection of every point.
        used = torch.isfinite(x).all(-1) & (w > 0 if w is not None else True)
        if geo is not None:
            used_w = torch.where(used, geo, torch.zeros_like(geo))
        elif method == "ransac":
            err = tri.reprojection_error(P.expand(len(x), *P.shape), X, x)
            used_w = (used & (err < options.get("threshold", 15.0))).to(x.dtype)
        else:
            used_w = torch.where(used, w if w is not None else torch.ones_like(x[..., 0]), torch.zeros_like(x[..., 0]))
        return X.numpy().reshape(*batch, 3), used_w.transpose(0, 1).numpy().reshape(C, *batch)

    def reprojection_error(self, X: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Pixel distance between projected X and observed points.

        X: (..., 3); points: (C, ..., 2) -> (C, ...); NaN where either is missing.
        """
        points = np.asarray(points, dtype=np.float64)
        self._check_views(points)
        return np.linalg.norm(self.project(X) - points, axis=-1)

    def _check_views(self, points: np.ndarray) -> None:
        if points.ndim < 2 or points.shape[0] != len(self) or points.shape[-1] != 2:
            raise TriangulumError(
                f"points have shape {points.shape}; expected ({len(self)}, ..., 2), one slice per camera {self.names}."
            )


def fit_source_size(rig: Rig, camera: str, size: tuple[int, int], what: str, warnings: list[str]) -> Rig:
    """The rig fitted to a source of `size` (width, height) for `camera` (a video, a live
    source: `what` names it in messages). Equal: the rig. Up to CROP_TOLERANCE_PX narrower or
    shorter: the source is taken as cropped on the right/bottom (pixel coordinates, and so the
    intrinsics, unchanged; the camera's size set to the source's), with a warning appended.
    Anything else (another resolution, rotated) is an error: the calibration would project
    into the wrong pixels."""
    cam = rig[camera]
    (cw, ch), (vw, vh) = cam.size, (int(size[0]), int(size[1]))
    if (vw, vh) == (cw, ch):
        return rig
    if vw <= cw and vh <= ch and cw - vw <= CROP_TOLERANCE_PX and ch - vh <= CROP_TOLERANCE_PX:
        warnings.append(
            f"camera '{camera}': {what} is {vw}x{vh} but was calibrated at {cw}x{ch}; treating it as "
            f"cropped by {cw - vw} px on the right and {ch - vh} px at the bottom (intrinsics unchanged)."
        )
        cameras = [replace(c, size=(vw, vh)) if c.name == camera else c for c in rig.cameras]
        return Rig(cameras, dict(rig.metadata))
    raise TriangulumError(
        f"camera '{camera}': {what} is {vw}x{vh} px but the calibration is for {cw}x{ch} px; "
        f"record at the calibrated size or recalibrate the camera at {vw}x{vh}."
    )
