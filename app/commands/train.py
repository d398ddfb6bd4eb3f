"""`triangulum train confidence`: train the learned algebraic head into a run folder.

    triangulum train confidence --data ../shared/data/pose2sim-demo-single/videos \
        --calib ../shared/data/pose2sim-demo-single/calibration/Calib.qca.txt -o runs/confidence
    triangulum train confidence --data takes/take1 takes/take2 -o runs/mine --steps 3000

A TAKE is what `triangulum process` reads: a session folder, or a folder of videos (then
`--calib`, one per take in the order of --data, or one for all). Each take's main
performer is reconstructed once with the default pipeline (2D cached in RUN/takes/), the first
70 % of its frames train (self-supervised: robust triangulation of the other views) and the
last 30 % validate. Motion capture of the training subjects gives the synthetic samples; the
BlazePose error model is fitted on the takes' training frames (RUN/error_model.toml). RUN
ends with confidence.safetensors (best by validation), checkpoint.pt (resumable: run the
same command again), metrics.csv, config.toml and NOTICE.md (data, command, commit, time,
metrics), which is what ships beside weights in engines/heads/weights/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError


def register(subparsers: argparse._SubParsersAction) -> None:
    from calibration.units import CHOICES as UNIT_CHOICES

    p = subparsers.add_parser("train", help="train a learned head or the backbone",
                              description="Train a learned head of the product into a run folder.")
    sub = p.add_subparsers(dest="what", metavar="HEAD", required=True)
    c = sub.add_parser("confidence", help="the learned algebraic head (per-view confidences through the DLT)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _data_arguments(c, UNIT_CHOICES)
    c.add_argument("--steps", type=int, help="optimiser steps (default 1500)")
    c.add_argument("--batch", type=int, help="synthetic samples per step (default 96; 512 on a GPU)")
    c.set_defaults(func=run)
    v = sub.add_parser("volumetric", help="the volumetric head (unprojection, V2V, 3D soft-argmax)",
                       description=VOLUMETRIC_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    _data_arguments(v, UNIT_CHOICES)
    v.add_argument("--steps", type=int, help="optimiser steps (default 1200)")
    v.add_argument("--batch", type=int, help="synthetic samples per step (default 12)")
    v.add_argument("--config", type=Path, metavar="TOML",
                   help="a run's config.toml: its settings and head size (reproduces that run)")
    v.add_argument("--reference", action="store_true",
                   help="the paper's head size (2.5 m cube, 64^3 voxels, 4-level V2V): for a GPU")
    v.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu or cuda")
    v.set_defaults(func=run_volumetric)
    from training.cli import add_arguments
    from training.supervised import __doc__ as supervised_doc

    s = sub.add_parser("supervised", help="the backbone or a head on a dataset with 3D ground truth "
                                          "(Human3.6M, CMU Panoptic, our takes); also `python -m training`",
                       description=supervised_doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(s)
    s.set_defaults(func=run_supervised)
    from app import example_datasets

    e = sub.add_parser("example-data", help="a small Human3.6M- or Panoptic-layout dataset made from the built-in "
                                            "sample, to try `train supervised` on",
                       description=example_datasets.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    example_datasets.add_arguments(e)
    e.set_defaults(func=example_datasets.run)


VOLUMETRIC_DOC = """`triangulum train volumetric`: train the volumetric head into a run folder.

    triangulum train volumetric --data ../shared/data/pose2sim-demo-single/videos \
        --calib ../shared/data/pose2sim-demo-single/calibration/Calib.qca.txt -o runs/volumetric
    triangulum train volumetric --reference --device cuda --data takes/* -o runs/v64   # a GPU

The data is that of `triangulum train confidence` (real takes self-supervised on their first
70 %, validated on the rest; motion capture of the training subjects through random rigs with
the BlazePose error model fitted on the takes). RUN ends with volumetric.safetensors (best by
validation), checkpoint.pt (resumable: run the same command again), metrics.csv, config.toml
(`--config` it to reproduce the run) and NOTICE.md.
"""


def _data_arguments(c: argparse.ArgumentParser, unit_choices) -> None:
    c.add_argument("--data", nargs="*", type=Path, default=[], metavar="TAKE",
                   help="real takes for self-supervision (session folders or video folders); none: synthetic only")
    c.add_argument("--calib", nargs="*", type=Path, default=[], metavar="RIG",
                   help="calibration of each video folder, in the order of --data (one for all, or one each; "
                   "sessions carry their own)")
    c.add_argument("--calib-units", choices=unit_choices, default="auto")
    c.add_argument("--mocap", type=Path, help="the mocap-cmu folder (default ../shared/data/mocap-cmu)")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="RUN_DIR")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--fresh", action="store_true", help="start over instead of resuming RUN_DIR/checkpoint.pt")


def take_2d(path: Path, calib: Path | None, units: str, cache: Path):
    """The main performer's 2D of a take (after left/right correction) -> rig, keypoints
    (C, F, J, 2) distorted px, confidence (C, F, J); cached as cache/<name>.npz + rig TOML."""
    from app.process.inputs import open_take
    from app.process.take import ProcessConfig, process_take
    from app.progress import stage_bar
    from calibration.rig_io import load_rig, save_rig

    npz, rig_file = cache.with_suffix(".npz"), cache.with_suffix(".toml")
    if npz.exists() and rig_file.exists():
        with np.load(npz) as z:
            return load_rig(rig_file), z["keypoints"], z["confidence"]
    take = open_take([path], calib, units)
    with stage_bar(f"2D of {path.name}", take.frames) as update:
        result = process_take(take, ProcessConfig(), progress=update)
    if result.main is None:
        raise TriangulumError(f"nobody was reconstructed in {path}; it cannot be used for training.")
    person = result.person(result.main)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz, keypoints=person.keypoints, confidence=person.confidence)
    save_rig(take.rig, rig_file)
    return take.rig, person.keypoints, person.confidence


def take_name(path: Path) -> str:
    """A take's name: its folder, or the folder above a `videos`/`extrinsic` subfolder."""
    p = path.resolve()
    return f"{p.parent.name}-{p.name}" if p.name in ("videos", "extrinsic", "video") else p.name


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


@dataclass
class TrainingData:
    """What both heads train on: motion-capture clips, each real take's undistorted 2D and
    pseudo-targets with its time split, the rigs, the fitted error model, a record of it all."""

    train_clips: dict
    val_clips: dict
    takes: list  # (name, rig, und (C, F, J, 2), conf (C, F, J), und targets, train frames, val frames)
    rigs: list
    model: object
    record: dict


def training_data(args: argparse.Namespace, run_dir: Path, view_failure: float) -> TrainingData:
    """Load the motion capture, reconstruct each --data take once (cached in RUN/takes), make
    its leave-one-out targets, fit the error model on the training frames (RUN/error_model.toml)."""
    from training.confidence import split_frames
    from training.error_model import ErrorModel, fit_error_model, loo_targets
    from training.mocap import MOCAP_DIR, TEST_SUBJECTS, TRAIN_SUBJECTS, VAL_SUBJECTS, load_clips

    mocap = args.mocap or MOCAP_DIR
    train_clips = load_clips(mocap, TRAIN_SUBJECTS)
    val_clips = load_clips(mocap, VAL_SUBJECTS)
    takes, rigs, fit = [], [], []
    if len(args.calib) > 1 and len(args.calib) != len(args.data):
        raise TriangulumError(f"--calib gives {len(args.calib)} files for {len(args.data)} takes; give one for all "
                              "takes or one per take, in the order of --data.")
    calibs = args.calib * len(args.data) if len(args.calib) == 1 else (args.calib or [None] * len(args.data))
    for path, calib in zip(args.data, calibs, strict=True):
        rig, kp, cf = take_2d(path, calib, args.calib_units, run_dir / "takes" / take_name(path))
        tr, va = split_frames(kp.shape[1])
        targets = loo_targets(rig, kp, cf)
        takes.append((take_name(path), rig, rig.undistort(kp), np.where(np.isfinite(kp).all(-1), cf, 0.0),
                      rig.undistort(targets), tr, va))
        rigs.append(rig)
        fit.append((kp[:, tr], cf[:, tr], targets[:, tr]))
    if fit:
        model = fit_error_model(np.concatenate([f[0] for f in fit], 1), np.concatenate([f[1] for f in fit], 1),
                                np.concatenate([f[2] for f in fit], 1),
                                source=", ".join(f"{t[0]} frames 0-{len(t[5]) - 1}" for t in takes))
    else:
        model = ErrorModel.load(Path(__file__).resolve().parents[2] / "training" / "error_model.toml")
    model.view_failure = view_failure
    model.save(run_dir / "error_model.toml")
    record = {"takes": [str(p) for p in args.data], "mocap": str(mocap), "train_subjects": list(TRAIN_SUBJECTS),
              "val_subjects": list(VAL_SUBJECTS), "test_subjects_never_used": list(TEST_SUBJECTS)}
    return TrainingData(train_clips, val_clips, takes, rigs, model, record)


def notice_lines(title: str, what: str, commit: str, started: float, data: TrainingData, config, best: dict) -> list[str]:
    """NOTICE.md of a run: data, command, commit, time, settings, final metrics."""
    import torch

    from training.mocap import TEST_SUBJECTS, TRAIN_SUBJECTS, VAL_SUBJECTS

    return [
        f"# {title}",
        "",
        f"- Command: `triangulum train {what} {' '.join(sys.argv[3:]) if len(sys.argv) > 3 else ''}`".rstrip(),
        f"- Commit: {commit}",
        f"- Finished: {datetime.now(UTC).isoformat(timespec='seconds')} "
        f"({(time.time() - started) / 60:.1f} min on this machine, {torch.get_num_threads()} threads)",
        f"- Motion capture: CMU subjects {', '.join(TRAIN_SUBJECTS)} (training), {', '.join(VAL_SUBJECTS)} "
        f"(validation); subject {', '.join(TEST_SUBJECTS)} is never used here (test set of benchmarks/heads.py). "
        "The data was obtained from mocap.cs.cmu.edu; the database was created with funding from NSF EIA-0196217.",
        "- Real takes (self-supervised, first 70 % of frames; last 30 % validate): "
        + (", ".join(t[0] for t in data.takes) or "none"),
        f"- Error model: error_model.toml (fitted on {data.model.source or 'the shipped default'})",
        f"- Settings: {config}",
        f"- Best validation (step {best.get('step')}): "
        + ", ".join(f"{k} {v:.4g}" for k, v in best.items() if k not in ("step", "seconds")),
    ]


def run(args: argparse.Namespace) -> int:
    import torch

    from training.confidence import RealTake, TrainConfig, train

    run_dir: Path = args.output
    run_dir.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(seed=args.seed)
    if args.steps:
        config.steps = args.steps
    if args.batch:
        config.batch = args.batch
    started, commit = time.time(), git_commit()  # the code as the run starts
    data = training_data(args, run_dir, config.view_failure)
    train_clips, val_clips, rigs, model = data.train_clips, data.val_clips, data.rigs, data.model
    takes = [RealTake(name, rig.stacked()["P"].numpy(), und, cf, tg, tr, va)
             for name, rig, und, cf, tg, tr, va in data.takes]
    config.save(run_dir / "config.toml", {"data": data.record})
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    best = train(config, train_clips, val_clips, model, takes, run_dir, rigs=rigs, resume=not args.fresh,
                 progress=sys.stderr.isatty() or True)
    notice = notice_lines("Learned algebraic head (engines/heads/algebraic.py): per-view confidences",
                          "confidence", commit, started, data, config, best)
    (run_dir / "NOTICE.md").write_text("\n".join(notice) + "\n")
    print(f"wrote {run_dir / 'confidence.safetensors'} (best at step {best.get('step')}: "
          f"validation MPJPE {best['val_mpjpe_mm']:.1f} mm, with failed views {best.get('val_failed_mpjpe_mm', float('nan')):.1f} mm)")
    return 0


def run_supervised(args: argparse.Namespace) -> int:
    from training.cli import run_cli

    return run_cli(args, sys.argv)


def run_volumetric(args: argparse.Namespace) -> int:
    import torch

    from engines.heads.volumetric import REFERENCE
    from training.volumetric import CameraTake, VolumeTrainConfig, train

    run_dir: Path = args.output
    run_dir.mkdir(parents=True, exist_ok=True)
    config = VolumeTrainConfig.load(args.config) if args.config else VolumeTrainConfig()
    if not args.config:  # a reproduced run keeps its seed
        config.seed = args.seed
    if args.reference:
        config.model = REFERENCE
    if args.steps:
        config.steps = args.steps
    if args.batch:
        config.batch = args.batch
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TriangulumError("--device cuda: this PyTorch sees no CUDA GPU; use --device cpu (or auto).")
    started, commit = time.time(), git_commit()
    data = training_data(args, run_dir, config.view_failure)
    takes = []
    for name, rig, und, cf, tg, tr, va in data.takes:
        st = rig.stacked()
        takes.append(CameraTake(name, st["P"].numpy(), und, cf, tg, tr, va, *(st[k].numpy() for k in ("K", "R", "t"))))
    config.save(run_dir / "config.toml", {"data": data.record})
    best = train(config, data.train_clips, data.val_clips, data.model, takes, run_dir, rigs=data.rigs,
                 resume=not args.fresh, device=device)
    notice = notice_lines("Volumetric head (engines/heads/volumetric.py): unprojection, V2V, 3D soft-argmax",
                          "volumetric", commit, started, data, config, best)
    (run_dir / "NOTICE.md").write_text("\n".join(notice) + "\n")
    print(f"wrote {run_dir / 'volumetric.safetensors'} (best at step {best.get('step')}: validation MPJPE "
          f"{best['val_mpjpe_mm']:.1f} mm, with failed views {best.get('val_failed_mpjpe_mm', float('nan')):.1f} mm)")
    return 0
