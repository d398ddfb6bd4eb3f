"""The learned algebraic head: per-view, per-joint confidences from a small network, then the
weighted DLT (Learnable Triangulation's algebraic triangulation).

    head = load_head()                                   # shipped weights (weights/NOTICE)
    X, w = head(P, x, conf)      # P (B, C, 3, 4), x (B, C, J, 2) undistorted px, conf (B, C, J)

What the network reads, per view v and joint j (`view_descriptors`):
  - the backbone's heatmap-peak confidence of the joint, and whether the view has it;
  - how well the view agrees with the others: the joint triangulated from every other view
    (confidence-weighted DLT) and reprojected into v, its distance from v's 2D point and
    from v's mirror joint (a left/right swap puts the mirror joint there), in units of the
    person's size in v (the diagonal of their 2D box), and the view's mean disagreement over
    all joints (a view on the wrong person disagrees everywhere);
  - how many views saw the joint;
  - against every pair of the other views (`pair_residuals`): the least residual (some pair
    of good views confirms a good view even when a third view is wrong, which spoils the
    leave-one-out point) and the share of pairs that agree with it within AGREE.
A per-(view, joint) MLP with a learned joint embedding, a mean over views for context
(the views are a set: no view order is learned), and a second MLP give one positive weight
per view and joint; the weights are normalised over views per joint (as the reference
normalises its confidences) and go into `calibration.triangulation.triangulate_dlt`, which
is differentiable, so the network is trained through the 3D result (training/confidence.py).

Why these inputs and not the backbone's 48-channel feature map: the head is trained mostly
on synthetic views made from motion capture (no images, so no feature maps), and on real
takes a heatmap peak stays high on a view that follows the wrong limb or person (measured on
the studio take: training/error_model.py); what exposes those views is geometry. The whole
forward pass is tensor operations that export to ONNX (engines/heads/export.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import torch
from torch import Tensor, nn

from calibration.errors import TriangulumError
from calibration.triangulation import triangulate_dlt
from engines.skeleton import BLAZEPOSE33, flip_permutation

WEIGHTS = Path(__file__).with_name("weights") / "confidence.safetensors"
DESCRIPTORS = 10
AGREE = 0.05  # a view agrees with a pair of other views within 5 % of the person's size
FLOOR = 0.005  # the least weight share of a valid view (ConfidenceHead.forward)
RESIDUAL_SCALE = 0.02  # residuals in person sizes, log1p(r / this): 2 % of the body is "small"


@dataclass(frozen=True)
class HeadConfig:
    """joints: skeleton size; hidden: width of both MLPs; embedding: joint embedding size."""

    joints: int = 33
    hidden: int = 64
    embedding: int = 8


def box_corners(x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Lower and upper corners of each view's 2D box over its valid joints: x (..., J, 2),
    valid (..., J) -> (..., 2) each (+-1e9 where no joint is valid)."""
    big = torch.full_like(x, 1e9)
    return torch.where(valid[..., None], x, big).amin(-2), torch.where(valid[..., None], x, -big).amax(-2)


def box_scale(x: Tensor, valid: Tensor) -> Tensor:
    """Diagonal of each view's 2D box over its valid joints, at least 1 (1 with fewer than two
    joints): x (B, C, J, 2), valid (B, C, J) -> (B, C)."""
    lo, hi = box_corners(x, valid)
    d = (hi - lo).norm(dim=-1)
    return torch.where(valid.sum(-1) >= 2, d, torch.ones_like(d)).clamp_min(1.0)


def project_views(P: Tensor, X: Tensor) -> Tensor:
    """P (B, C, 3, 4), X (B, C, J, 3) -> (B, C, J, 2)."""
    Xh = torch.cat([X, torch.ones_like(X[..., :1])], -1)
    uvw = torch.einsum("bcik,bcjk->bcji", P, Xh)
    return uvw[..., :2] / uvw[..., 2:3].clamp_min(1e-9)


def leave_one_out(P: Tensor, x: Tensor, w: Tensor) -> Tensor:
    """Each joint triangulated from every view but one: P (B, C, 3, 4), x (B, C, J, 2) zeros
    where missing, w (B, C, J) -> (B, C, J, 3), index v = without view v (NaN if < 2 others)."""
    B, C, J, _ = x.shape
    keep = 1.0 - torch.eye(C, dtype=w.dtype, device=w.device)  # (C_out, C_in)
    wl = w.permute(0, 2, 1)[:, None] * keep[None, :, None]  # (B, C_out, J, C_in)
    xl = x.permute(0, 2, 1, 3)[:, None].expand(B, C, J, C, 2)
    Pl = P[:, None, None].expand(B, C, J, C, 3, 4)
    return triangulate_dlt(Pl, xl, wl)


def finite(t: Tensor) -> Tensor:
    """isfinite as Sub + Equal: TensorRT's ONNX parser has no IsInf."""
    return (t - t) == 0


def condition(P: Tensor, x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Pixels centred per view and scaled per sample, P changed to match: P (B, C, 3, 4),
    x (B, C, J, 2), valid (B, C, J) -> P', x'. Every DLT row x P3 - P1 becomes
    (x P3 - P1) / s, so the weighted solution is unchanged (the same s for all views of a
    sample keeps their relative weights) while float32 normal equations lose ~6 digits less."""
    m = valid[..., None].to(x.dtype)
    n = m.sum(2).clamp_min(1.0)  # (B, C, 1)
    c = (x * m).sum(2) / n  # (B, C, 2)
    d = ((x - c[:, :, None]).abs() * m).sum((1, 2, 3)) / (2 * n.sum((1, 2))).clamp_min(1.0)  # (B,)
    s = d.clamp_min(1.0)[:, None, None]
    x2 = (x - c[:, :, None]) / s[..., None]
    k = (torch.ones_like(s[..., 0]) / s[..., 0]).expand_as(c[..., 0])  # (B, C); Div, not Reciprocal (TensorRT)
    o, i = torch.zeros_like(k), torch.ones_like(k)
    T = torch.stack([torch.stack([k, o, -c[..., 0] * k], -1), torch.stack([o, k, -c[..., 1] * k], -1),
                     torch.stack([o, o, i], -1)], -2)  # (B, C, 3, 3)
    return T @ P, x2


def pair_residuals(P: Tensor, x: Tensor, valid: Tensor) -> Tensor:
    """Each view against every pair of the other views: the joint triangulated from views
    (u, w) and reprojected into v, distance from v's point. P (B, C, 3, 4), x (B, C, J, 2)
    zeros where missing, valid (B, C, J) -> (B, H, C, J) px, H = C (C - 1) / 2 pairs, NaN
    where the pair lacks the joint or contains v. Unlike the leave-one-out point, a pair of
    good views is untouched by a third, wrong one."""
    from calibration.triangulation import view_pairs

    B, C, J, _ = x.shape
    pairs = view_pairs(C).to(x.device)  # (H, 2)
    xp = x[:, pairs].permute(0, 1, 3, 2, 4)  # (B, H, J, 2, 2)
    Pp = P[:, pairs][:, :, None].expand(B, len(pairs), J, 2, 3, 4)
    wp = valid[:, pairs].permute(0, 1, 3, 2).to(x.dtype)  # (B, H, J, 2)
    X = triangulate_dlt(Pp, xp, wp)  # (B, H, J, 3)
    ok = finite(X).all(-1)
    Xh = torch.cat([torch.where(ok[..., None], X, torch.zeros_like(X)), torch.ones_like(X[..., :1])], -1)
    uvw = torch.einsum("bcik,bhjk->bhcji", P, Xh)
    uv = uvw[..., :2] / uvw[..., 2:3].clamp_min(1e-9)
    r = (uv - x[:, None]).norm(dim=-1)  # (B, H, C, J)
    inside = (pairs[:, :, None] == torch.arange(C, device=x.device)).any(1)  # (H, C)
    use = ok[:, :, None] & ~inside[None, :, :, None] & valid[:, None]
    return torch.where(use, r, torch.full_like(r, float("nan")))


def view_descriptors(P: Tensor, x: Tensor, conf: Tensor, mirror: Tensor) -> tuple[Tensor, Tensor]:
    """What the network reads (module docstring): P (B, C, 3, 4), x (B, C, J, 2) undistorted
    px (NaN where missing), conf (B, C, J), mirror (J,) left/right permutation
    -> descriptors (B, C, J, DESCRIPTORS) float32, valid (B, C, J) bool."""
    valid = finite(x).all(-1) & finite(conf) & (conf > 0)
    x0 = torch.where(valid[..., None], x, torch.zeros_like(x))
    c0 = torch.where(valid, conf, torch.zeros_like(conf))
    scale = box_scale(x0, valid)  # (B, C)
    X = leave_one_out(P, x0, c0)
    has = finite(X).all(-1) & valid
    uv = project_views(P, torch.where(finite(X), X, torch.zeros_like(X)))
    r = (x0 - uv).norm(dim=-1) / scale[..., None]
    rm = (x0[:, :, mirror] - uv).norm(dim=-1) / scale[..., None]
    rm = torch.where(valid[:, :, mirror], rm, r)
    zero = torch.zeros_like(r)
    lr = torch.where(has, torch.log1p(r.clamp(max=10.0) / RESIDUAL_SCALE), zero)
    lrm = torch.where(has, torch.log1p(rm.clamp(max=10.0) / RESIDUAL_SCALE), zero)
    n_has = has.sum(-1, keepdim=True).clamp_min(1)
    view_mean = (lr.sum(-1, keepdim=True) / n_has).expand_as(lr)
    n_views = valid.sum(1, keepdim=True).to(r.dtype).expand_as(r) / 8.0
    rp = pair_residuals(P, x0, valid) / scale[:, None, :, None]  # (B, H, C, J)
    known = finite(rp)
    rp0 = torch.where(known, rp, torch.full_like(rp, 10.0)).clamp(max=10.0)
    best = torch.where(known.any(1), torch.log1p(rp0.amin(1) / RESIDUAL_SCALE), zero)
    agree = ((rp0 < AGREE) & known).sum(1).to(r.dtype) / known.sum(1).clamp_min(1).to(r.dtype)
    f = torch.stack([c0, valid.to(r.dtype), has.to(r.dtype), lr, lrm, lr - lrm, view_mean, n_views, best, agree], -1)
    return f.float(), valid


class ConfidenceHead(nn.Module):
    """Descriptors (B, C, J, D) and valid (B, C, J) -> confidences (B, C, J), summing to 1 over
    the valid views of each joint (0 where a view is missing)."""

    def __init__(self, config: HeadConfig | None = None):
        super().__init__()
        self.config = config or HeadConfig()
        h, e = self.config.hidden, self.config.embedding
        self.joint = nn.Parameter(torch.zeros(self.config.joints, e))
        self.encode = nn.Sequential(nn.Linear(DESCRIPTORS + e, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.decide = nn.Sequential(nn.Linear(2 * h, h), nn.ReLU(), nn.Linear(h, 1))
        self.register_buffer("mirror", torch.as_tensor(flip_permutation(BLAZEPOSE33)), persistent=False)

    def forward(self, f: Tensor, valid: Tensor) -> Tensor:
        B, C, J, _ = f.shape
        emb = self.joint[None, None].expand(B, C, J, -1)
        h = self.encode(torch.cat([f, emb], -1))
        m = valid[..., None].to(h.dtype)
        ctx = (h * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)
        logit = self.decide(torch.cat([h, ctx.expand_as(h)], -1))[..., 0]
        m = valid.to(logit.dtype)
        w = nn.functional.softplus(logit) * m + 1e-6 * m
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
        # A floor of FLOOR per valid view (renormalised): with near one-hot weights the DLT
        # is a single ray, whose depth float32 (ONNX, TensorRT) cannot solve.
        w = (w + FLOOR * m) / (1 + FLOOR * m.sum(1, keepdim=True))
        return w


class LearnedTriangulation(nn.Module):
    """The whole head: P (B, C, 3, 4), x (B, C, J, 2) undistorted px (NaN missing), conf
    (B, C, J) -> X (B, J, 3) world units of P, confidences (B, C, J)."""

    def __init__(self, config: HeadConfig | None = None):
        super().__init__()
        self.head = ConfidenceHead(config)
        # float64 geometry in PyTorch; the ONNX/TensorRT graph is float32 (export.py), where
        # the DLT's trace conditioning keeps it within a fraction of a millimetre.
        self.geometry = torch.float64

    def forward(self, P: Tensor, x: Tensor, conf: Tensor) -> tuple[Tensor, Tensor]:
        P = P.to(self.geometry)
        x = x.to(self.geometry)
        present = finite(x).all(-1)
        P, x = condition(P, torch.where(present[..., None], x, torch.zeros_like(x)), present)
        x = torch.where(present[..., None], x, torch.full_like(x, float("nan")))
        with torch.no_grad():
            f, valid = view_descriptors(P, x, conf.to(self.geometry), self.head.mirror)
        w = self.head(f, valid)
        x0 = torch.where(valid[..., None], x, torch.zeros_like(x))
        # A joint seen by fewer than two views gets a stand-in system (every view, equal
        # weights) so that the solve stays finite and no NaN reaches the gradients; its
        # result is NaN, as the DLT's.
        enough = valid.sum(1, keepdim=True) >= 2
        ones = torch.ones_like(w)
        wd = torch.where(enough, w, ones / ones.sum(1, keepdim=True)).to(self.geometry)
        Pj = P[:, None].expand(-1, x.shape[2], -1, -1, -1)  # (B, J, C, 3, 4)
        X = triangulate_dlt(Pj, x0.transpose(1, 2), wd.transpose(1, 2))
        return torch.where(enough[:, 0, :, None], X, torch.full_like(X, float("nan"))), w


def save_head(model: LearnedTriangulation, path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    meta = {k: str(v) for k, v in asdict(model.head.config).items()}
    meta.update(metadata or {})
    state = {k: v.detach().float().contiguous() for k, v in model.head.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def read_head(path: Path | str) -> LearnedTriangulation:
    """A head from a safetensors file written by `save_head` (or a run's checkpoint folder)."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / "confidence.safetensors"
    if not path.exists():
        raise TriangulumError(f"no learned-head weights at {path}; give --weights a .safetensors file written by "
                              "`triangulum train confidence` (or its run folder).")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    config = HeadConfig(**{k: int(meta[k]) for k in ("joints", "hidden", "embedding") if k in meta})
    model = LearnedTriangulation(config)
    model.head.load_state_dict(state)
    return model.eval()


@cache
def load_head(path: str | None = None) -> LearnedTriangulation:
    """The shipped head (path None) or another checkpoint, loaded once per process."""
    return read_head(Path(path) if path else WEIGHTS)
