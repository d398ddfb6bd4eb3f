"""One person's 3D joints from their 2D in every view, by any method of the one registry
(`engines.heads.METHODS`: learned, volumetric, algebraic, robust, ransac, dlt; described there).

All but "dlt" ignore 2D joints under `min_confidence`; "learned" runs the trained head
(`engines.heads.algebraic`, the shipped weights or `weights`) on the undistorted 2D;
"volumetric" runs `engines.heads.volumetric` on the 2D as detected, through the full camera
model. Every method reports which views each
joint used and the reprojection error of the result in every view that saw the joint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from calibration import triangulation as tri
from calibration.errors import TriangulumError
from calibration.rig import Rig
from engines.heads import METHODS


@dataclass(frozen=True)
class TriangulationConfig:
    """method: one of METHODS; min_confidence: 2D joints under it are not used (except by
    "dlt"); ransac_threshold_px: RANSAC inlier threshold; robust_sigma_m, robust_wss_m: the
    robust method's kernel width and rejection threshold in metres (the paper's 10 / 20 mm);
    robust_adaptive: widen both to the 2D noise of each frame (`robust_kernel`), never below
    those values; weights: the learned or volumetric head's checkpoint (None: the shipped one)."""

    method: str = "algebraic"
    min_confidence: float = 0.3
    ransac_threshold_px: float = 15.0
    robust_sigma_m: float = 0.01
    robust_wss_m: float = 0.02
    robust_adaptive: bool = True
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise TriangulumError(f"unknown triangulation method '{self.method}'; choose one of {', '.join(METHODS)}.")
        # A missing or bad checkpoint fails when the run is configured, before any camera
        # opens or any 2D is computed (loaded once per process: the loaders cache).
        if self.method == "learned":
            from engines.heads.algebraic import load_head

            load_head(self.weights)
        elif self.method == "volumetric":
            from engines.heads.volumetric import load_volumetric

            load_volumetric(self.weights)


@dataclass
class Reconstruction:
    """One person over F frames with C views and J joints.

    joints (F, J, 3) metres, NaN where fewer than two views were usable; confidence (F, J)
    mean 2D confidence of the views used (0 where not triangulated); views_used (F, J, C)
    bool; reprojected (C, F, J, 2) pixels; errors (C, F, J) pixel distance between the 2D
    joint and the reprojection, NaN where the view did not see the joint.
    """

    joints: np.ndarray
    confidence: np.ndarray
    views_used: np.ndarray
    reprojected: np.ndarray
    errors: np.ndarray


def view_weights(keypoints: np.ndarray, confidence: np.ndarray, config: TriangulationConfig) -> np.ndarray:
    """Per-view weights (C, ...) for the method: confidences gated by `min_confidence`, or 1
    for every seen joint with plain DLT; 0 where a joint is missing."""
    seen = np.isfinite(keypoints).all(-1)
    if config.method == "dlt":
        return seen.astype(np.float64)
    ok = seen & (confidence >= config.min_confidence)
    return np.where(ok, confidence, 0.0)


def triangulate_joints(rig: Rig, keypoints: np.ndarray, confidence: np.ndarray,
                       config: TriangulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Points and views used: keypoints (C, ..., 2) distorted px, confidence (C, ...) ->
    (..., 3) metres, (C, ...) bool."""
    w = view_weights(keypoints, confidence, config)
    pts = np.where((w > 0)[..., None], keypoints, np.nan)
    if config.method in ("algebraic", "dlt"):
        return rig.triangulate(pts, w, method="dlt"), w > 0
    if config.method == "ransac":
        X = rig.triangulate(pts, w, method="ransac", threshold=config.ransac_threshold_px)
        err = rig.reprojection_error(X, pts)
        return X, (w > 0) & (err < config.ransac_threshold_px)
    if config.method == "learned":
        return triangulate_learned(rig, pts, w, config.weights)
    if config.method == "volumetric":
        return triangulate_volumetric(rig, pts, w, config.weights, config.ransac_threshold_px)
    sigma, wss = robust_kernel(rig, pts, w, config)
    X, geo = rig.triangulate(pts, w, method="robust", return_weights=True, sigma=sigma, wss_threshold=wss)
    # GeoMed weights are relative: a view counts as used when it carries a real share.
    share = geo / np.maximum(geo.sum(0, keepdims=True), 1e-30)
    return X, (share > 0.05) & (w > 0)


# Kernel width over the median pair-candidate scatter: 3D Gaussian scatter has its 90th
# percentile at 1.6 times its median, and exp(-d^2 / sigma^2) > 0.5 needs d < 0.83 sigma, so
# twice the median keeps nine inlier candidates in ten above half weight.
ADAPTIVE_WIDTH = 2.0
ADAPTIVE_JOINTS = 12


def robust_kernel(rig: Rig, points: np.ndarray, weights: np.ndarray,
                  config: TriangulationConfig) -> tuple[float | np.ndarray, float | np.ndarray]:
    """The robust method's kernel width and WSS threshold (m) for points (C, ..., J, 2) with
    weights (C, ..., J): the configured values, or with `robust_adaptive` per frame (...,)
    ADAPTIVE_WIDTH times the median of `candidate_spread` over ADAPTIVE_JOINTS of its joints, never below them,
    broadcast to (..., J). Pooling over the joints of a frame measures the 2D noise of that
    person and those views while a few wrong joints cannot widen the kernel for themselves.

    Why: BlazePose's 2D noise is 2-3 % of the person's size per view; at studio distances
    that scatters pair triangulations by several centimetres, so a 10 mm kernel gives every
    view a weight near 0 and the 20 mm test rejects most joints, which then fall back to
    equal weights: robust silently became plain DLT."""
    sigma, wss = config.robust_sigma_m, config.robust_wss_m
    if not config.robust_adaptive or len(rig) < 3:
        return sigma, wss
    C, batch = len(rig), points.shape[1:-1]
    # A dozen joints spread over the skeleton measure the noise as well as all of them do.
    some = np.unique(np.linspace(0, batch[-1] - 1, min(batch[-1], ADAPTIVE_JOINTS)).round().astype(int))
    und = rig.undistort(points[..., some, :]).reshape(C, -1, 2).transpose(1, 0, 2)
    w = weights[..., some].reshape(C, -1).T
    spread = tri.candidate_spread(rig.stacked()["P"], torch.as_tensor(und), torch.as_tensor(w)).numpy()
    with np.errstate(all="ignore"):
        frame = np.nanmedian(spread.reshape(*batch[:-1], len(some)), axis=-1, keepdims=True)  # (..., 1)
    scale = np.maximum(np.nan_to_num(ADAPTIVE_WIDTH * frame, nan=sigma) / sigma, 1.0)
    scale = np.broadcast_to(scale, batch)
    return sigma * scale, wss * scale


def triangulate_learned(rig: Rig, points: np.ndarray, confidence: np.ndarray, weights: str | None = None,
                        chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The learned head on distorted points (C, ..., J, 2) NaN missing, confidence (C, ..., J)
    (0 where unused) -> (..., J, 3) metres, views used (C, ..., J): a view counts as used
    when it carries more than 5 % of the joint's weight."""
    from engines.heads.algebraic import load_head

    head = load_head(weights)
    C, J = len(rig), points.shape[-2]
    batch = points.shape[1:-2]
    und = rig.undistort(points).reshape(C, -1, J, 2).transpose(1, 0, 2, 3)  # (N, C, J, 2)
    conf = confidence.reshape(C, -1, J).transpose(1, 0, 2)
    P = rig.stacked()["P"]
    X, share = np.full((len(und), J, 3), np.nan), np.zeros((len(und), C, J))
    with torch.no_grad():
        for s in range(0, len(und), chunk):  # bounded memory on long takes
            n = len(und[s:s + chunk])
            Xc, wc = head(P.expand(n, C, 3, 4), torch.as_tensor(und[s:s + chunk]), torch.as_tensor(conf[s:s + chunk]))
            X[s:s + n], share[s:s + n] = Xc.numpy(), wc.double().numpy()
    used = (share.transpose(1, 0, 2).reshape(C, *batch, J) > 0.05) & (confidence > 0)
    return X.reshape(*batch, J, 3), used


def triangulate_volumetric(rig: Rig, points: np.ndarray, confidence: np.ndarray, weights: str | None = None,
                           threshold_px: float = 15.0, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The volumetric head on distorted points (C, ..., J, 2) NaN missing, confidence (C, ...,
    J) (0 where unused) -> (..., J, 3) metres, views used (C, ..., J): a view counts as used
    where the result reprojects within `threshold_px` or 5 % of the person's size in that
    view (their 2D box diagonal) of its 2D joint: the head weighs voxels, not views, so "used"
    says which views agree with it."""
    from engines.heads.algebraic import box_scale
    from engines.heads.volumetric import load_volumetric, root_estimate

    head = load_volumetric(weights)
    C, J = len(rig), points.shape[-2]
    batch = points.shape[1:-2]
    x = points.reshape(C, -1, J, 2).transpose(1, 0, 2, 3)  # (N, C, J, 2)
    und = rig.undistort(points).reshape(C, -1, J, 2).transpose(1, 0, 2, 3)
    conf = confidence.reshape(C, -1, J).transpose(1, 0, 2)
    st = rig.stacked()
    X = np.full((len(x), J, 3), np.nan)
    with torch.no_grad():
        for s in range(0, len(x), chunk):  # bounded memory on long takes
            n = len(x[s:s + chunk])
            c = torch.as_tensor(conf[s:s + chunk])
            root = root_estimate(st["P"].expand(n, C, 3, 4), torch.as_tensor(und[s:s + chunk]), c)
            K, dist, R, t = (st[k].expand(n, *st[k].shape) for k in ("K", "dist", "R", "t"))
            Xc, _, _ = head(K, dist, R, t, torch.as_tensor(x[s:s + chunk]), c, root)
            X[s:s + n] = Xc.double().numpy()
    X = X.reshape(*batch, J, 3)
    err = rig.reprojection_error(X, points)
    seen = np.isfinite(points).all(-1)
    size = box_scale(torch.as_tensor(np.nan_to_num(points)), torch.as_tensor(seen)).numpy()  # (C, ...)
    limit = np.maximum(threshold_px, 0.05 * size)[..., None]
    return X, (confidence > 0) & (err < limit)


def reconstruct(rig: Rig, keypoints: np.ndarray, confidence: np.ndarray,
                config: TriangulationConfig) -> Reconstruction:
    """Triangulate a take: keypoints (C, F, J, 2), confidence (C, F, J) -> Reconstruction."""
    joints, used = triangulate_joints(rig, keypoints, confidence, config)
    return describe(rig, joints, keypoints, confidence, used)


def describe(rig: Rig, joints: np.ndarray, keypoints: np.ndarray, confidence: np.ndarray,
             used: np.ndarray) -> Reconstruction:
    """Reprojections, errors and 3D confidences of given joints (F, J, 3) with views used
    (C, F, J) -> Reconstruction. Also used after temporal filtering moved the joints."""
    reprojected = rig.project(joints)
    errors = np.linalg.norm(reprojected - keypoints, axis=-1)
    used = used & np.isfinite(joints).all(-1)[None]
    n = used.sum(0)
    conf = np.where(n > 0, np.where(used, confidence, 0.0).sum(0) / np.maximum(n, 1), 0.0)
    return Reconstruction(joints, conf, np.moveaxis(used, 0, -1), reprojected, errors)
