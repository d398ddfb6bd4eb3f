"""Comparing rigs that live in different world frames.

Two calibrations of the same cameras agree only up to the choice of world frame (and
of scale, when one had no metric reference). `compare_rigs` aligns the estimate onto
the reference with the similarity that best maps its camera centres (Umeyama) and
reports per-camera centre distances and orientation angles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.errors import TriangulumError
from calibration.rig import Rig
from calibration.world_frame import transform_rig


def similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
               with_scale: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares similarities dst ~ s R src + t (Umeyama 1991), batched.

    src, dst: (B, N, 3); weights: (B, N) >= 0 (None: all 1; 0 leaves a point out) ->
    s (B,), R (B, 3, 3) proper rotations (a mirror image is not "fixed" by a reflection),
    t (B, 3). A batch item whose weighted points are degenerate gets a NaN scale.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    w = np.ones(src.shape[:2]) if weights is None else np.asarray(weights, np.float64)
    n = np.maximum(w.sum(axis=1), 1e-300)[:, None]
    mu_s = np.einsum("bn,bni->bi", w, src) / n
    mu_d = np.einsum("bn,bni->bi", w, dst) / n
    a, b = src - mu_s[:, None], dst - mu_d[:, None]
    cov = np.einsum("bn,bni,bnk->bik", w, b, a)  # sum_j w_j dst_j src_j^T (centred)
    U, D, Vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(U) * np.linalg.det(Vt))
    fix = np.ones_like(D)
    fix[:, 2] = np.where(sign == 0, 1.0, sign)
    R = np.einsum("bij,bj,bjk->bik", U, fix, Vt)
    if with_scale:
        var = np.einsum("bn,bni,bni->b", w, a, a)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (D * fix).sum(axis=1) / var
    else:
        s = np.ones(len(src))
    return s, R, mu_d - s[:, None] * np.einsum("bij,bj->bi", R, mu_s)


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity dst ~ s R src + t of one point set (see `similarity`).

    src, dst: (N, 3), N >= 3 not collinear -> (s, R (3, 3), t (3,))
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise TriangulumError(f"alignment needs two matching (N, 3) point sets with N >= 3, got {src.shape} and {dst.shape}.")
    s, R, t = similarity(src[None], dst[None], with_scale=with_scale)
    return float(s[0]), R[0], t[0]


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Angle of Ra Rb^T in degrees. Ra, Rb: (..., 3, 3) -> (...)"""
    M = np.asarray(Ra) @ np.swapaxes(np.asarray(Rb), -1, -2)
    cos = (np.trace(M, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@dataclass
class RigComparison:
    """Estimate vs reference after similarity alignment.

    centre_error: {camera: m}; angle_error: {camera: degrees}; scale, rotation (3, 3),
    translation (3,): the similarity X_ref = s R X_est + t (s = 1: same metric scale);
    aligned: the estimate expressed in the reference's world frame.
    """

    centre_error: dict[str, float]
    angle_error: dict[str, float]
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    aligned: Rig

    def up_angle_deg(self) -> float:
        """Angle between the two rigs' world Z axes (both Z-up: how level the estimate's floor is)."""
        return float(np.degrees(np.arccos(np.clip(self.rotation[2, 2], -1.0, 1.0))))

    def max_centre_error(self) -> float:
        return max(self.centre_error.values())

    def max_angle_error(self) -> float:
        return max(self.angle_error.values())

    def summary(self) -> str:
        rows = [f"  {n}: centre {self.centre_error[n] * 100:.2f} cm, orientation {self.angle_error[n]:.2f} deg"
                for n in self.centre_error]
        return "\n".join([f"after similarity alignment (scale {self.scale:.4f}):", *rows])


def compare_rigs(estimate: Rig, reference: Rig, with_scale: bool = True) -> RigComparison:
    """Align `estimate` onto `reference` by camera centres and compare, camera by camera."""
    names = [n for n in reference.names if n in estimate.names]
    if len(names) < 3:
        raise TriangulumError(f"rig comparison needs at least three cameras in common; shared: {names}.")
    src = np.stack([estimate[n].center for n in names])
    dst = np.stack([reference[n].center for n in names])
    s, R, t = umeyama(src, dst, with_scale)
    aligned = transform_rig(estimate.subset(names), s, R, t)
    centre = {n: float(np.linalg.norm(aligned[n].center - reference[n].center)) for n in names}
    angle = {n: float(rotation_angle_deg(aligned[n].R, reference[n].R)) for n in names}
    return RigComparison(centre, angle, s, R, t, aligned)
