"""One person's 3D joints from their 2D in every view: the triangulation methods of `process`.

    algebraic  DLT with each view's row pair weighted by the joint's 2D confidence (the
               backbone's heatmap peak for now; Learnable Triangulation's learned weights later)
    robust     the self-supervision paper's GeoMed/WSS weights on top of the confidences
    ransac     Learnable Triangulation's RANSAC baseline (pair hypotheses, inliers, Huber)
    dlt        plain DLT: every view that saw the joint, equal weights (the usual baseline)

The first three ignore 2D joints under `min_confidence`. Every method reports which views each
joint used and the reprojection error of the result in every view that saw the joint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from calibration import triangulation as tri
from calibration.errors import TriangulumError
from calibration.rig import Rig

METHODS = ("algebraic", "robust", "ransac", "dlt")


@dataclass(frozen=True)
class TriangulationConfig:
    """method: one of METHODS; min_confidence: 2D joints under it are not used (except by
    "dlt"); ransac_threshold_px: RANSAC inlier threshold; robust_sigma_m, robust_wss_m: the
    robust method's kernel width and rejection threshold in metres."""

    method: str = "algebraic"
    min_confidence: float = 0.3
    ransac_threshold_px: float = 15.0
    robust_sigma_m: float = 0.01
    robust_wss_m: float = 0.02

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise TriangulumError(f"unknown triangulation method '{self.method}'; choose one of {', '.join(METHODS)}.")


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
    C = len(rig)
    batch = pts.shape[1:-1]
    und = torch.as_tensor(rig.undistort(pts).reshape(C, -1, 2)).transpose(0, 1)
    wt = torch.as_tensor(w.reshape(C, -1)).transpose(0, 1)
    res = tri.triangulate_robust(rig.stacked()["P"], und, wt, sigma=config.robust_sigma_m,
                                 wss_threshold=config.robust_wss_m)
    X = res.points.numpy().reshape(*batch, 3)
    # GeoMed weights are relative: a view counts as used when it carries a real share.
    share = res.weights / res.weights.sum(-1, keepdim=True).clamp_min(1e-30)
    used = (share.transpose(0, 1).numpy().reshape(C, *batch) > 0.05) & (w > 0)
    return X, used


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
