"""MetaPose's learned refinement (stage 2 of calibration-free capture): a "neural bundle adjuster".

One sample is one instant seen by V uncalibrated views. Each view has weak-perspective camera
(R, s, t): a joint X (metres, root-centred, in the first view's axes) lands at s (R X)_xy + t in
that view's normalised image (pixels centred on the 2D hip centre, divided by the 2D size of
the person). A stack of refinement steps, each an equivariant MLP over views (REFERENCE.md:
[512, 512, CC, 512, 512, CC, 512], selu, CC = concatenate the mean and std over views), reads
per view the 2D, its confidence, the current projection, the pose turned into the view and the
camera, and moves every camera and the pose. Rotations are 6D (two columns, Gram-Schmidt),
scale in log space; the first view's rotation stays the identity (it fixes the frame).

    net = load_metapose()                                     # shipped weights
    cams, X = initial_weak(world, kp, conf)                    # per-frame stage 1
    R, s, t, X = net(kp, conf, *cams, X)                       # refined

Shapes: B samples, V views, J = len(JOINTS) joints. The per-view 2D comes from
`normalise_2d` of BlazePose's keypoints; the per-view 3D from BlazePose's world landmarks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from calibration.errors import TriangulumError

# BlazePose-33 joints the refinement uses: nose, shoulders, elbows, wrists, hips, knees,
# ankles, heels, foot tips (the face and hand points add little and are the noisiest).
JOINTS = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32)
HIPS = (7, 8)  # positions of the hips in JOINTS
WEIGHTS = Path(__file__).with_name("metapose_weights") / "metapose.safetensors"


def rot6d(R: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], -1)


def from6d(d: Tensor) -> Tensor:
    """(..., 6) -> (..., 3, 3) rotation by Gram-Schmidt (Zhou et al.)."""
    a, b = d[..., :3], d[..., 3:]
    x = nn.functional.normalize(a, dim=-1)
    y = nn.functional.normalize(b - (x * b).sum(-1, keepdim=True) * x, dim=-1)
    return torch.stack([x, y, torch.cross(x, y, dim=-1)], -1)


def weak_project(X: Tensor, R: Tensor, s: Tensor, t: Tensor) -> Tensor:
    """X (B, J, 3), R (B, V, 3, 3), s (B, V), t (B, V, 2) -> (B, V, J, 2)."""
    return s[..., None, None] * torch.einsum("bvik,bjk->bvji", R[..., :2, :], X) + t[:, :, None]


def normalise_2d(kp: Tensor, conf: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Pixels -> each view's normalised image. kp (..., J, 2) px (NaN: missing), conf (..., J)
    -> (normalised (..., J, 2) with missing at 0, centre (..., 2) px, size (...) px)."""
    ok = torch.isfinite(kp).all(-1) & (conf > 0)
    k0 = torch.where(ok[..., None], kp, torch.zeros_like(kp))
    hips = ok[..., list(HIPS)].all(-1, keepdim=True)
    mean = k0.sum(-2) / ok.sum(-1, keepdim=True).clamp(min=1)
    centre = torch.where(hips, k0[..., list(HIPS), :].mean(-2), mean)
    d = torch.where(ok[..., None], k0 - centre[..., None, :], torch.zeros_like(k0))
    size = (d.square().sum((-1, -2)) / ok.sum(-1).clamp(min=1)).sqrt().clamp(min=1e-6)
    return d / size[..., None, None], centre, size


def kabsch(a: Tensor, b: Tensor, w: Tensor) -> Tensor:
    """Rotations R with b ~ R a of points each view centred on its own usable joints (batched
    torch; not centred again on the shared ones). a, b (..., N, 3); w (..., N) -> (..., 3, 3)."""
    H = torch.einsum("...n,...ni,...nj->...ij", w, a, b)
    U, _, Vh = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(Vh.transpose(-1, -2) @ U.transpose(-1, -2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return Vh.transpose(-1, -2) @ D @ U.transpose(-1, -2)


def fit_scale_shift(X: Tensor, R: Tensor, kp: Tensor, conf: Tensor) -> tuple[Tensor, Tensor]:
    """Weak-perspective s (B, V), t (B, V, 2) that best fit the 2D, given X and R (weighted least
    squares, closed form). kp (B, V, J, 2) normalised, conf (B, V, J)."""
    p = torch.einsum("bvik,bjk->bvji", R[..., :2, :], X)  # (B, V, J, 2)
    w = conf[..., None]
    sw = w.sum(-2).clamp(min=1e-6)  # (B, V, 1)
    pm, km = (w * p).sum(-2) / sw, (w * kp).sum(-2) / sw
    pc, kc = p - pm[..., None, :], kp - km[..., None, :]
    s = (w * pc * kc).sum((-1, -2)) / (w * pc * pc).sum((-1, -2)).clamp(min=1e-9)
    s = s.clamp(min=1e-3)
    return s, km - s[..., None] * pm


def initial_weak(world: Tensor, kp: Tensor, conf: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-frame stage 1: each view's metric 3D pose (B, V, J, 3) in its camera's axes turned onto
    the first view's (weighted Kabsch), the body averaged, s and t fitted.
    -> R (B, V, 3, 3), s (B, V), t (B, V, 2), X (B, J, 3)."""
    W, ok = _centred(world, conf)
    R = kabsch(W[:, :1].expand_as(W), W, torch.minimum(conf[:, :1], conf) * ok)
    return (R, *place_weak(R, world, kp, conf))


def _centred(world: Tensor, conf: Tensor) -> tuple[Tensor, Tensor]:
    """Each view's 3D pose centred on its usable joints, 0 elsewhere; and which are usable."""
    ok = torch.isfinite(world).all(-1) & (conf > 0)
    W = torch.where(ok[..., None], world, torch.zeros_like(world))
    W = W - (W * ok[..., None]).sum(-2, keepdim=True) / ok.sum(-1)[..., None, None].clamp(min=1)
    return torch.where(ok[..., None], W, torch.zeros_like(W)), ok


def place_weak(R: Tensor, world: Tensor, kp: Tensor, conf: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Given the cameras' rotations R (B, V, 3, 3): the body as every view's 3D pose turned into
    the first view's axes and averaged, and each view's s and t. -> s (B, V), t (B, V, 2), X (B, J, 3)."""
    W, ok = _centred(world, conf)
    turned = torch.einsum("bvki,bvjk->bvji", R, W)  # R^T W
    cw = (conf * ok)[..., None]
    X = (turned * cw).sum(1) / cw.sum(1).clamp(min=1e-6)
    s, t = fit_scale_shift(X, R, kp, conf * ok)
    return s, t, X


class Step(nn.Module):
    """One refinement step: an equivariant MLP over views (module docstring)."""

    def __init__(self, joints: int = len(JOINTS), width: int = 512):
        super().__init__()
        d_in = joints * 10 + 10
        self.a = nn.Sequential(nn.Linear(d_in, width), nn.SELU(), nn.Linear(width, width), nn.SELU())
        self.b = nn.Sequential(nn.Linear(3 * width, width), nn.SELU(), nn.Linear(width, width), nn.SELU())
        self.c = nn.Sequential(nn.Linear(3 * width, width), nn.SELU())
        self.camera = nn.Linear(width, 9)
        self.pose = nn.Linear(width, joints * 3)
        for head in (self.camera, self.pose):  # start as the identity step
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    @staticmethod
    def _cc(h: Tensor, mask: Tensor) -> Tensor:
        m = mask[..., None]
        n = m.sum(1, keepdim=True).clamp(min=1)
        mean = (h * m).sum(1, keepdim=True) / n
        std = (((h - mean) * m).square().sum(1, keepdim=True) / n + 1e-6).sqrt()
        return torch.cat([h, mean.expand_as(h), std.expand_as(h)], -1)

    def forward(self, kp, conf, R, s, t, X, mask):
        B, V, J, _ = kp.shape
        proj = weak_project(X, R, s, t)
        RX = torch.einsum("bvik,bjk->bvji", R, X)
        first = torch.zeros(B, V, 1, dtype=kp.dtype)
        first[:, 0] = 1
        feats = torch.cat([kp.flatten(2), conf, proj.flatten(2), ((kp - proj) * conf[..., None]).flatten(2),
                           RX.flatten(2), rot6d(R), s.log()[..., None], t, first], -1)
        h = self.a(feats)
        h = self.b(self._cc(h, mask))
        h = self.c(self._cc(h, mask))
        cam = self.camera(h)  # (B, V, 9)
        free = (1 - first)  # the first view keeps R = I
        R = from6d(rot6d(R) + 0.1 * cam[..., :6] * free)
        s = s * torch.exp(0.1 * cam[..., 6])
        t = t + 0.1 * cam[..., 7:]
        m = mask[..., None]
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        X = X + 0.05 * self.pose(pooled).reshape(B, J, 3)
        return R, s, t, X


class MetaPoseNet(nn.Module):
    """A stack of refinement steps; forward returns every step's (R, s, t, X) (deep supervision)."""

    def __init__(self, steps: int = 3, width: int = 512):
        super().__init__()
        self.config = {"steps": steps, "width": width}
        self.steps = nn.ModuleList(Step(len(JOINTS), width) for _ in range(steps))

    def forward(self, kp: Tensor, conf: Tensor, R: Tensor, s: Tensor, t: Tensor, X: Tensor,
                mask: Tensor | None = None) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """kp (B, V, J, 2) normalised, conf (B, V, J), R (B, V, 3, 3), s (B, V), t (B, V, 2),
        X (B, J, 3); mask (B, V) real views (padding: 0)."""
        mask = torch.ones(kp.shape[:2], dtype=kp.dtype) if mask is None else mask.to(kp.dtype)
        out = []
        for step in self.steps:
            R, s, t, X = step(kp, conf, R, s, t, X, mask)
            out.append((R, s, t, X))
        return out


def save_metapose(net: MetaPoseNet, path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(net.state_dict(), str(path), metadata={k: str(v) for k, v in net.config.items()})
    return path


def load_metapose(path: str | Path | None = None) -> MetaPoseNet:
    """The refinement from a safetensors file written by `triangulum train metapose` (or its run folder)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path else WEIGHTS
    if path.is_dir():
        path = path / "metapose.safetensors"
    if not path.is_file():
        raise TriangulumError(f"no MetaPose weights at {path}; train them with `triangulum train metapose -o RUN` "
                              "and give the run folder, or leave the option out for the shipped weights.")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    net = MetaPoseNet(int(meta.get("steps", 3)), int(meta.get("width", 512)))
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def refine_take(net: MetaPoseNet, rig, points, keypoints, confidence, world, min_confidence: float = 0.5):
    """Stage 2 over a take: the network refines every frame's cameras from stage 1's, the rotations
    are averaged over the frames (robustly: frames the network cannot mend are outvoted), and the
    body and the camera positions are placed again with them (calibration.uncalibrated.place).

    rig: stage 1's cameras (world = the first camera's axes); points (F, 33, 3) its joints;
    keypoints (C, F, 33, 2) px; confidence (C, F, 33); world (C, F, 33, 3) BlazePose's per-view
    3D -> (rig, joints (F, 33, 3)).
    """
    import numpy as np

    from calibration.uncalibrated import average_rotation, place

    J = list(JOINTS)
    kp = torch.from_numpy(np.moveaxis(rig.undistort(keypoints)[:, :, J], 0, 1)).float()  # (F, C, J, 2)
    cf = torch.from_numpy(np.moveaxis(confidence[:, :, J], 0, 1)).float()
    cf = torch.where(torch.isfinite(kp).all(-1) & (cf >= min_confidence), cf, torch.zeros_like(cf))
    norm, _, _ = normalise_2d(kp, cf)
    R0 = torch.from_numpy(np.stack([c.R for c in rig.cameras])).float()  # (C, 3, 3)
    X = torch.from_numpy(points[:, J]).float()
    usable = torch.isfinite(X).all(-1).all(-1) & (cf.sum((1, 2)) > 0)  # frames stage 1 reconstructed
    X, norm, cf = X[usable], norm[usable], cf[usable]
    X = X - X[:, list(HIPS)].mean(1, keepdim=True)
    R = R0[None].expand(len(X), -1, -1, -1).contiguous()
    s, t = fit_scale_shift(X, R, norm, cf)
    with torch.no_grad():
        R, *_ = net(norm, cf, R, s, t, X)[-1]
    R = R.double().numpy()  # (F', C, 3, 3)
    weight = cf.sum(-1).double().numpy()  # (F', C)
    Rs = np.stack([average_rotation(R[:, c], weight[:, c])[0] for c in range(R.shape[1])])
    Rs[0] = np.eye(3)
    return place(Rs, keypoints, confidence, world, rig, min_confidence)
