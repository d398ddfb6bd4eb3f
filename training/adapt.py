"""Adapt to my studio: self-supervised fine-tuning of the BlazePose landmark network on the
user's own multi-view takes (`triangulum adapt`).

    targets, weights, usable = label_crops(rig, keypoints, confidence, rois, AdaptConfig())
    result = adapt([Crops(...)], AdaptConfig(), out_dir)   # -> out_dir/landmark.safetensors, metrics.csv

The take-level work (processing a take, cutting its crops again, the before/after check) is
app/adapt.py's; this module holds the learning.

1. Pseudo-labels (the self-supervision paper, EpipolarPose): each take is processed with the
   current pipeline; for every view of the main performer, the robust GeoMed/WSS triangulation
   of the *other* views is reprojected into it (training.error_model.leave_one_out). A joint is
   labelled only where at least two other views agree on it (their own 2D within `agree` x the
   person's size of that point), weighted by the share that agree; a view whose own 2D is far
   from the others' answer on most joints (another person, a failed crop) gives no crop at all.
2. The crops the network saw (the tracker's ROIs, kept on ViewPeople) are cut again from the
   decoded frames, with their labels in crop coordinates.
3. Fine-tuning of the network's heads (`train="heads"`: decoder, heatmap and 2D regression; the
   encoder stays as shipped): L1 of the regressed and the heatmap-refined 2D (the windowed
   soft-argmax the product uses) against the labels, with small random affine and colour
   augmentation. Guards against forgetting: every output without a label (and the crop-placing
   landmarks 33-38, depth, visibility, the pose flag), and the heatmap peak of every joint, are
   distilled from the shipped network on the same crop;
   crops of the built-in sample with the shipped network's own output as target stay in every
   batch (generic data); an L2 pull towards the shipped weights (L2-SP). The last `holdout`
   share of each take's frames is never trained on: the weights kept are those that agree best
   with the multi-view labels there (early stopping).

Every step runs on the GPU when there is one (`device="auto"`), else on the CPU threads.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from calibration.errors import TriangulumError
from engines.blazepose.backbone import ONNX_FILE, RECORD_FILE, WEIGHTS_FILE
from engines.blazepose.keypoints import windowed_soft_argmax
from engines.blazepose.modules import LANDMARK_INPUT, NUM_LANDMARKS
from engines.blazepose.roi import image_to_crop
from engines.blazepose.weights import LANDMARK_WEIGHTS, load_landmark
from training.error_model import leave_one_out, person_size

BODY = 33  # labelled joints; 33-38 are the network's auxiliary points (distilled only)


@dataclass
class AdaptConfig:
    """epochs: most passes over the crops (early stopping picks the best); batch: user crops
    per step, plus `generic` crops of the built-in sample; lr: Adam; l2sp: weight of the pull
    towards the shipped weights (sum of squared differences); distill: weight of the
    distillation of unlabelled outputs; holdout: last share of each take's frames kept for
    early stopping; patience: epochs without improvement before stopping; agree: how close
    (share of the person's 2D size) the other views must be to label a joint; min_labelled:
    share of a crop's joints that must be labelled and agree with its own 2D for the crop to be
    used; label_swapped: label the joints whose left/right the take's repair swapped with their
    true sides (False: leave them unlabelled); train: "heads" (the decoder, heatmap and 2D regression branches; the encoder, the
    world-landmark and pose-flag outputs stay as shipped) or "all"; max_sets: most frame sets per take that give crops (evenly spaced: neighbouring
    frames at camera rate teach nothing new, and this bounds the time: 120 sets of 4 views train
    8 epochs in about 4 minutes on 2 cores); augment: random affine/colour jitter; device: "auto", "cpu"
    or "cuda"."""

    epochs: int = 8
    batch: int = 6
    generic: int = 2
    lr: float = 5e-5
    l2sp: float = 5.0
    distill: float = 0.5
    holdout: float = 0.2
    patience: int = 2
    agree: float = 0.03
    min_labelled: float = 0.5
    min_confidence: float = 0.3
    max_sets: int = 120
    train: str = "heads"
    label_swapped: bool = True
    augment: bool = True
    seed: int = 0
    device: str = "auto"

    def save(self, path: Path, extra: dict | None = None) -> None:
        """The settings as TOML ([adapt], plus `extra` tables such as [data]) beside the run."""
        import tomli_w

        Path(path).write_text(tomli_w.dumps({"adapt": asdict(self), **(extra or {})}))

    @staticmethod
    def load(path: Path) -> AdaptConfig:
        import tomllib

        return AdaptConfig(**tomllib.loads(Path(path).read_text())["adapt"])


@dataclass
class Crops:
    """Pseudo-labelled crops of one take. images (N, 256, 256, 3) uint8 RGB; targets (N, 33, 2)
    in crop units [0, 1]; weights (N, 33) (0: no label); frames, views (N,): where each came
    from (take frame index, camera index)."""

    name: str
    images: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    frames: np.ndarray
    views: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, keep: np.ndarray) -> Crops:
        return Crops(self.name, self.images[keep], self.targets[keep], self.weights[keep], self.frames[keep],
                     self.views[keep])


def label_crops(rig, keypoints: np.ndarray, confidence: np.ndarray, rois: list[list], config: AdaptConfig,
                swapped: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pseudo-labels of the main performer's crops (module docstring, step 1).

    keypoints (C, F, J, 2), confidence (C, F, J): their 2D after left/right correction; rois
    [C][F]: the crop each view's 2D came from (None: not seen); swapped (C, F, J): joints whose
    left/right labels the take's repair swapped in that view -> targets (C, F, 33, 2) in crop
    units, weights (C, F, 33), usable (C, F) bool.

    With `config.label_swapped` (default) those joints are labelled with their true sides, so the
    network learns not to swap there; without, they get no label and are distilled from the
    shipped network like every unlabelled output (benchmarks/adapt.py compares the two).
    """
    targets, agreement = leave_one_out(rig, keypoints, confidence, config.min_confidence, config.agree)
    if swapped is not None and not config.label_swapped:
        agreement = np.where(swapped, 0.0, agreement)
    C, F = keypoints.shape[:2]
    out = np.full((C, F, BODY, 2), np.nan)
    weights = np.zeros((C, F, BODY))
    usable = np.zeros((C, F), bool)
    own_ok = np.isfinite(keypoints).all(-1) & (confidence >= config.min_confidence)
    size = person_size(targets)  # (C, F)
    for c in range(C):
        for f in range(F):
            roi = rois[c][f]
            if roi is None:
                continue
            t = image_to_crop(targets[c, f, :BODY], roi, 1.0)
            w = agreement[c, f, :BODY].copy()
            w[~(np.isfinite(t).all(-1) & (t >= 0).all(-1) & (t <= 1).all(-1))] = 0.0
            # The crop must hold the person the others see: its own 2D near their answer on most joints.
            near = own_ok[c, f, :BODY] & (np.linalg.norm(keypoints[c, f, :BODY] - targets[c, f, :BODY], axis=-1)
                                          < 0.15 * size[c, f])
            if (w > 0).mean() < config.min_labelled or near.mean() < config.min_labelled:
                continue
            out[c, f], weights[c, f], usable[c, f] = np.where(w[:, None] > 0, t, np.nan), w, True
    return out, weights, usable


def augment(images: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random small affine (rotation 10 deg, scale 10 %, shift 5 % of the crop) and colour jitter.
    images (B, 256, 256, 3) uint8, targets (B, 33, 2) crop units -> the same, transformed."""
    out_i, out_t = np.empty_like(images), targets.copy()
    n = LANDMARK_INPUT
    for b in range(len(images)):
        angle, scale = rng.uniform(-10, 10), rng.uniform(0.9, 1.1)
        m = cv2.getRotationMatrix2D((n / 2, n / 2), angle, scale)
        m[:, 2] += rng.uniform(-0.05, 0.05, 2) * n
        im = cv2.warpAffine(images[b], m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        gain, bias = rng.uniform(0.85, 1.15), rng.uniform(-20, 20)
        out_i[b] = np.clip(im.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        out_t[b] = (targets[b] * n) @ m[:, :2].T / n + m[:, 2] / n
    return out_i, out_t


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 crops -> (B, 3, H, W) float in [0, 1] on `device` (channels-last on the CPU)."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


def decoded_points(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Regressed (B, 39, 2) and heatmap-refined (B, 39, 2) points in crop units, as decoded at
    run time, and the refinement window's peak (B, 39): the confidence every method weights by."""
    regressed = out["landmarks"][..., :2] / LANDMARK_INPUT
    refined, confidence, _ = windowed_soft_argmax(out["heatmaps"], regressed)
    return regressed, refined, confidence


def label_loss(out: dict[str, torch.Tensor], targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted L1 (256-crop px) of the regressed and refined 2D against the labels. targets
    (B, 33, 2) crop units (NaN: none), weights (B, 33)."""
    regressed, refined, _ = decoded_points(out)
    t = torch.nan_to_num(targets)
    err = (regressed[:, :BODY] - t).abs().sum(-1) + (refined[:, :BODY] - t).abs().sum(-1)
    return LANDMARK_INPUT * (weights * err).sum() / weights.sum().clamp_min(1.0)


CONFIDENCE_WEIGHT = 50.0  # px-equivalent per unit of heatmap peak: 0.1 of confidence costs 5 px


def distill_loss(out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
    """L1 (256-crop px) to the shipped network's outputs where `keep` (B, 39) is set: the regressed
    x, y, z, the refined point, visibility/presence logits (scaled) and the pose flag; and, for
    every joint, the heatmap peak (the label loss is blind to it, being a normalised soft-argmax,
    yet association and the confidence-weighted methods read it: unguarded it fell from 0.8 to
    0.16 and association then matched nobody)."""
    regressed, refined, confidence = decoded_points(out)
    r_reg, r_ref, r_conf = decoded_points(ref)
    k = keep.to(regressed.dtype)
    err = ((regressed - r_reg).abs().sum(-1) + (refined - r_ref).abs().sum(-1)) * LANDMARK_INPUT
    err = err + (out["landmarks"][..., 2] - ref["landmarks"][..., 2]).abs()
    err = err + 0.1 * (out["landmarks"][..., 3:] - ref["landmarks"][..., 3:]).abs().sum(-1)
    flag = (out["pose_flag"] - ref["pose_flag"]).abs().mean()
    peak = CONFIDENCE_WEIGHT * (confidence - r_conf).abs().mean()
    return (k * err).sum() / k.sum().clamp_min(1.0) + flag + peak


# What "heads" trains: everything after the encoder that the 2D keypoints come from.
HEAD_MODULES = ("decoder_in", "skip16", "skip32", "skip64", "heatmap", "reg_in", "reg_down4", "reg4",
                "reg_down2", "reg2", "landmarks_out")


def trainable(model: torch.nn.Module, which: str) -> list[torch.nn.Parameter]:
    """Mark the parameters `which` ("heads" or "all") trains, freeze the rest -> the trained ones."""
    if which not in ("heads", "all"):
        raise TriangulumError(f"unknown adaptation scope {which!r}; use heads or all.")
    for name, p in model.named_parameters():
        p.requires_grad_(which == "all" or name.split(".")[0] in HEAD_MODULES)
    return [p for p in model.parameters() if p.requires_grad]


def l2sp(params: list[torch.Tensor], start: list[torch.Tensor]) -> torch.Tensor:
    return sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start, strict=True))


@torch.no_grad()
def agreement_px(model: torch.nn.Module, crops: Crops, device: torch.device, batch: int = 16) -> float:
    """Weighted mean distance (256-crop px) of the refined 2D from the multi-view labels."""
    model.eval()
    total, weight = 0.0, 0.0
    for a in range(0, len(crops), batch):
        _, refined, _ = decoded_points(model(to_tensor(crops.images[a:a + batch], device)))
        t = torch.from_numpy(np.nan_to_num(crops.targets[a:a + batch])).to(device, refined.dtype)
        w = torch.from_numpy(crops.weights[a:a + batch]).to(device, refined.dtype)
        total += float((w * (refined[:, :BODY] - t).norm(dim=-1)).sum()) * LANDMARK_INPUT
        weight += float(w.sum())
    return total / max(weight, 1e-9)


def split_holdout(crops: Crops, holdout: float) -> tuple[Crops, Crops]:
    """The first (1 - holdout) of the take's frames to train on, the rest to stop early on."""
    frames = np.unique(crops.frames)
    cut = frames[int(np.floor(len(frames) * (1 - holdout)))] if holdout > 0 and len(frames) > 1 else frames[-1] + 1
    return crops.subset(crops.frames < cut), crops.subset(crops.frames >= cut)


def pick_device(name: str, index: int | None = None) -> torch.device:
    """--device auto, cpu or cuda -> the device (`index`: which GPU, e.g. torchrun's local rank)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TriangulumError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu.")
    if name not in ("cpu", "cuda"):
        raise TriangulumError(f"unknown device {name!r}; use auto, cpu or cuda.")
    return torch.device(name, index) if name == "cuda" and index is not None else torch.device(name)


@dataclass
class AdaptResult:
    """before/after: held-out agreement with the multi-view labels (256-crop px) per take;
    epochs: rows of metrics.csv; best_epoch (0: the shipped weights were best); steps."""

    before: dict[str, float]
    after: dict[str, float]
    epochs: list[dict]
    best_epoch: int
    steps: int
    train_crops: int
    holdout_crops: int
    seconds: float


def adapt(takes: list[Crops], config: AdaptConfig, out_dir: Path, generic: np.ndarray | None = None,
          base: Path = LANDMARK_WEIGHTS, progress: Callable[[int, int], None] | None = None,
          cancelled: Callable[[], bool] | None = None) -> AdaptResult:
    """Fine-tune the landmark network `base` on the takes' crops (module docstring, step 3) and
    write out_dir/landmark.safetensors (the best weights by held-out agreement) and metrics.csv.
    progress(step, total) after every step; cancelled() is polled and stops early (the best so
    far is kept)."""
    from safetensors.torch import save_file

    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    parts = [split_holdout(c, config.holdout) for c in takes]
    train = [p[0] for p in parts if len(p[0])]
    held = {c.name: p[1] for c, p in zip(takes, parts, strict=True) if len(p[1])}
    if not train:
        raise TriangulumError("no crops to train on; give more frames (--frames) or takes.")
    model = load_landmark(base).to(device)
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    params = trainable(model, config.train)
    start = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=config.lr)
    pool = [(t, i) for t, c in enumerate(train) for i in range(len(c))]
    per_epoch = max(1, int(np.ceil(len(pool) / config.batch)))
    total = per_epoch * config.epochs
    out_dir.mkdir(parents=True, exist_ok=True)

    def score() -> dict[str, float]:
        return {name: agreement_px(model, c, device) for name, c in held.items()}

    before = score()
    best, best_epoch, best_state, stale, step, rows = float(np.mean(list(before.values()) or [0])), 0, None, 0, 0, []
    t0 = time.time()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(len(pool))
        losses = []
        for b in range(per_epoch):
            pick = [pool[i] for i in order[b * config.batch:(b + 1) * config.batch]]
            if not pick:
                break
            images = np.stack([train[t].images[i] for t, i in pick])
            targets = np.stack([train[t].targets[i] for t, i in pick])
            weights = np.stack([train[t].weights[i] for t, i in pick])
            if generic is not None and config.generic:
                g = generic[rng.integers(0, len(generic), config.generic)]
                images = np.concatenate([images, g])
                targets = np.concatenate([targets, np.full((len(g), BODY, 2), np.nan)])
                weights = np.concatenate([weights, np.zeros((len(g), BODY))])
            if config.augment:
                images, targets = augment(images, targets, rng)
            x = to_tensor(images, device)
            w = torch.from_numpy(weights).to(device, torch.float32)
            out = model(x)
            with torch.no_grad():
                ref = reference(x)
            keep = torch.ones(len(images), NUM_LANDMARKS, dtype=torch.bool, device=device)
            keep[:, :BODY] = w == 0
            loss_l = label_loss(out, torch.from_numpy(targets).to(device, torch.float32), w)
            loss_d = distill_loss(out, ref, keep)
            loss_r = l2sp(params, start)
            loss = loss_l + config.distill * loss_d + config.l2sp * loss_r
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            step += 1
            losses.append((loss_l.item(), loss_d.item(), loss_r.item()))
            if progress is not None:
                progress(step, total)
            if cancelled is not None and cancelled():
                break
        held_now = score()
        mean_now = float(np.mean(list(held_now.values()))) if held_now else float(np.mean([x[0] for x in losses]))
        rows.append({"epoch": epoch, "steps": step, "label_px": float(np.mean([x[0] for x in losses])),
                     "distill_px": float(np.mean([x[1] for x in losses])), "l2sp": float(np.mean([x[2] for x in losses])),
                     "holdout_px": mean_now, "seconds": time.time() - t0})
        if (mean_now < best) if held else True:  # without held-out frames: the last epoch
            best, best_epoch, stale = mean_now, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if stale > config.patience or (cancelled is not None and cancelled()):
            break
    if best_state is None:  # nothing beat the shipped weights on the held-out frames
        best_state = {k: v.detach().cpu().clone() for k, v in reference.state_dict().items()}
    model.load_state_dict(best_state)
    after = score()
    save_file({k: v.float().contiguous() for k, v in best_state.items()}, str(out_dir / WEIGHTS_FILE))
    with open(out_dir / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["epoch"])
        writer.writeheader()
        writer.writerows(rows)
    return AdaptResult(before, after, rows, best_epoch, step, sum(len(c) for c in train),
                       sum(len(c) for c in held.values()), time.time() - t0)


def export_onnx(out_dir: Path) -> Path:
    """out_dir/landmark.onnx from out_dir/landmark.safetensors (the graph the ONNX Runtime and
    TensorRT backends run; the same export as the shipped network's)."""
    from engines.export_onnx import export_landmark

    return export_landmark(out_dir / ONNX_FILE, dynamic=True, weights=out_dir / WEIGHTS_FILE)


def write_record(out_dir: Path, record: dict) -> Path:
    path = out_dir / RECORD_FILE
    path.write_text(json.dumps(record, indent=2, default=str))
    return path

