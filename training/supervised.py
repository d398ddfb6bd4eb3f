"""Supervised training with 3D ground truth: the backbone and both heads, on Human3.6M, CMU
Panoptic, our own takes or (heads only) motion capture, on one process or many (torchrun).

    python -m training backbone   --dataset h36m:/data/h36m -o runs/bb
    python -m training confidence --dataset panoptic:/data/panoptic -o runs/conf --batch 8
    python -m training confidence --dataset mocap:../shared/data/mocap-cmu -o runs/conf-mocap
    torchrun --nproc_per_node 8 -m training volumetric --dataset h36m:/data/h36m -o runs/vol
    triangulum train supervised volumetric ...            # the same command
    python -m training --config runs/vol/config.toml -o runs/vol2     # reproduce a run

One loop for the three targets (`TARGETS`), each with the reference's loss and optimiser
(REFERENCE.md, Learnable Triangulation) unless told otherwise:
  backbone    the BlazePose landmark network on the dataset's crops; the truth projected into
              each crop is the label; L1 of the regressed and heatmap-refined 2D (crop px, as
              `triangulum adapt`); Adam 1e-4 (the reference's backbone rate); random affine and
              colour augmentation. Validated in 3D: its 2D, confidence-weighted DLT.
  confidence  the learned algebraic head (engines/heads/algebraic.py) on the backbone's 2D
              (computed once with the frozen backbone, cached in RUN/observed_*.npz);
              the reference's "soft MSE" in cm; Adam 1e-5.
  volumetric  the volumetric head on the same 2D, through the full camera model; the cube
              turned by a random yaw each sample; L1 (cm) + 0.01 x cross-entropy at the true
              voxel; Adam 1e-3 (the reference's head rate).
Datasets (training.datasets): h36m:DIR, panoptic:DIR, session:DIR (a take and its
results/poses3d.npz), each with its own train/validation split; mocap:DIR makes 4096 training
frame sets from the training subjects' motion capture and validates on the validation subject
(training.mocap), through random studios with BlazePose's fitted errors (no images: heads only).
Heads start from the shipped weights (`--init scratch`: from random ones), the backbone from
BlazePose's (`--weights`: another file).

Every run folder holds config.toml (this run's settings; `--config` it to repeat the run),
metrics.csv (a row per validation: step, loss, lr, MPJPE / N-MPJPE / P-MPJPE (mm), PCK@150,
PSS, seconds), TensorBoard event files in tb/ (when the `tensorboard` package is there;
metrics.csv is written either way), checkpoint.pt (the last state; running the same command
again resumes from it, after a crash or a kill) and the best weights by validation MPJPE:
landmark.safetensors (+ landmark.onnx) for the backbone, which `--backbone RUN` takes;
confidence.safetensors / volumetric.safetensors for the heads, which `--weights RUN` takes.
Mixed precision (fp16 autocast and a gradient scaler) on CUDA, gradient clipping, seeded
everything. Only rank 0 validates, logs and writes; see training/distributed.py for how N
processes reproduce one.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomli_w
import torch
from tqdm import tqdm

from calibration import geometry as geo
from calibration.errors import TriangulumError
from engines.blazepose.backbone import WEIGHTS_FILE as BACKBONE_FILE
from training import distributed as ddp
from training.datasets import OURS, open_dataset
from training.observed import (
    Observed,
    StepBatches,
    cached_observed,
    dlt,
    evenly,
    keep_batch,
    observe,
    observe_sample,
    read_observed,
    synthetic_observed,
    undistort,
)
from training.runlog import RunLog, atomic_save

TARGETS = ("backbone", "confidence", "volumetric")
REFERENCE_LR = {"backbone": 1e-4, "confidence": 1e-5, "volumetric": 1e-3}
WEIGHT_FILES = {"backbone": BACKBONE_FILE, "confidence": "confidence.safetensors",
                "volumetric": "volumetric.safetensors"}
HIPS = (OURS.index("left_hip"), OURS.index("right_hip"))
MOCAP_SAMPLES = 4096  # synthetic frame sets made once per run from motion capture (heads only)


@dataclass
class SupervisedConfig:
    """target: backbone, confidence or volumetric; dataset: KIND:PATH (training.datasets);
    val_dataset: another KIND:PATH for validation (default: the dataset's own val split);
    steps: optimiser steps; batch: frame sets per step, over all processes; lr: Adam's (0:
    the reference's for the target); clip: gradient-norm clip; val_every: steps between
    validations and checkpoints; val_limit: at most this many validation frame sets (evenly
    spaced); every: keep every Nth frame set of the datasets; init: shipped or scratch (heads);
    weights: start from this file instead of the shipped one; scope: the backbone's trained
    layers (all, or heads: the encoder frozen); amp: mixed precision on CUDA; device: auto,
    cpu or cuda; workers: DataLoader processes that read and augment the backbone's images ahead
    of the step (0: in the training process); backbone: heads: the landmark network whose 2D
    they train on (a file or a MODEL_DIR, as --backbone elsewhere; default the shipped one)."""

    target: str = "backbone"
    dataset: str = ""
    val_dataset: str = ""
    steps: int = 1000
    batch: int = 8
    lr: float = 0.0
    clip: float = 1.0
    seed: int = 0
    val_every: int = 100
    val_limit: int = 2000
    every: int = 1
    init: str = "shipped"
    weights: str = ""
    scope: str = "all"
    amp: bool = True
    device: str = "auto"
    workers: int = 0
    backbone: str = ""

    def check(self) -> None:
        if self.target not in TARGETS:
            raise TriangulumError(f"unknown target {self.target!r}; train one of {', '.join(TARGETS)}.")
        if not self.dataset:
            raise TriangulumError("no dataset: give --dataset KIND:PATH (h36m:, panoptic: or session:).")
        if self.init not in ("shipped", "scratch"):
            raise TriangulumError(f"unknown --init {self.init!r}; use shipped or scratch.")
        if self.steps < 1 or self.batch < 1 or self.val_every < 1:
            raise TriangulumError("--steps, --batch and --val-every must be at least 1.")

    @property
    def rate(self) -> float:
        return self.lr or REFERENCE_LR[self.target]


# --- losses ----------------------------------------------------------------------------

def soft_mse_cm(X: torch.Tensor, truth: torch.Tensor, threshold: float = 400.0) -> torch.Tensor:
    """The reference's algebraic loss: squared error per coordinate in cm^2, growing as d^0.1
    above `threshold` (20 cm squared); mean over known joints per sample, then over samples.
    X, truth (B, J, 3) metres (NaN: unknown)."""
    ok = torch.isfinite(X).all(-1) & torch.isfinite(truth).all(-1)
    d = torch.where(ok[..., None], (X - torch.nan_to_num(truth)) * 100.0, torch.zeros_like(X)) ** 2
    d = torch.where(d > threshold, d.clamp_min(threshold) ** 0.1 * threshold ** 0.9, d)
    per = (d.sum(-1) * ok).sum(-1) / (3 * ok.sum(-1)).clamp_min(1)
    has = ok.any(-1)
    return per[has].mean() if has.any() else X.sum() * 0


# --- validation ------------------------------------------------------------------------

def pose_metrics(pred: np.ndarray, truth: np.ndarray, training: np.ndarray) -> dict[str, float]:
    """MPJPE, N-MPJPE, P-MPJPE (mm), PCK@150 (%) and PSS (%, k-means on the training truth) over
    the joints the truth has: pred, truth (N, 33, 3), training (M, 33, 3) metres."""
    from training.metrics import face_forward, mpjpe, n_mpjpe, p_mpjpe, pck, pose_structure_score

    cols = np.flatnonzero(np.isfinite(truth).all(-1).any(0))
    p, g = pred[:, cols], truth[:, cols]
    out = {"mpjpe_mm": 1000 * mpjpe(p, g), "n_mpjpe_mm": 1000 * n_mpjpe(p, g),
           "p_mpjpe_mm": 1000 * p_mpjpe(p, g), "pck150": 100 * pck(p, g, 0.150)}

    def with_pelvis(a: np.ndarray) -> np.ndarray:  # PSS root-centres on the hips' midpoint
        a = np.concatenate([a, a[:, list(HIPS)].mean(1, keepdims=True)], 1)
        return face_forward(a, HIPS[0], HIPS[1])

    fit = training[np.isfinite(training[:, cols]).all((1, 2))]
    k = min(50, len(fit) // 2)
    complete = np.isfinite(p).all((1, 2)) & np.isfinite(g).all((1, 2))
    out["complete_poses"] = 100 * float(complete.mean())
    if k >= 2 and complete.any():
        pc = list(cols) + [len(OURS)]
        out["pss"] = 100 * pose_structure_score(with_pelvis(pred)[:, pc], with_pelvis(truth)[:, pc], len(cols), k=k,
                                                training=with_pelvis(fit)[:, pc])
    return out


def predict(config: SupervisedConfig, model: torch.nn.Module, obs: Observed, device: torch.device,
            chunk: int = 16) -> np.ndarray:
    """The heads' 3D (N, 33, 3) for observed frame sets (yaw 0, no augmentation)."""
    out = []
    with torch.no_grad():
        for s in range(0, len(obs), chunk):
            b = obs.take(np.arange(s, min(s + chunk, len(obs))))
            out.append(head_forward(config.target, model, b, device, yaw=None)[0].double().cpu().numpy())
    return np.concatenate(out)


def head_forward(target: str, model: torch.nn.Module, b: dict[str, torch.Tensor], device: torch.device,
                 yaw: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """(X (B, 33, 3), volumetric: soft-argmax weights and voxel coordinates)."""
    if target == "confidence":
        X, _ = model(b["P"].to(device), b["und"].to(device), b["conf"].to(device))
        return (X,)
    from engines.heads.volumetric import root_estimate

    root = root_estimate(b["P"], b["und"], b["conf"])
    args = (b["K"], b["dist"], b["R"], b["t"], b["x"], b["conf"], root, yaw)
    return model(*(a.to(device) if a is not None else None for a in args))


# --- the run ---------------------------------------------------------------------------

def build_model(config: SupervisedConfig) -> torch.nn.Module:
    if config.target == "backbone":
        from engines.blazepose.weights import load_landmark
        from training.adapt import trainable

        net = load_landmark(landmark_weights(config.weights)).float()

        trainable(net, "heads" if config.scope == "heads" else "all")
        return net
    if config.target == "confidence":
        from engines.heads.algebraic import HeadConfig, LearnedTriangulation, read_head

        if config.init == "scratch":
            return LearnedTriangulation(HeadConfig())
        from engines.heads.algebraic import WEIGHTS

        return read_head(config.weights or WEIGHTS).train()
    from engines.heads.volumetric import (
        WEIGHTS,
        VolumeConfig,
        VolumetricTriangulation,
        read_volumetric,
    )

    if config.init == "scratch":
        return VolumetricTriangulation(VolumeConfig())
    return read_volumetric(config.weights or WEIGHTS).train()


def save_weights(config: SupervisedConfig, model: torch.nn.Module, run: Path, step: int) -> None:
    meta = {"step": str(step), "dataset": config.dataset}
    if config.target == "backbone":
        from safetensors.torch import save_file

        save_file({k: v.detach().float().contiguous() for k, v in model.state_dict().items()},
                  str(run / WEIGHT_FILES["backbone"]), metadata=meta)
    elif config.target == "confidence":
        from engines.heads.algebraic import save_head

        save_head(model, run / WEIGHT_FILES["confidence"], meta)
    else:
        from engines.heads.volumetric import save_volumetric

        save_volumetric(model, run / WEIGHT_FILES["volumetric"], meta)


def landmark_weights(path: str) -> Path:
    """A landmark network's weights as --backbone takes them everywhere (a MODEL_DIR or run
    folder, its files, a bare .safetensors), or the shipped ones for ""."""
    from engines.blazepose.backbone import resolve_backbone
    from engines.blazepose.weights import LANDMARK_WEIGHTS

    chosen = resolve_backbone(path or None)
    return chosen.weights if chosen else LANDMARK_WEIGHTS


def landmark_network(backbone: str, device: torch.device) -> torch.nn.Module:
    """The frozen landmark network whose 2D the heads train on (`backbone`: landmark_weights)."""
    from engines.blazepose.weights import load_landmark

    return load_landmark(landmark_weights(backbone)).float().to(device).eval()


def observe_shared(path: Path, ds, net: torch.nn.Module, device: torch.device, indices: np.ndarray,
                   place: ddp.Place, show: bool) -> None:
    """The backbone's 2D of `indices` cached at `path`: rank r computes indices[r::world] into
    a part file, rank 0 joins the parts in the original order (a run resumed with another
    number of processes reuses the joined file)."""
    if path.is_file():
        return
    part = path.with_name(f"{path.stem}.part{place.rank}of{place.world}.npz")
    cached_observed(part, lambda: observe(ds, net, device, indices[place.rank::place.world], f"2D ({path.stem})",
                                          show))
    ddp.barrier(place)
    if place.main:
        parts = [read_observed(path.with_name(f"{path.stem}.part{r}of{place.world}.npz")) for r in range(place.world)]
        order = np.argsort(np.concatenate([np.arange(len(indices))[r::place.world] for r in range(place.world)]),
                           kind="stable")
        joined = Observed(**{k: np.concatenate([getattr(o, k) for o in parts])[order]
                             for k in dataclasses.asdict(parts[0])})
        cached_observed(path, lambda: joined)
        for r in range(place.world):
            path.with_name(f"{path.stem}.part{r}of{place.world}.npz").unlink()


def train(config: SupervisedConfig, run: Path, progress: bool = True, argv: list[str] | None = None) -> dict:
    """Run `config` into `run` (module docstring); returns the best validation row."""
    config.check()
    from training.adapt import pick_device

    place = ddp.setup(pick_device(config.device))
    device = pick_device(config.device, place.local_rank)
    if config.batch % place.world:
        ddp.teardown()
        raise TriangulumError(f"--batch {config.batch} does not split over {place.world} processes; give a multiple "
                              f"of {place.world}.")
    if place.world > 1 and device.type == "cpu":
        torch.set_num_threads(1)  # one core per process
    run = Path(run)
    show = progress and place.main
    try:
        if config.dataset.startswith("mocap:"):  # no images: the heads' 2D is made (_loop)
            if config.target == "backbone":
                raise TriangulumError("motion capture has no images to train the backbone on; give h36m:, "
                                      "panoptic: or session: data.")
            train_ds = val_ds = [None]
        else:
            train_ds = open_dataset(config.dataset, "train", every=config.every)
            val_ds = open_dataset(config.val_dataset or config.dataset, "val", every=config.every)
        if not len(train_ds) or not len(val_ds):
            raise TriangulumError(f"{config.dataset}: {len(train_ds)} training and {len(val_ds)} validation frame sets; "
                                  "both splits need some.")
        if place.main:
            run.mkdir(parents=True, exist_ok=True)
            extra = {"run": {"command": " ".join(argv) if argv is not None else "", "world_size": place.world,
                             "torch": torch.__version__, "train_sets": len(train_ds), "val_sets": len(val_ds)}}
            (run / "config.toml").write_text(tomli_w.dumps({"supervised": dataclasses.asdict(config), **extra}))
        ddp.barrier(place)
        return _loop(config, run, place, device, train_ds, val_ds, show)
    finally:
        ddp.teardown()


def _loop(config: SupervisedConfig, run: Path, place: ddp.Place, device: torch.device, train_ds, val_ds,
          show: bool) -> dict:
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    heads = config.target != "backbone"
    val_idx = evenly(len(val_ds), config.val_limit)
    if heads:
        mocap = config.dataset.partition(":")[2] if config.dataset.startswith("mocap:") else None
        if place.main and mocap:  # training subjects train, the validation subject validates
            from training.mocap import TRAIN_SUBJECTS, VAL_SUBJECTS

            cached_observed(run / "observed_train.npz",
                            lambda: synthetic_observed(mocap, TRAIN_SUBJECTS, MOCAP_SAMPLES, config.seed))
            cached_observed(run / "observed_val.npz", lambda: synthetic_observed(
                mocap, VAL_SUBJECTS, min(config.val_limit, MOCAP_SAMPLES), config.seed + 1000))
        elif not mocap:  # every process computes its share of the 2D once; rank 0 joins them
            todo = [(split, ds, idx) for split, ds, idx in (("train", train_ds, np.arange(len(train_ds))),
                                                             ("val", val_ds, val_idx))
                    if not (run / f"observed_{split}.npz").is_file()]  # a resumed run has them
            net = landmark_network(config.backbone, device) if todo else None
            for split, ds, idx in todo:
                observe_shared(run / f"observed_{split}.npz", ds, net, device, idx, place, show)
        ddp.barrier(place)
        obs_train = read_observed(run / "observed_train.npz")
        obs_val = read_observed(run / "observed_val.npz")
        train_truth = obs_train.truth
        n_train = len(obs_train)
    else:
        train_truth = np.stack([train_ds.joints(int(i)) for i in evenly(len(train_ds), 500)])
        n_train = len(train_ds)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.rate)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, best, history = 0, {"mpjpe_mm": float("inf")}, []
    ckpt = run / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimiser"])
        scaler.load_state_dict(state["scaler"])
        step, best, history = state["step"], state["best"], state["history"]
        if place.main:
            print(f"resuming {run} from step {step}", file=sys.stderr)
    net = model
    if place.world > 1:
        if device.type == "cuda":  # batch statistics over every process (gloo on the CPU has no SyncBatchNorm)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    log = RunLog(run, history) if place.main else None
    batches = None
    if not heads:
        batches = iter(torch.utils.data.DataLoader(
            StepBatches(train_ds, n_train, config.batch, config.seed, place), batch_size=None,
            sampler=range(step, config.steps), num_workers=config.workers, collate_fn=keep_batch))
    bar = tqdm(total=config.steps, initial=step, desc=f"train {config.target}", disable=not show, unit="step")
    t0, running = time.perf_counter(), []

    def validate() -> None:
        """Rank 0: one validation row; the best weights and the checkpoint."""
        nonlocal best
        model.eval()
        if heads:
            pred, truth = predict(config, model, obs_val, device), obs_val.truth
        else:
            pred, truth = validate_backbone(model, val_ds, val_idx, device)
        row = {"step": step, "loss": float(np.mean(running)) if running else float("nan"), "lr": config.rate,
               **pose_metrics(pred, truth, train_truth), "seconds": time.perf_counter() - t0}
        log.add(row)
        bar.set_postfix(loss=f"{row['loss']:.4g}", val_mm=f"{row['mpjpe_mm']:.1f}")
        if row["mpjpe_mm"] < best["mpjpe_mm"] and step > 0:
            best = row
            save_weights(config, model, run, step)
        atomic_save({"model": model.state_dict(), "optimiser": opt.state_dict(), "scaler": scaler.state_dict(),
                     "step": step, "best": best, "history": log.history, "config": dataclasses.asdict(config)}, ckpt)

    if step == 0 and place.main:
        validate()  # where training starts from: the row every later one is compared with
    ddp.barrier(place)
    while step < config.steps:
        positions = ddp.batch_positions(step, n_train, config.batch, config.seed)
        mine = ddp.shard(positions, place)
        slots = np.arange(len(positions))[mine]
        model.train()
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            if heads:
                b = obs_train.take(positions[mine])
                yaw = None
                if config.target == "volumetric":  # the reference's random turn of the cube
                    yaw = torch.as_tensor([np.random.default_rng([config.seed, step, int(s)]).uniform(0, 2 * np.pi)
                                           for s in slots], dtype=torch.float64)
                out = head_forward(config.target, net, b, device, yaw)
                truth = b["truth"].to(device)
                if config.target == "confidence":
                    loss = soft_mse_cm(out[0], truth)
                else:
                    from training.volumetric import volumetric_loss

                    X = torch.where(torch.isfinite(truth).all(-1, keepdim=True), out[0], torch.nan)
                    loss, _ = volumetric_loss(X, out[1], out[2], torch.nan_to_num(truth), model.config.voxels, 0.01)
            else:
                from training.adapt import label_loss, to_tensor

                crops, labels, weights = next(batches)
                o = net(to_tensor(crops, device))
                lab = torch.as_tensor(labels, dtype=torch.float32, device=device)
                loss = label_loss(o, lab, torch.as_tensor(weights, dtype=torch.float32, device=device))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(params, config.clip)
        if torch.isfinite(norm):  # a degenerate sample (det ~ 0) can give inf: skip the step
            scaler.step(opt)
        scaler.update()
        step += 1
        running.append(ddp.mean_over_ranks(float(loss.detach()), place))
        bar.update(1)
        if step % config.val_every == 0 or step == config.steps:
            if place.main:
                validate()
            running = []
            ddp.barrier(place)
    bar.close()
    if place.main:
        log.close()
        if config.target == "backbone" and (run / WEIGHT_FILES["backbone"]).is_file():
            import warnings

            from training.adapt import export_onnx

            with warnings.catch_warnings():  # the exporter's constant-folding notes
                warnings.simplefilter("ignore", UserWarning)
                export_onnx(run)
    return best


def validate_backbone(model: torch.nn.Module, ds, indices: np.ndarray, device: torch.device) -> tuple[np.ndarray, ...]:
    """The network's 2D of the validation frame sets triangulated (confidence-weighted DLT) ->
    pred, truth (N, 33, 3)."""
    preds, truths = [], []
    for i in indices:
        s = ds[int(i)]
        x, c = observe_sample(s, model, device)
        und = undistort(x, s["K"], s["dist"])
        P = geo.projection_matrix(*(torch.as_tensor(s[k]) for k in ("K", "R", "t"))).numpy()
        preds.append(dlt(P[None], und[None], c[None])[0])
        truths.append(s["joints"])
    return np.stack(preds), np.stack(truths)
