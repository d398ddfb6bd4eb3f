"""Training the learned algebraic head (engines/heads/algebraic.py) through the weighted DLT.

    run = train(TrainConfig(), train_clips, val_clips, error_model, real_takes, Path("runs/c1"))

Two kinds of samples in every step:
  - synthetic (training.synthetic): motion capture of the training subjects through random
    studios and the real rigs, BlazePose's fitted errors; loss: the 3D error against the
    truth (pseudo-Huber, metres, capped at 0.5 m so a degenerate sample cannot dominate);
  - real takes, self-supervised as in the self-supervision paper: each view's target is the
    robust (GeoMed/WSS) triangulation of the other views reprojected into it; loss: the
    distance of the head's 3D, reprojected, from those targets in person sizes (capped).
    Only the training frames of each take are used (`RealTake.train`, a time range).
Validation each epoch, never trained on: synthetic samples of the validation subjects
(a fixed set, a third with 1-2 failed views) and the real takes' validation frames.

A run folder holds config.toml, metrics.csv (one row per epoch), checkpoint.pt (the last
state: model, optimiser, step, random states; `resume` continues from it exactly) and
confidence.safetensors (the best weights by validation 3D error).
"""

from __future__ import annotations

import csv
import dataclasses
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomli_w
import torch
from tqdm import tqdm

from engines.heads.algebraic import (
    HeadConfig,
    LearnedTriangulation,
    box_scale,
    project_views,
    save_head,
)
from training.error_model import ErrorModel
from training.synthetic import MAX_VIEWS, Batch, SyntheticViews


@dataclass
class TrainConfig:
    """steps: optimiser steps; epoch: steps between validations/checkpoints; batch: synthetic
    samples per step; real_batch: real frame sets per step; real_weight: the real loss's
    share; lr: Adam's; seed; hidden: head width; view_failure: whole-view failure rate of the
    synthetic views; val_samples: synthetic validation set size."""

    steps: int = 1500
    epoch: int = 100
    batch: int = 96
    real_batch: int = 16
    real_weight: float = 0.5
    lr: float = 2e-3
    seed: int = 0
    hidden: int = 64
    view_failure: float = 0.12
    val_samples: int = 768

    def save(self, path: Path, extra: dict | None = None) -> None:
        Path(path).write_text(tomli_w.dumps({"train": dataclasses.asdict(self), **(extra or {})}))

    @staticmethod
    def load(path: Path) -> TrainConfig:
        return TrainConfig(**tomllib.loads(Path(path).read_text())["train"])


@dataclass
class RealTake:
    """One real take's training material, in undistorted pixels: P (C, 3, 4); x (C, F, J, 2)
    NaN missing; conf (C, F, J); targets (C, F, J, 2) each view's joints from the other views
    (NaN where unknown); train, val: frame indices (disjoint time ranges)."""

    name: str
    P: np.ndarray
    x: np.ndarray
    conf: np.ndarray
    targets: np.ndarray
    train: np.ndarray
    val: np.ndarray

    def batch(self, frames: np.ndarray) -> tuple[torch.Tensor, ...]:
        """P (B, V, 3, 4), x (B, V, J, 2), conf (B, V, J), targets (B, V, J, 2), padded to MAX_VIEWS."""
        C = len(self.P)
        B = len(frames)
        P = np.repeat(np.concatenate([self.P, np.repeat(self.P[:1], MAX_VIEWS - C, 0)])[None], B, 0)
        pad = ((0, 0), (0, MAX_VIEWS - C), (0, 0))
        x = np.pad(self.x[:, frames].transpose(1, 0, 2, 3), pad + ((0, 0),), constant_values=np.nan)
        conf = np.pad(self.conf[:, frames].transpose(1, 0, 2), pad)
        tg = np.pad(self.targets[:, frames].transpose(1, 0, 2, 3), pad + ((0, 0),), constant_values=np.nan)
        return tuple(torch.as_tensor(a) for a in (P, x, conf, tg))


def split_frames(frames: int, val_share: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Time-range split: the first (1 - val_share) of the take trains, the rest validates."""
    cut = int(round(frames * (1 - val_share)))
    return np.arange(cut), np.arange(cut, frames)


def pseudo_huber(e: torch.Tensor, delta: float) -> torch.Tensor:
    return delta * (torch.sqrt(1 + (e / delta) ** 2) - 1)


def synthetic_loss(X: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean pseudo-Huber 3D error (1 cm knee) and the per-joint errors (B, J) m. Not capped:
    the pseudo-Huber gradient is already bounded, and the far-off joints (a view on another
    person in a small rig) are the ones whose weights matter most."""
    ok = torch.isfinite(X).all(-1)
    e = torch.where(ok[..., None], X - truth, torch.ones_like(X)).norm(dim=-1)
    e = torch.where(ok, e, torch.zeros_like(e))
    loss = pseudo_huber(e.clamp(max=5.0), 0.01)
    return loss[ok].mean() if ok.any() else loss.sum() * 0, torch.where(ok, e, torch.full_like(e, float("nan")))


def reprojection_loss(P: torch.Tensor, X: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Distance of X reprojected into each view from the view's targets, in person sizes,
    pseudo-Huber with a 1 % knee, capped at 0.3: P (B, V, 3, 4), X (B, J, 3), targets (B, V, J, 2)."""
    uv = project_views(P, X[:, None].expand(-1, P.shape[1], -1, -1))
    size = box_scale(torch.nan_to_num(targets), torch.isfinite(targets).all(-1))
    ok = torch.isfinite(targets).all(-1) & torch.isfinite(uv).all(-1)
    # Masked entries are replaced before the norm: a NaN there would turn its zero gradient NaN.
    d = torch.where(ok[..., None], uv - torch.nan_to_num(targets), torch.ones_like(uv))
    e = torch.where(ok, d.norm(dim=-1) / size[..., None], torch.zeros_like(d[..., 0])).clamp(max=0.3)
    return pseudo_huber(e, 0.01)[ok].mean() if ok.any() else e.sum() * 0


def _tensors(b: Batch) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(a) for a in (b.P, b.x, b.conf, b.truth))


def validation_set(clips: dict[str, np.ndarray], model: ErrorModel, samples: int, seed: int,
                   rigs=None) -> list[Batch]:
    """Fixed synthetic validation batches: two thirds with the usual failure rate, a third with
    1-2 failed views."""
    gen = SyntheticViews(clips, model, seed=seed + 1000, rigs=rigs)
    n = max(samples // 3, 1)
    return [gen.sample(2 * n), gen.sample(n, views=(4, 6), forced_failures=(1, 2))]


def evaluate(net: LearnedTriangulation, val: list[Batch], takes: list[RealTake]) -> dict[str, float]:
    """Validation metrics: synthetic MPJPE (mm) overall and with failed views, real reprojection loss."""
    out = {}
    with torch.no_grad():
        errs = []
        for name, b in zip(("val_mpjpe_mm", "val_failed_mpjpe_mm"), val, strict=True):
            P, x, conf, truth = _tensors(b)
            X, _ = net(P, x, conf)
            _, e = synthetic_loss(X, truth)
            out[name] = float(np.nanmean(e.numpy()) * 1000)
            errs.append(out[name])
        for t in takes:
            if len(t.val):
                P, x, conf, tg = t.batch(t.val)
                X, _ = net(P, x, conf)
                out[f"val_{t.name}_reproj"] = float(reprojection_loss(P, X, tg))
    return out


def train(config: TrainConfig, train_clips: dict[str, np.ndarray], val_clips: dict[str, np.ndarray],
          model: ErrorModel, takes: list[RealTake], run: Path, rigs=None, resume: bool = True,
          progress: bool = True, until: int | None = None) -> dict:
    """Train (module docstring) into `run`; returns the best validation metrics. `until`:
    stop after that step as an interruption would (the next call resumes)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    net = LearnedTriangulation(HeadConfig(hidden=config.hidden))
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps, eta_min=config.lr * 0.05)
    gen = SyntheticViews(train_clips, model, seed=config.seed, rigs=rigs)
    rng = np.random.default_rng(config.seed + 7)
    val = validation_set(val_clips, model, config.val_samples, config.seed, rigs)
    step, best, history = 0, {"val_mpjpe_mm": float("inf")}, []
    ckpt = run / "checkpoint.pt"
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        net.head.load_state_dict(state["model"])
        opt.load_state_dict(state["optimiser"])
        sched.load_state_dict(state["scheduler"])
        step, best, history = state["step"], state["best"], state["history"]
        gen.rng.bit_generator.state = state["gen_rng"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
    model.view_failure = config.view_failure
    real = [t for t in takes if len(t.train)]
    bar = tqdm(total=config.steps, initial=step, desc="train confidence", disable=not progress, unit="step")
    t0 = time.perf_counter()
    running = []
    while step < min(config.steps, until or config.steps):
        net.train()
        P, x, conf, truth = _tensors(gen.sample(config.batch))
        X, _ = net(P, x, conf)
        loss, _ = synthetic_loss(X, truth)
        if real and config.real_batch:
            t = real[int(rng.integers(len(real)))]
            Pr, xr, cr, tg = t.batch(rng.choice(t.train, config.real_batch))
            Xr, _ = net(Pr, xr, cr)
            loss = (1 - config.real_weight) * loss + config.real_weight * reprojection_loss(Pr, Xr, tg)
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        if torch.isfinite(norm):  # a degenerate system (det ~ 0) can still give inf; skip it
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
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", val_mm=f"{metrics['val_mpjpe_mm']:.1f}")
            if metrics["val_mpjpe_mm"] < best["val_mpjpe_mm"]:
                best = metrics
                save_head(net, run / "confidence.safetensors", {"step": str(step)})
            _write_metrics(run / "metrics.csv", history)
            torch.save({"model": net.head.state_dict(), "optimiser": opt.state_dict(),
                        "scheduler": sched.state_dict(), "step": step, "best": best, "history": history,
                        "gen_rng": gen.rng.bit_generator.state, "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state()}, ckpt)
    bar.close()
    return best


def _write_metrics(path: Path, history: list[dict]) -> None:
    keys = sorted({k for h in history for k in h}, key=lambda k: (k != "step", k))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(history)
