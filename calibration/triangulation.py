"""Batched triangulation in torch: weighted DLT, RANSAC, robust GeoMed/WSS.

All functions take projection matrices and image points expressed in the same
(undistorted) image coordinates, typically pixels with ``P = K [R | t]``:

    P: (*B, C, 3, 4) or (C, 3, 4)   cameras (broadcast over the batch)
    x: (*B, C, 2)                   one 2D observation per camera
    w: (*B, C)                      per-view weights; 0 or NaN in x means "missing"

and return world points (*B, 3); a point seen by fewer than two usable views is NaN.
`calibration.rig.Rig.triangulate` handles distortion and the numpy side.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import torch
from torch import Tensor


def _valid_inputs(x: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
    """Zero out missing views: returns x with NaNs replaced and weights (*B, C).
    Finiteness is tested as t - t == 0 (false for NaN and inf): the same as isfinite, in
    operators TensorRT's ONNX parser has (it lacks IsInf)."""
    finite = ((x - x) == 0).all(-1)
    if w is None:
        w = torch.ones_like(x[..., 0])
    finite = finite & ((w - w) == 0) & (w > 0)
    return torch.where(finite.unsqueeze(-1), x, torch.zeros_like(x)), torch.where(
        finite, w, torch.zeros_like(w)
    )


def _solve3(M: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Solve M X = b for 3x3 systems by the adjugate (exports to ONNX; no linalg op).

    M: (*B, 3, 3); b: (*B, 3) -> X: (*B, 3), det: (*B,)
    """
    a, bb, c = M[..., 0, 0], M[..., 0, 1], M[..., 0, 2]
    d, e, f = M[..., 1, 0], M[..., 1, 1], M[..., 1, 2]
    g, h, i = M[..., 2, 0], M[..., 2, 1], M[..., 2, 2]
    A, B_, C_ = e * i - f * h, -(d * i - f * g), d * h - e * g
    D, E, F = -(bb * i - c * h), a * i - c * g, -(a * h - bb * g)
    G, H, I_ = bb * f - c * e, -(a * f - c * d), a * e - bb * d
    det = a * A + bb * B_ + c * C_
    adj = torch.stack([A, D, G, B_, E, H, C_, F, I_], -1).reshape(*M.shape)
    X = (adj @ b.unsqueeze(-1)).squeeze(-1) / det.unsqueeze(-1)
    return X, det


def dlt_rows(P: Tensor, x: Tensor, w: Tensor) -> Tensor:
    """The DLT design matrix, each view's two rows scaled by its weight.

    P: (*B, C, 3, 4); x: (*B, C, 2); w: (*B, C) -> A: (*B, 2C, 4)
    Rows are ``w (u P3 - P1)`` and ``w (v P3 - P2)`` as in Learnable Triangulation.
    """
    A = x.unsqueeze(-1) * P[..., 2:3, :] - P[..., :2, :]  # (*B, C, 2, 4)
    A = A * w[..., None, None]
    return A.reshape(*A.shape[:-3], -1, 4)


def triangulate_dlt(P: Tensor, x: Tensor, w: Tensor | None = None) -> Tensor:
    """Weighted linear triangulation through the 3x3 normal equations.

    P: (*B, C, 3, 4) or (C, 3, 4); x: (*B, C, 2); w: (*B, C) or None -> (*B, 3)

    Minimises ||A[:, :3] X + A[:, 3]||^2, i.e. the algebraic DLT error with the
    homogeneous coordinate fixed to 1. Unlike the SVD form it exports to ONNX and
    TensorRT; it agrees with `triangulate_dlt_svd` to numerical precision for points
    in front of the cameras (tests pin this).
    """
    x, w = _valid_inputs(x, w)
    P = P.expand(*x.shape[:-1], 3, 4)
    A = dlt_rows(P, x, w)
    A3, a4 = A[..., :3], A[..., 3]
    M = A3.transpose(-1, -2) @ A3
    b = -(A3.transpose(-1, -2) @ a4.unsqueeze(-1)).squeeze(-1)
    # Scale-free conditioning: divide by the trace so float32 does not overflow.
    scale = (M[..., 0, 0] + M[..., 1, 1] + M[..., 2, 2]).clamp_min(1e-30)
    X, det = _solve3(M / scale[..., None, None], b / scale[..., None])
    enough = (w > 0).sum(-1) >= 2
    ok = enough & (det.abs() > 1e-12)
    return torch.where(ok.unsqueeze(-1), X, torch.full_like(X, float("nan")))


def triangulate_dlt_svd(P: Tensor, x: Tensor, w: Tensor | None = None) -> Tensor:
    """Reference DLT: smallest right singular vector of the weighted design matrix.

    Shapes as `triangulate_dlt`. Not exportable to ONNX (SVD); used to test it.
    """
    x, w = _valid_inputs(x, w)
    P = P.expand(*x.shape[:-1], 3, 4)
    A = dlt_rows(P, x, w)
    _, _, Vh = torch.linalg.svd(A)
    Xh = Vh[..., -1, :]
    X = Xh[..., :3] / Xh[..., 3:4]
    enough = (w > 0).sum(-1) >= 2
    return torch.where(enough.unsqueeze(-1), X, torch.full_like(X, float("nan")))


def project_homogeneous(P: Tensor, X: Tensor) -> Tensor:
    """Project points with projection matrices (no distortion).

    P: (*B, C, 3, 4); X: (*B, 3) -> (*B, C, 2)
    """
    Xh = torch.cat([X, torch.ones_like(X[..., :1])], -1)
    p = (P @ Xh.unsqueeze(-2).unsqueeze(-1)).squeeze(-1)  # (*B, C, 3)
    return p[..., :2] / p[..., 2:3]


def reprojection_error(P: Tensor, X: Tensor, x: Tensor) -> Tensor:
    """Distance between projections of X and observations x, per view.

    P: (*B, C, 3, 4); X: (*B, 3); x: (*B, C, 2) -> (*B, C); NaN where x is missing.
    """
    return (project_homogeneous(P, X) - x).norm(dim=-1)


def view_pairs(num_views: int) -> Tensor:
    """All unordered camera pairs. -> (H, 2) long, H = C (C - 1) / 2"""
    return torch.tensor(list(itertools.combinations(range(num_views), 2)), dtype=torch.long)


def _pair_candidates(P: Tensor, x: Tensor, w: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """Triangulate every camera pair. -> candidates (*B, H, 3), pair valid (*B, H)"""
    Pp = P[..., pairs, :, :]  # (*B, H, 2, 3, 4)
    xp = x[..., pairs, :]  # (*B, H, 2, 2)
    wp = (w[..., pairs] > 0).to(x.dtype)  # pair members count equally
    X = triangulate_dlt(Pp, xp, wp)
    return X, torch.isfinite(X).all(-1)


def triangulate_ransac(
    P: Tensor,
    x: Tensor,
    w: Tensor | None = None,
    threshold: float = 15.0,
    huber_delta: float | None = 5.0,
    iterations: int = 10,
) -> Tensor:
    """RANSAC triangulation (Learnable Triangulation's baseline), batched.

    P: (*B, C, 3, 4); x: (*B, C, 2); w: (*B, C) -> (*B, 3)

    Hypotheses come from every camera pair. With at most eight cameras there are at
    most 28, so trying all of them is cheaper than random sampling and deterministic.
    The hypothesis with most inliers (reprojection error < `threshold`, in the units
    of x) wins, ties broken by the summed inlier error; DLT on its inliers follows,
    then `iterations` of Huber-weighted Gauss-Newton on the reprojection error
    (skipped when `huber_delta` is None).
    """
    x, w = _valid_inputs(x, w)
    C = x.shape[-2]
    P = P.expand(*x.shape[:-1], 3, 4)
    pairs = view_pairs(C).to(x.device)
    cand, cand_ok = _pair_candidates(P, x, w, pairs)  # (*B, H, 3)
    err = reprojection_error(P.unsqueeze(-4), cand, x.unsqueeze(-3))  # (*B, H, C)
    observed = (w > 0).unsqueeze(-2)
    inlier = (err < threshold) & observed & cand_ok.unsqueeze(-1)
    count = inlier.sum(-1).to(x.dtype)
    spread = torch.where(inlier, err, torch.zeros_like(err)).sum(-1)
    score = count - spread / (threshold * C + 1)  # fewer px error breaks count ties
    score = torch.where(cand_ok, score, torch.full_like(score, -1.0))
    best = score.argmax(-1, keepdim=True)  # (*B, 1)
    mask = torch.gather(inlier, -2, best.unsqueeze(-1).expand(*best.shape, C)).squeeze(-2)
    X = triangulate_dlt(P, x, mask.to(x.dtype) * (w > 0).to(x.dtype))
    if huber_delta is not None:
        X = refine_huber(P, x, mask.to(x.dtype), X, huber_delta, iterations)
    return X


def refine_huber(
    P: Tensor, x: Tensor, w: Tensor, X: Tensor, delta: float, iterations: int = 10
) -> Tensor:
    """Gauss-Newton on the Huber-weighted reprojection error (IRLS).

    P: (*B, C, 3, 4); x: (*B, C, 2); w: (*B, C) view mask/weights; X: (*B, 3) start
    -> (*B, 3). Points that are NaN on entry stay NaN.
    """
    for _ in range(iterations):
        Xh = torch.cat([X, torch.ones_like(X[..., :1])], -1)
        p = (P @ Xh.unsqueeze(-2).unsqueeze(-1)).squeeze(-1)  # (*B, C, 3)
        z = p[..., 2:3]
        uv = p[..., :2] / z
        r = torch.where(w.unsqueeze(-1) > 0, uv - x, torch.zeros_like(uv))  # (*B, C, 2)
        # d(uv)/dX = (P[:2, :3] - uv * P[2, :3]) / z
        J = (P[..., :2, :3] - uv.unsqueeze(-1) * P[..., 2:3, :3]) / z.unsqueeze(-1)
        norm = r.norm(dim=-1)
        hw = torch.where(norm <= delta, torch.ones_like(norm), delta / norm.clamp_min(1e-12)) * w
        JtJ = torch.einsum("...cki,...c,...ckj->...ij", J, hw, J)
        Jtr = torch.einsum("...cki,...c,...ck->...i", J, hw, r)
        step, det = _solve3(JtJ, -Jtr)
        step = torch.where((det.abs() > 1e-30).unsqueeze(-1), step, torch.zeros_like(step))
        X = X + torch.nan_to_num(step)
    return X


def geometric_median(points: Tensor, valid: Tensor, iterations: int = 50, eps: float = 1e-9) -> Tensor:
    """Weiszfeld's geometric median of a masked point set.

    points: (*B, N, 3); valid: (*B, N) bool -> (*B, 3); NaN where no point is valid.
    """
    m = valid.to(points.dtype).unsqueeze(-1)
    pts = torch.where(valid.unsqueeze(-1), points, torch.zeros_like(points))
    y = (pts * m).sum(-2) / m.sum(-2)  # start at the mean
    for _ in range(iterations):
        d = (pts - y.unsqueeze(-2)).norm(dim=-1, keepdim=True).clamp_min(eps)
        inv = m / d
        y = (pts * inv).sum(-2) / inv.sum(-2)
    return y


class RobustResult(NamedTuple):
    """Output of `triangulate_robust`.

    points: (*B, 3); weights: (*B, C) per-view weights used; wss: (*B,) RMS distance
    of the pair candidates to their geometric median (sqrt of the paper's WSS);
    rejected: (*B,) bool, WSS above the threshold.
    """

    points: Tensor
    weights: Tensor
    wss: Tensor
    rejected: Tensor


def _pair_cluster(P: Tensor, x: Tensor, w: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """How every camera pair's triangulation lies about their geometric median: (P, x, w as
    validated, pairs (H, 2)) -> pair valid (*B, H), squared distance to the median (*B, H)."""
    cand, ok = _pair_candidates(P.expand(*x.shape[:-1], 3, 4), x, w, pairs)
    centre = geometric_median(cand, ok)
    return ok, ((cand - centre.unsqueeze(-2)) ** 2).sum(-1)


def candidate_spread(P: Tensor, x: Tensor, w: Tensor | None = None) -> Tensor:
    """How far the camera-pair triangulations of a point scatter: the median distance of the
    pair candidates to their geometric median, in world units.

    P: (*B, C, 3, 4); x: (*B, C, 2); w: (*B, C) or None -> (*B,), NaN with fewer than three
    usable views (one pair has nothing to scatter about). It grows with the 2D noise (in
    metres it is about the pixel noise times depth over focal length, times the pair geometry),
    which is what the robust method's kernel must be wider than (`triangulate_robust`)."""
    x, w = _valid_inputs(x, w)
    ok, d2 = _pair_cluster(P, x, w, view_pairs(x.shape[-2]).to(x.device))
    spread = torch.nanquantile(torch.where(ok, d2.sqrt(), torch.full_like(d2, float("nan"))), 0.5, dim=-1)
    return torch.where(((w > 0).sum(-1) >= 3), spread, torch.full_like(spread, float("nan")))


def triangulate_robust(
    P: Tensor,
    x: Tensor,
    w: Tensor | None = None,
    sigma: float | Tensor = 0.01,
    wss_threshold: float | Tensor | None = 0.02,
    on_reject: str = "uniform",
) -> RobustResult:
    """Robust weighted triangulation of the self-supervision paper (GeoMed + WSS).

    P: (*B, C, 3, 4); x: (*B, C, 2); w: (*B, C) prior weights or None.

    Candidates are the DLT points of every camera pair; their geometric median is the
    cluster centre; view c gets the median over its pairs of
    exp(-||centre - candidate||^2 / sigma^2) (sigma in world units: the paper's 10 mm).
    The WSS test compares the RMS distance of the candidates to the centre with
    `wss_threshold` (the paper's 20 mm, quoted in mm for a mean of squares, so we take
    the square root). We weight each candidate by the product of its two views' weights
    before averaging. The paper writes a plain mean, but a plain mean exceeds 20 mm as
    soon as one view of six is off by a few tens of pixels (a third of the pairs contain
    it), which would reject exactly the joints its Figure 4 shows the weights rescuing.
    A joint is also rejected when fewer than half of its views agree with the centre
    (weight > 0.5): that is the paper's "more than 50 % of the views unreliable" case.
    A rejected joint is triangulated with equal weights
    (`on_reject="uniform"`, as the paper's Figure 4 does) or set to NaN ("discard", as
    its training does). Prior weights `w` multiply the geometric ones. `sigma` and
    `wss_threshold` may be tensors (*B,), one per point: noisy 2D needs a wider kernel than
    the paper's 10 mm (app.process.reconstruct widens it with `candidate_spread`).
    """
    if on_reject not in ("uniform", "discard"):
        raise ValueError(f"on_reject must be 'uniform' or 'discard', not {on_reject!r}")
    x, w = _valid_inputs(x, w)
    C = x.shape[-2]
    P = P.expand(*x.shape[:-1], 3, 4)
    pairs = view_pairs(C).to(x.device)
    ok, d2 = _pair_cluster(P, x, w, pairs)  # (*B, H) each
    nan = torch.full_like(d2, float("nan"))
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim:
        sigma = sigma.unsqueeze(-1)  # per point, over its pairs
    g = torch.where(ok, torch.exp(-d2 / sigma**2), nan)  # (*B, H)
    # Per-view weight: median of g over the pairs that contain the view.
    member = torch.zeros(C, pairs.shape[0], dtype=torch.bool, device=x.device)
    member[pairs[:, 0], torch.arange(pairs.shape[0])] = True
    member[pairs[:, 1], torch.arange(pairs.shape[0])] = True
    gv = torch.where(member, g.unsqueeze(-2), torch.full_like(g.unsqueeze(-2), float("nan")))
    geo = torch.nan_to_num(torch.nanquantile(gv, 0.5, dim=-1), nan=0.0)  # (*B, C)
    weights = geo * w
    # If every view underflowed to 0 the data carry no preference: fall back to w.
    none = weights.sum(-1, keepdim=True) <= 0
    weights = torch.where(none, w, weights)
    pair_w = weights[..., pairs[:, 0]] * weights[..., pairs[:, 1]] * ok.to(x.dtype)  # (*B, H)
    wss = torch.sqrt(
        (pair_w * torch.nan_to_num(d2)).sum(-1) / pair_w.sum(-1).clamp_min(1e-30)
    )
    rejected = torch.zeros_like(wss, dtype=torch.bool)
    if wss_threshold is not None:
        # A centre is only as good as the majority behind it: fewer than half of the
        # observed views agreeing with it means the cluster has no reliable core.
        agree = ((geo > 0.5) & (w > 0)).sum(-1)
        observed = (w > 0).sum(-1)
        rejected = (wss > wss_threshold) | (2 * agree < observed)
        weights = torch.where(rejected.unsqueeze(-1), (w > 0).to(x.dtype), weights)
    X = triangulate_dlt(P, x, weights)
    if on_reject == "discard":
        X = torch.where(rejected.unsqueeze(-1), torch.full_like(X, float("nan")), X)
    return RobustResult(X, weights, wss, rejected)
