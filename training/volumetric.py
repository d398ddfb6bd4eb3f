"""Training the volumetric head (engines/heads/volumetric.py).

    best = train(VolumeTrainConfig(), train_clips, val_clips, error_model, takes, Path("runs/v1"))

The same data as the algebraic head (training/confidence.py), in every step:
  - synthetic: motion capture of the training subjects through random studios and the real
    rigs, BlazePose's fitted errors (a share of views follow another person, swap left and
    right or burst); the cube is centred on the cheap root estimate the head uses in use
    (`root_estimate`) and turned by a random angle about the vertical; loss: the reference's
    L1 (cm) + 0.01 x cross-entropy of the soft-argmax weights at the true voxel;
  - real takes, self-supervised: each view's target is the robust triangulation of the other
    views reprojected into it (`RealTake`); loss: the reprojection loss of the algebraic head.
Validation each epoch, never trained on: synthetic samples of the validation subjects (two
thirds as usual, a third with 1-2 failed views) and the real takes' validation frames (a
time range). A run folder holds config.toml, metrics.csv, checkpoint.pt (resumable) and
volumetric.safetensors (best by validation MPJPE).
"""

from __future__ import annotations

import dataclasses
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomli_w
import torch
from tqdm import tqdm

from engines.heads.volumetric import (
    VolumeConfig,
    VolumetricTriangulation,
    root_estimate,
    save_volumetric,
)
from training.confidence import RealTake, _write_metrics, reprojection_loss, validation_set
from training.error_model import ErrorModel
from training.synthetic import MAX_VIEWS, Batch, SyntheticViews


@dataclass
class VolumeTrainConfig:
    """steps, epoch (steps between validations), batch (synthetic samples per step),
    real_batch (real frame sets per step), real_weight (the real loss's share), lr (Adam's,
    the reference's head rate), ce_weight (the reference's 0.01), view_failure, val_samples,
    seed; model: the head's VolumeConfig."""

    steps: int = 1200
    epoch: int = 100
    batch: int = 12
    real_batch: int = 4
    real_weight: float = 0.3
    lr: float = 1e-3
    ce_weight: float = 0.01
    view_failure: float = 0.12
    val_samples: int = 192
    seed: int = 0
    model: VolumeConfig = field(default_factory=VolumeConfig)

    def save(self, path: Path, extra: dict | None = None) -> None:
        d = dataclasses.asdict(self)
        d["model"] = dataclasses.asdict(self.model)
        Path(path).write_text(tomli_w.dumps({"train": d, **(extra or {})}))

    @staticmethod
    def load(path: Path) -> VolumeTrainConfig:
        d = dict(tomllib.loads(Path(path).read_text())["train"])
        d["model"] = VolumeConfig(**d.get("model", {}))
        return VolumeTrainConfig(**d)


@dataclass
class CameraTake(RealTake):
    """A RealTake with the cameras its P is made of (P = K [R | t] for undistorted px): K, R
    (C, 3, 3), t (C, 3)."""

    K: np.ndarray = None  # type: ignore[assignment]
    R: np.ndarray = None  # type: ignore[assignment]
    t: np.ndarray = None  # type: ignore[assignment]

    def cameras(self, n: int) -> tuple[torch.Tensor, ...]:
        """K, R (n, V, 3, 3), t (n, V, 3), padded to MAX_VIEWS with copies of the first camera."""
        pad = MAX_VIEWS - len(self.K)
        return tuple(torch.as_tensor(np.repeat(np.concatenate([a, np.repeat(a[:1], pad, 0)])[None], n, 0))
                     for a in (self.K, self.R, self.t))


def run_head(net: VolumetricTriangulation, P, x, conf, K, R, t, yaw=None, jitter: float = 0.0,
             rng: torch.Generator | None = None):
    """The head on undistorted 2D (dist 0) with the cube on `root_estimate` (+ `jitter` m of
    Gaussian noise in training) -> points (B, J, 3), weights (B, J, N^3), coords (B, N^3, 3)."""
    device = next(net.parameters()).device
    root = root_estimate(P, x, conf)
    if jitter:
        root = root + torch.randn(root.shape, generator=rng, dtype=root.dtype) * jitter
    args = (K, torch.zeros(*K.shape[:2], 5, dtype=K.dtype), R, t, x, conf, root, yaw)
    return net(*(a.to(device) if a is not None else None for a in args))


def voxel_index(truth: torch.Tensor, coords: torch.Tensor, voxels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest voxel of each true joint: truth (B, J, 3), coords (B, N^3, 3) -> index (B, J),
    inside (B, J): within half a voxel of a voxel centre on every axis (inside the cube)."""
    d = torch.cdist(truth.float(), coords.float())  # (B, J, N^3)
    idx = d.argmin(-1)
    step = (coords[:, 1] - coords[:, 0]).norm(dim=-1)[:, None]  # voxel size (neighbours along c)
    return idx, d.gather(-1, idx[..., None])[..., 0] <= step * 0.87 + 1e-6  # sqrt(3) / 2


def volumetric_loss(X: torch.Tensor, p: torch.Tensor, coords: torch.Tensor, truth: torch.Tensor,
                    voxels: int, ce_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference loss: L1 in cm over the joints + ce_weight x cross-entropy at the true
    voxel where it is inside the cube: X (B, J, 3), p (B, J, N^3), coords, truth (B, J, 3)
    metres -> loss, per-joint errors (B, J) m."""
    ok = torch.isfinite(X).all(-1)
    diff = torch.where(ok[..., None], X - truth.to(X.dtype), torch.zeros_like(X))
    l1 = (diff.abs().sum(-1) * 100)[ok].mean() if ok.any() else X.sum() * 0
    idx, inside = voxel_index(truth, coords, voxels)
    inside = inside & ok
    ce = -torch.log(p.gather(-1, idx[..., None])[..., 0].clamp_min(1e-12))
    ce = ce[inside].mean() if inside.any() else ce.sum() * 0
    err = torch.where(ok, diff.norm(dim=-1), torch.full_like(diff[..., 0], float("nan")))
    return l1 + ce_weight * ce, err


def _tensors(b: Batch) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(a) for a in (b.P, b.x, b.conf, b.K, b.R, b.t, b.truth))


def evaluate(net: VolumetricTriangulation, val: list[Batch], takes: list[CameraTake], chunk: int = 32) -> dict:
    """Validation: synthetic MPJPE (mm; joints seen by 2+ views) overall and with failed views,
    and each real take's reprojection loss on its validation frames."""
    out = {}
    with torch.no_grad():
        for name, b in zip(("val_mpjpe_mm", "val_failed_mpjpe_mm"), val, strict=True):
            errs = []
            T = _tensors(b)
            for s in range(0, len(b.P), chunk):
                P, x, conf, K, R, t, truth = (a[s:s + chunk] for a in T)
                X, _, _ = run_head(net, P, x, conf, K, R, t)
                errs.append((X.cpu() - truth.to(X.dtype)).norm(dim=-1).numpy())
            out[name] = float(np.nanmean(np.concatenate(errs)) * 1000)
        for tk in takes:
            if len(tk.val):
                P, x, conf, tg = tk.batch(tk.val)
                K, R, t = tk.cameras(len(tk.val))
                X, _, _ = run_head(net, P, x, conf, K, R, t)
                out[f"val_{tk.name}_reproj"] = float(reprojection_loss(P, X.cpu().double(), tg))
    return out


def train(config: VolumeTrainConfig, train_clips: dict[str, np.ndarray], val_clips: dict[str, np.ndarray],
          model: ErrorModel, takes: list[CameraTake], run: Path, rigs=None, resume: bool = True,
          progress: bool = True, until: int | None = None, device: str = "cpu") -> dict:
    """Train (module docstring) into `run`; returns the best validation metrics. `until`: stop
    after that step as an interruption would (the next call resumes)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    net = VolumetricTriangulation(config.model).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps, eta_min=config.lr * 0.05)
    gen = SyntheticViews(train_clips, model, seed=config.seed, rigs=rigs)
    rng = np.random.default_rng(config.seed + 7)
    trng = torch.Generator().manual_seed(config.seed + 11)
    val = validation_set(val_clips, model, config.val_samples, config.seed, rigs)
    step, best, history = 0, {"val_mpjpe_mm": float("inf")}, []
    ckpt = run / "checkpoint.pt"
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False, map_location=device)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimiser"])
        sched.load_state_dict(state["scheduler"])
        step, best, history = state["step"], state["best"], state["history"]
        gen.rng.bit_generator.state = state["gen_rng"]
        rng.bit_generator.state = state["rng"]
        trng.set_state(state["trng"])
        torch.set_rng_state(state["torch_rng"])
    model.view_failure = config.view_failure
    real = [t for t in takes if len(t.train)]
    bar = tqdm(total=config.steps, initial=step, desc="train volumetric", disable=not progress, unit="step")
    t0, running = time.perf_counter(), []
    while step < min(config.steps, until or config.steps):
        net.train()
        P, x, conf, K, R, t, truth = _tensors(gen.sample(config.batch))
        yaw = torch.rand(len(P), generator=trng, dtype=P.dtype) * 2 * torch.pi  # the reference's augmentation
        X, p, coords = run_head(net, P, x, conf, K, R, t, yaw, jitter=0.05, rng=trng)
        loss, _ = volumetric_loss(X, p, coords, truth.to(X.device), config.model.voxels, config.ce_weight)
        if real and config.real_batch:
            tk = real[int(rng.integers(len(real)))]
            Pr, xr, cr, tg = tk.batch(rng.choice(tk.train, config.real_batch))
            yr = torch.rand(len(Pr), generator=trng, dtype=Pr.dtype) * 2 * torch.pi
            Xr, _, _ = run_head(net, Pr, xr, cr, *tk.cameras(len(Pr)), yr, jitter=0.05, rng=trng)
            # In cm as the L1 above: reprojection in person sizes x 100.
            rl = reprojection_loss(Pr.to(Xr.device), Xr.double(), tg.to(Xr.device))
            loss = (1 - config.real_weight) * loss + config.real_weight * 100 * rl
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        if torch.isfinite(norm):
            opt.step()
        sched.step()
        step += 1
        running.append(float(loss.detach()))
        bar.update(1)
        if step % config.epoch == 0 or step == config.steps:
            net.eval()
            metrics = {"step": step, "loss": float(np.mean(running)), **evaluate(net, val, takes),
                       "seconds": time.perf_counter() - t0}
            running = []
            history.append(metrics)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", val_mm=f"{metrics['val_mpjpe_mm']:.1f}")
            if metrics["val_mpjpe_mm"] < best["val_mpjpe_mm"]:
                best = metrics
                save_volumetric(net, run / "volumetric.safetensors", {"step": str(step)})
            _write_metrics(run / "metrics.csv", history)
            torch.save({"model": net.state_dict(), "optimiser": opt.state_dict(), "scheduler": sched.state_dict(),
                        "step": step, "best": best, "history": history, "gen_rng": gen.rng.bit_generator.state,
                        "rng": rng.bit_generator.state, "trng": trng.get_state(),
                        "torch_rng": torch.get_rng_state()}, ckpt)
    bar.close()
    return best
