"""The volumetric head of Learnable Triangulation: every view's heatmaps unprojected into a
voxel cube around the person, aggregated over views, a V2V encoder-decoder, and a per-joint
3D soft-argmax over the world coordinates of the voxels.

    head = load_volumetric()                                    # shipped weights (weights/NOTICE)
    X, p, coords = head(K, dist, R, t, x, conf, root)
    # K, R (B, V, 3, 3); dist (B, V, 5); t (B, V, 3); x (B, V, J, 2) distorted px, NaN missing;
    # conf (B, V, J); root (B, 3) the cube centre (`root_estimate`) -> X (B, J, 3) metres,
    # p (B, J, N^3) the soft-argmax weights, coords (B, N^3, 3) the voxel centres (world)

One operation per function, each batched over samples and views:
  `person_roi`      a square box around the person in each view (centre, side in px);
  `render_heatmaps` per view and joint a Gaussian at the 2D joint, as high as its confidence,
                    on a heatmap x heatmap grid over the box;
  `cube_basis`      the cube's axes: world Z when the world is Z-up (the cameras' mean up
                    vector within 30 degrees of it), else the cameras' mean up;
  `cube_coords`     voxel centres in the world, the cube turned by `yaw` about its up axis;
  `unproject`       each voxel projected into each view with the full camera model (OpenCV
                    distortion included) and the box, features sampled there (bilinear
                    `grid_sample`); voxels behind a camera, far outside its field or in a
                    view that is missing get nothing;
  `aggregate`       over views: per-voxel softmax (the reference default), mean, or weighted
                    by each view's mean confidence;
  `V2V`             the 3D encoder-decoder with skip connections;
  `soft_argmax3d`   softmax over voxels per joint, contracted with the voxel centres.

What the views give the cube: heatmaps rendered from the 2D joints the backbone decoded (and
their confidences), reduced by a learned 1x1 convolution, not the backbone's own 48-channel
feature map or heatmaps. Why: the head is trained mostly on synthetic views made from motion
capture through random rigs (training/volumetric.py), where there are no images and so no
feature maps, and rendering gives the head the same kind of input in training and in use.
The functions from `unproject` on take any per-view maps over a box, so a head on the
backbone's own maps needs only another input.

The graph from the heatmaps on (`VolumetricTriangulation.volume`) is tensor operations that
export to ONNX (engines/heads/export.py: grid_sample, Conv3d, ConvTranspose3d, MaxPool3d).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path

import torch
from torch import Tensor, nn

from calibration import geometry as geo
from calibration import triangulation as tri
from calibration.errors import TriangulumError
from engines.heads.algebraic import box_corners

WEIGHTS = Path(__file__).with_name("weights") / "volumetric" / "volumetric.safetensors"
AGGREGATIONS = ("softmax", "mean", "confidence")
HIPS = (23, 24)  # BlazePose left/right hip: the cube is centred between them
SHOULDERS = (11, 12)
FIELD = 2.0  # normalised image radius beyond which a voxel is outside a view (63 degrees off-axis)


@dataclass(frozen=True)
class VolumeConfig:
    """side_m: cube side; voxels: per side; heatmap: per-view map size; sigma: Gaussian width
    in map pixels; features: channels after the 1x1 convolution (>= joints keeps the evidence
    skip, `VolumetricTriangulation`); width: V2V's first width
    (doubling per level, at most 4x); levels: V2V poolings; aggregation: one of AGGREGATIONS.
    The default is the configuration shipped for a 2-core CPU; REFERENCE is the paper's."""

    joints: int = 33
    side_m: float = 2.2
    voxels: int = 24
    heatmap: int = 32
    sigma: float = 1.5
    features: int = 33
    width: int = 16
    levels: int = 2
    aggregation: str = "softmax"

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise TriangulumError(f"unknown aggregation '{self.aggregation}'; choose one of {', '.join(AGGREGATIONS)}.")
        if self.voxels % (2 ** self.levels):
            raise TriangulumError(f"{self.voxels} voxels per side do not halve {self.levels} times; "
                                  f"use a multiple of {2 ** self.levels}.")


# The paper's size (2.5 m, 64^3, 32 features, 5 poolings): for a GPU, `--config` in training.
REFERENCE = VolumeConfig(side_m=2.5, voxels=64, heatmap=64, sigma=2.0, width=32, levels=4)


def person_roi(x: Tensor, valid: Tensor, margin: float = 1.25, least: float = 32.0) -> Tensor:
    """A square box per view around its valid joints: x (B, V, J, 2) px, valid (B, V, J) ->
    (B, V, 3) centre x, centre y, side (`margin` times the larger box extent, >= `least` px;
    views with no joint get a box of side `least` at 0)."""
    lo, hi = box_corners(x, valid)
    any_ = valid.any(-1, keepdim=True)
    centre = torch.where(any_, (lo + hi) / 2, torch.zeros_like(lo))
    side = torch.where(any_[..., 0], (hi - lo).amax(-1) * margin, torch.zeros_like(lo[..., 0])).clamp_min(least)
    return torch.cat([centre, side[..., None]], -1)


def render_heatmaps(x: Tensor, conf: Tensor, roi: Tensor, size: int, sigma: float) -> Tensor:
    """Gaussian heatmaps of the 2D joints: x (B, V, J, 2) px (NaN missing), conf (B, V, J),
    roi (B, V, 3) -> (B, V, J, size, size); a joint's peak is its confidence, 0 where missing."""
    ok = torch.isfinite(x).all(-1) & (conf > 0)
    x = torch.where(ok[..., None], x, torch.zeros_like(x))
    corner = roi[..., None, :2] - roi[..., None, 2:3] / 2
    u = (x - corner) / roi[..., None, 2:3] * size - 0.5  # map pixel coordinates, centres at integers
    g = torch.arange(size, dtype=x.dtype, device=x.device)
    gx = torch.exp(-((g - u[..., 0:1]) ** 2) / (2 * sigma**2))  # (B, V, J, size)
    gy = torch.exp(-((g - u[..., 1:2]) ** 2) / (2 * sigma**2))
    amp = torch.where(ok, conf, torch.zeros_like(conf))
    return amp[..., None, None] * gy[..., :, None] * gx[..., None, :]


def cube_basis(R: Tensor, views: Tensor) -> Tensor:
    """The cube's axes as rows (e1, e2, up) in world coordinates: R (B, V, 3, 3) world->camera,
    views (B, V) bool -> (B, 3, 3). Up is world Z when the cameras' mean up vector (-y of each
    camera) is within 30 degrees of it, else that mean: a rig calibrated on a wall board has
    its world turned, and the cube must still stand upright."""
    up_cam = -R[..., 1, :]  # (B, V, 3) each camera's image-up direction in the world
    w = views.to(R.dtype)[..., None]
    mean = (up_cam * w).sum(1)
    mean = mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    z = torch.zeros_like(mean)
    z[..., 2] = 1.0
    up = torch.where(((mean * z).sum(-1, keepdim=True)) > 0.866, z, mean)
    ref = torch.zeros_like(up)
    ref[..., 0] = 1.0
    ref = torch.where(up[..., :1].abs() > 0.9, torch.roll(ref, 1, -1), ref)
    e1 = torch.linalg.cross(ref, up)
    e1 = e1 / e1.norm(dim=-1, keepdim=True)
    e2 = torch.linalg.cross(up, e1)
    return torch.stack([e1, e2, up], -2)


def cube_coords(root: Tensor, basis: Tensor, yaw: Tensor, side: float, voxels: int) -> Tensor:
    """Voxel centres (B, N^3, 3) in world metres, index order (a, b, c) with c along up: root
    (B, 3) the cube centre, basis (B, 3, 3) from `cube_basis`, yaw (B,) radians about up."""
    g = (torch.arange(voxels, dtype=root.dtype, device=root.device) + 0.5) / voxels * side - side / 2
    a, b, c = torch.meshgrid(g, g, g, indexing="ij")
    local = torch.stack([a, b, c], -1).reshape(-1, 3)  # (N^3, 3)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    turn = torch.stack([torch.stack([cy, -sy, zero], -1), torch.stack([sy, cy, zero], -1),
                        torch.stack([zero, zero, one], -1)], -2)  # (B, 3, 3)
    axes = turn.transpose(-1, -2) @ basis  # rows: the turned e1, e2 and up
    return root[:, None] + local @ axes


def unproject(maps: Tensor, roi: Tensor, K: Tensor, dist: Tensor, R: Tensor, t: Tensor,
              coords: Tensor, views: Tensor) -> Tensor:
    """Sample each view's maps (B, V, F, H, W) over box roi (B, V, 3) at the projections of the
    voxel centres coords (B, N, 3) through the full camera model K, R (B, V, 3, 3), dist (B, V,
    5), t (B, V, 3); views (B, V) bool -> volumes (B, V, F, N), 0 where a view does not see a
    voxel (behind it, far outside its field, or a view without joints)."""
    B, V, F, H, W = maps.shape
    Xc = geo.to_camera(coords[:, None], R, t)  # (B, V, N, 3)
    z = Xc[..., 2]
    xn = Xc[..., :2] / z.clamp_min(1e-3)[..., None]
    inside = (z > 0.05) & (xn.abs().amax(-1) < FIELD) & views[..., None]
    xn = torch.where(inside[..., None], xn, torch.zeros_like(xn))  # keeps the distortion polynomial tame
    # Pinhole views (synthetic training) skip the distortion polynomial; an export keeps it.
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or bool((dist != 0).any()):
        xn = geo.distort(xn, dist[:, :, None].expand(-1, -1, xn.shape[2], -1)[..., 0, :])
    px = geo.apply_intrinsics(xn, K)
    corner = roi[..., None, :2] - roi[..., None, 2:3] / 2
    grid = (px - corner) / roi[..., None, 2:3] * 2 - 1  # grid_sample's [-1, 1] over the box
    grid = torch.where(inside[..., None], grid, torch.full_like(grid, -2.0))  # outside: zeros padding
    sampled = nn.functional.grid_sample(maps.reshape(B * V, F, H, W), grid.reshape(B * V, -1, 1, 2).to(maps.dtype),
                                        mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled.reshape(B, V, F, -1)  # outside voxels sampled the zero padding


def aggregate(volumes: Tensor, views: Tensor, view_conf: Tensor, how: str) -> Tensor:
    """One volume from every view's: volumes (B, V, F, N) (0 where a view does not see a voxel),
    views (B, V) the views with joints, view_conf (B, V) -> (B, F, N). softmax: per voxel and
    channel a softmax over the views, as the reference; mean: their mean; confidence: weighted
    by each view's mean joint confidence.

    A view that does not see a voxel (outside its image, behind it) counts with evidence 0, not
    as absent. Why: with webcams close to the person, much of the cube is seen by one view only,
    and leaving the others out gave such a voxel that one view's full heatmap value, so rays
    of single views outvoted the point where all views meet (measured on the caliscope take:
    reprojection median 149 px for the untrained head, against 27 for the weighted DLT)."""
    m = views.to(volumes.dtype)[:, :, None, None]
    if how == "softmax":
        logits = volumes + (m - 1) * 1e4  # views without joints get weight 0
        return (torch.softmax(logits, dim=1) * volumes).sum(1)
    if how == "confidence":
        m = m * view_conf[:, :, None, None].to(volumes.dtype)
    return (volumes * m).sum(1) / m.sum(1).clamp_min(1e-6)


class Conv3d(nn.Conv3d):
    """nn.Conv3d that takes oneDNN's kernel on a CPU at any batch size. PyTorch picks its slow
    im2col path for a batch of one (one frame set live): 15 ms against 2.6 ms for a 16-channel
    24^3 layer on 2 cores (measured, torch 2.13). Exports (ONNX tracing) take the plain op."""

    def forward(self, x: Tensor) -> Tensor:
        if (x.device.type != "cpu" or x.dtype != torch.float32 or not torch.backends.mkldnn.is_available()
                or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.jit.is_scripting()):
            return super().forward(x)
        return torch.ops.aten.mkldnn_convolution(x.contiguous(), self.weight, self.bias, list(self.padding),
                                                 list(self.stride), list(self.dilation), self.groups)


class Residual(nn.Module):
    """Two 3x3x3 convolutions with batch norm and a (projected) skip."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
                                  Conv3d(cout, cout, 3, padding=1), nn.BatchNorm3d(cout))
        self.skip = nn.Identity() if cin == cout else nn.Sequential(Conv3d(cin, cout, 1), nn.BatchNorm3d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class V2V(nn.Module):
    """The encoder-decoder of V2V-PoseNet as Learnable Triangulation uses it, `levels` deep:
    (B, cin, N, N, N) -> (B, cout, N, N, N). Widths double per level up to 4x `width`."""

    def __init__(self, cin: int, cout: int, width: int, levels: int):
        super().__init__()
        ch = [min(width * 2**i, width * 4) for i in range(levels + 1)]
        self.front = nn.Sequential(Conv3d(cin, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU(inplace=True))
        self.down = nn.ModuleList(Residual(ch[i], ch[i + 1]) for i in range(levels))
        # The full-resolution skip is the identity: a residual block there costs more than
        # the rest of the network at 24^3 on a CPU (measured: 64 -> 36 ms per 4-view set).
        self.skips = nn.ModuleList(Residual(ch[i], ch[i]) if i else nn.Identity() for i in range(levels))
        self.middle = Residual(ch[-1], ch[-1])
        self.up = nn.ModuleList(nn.Sequential(nn.ConvTranspose3d(ch[i + 1], ch[i], 2, stride=2),
                                              nn.BatchNorm3d(ch[i]), nn.ReLU(inplace=True)) for i in range(levels))
        self.out = Conv3d(width, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.front(x)
        skips = []
        for down, skip in zip(self.down, self.skips, strict=True):
            skips.append(skip(x))
            x = down(nn.functional.max_pool3d(x, 2))
        x = self.middle(x)
        for up, s in zip(reversed(self.up), reversed(skips), strict=True):
            x = up(x) + s
        return self.out(x)


def soft_argmax3d(logits: Tensor, coords: Tensor) -> tuple[Tensor, Tensor]:
    """logits (B, J, N), coords (B, N, 3) -> points (B, J, 3), weights (B, J, N) (multiplier 1,
    as the reference)."""
    p = torch.softmax(logits, dim=-1)
    return p @ coords, p


def root_estimate(P: Tensor, x: Tensor, conf: Tensor, threshold: float = 15.0) -> Tensor:
    """The cube centre from a cheaper method: the hips' midpoint by RANSAC triangulation (pair
    hypotheses, so one view on another person cannot move it); the shoulders' midpoint 0.5 m
    lower where the hips are not seen: P (B, V, 3, 4), x (B, V, J, 2) undistorted px (NaN
    missing), conf (B, V, J) -> (B, 3), NaN where neither is seen by two views."""
    idx = list(HIPS + SHOULDERS)
    xs = x[:, :, idx].transpose(1, 2)  # (B, 4, V, 2)
    w = torch.where(torch.isfinite(xs).all(-1), conf[:, :, idx].transpose(1, 2), torch.zeros_like(xs[..., 0]))
    X = tri.triangulate_ransac(P[:, None].expand(-1, len(idx), -1, -1, -1), torch.nan_to_num(xs), w,
                               threshold=threshold)  # (B, 4, 3)
    hips, shoulders = X[:, :2].mean(1), X[:, 2:].mean(1)
    lower = shoulders.clone()
    lower[:, 2] = lower[:, 2] - 0.5
    return torch.where(torch.isfinite(hips).all(-1, keepdim=True), hips, lower)


class VolumetricTriangulation(nn.Module):
    """The head (module docstring). `volume` is the exported graph; `forward` adds the
    rendering of the 2D and the cube."""

    def __init__(self, config: VolumeConfig = VolumeConfig()):
        super().__init__()
        self.config = config
        self.reduce = nn.Conv2d(config.joints, config.features, 1)
        self.v2v = V2V(config.features, config.joints, config.width, config.levels)
        # The evidence skip: with as many features as joints, the 1x1 convolution starts as
        # the identity, V2V's output starts at zero, and the logits start as `gain` times each
        # joint's aggregated heatmap volume: the untrained head already votes (the soft-argmax
        # lands where the views' rays meet), and training learns the corrections. Without it
        # the head starts at the cube centre, half a metre off, and needs many more steps.
        self.gain = nn.Parameter(torch.tensor(20.0 if config.features >= config.joints else 0.0))
        if config.features >= config.joints:
            with torch.no_grad():
                self.reduce.weight.zero_()
                self.reduce.weight[:config.joints, :, 0, 0] = torch.eye(config.joints)
                self.reduce.bias.zero_()
                self.v2v.out.weight.zero_()
                self.v2v.out.bias.zero_()

    def volume(self, heatmaps: Tensor, roi: Tensor, K: Tensor, dist: Tensor, R: Tensor, t: Tensor,
               coords: Tensor, views: Tensor, view_conf: Tensor) -> tuple[Tensor, Tensor]:
        """heatmaps (B, V, J, H, W), roi (B, V, 3), cameras, coords (B, N^3, 3), views (B, V)
        1 for a view with joints, else 0 (float: every input of the exported graph is),
        view_conf (B, V) -> points (B, J, 3), soft-argmax weights (B, J, N^3)."""
        B, V, J, H, W = heatmaps.shape
        views = views > 0.5
        n = self.config.voxels
        maps = self.reduce(heatmaps.reshape(B * V, J, H, W)).reshape(B, V, -1, H, W)
        vols = unproject(maps, roi, K, dist, R, t, coords, views)
        cube = aggregate(vols, views, view_conf, self.config.aggregation).reshape(B, -1, n, n, n)
        logits = (self.v2v(cube) + self.gain * cube[:, :J]).reshape(B, J, -1)
        return soft_argmax3d(logits, coords.to(logits.dtype))

    def inputs(self, K: Tensor, R: Tensor, x: Tensor, conf: Tensor, root: Tensor,
               yaw: Tensor | None = None) -> dict[str, Tensor]:
        """The tensors `volume` takes besides the cameras: heatmaps, roi, coords, views, view_conf."""
        c = self.config
        valid = torch.isfinite(x).all(-1) & (conf > 0)
        roi = person_roi(torch.nan_to_num(x), valid)
        views = valid.sum(-1) >= 2
        heat = render_heatmaps(x, conf, roi, c.heatmap, c.sigma).float()
        yaw = torch.zeros(len(x), dtype=root.dtype, device=root.device) if yaw is None else yaw
        coords = cube_coords(torch.nan_to_num(root), cube_basis(R, views), yaw, c.side_m, c.voxels)
        view_conf = torch.where(valid, conf, torch.zeros_like(conf)).sum(-1) / valid.sum(-1).clamp_min(1)
        return {"heatmaps": heat, "roi": roi.float(), "coords": coords.float(), "views": views.float(),
                "view_conf": view_conf.float()}

    def forward(self, K: Tensor, dist: Tensor, R: Tensor, t: Tensor, x: Tensor, conf: Tensor, root: Tensor,
                yaw: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Module docstring; `yaw` (B,) turns the cube (training), 0 by default. Joints fewer
        than two views saw, and samples whose root is NaN, come out NaN (as every method's)."""
        i = self.inputs(K, R, x, conf, root, yaw)
        X, p = self.volume(i["heatmaps"], i["roi"], K.float(), dist.float(), R.float(), t.float(), i["coords"],
                           i["views"], i["view_conf"])
        seen = (torch.isfinite(x).all(-1) & (conf > 0)).sum(1) >= 2  # (B, J)
        ok = seen & torch.isfinite(root).all(-1)[:, None]
        return torch.where(ok[..., None], X, torch.full_like(X, float("nan"))), p, i["coords"]


def save_volumetric(model: VolumetricTriangulation, path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    meta = {k: str(v) for k, v in asdict(model.config).items()}
    meta.update(metadata or {})
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def read_volumetric(path: Path | str) -> VolumetricTriangulation:
    """A head from a safetensors file written by `save_volumetric` (or the run folder holding it)."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / "volumetric.safetensors"
    if not path.exists():
        raise TriangulumError(f"no volumetric-head weights at {path}; give --weights a .safetensors file written by "
                              "`triangulum train volumetric` (or its run folder).")
    from safetensors import SafetensorError

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        kinds = {f.name: f.type for f in fields(VolumeConfig)}
        cast = {"int": int, "float": float, "str": str}
        config = VolumeConfig(**{k: cast[kinds[k]](v) for k, v in meta.items() if k in kinds})
        model = VolumetricTriangulation(config)
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, KeyError, ValueError, OSError) as exc:
        raise TriangulumError(f"{path} is not a volumetric head written by `triangulum train volumetric` ({exc}).") from None
    return model.eval()


@cache
def load_volumetric(path: str | None = None) -> VolumetricTriangulation:
    """The shipped head (path None) or another checkpoint, loaded once per process."""
    return read_volumetric(Path(path) if path else WEIGHTS)
