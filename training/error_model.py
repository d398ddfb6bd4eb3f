"""How BlazePose's 2D goes wrong on real takes, fitted on real detections, and used to make
synthetic 2D from motion capture.

    targets = loo_targets(rig, keypoints, confidence)    # each view's 2D from the other views
    model = fit_error_model(keypoints, confidence, targets)
    model.save(path); ErrorModel.load(path)

The fit: every view's joint is compared with the robust (GeoMed/WSS) triangulation of the
other views reprojected into it, in units of the person's size in that view (their 2D box
diagonal). Per joint that gives the inlier spread (per-axis sigma from the inliers' median
distance, which is sigma sqrt(2 ln 2) for Gaussian 2D noise; inliers: residual < OUTLIER), the share of outliers, the share of left/right swaps (the
mirror joint lies nearer the target than the joint itself) and the share of missed joints;
and over all joints the heatmap-peak confidence of inliers and of outliers (mean, std). On
the studio take the outliers' confidence is nearly as high as the inliers' (the number is
in the fitted file): the heatmap peak does not flag a wrong view.

Synthesis (`corrupt`) draws per-joint noise, outliers, swaps and misses at the fitted
rates; on top, whole-view failures that one take is too short to measure (another person,
a whole left/right swap, a limb burst) are drawn at `view_failure` per view, stated in the
config of the run that used them. Their confidences come from the inlier distribution, as
real wrong views look confident.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tomli_w

from calibration.rig import Rig
from engines.skeleton import BLAZEPOSE33, flip_permutation

OUTLIER = 0.08  # residual in person sizes above which a 2D joint is an outlier


@dataclass
class ErrorModel:
    """Per joint (J,): sigma (inlier spread, person sizes), p_outlier, p_swap, p_miss; over all
    joints: conf_inlier / conf_outlier (mean, std) of the heatmap peak; source: what it was
    fitted on."""

    sigma: list[float]
    p_outlier: list[float]
    p_swap: list[float]
    p_miss: list[float]
    conf_inlier: tuple[float, float]
    conf_outlier: tuple[float, float]
    samples: int = 0
    source: str = ""
    view_failure: float = 0.12
    failure_kinds: dict[str, float] = field(default_factory=lambda: {"other_person": 0.4, "swap": 0.3, "burst": 0.3})

    def save(self, path: Path) -> None:
        d = asdict(self)
        d["conf_inlier"], d["conf_outlier"] = list(self.conf_inlier), list(self.conf_outlier)
        Path(path).write_text("# BlazePose 2D error model (training/error_model.py)\n" + tomli_w.dumps(d))

    @staticmethod
    def load(path: Path) -> ErrorModel:
        d = tomllib.loads(Path(path).read_text())
        d["conf_inlier"], d["conf_outlier"] = tuple(d["conf_inlier"]), tuple(d["conf_outlier"])
        return ErrorModel(**d)


def person_size(keypoints: np.ndarray) -> np.ndarray:
    """Diagonal of the 2D box of each view's joints: (..., J, 2) -> (...), NaN if < 2 joints."""
    ok = np.isfinite(keypoints).all(-1)
    keypoints = np.where(ok[..., None], keypoints, 0.0)
    lo = np.where(ok[..., None], keypoints, np.inf).min(-2)
    hi = np.where(ok[..., None], keypoints, -np.inf).max(-2)
    enough = ok.sum(-1) >= 2
    d = np.linalg.norm(np.where(enough[..., None], hi - lo, 0.0), axis=-1)
    return np.where(enough, d, np.nan)


def loo_targets(rig: Rig, keypoints: np.ndarray, confidence: np.ndarray, min_confidence: float = 0.3) -> np.ndarray:
    """Each view's joints as the other views see them: the robust (GeoMed/WSS) triangulation
    of the other views, reprojected. keypoints (C, F, J, 2) distorted px, confidence (C, F, J)
    -> (C, F, J, 2) distorted px, NaN where fewer than two other views saw the joint."""
    return leave_one_out(rig, keypoints, confidence, min_confidence)[0]


def leave_one_out(rig: Rig, keypoints: np.ndarray, confidence: np.ndarray, min_confidence: float = 0.3,
                  agree: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """The other views' answer for each view, and how far they agree on it (the pseudo-labels
    of self-supervision: training/adapt.py).

    keypoints (C, F, J, 2) distorted px, confidence (C, F, J) -> targets (C, F, J, 2): the
    robust (GeoMed/WSS) triangulation of the other views reprojected into this one, NaN where
    fewer than two other views saw the joint; agreement (C, F, J) in [0, 1]: the share of the
    other views whose own 2D lies within `agree` x the person's 2D size (box diagonal) of that
    point, 0 where fewer than two of them do (the other views disagree: no label).

    With four or more views a view that the others outvote on a joint (RANSAC over all views,
    inliers within 2 x `agree` x the median person size) is left out of every other view's
    triangulation of it first: with three views left, one wrong view (another person) would
    otherwise pull the robust point off and spoil the labels of the views that are right.
    """
    C = len(rig)
    targets = np.full(keypoints.shape, np.nan)
    agreement = np.zeros(keypoints.shape[:-1])
    ok = np.isfinite(keypoints).all(-1) & (confidence >= min_confidence)
    size = person_size(np.where(ok[..., None], keypoints, np.nan))[..., None]  # (C, F, 1)
    voters = ok
    if C >= 4 and np.isfinite(size).any():
        threshold = 2 * agree * float(np.nanmedian(size))
        pts = np.where(ok[..., None], keypoints, np.nan)
        _, inlier = rig.triangulate(pts, np.where(ok, confidence, 0.0), method="ransac", return_weights=True,
                                    threshold=threshold)
        voters = ok & (inlier > 0)
    for v in range(C):
        others = [c for c in range(C) if c != v]
        sub = rig.subset([rig.names[c] for c in others])
        pts = np.where(voters[others][..., None], keypoints[others], np.nan)
        X = sub.triangulate(pts, np.where(voters[others], confidence[others], 0.0), method="robust")
        proj = rig.project(X)
        targets[v] = proj[v]
        with np.errstate(invalid="ignore"):
            near = ok[others] & (np.linalg.norm(proj[others] - keypoints[others], axis=-1) < agree * size[others])
        n = near.sum(0)
        agreement[v] = np.where((n >= 2) & np.isfinite(targets[v]).all(-1), n / len(others), 0.0)
    return targets, agreement


def fit_error_model(keypoints: np.ndarray, confidence: np.ndarray, targets: np.ndarray, source: str = "",
                    min_confidence: float = 0.3) -> ErrorModel:
    """Fit the model (module docstring) from 2D (C, F, J, 2), confidences (C, F, J) and the
    other views' targets (C, F, J, 2) of one or more takes (concatenate along F)."""
    J = keypoints.shape[2]
    size = person_size(targets)[..., None]  # (C, F, 1)
    seen = np.isfinite(targets).all(-1) & np.isfinite(size)
    found = np.isfinite(keypoints).all(-1) & (confidence >= min_confidence)
    r = np.linalg.norm(keypoints - targets, axis=-1) / size
    rm = np.linalg.norm(keypoints[:, :, flip_permutation(BLAZEPOSE33)] - targets, axis=-1) / size
    use = seen & found
    inlier = use & (r < OUTLIER)
    swap = use & (r >= OUTLIER) & (rm < 0.5 * r)
    outlier = use & (r >= OUTLIER) & ~swap
    sigma, p_out, p_swap, p_miss = [], [], [], []
    for j in range(J):
        ri = r[..., j][inlier[..., j]]
        sigma.append(float(np.median(ri) / np.sqrt(2 * np.log(2))) if ri.size else 0.01)
        n = max(int(use[..., j].sum()), 1)
        p_out.append(float(outlier[..., j].sum() / n))
        p_swap.append(float(swap[..., j].sum() / n))
        p_miss.append(float((seen[..., j] & ~found[..., j]).sum() / max(int(seen[..., j].sum()), 1)))
    ci, co = confidence[inlier], confidence[outlier | swap]

    def stats(a: np.ndarray) -> tuple[float, float]:
        return (float(a.mean()), float(a.std())) if a.size else (0.8, 0.1)

    return ErrorModel(sigma, p_out, p_swap, p_miss, stats(ci), stats(co), int(use.sum()), source)


def _draw_conf(rng: np.random.Generator, stats: tuple[float, float], shape) -> np.ndarray:
    return np.clip(rng.normal(stats[0], max(stats[1], 0.02), shape), 0.31, 1.0)


def corrupt(rng: np.random.Generator, model: ErrorModel, clean: np.ndarray, other: np.ndarray,
            view_failure: float | None = None, forced: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic detections from projected truth.

    clean (B, C, J, 2) px of the person; other (B, C, J, 2) px of another person in the room;
    view_failure: per-view chance of a whole-view failure (default the model's); forced (B, C)
    bool: views that fail for sure (test sets). -> keypoints (B, C, J, 2) NaN missing,
    confidence (B, C, J), failed (B, C) bool."""
    B, C, J, _ = clean.shape
    size = np.nan_to_num(person_size(clean), nan=100.0)[..., None, None]  # (B, C, 1, 1)
    sigma = np.asarray(model.sigma)[None, None, :, None]
    x = clean + rng.normal(size=clean.shape) * sigma * size
    conf = _draw_conf(rng, model.conf_inlier, (B, C, J))
    out = rng.random((B, C, J)) < np.asarray(model.p_outlier)
    direction = rng.normal(size=clean.shape)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    jump = direction * rng.uniform(OUTLIER, 0.4, (B, C, J, 1)) * size
    x = np.where(out[..., None], x + jump, x)
    conf = np.where(out, _draw_conf(rng, model.conf_outlier, (B, C, J)), conf)
    perm = flip_permutation(BLAZEPOSE33)
    swap = rng.random((B, C, J)) < np.asarray(model.p_swap)
    swap = swap | swap[..., perm]
    x = np.where(swap[..., None], x[:, :, perm], x)
    rate = model.view_failure if view_failure is None else view_failure
    failed = rng.random((B, C)) < rate
    if forced is not None:
        failed = failed | forced
    kinds = list(model.failure_kinds)
    kind = rng.choice(len(kinds), size=(B, C), p=np.asarray(list(model.failure_kinds.values())) / sum(model.failure_kinds.values()))
    for k, name in enumerate(kinds):
        sel = failed & (kind == k)
        if not sel.any():
            continue
        if name == "other_person":
            x[sel] = other[sel] + rng.normal(size=other[sel].shape) * sigma[0] * size[sel]
        elif name == "swap":
            x[sel] = x[sel][:, perm]
        else:  # a burst: a third of the joints thrown far
            hit = rng.random((int(sel.sum()), J)) < 0.35
            far = rng.normal(size=(int(sel.sum()), J, 2)) * 0.3 * size[sel]
            x[sel] = np.where(hit[..., None], x[sel] + far, x[sel])
        conf[sel] = _draw_conf(rng, model.conf_inlier, (int(sel.sum()), J))
    miss = rng.random((B, C, J)) < np.asarray(model.p_miss)
    x = np.where(miss[..., None], np.nan, x)
    conf = np.where(miss, 0.0, conf)
    return x, conf, failed
