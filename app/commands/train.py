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
    m = sub.add_parser("metapose", help="MetaPose's learned refinement for calibration-free capture",
                       description=METAPOSE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--data", type=Path, required=True, metavar="TAKE",
                   help="a calibrated take (videos + rig) on which BlazePose's monocular 3D error is fitted")
    m.add_argument("--calib", type=Path, help="its rig (default: the take's calibration)")
    m.add_argument("--calib-units", choices=UNIT_CHOICES, default="auto")
    m.add_argument("-o", "--output", type=Path, required=True, metavar="RUN_DIR")
    m.add_argument("--iterations", type=int, help="optimiser steps (default 3000)")
    m.add_argument("--batch", type=int, help="samples per step (default 128)")
    m.add_argument("--width", type=int, help="hidden width (default 512, as the paper)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--fresh", action="store_true", help="start over instead of resuming RUN_DIR/checkpoint.pt")
    m.set_defaults(func=run_metapose)
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


METAPOSE_DOC = """`triangulum train metapose`: MetaPose's refinement (engines/metapose.py) into a run folder.

    triangulum train metapose --data ../shared/data/caliscope-charuco-4cam/extrinsic \
        --calib ../shared/data/caliscope-charuco-4cam/reference_camera_array.toml -o runs/metapose

BlazePose's monocular 3D error (training.metapose.WorldError) is fitted on the take: everyone
tracked, the person who is the same across views, their per-view 3D poses against the take's
triangulation with its rig (RUN/world_error.toml). The 2D error model is the shipped one
(engines/heads/weights/error_model.toml, fitted on real detections). The network trains on the
motion capture of the training subjects through random studios of 2-8 cameras and validates
on the validation subject (training/metapose.py). The shipped weights' monocular error model
was fitted on the caliscope take, so that the studio take, where the benchmarks judge
calibration-free capture, enters only through the 2D error model's statistics (fitted on its
frames 0-69 for the heads).
"""


def run_metapose(args: argparse.Namespace) -> int:
    import torch

    from app.person_calibration import choose_person
    from app.process.inputs import open_take
    from calibration.frames import FrameSource
    from engines.heads.algebraic import WEIGHTS
    from training.error_model import ErrorModel
    from training.metapose import MetaPoseConfig, WorldError, fit_world_error, train
    from training.mocap import MOCAP_DIR, TRAIN_SUBJECTS, VAL_SUBJECTS, load_clips

    run_dir: Path = args.output
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)
        (run_dir / "metrics.csv").unlink(missing_ok=True)
    config = MetaPoseConfig(seed=args.seed)
    for name in ("iterations", "batch", "width"):
        if getattr(args, name):
            setattr(config, name, getattr(args, name))
    started, commit = time.time(), git_commit()
    world_file = run_dir / "world_error.toml"
    if world_file.is_file() and not args.fresh:
        world_error = WorldError.load(world_file)
    else:
        take = open_take([args.data], args.calib, args.calib_units)
        sources = [FrameSource(i.camera, "video", str(i.path)) for i in take.videos]
        chosen = choose_person(sources, take.rig)
        seen = np.where((chosen.confidence >= 0.5)[..., None], chosen.keypoints, np.nan)
        joints = take.rig.triangulate(seen, chosen.confidence, method="robust")
        world_error = fit_world_error(chosen.world, joints, take.rig, take_name(args.data))
        world_error.save(world_file)
    error2d = ErrorModel.load(WEIGHTS.with_name("error_model.toml"))
    pose = lambda subjects: np.concatenate(list(load_clips(MOCAP_DIR, subjects).values()))  # noqa: E731
    train_poses, val_poses = pose(TRAIN_SUBJECTS), pose(VAL_SUBJECTS)
    config.save(run_dir / "config.toml")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    best = train(config, train_poses, val_poses, error2d, world_error, run_dir)
    lines = [
        "# MetaPose refinement (engines/metapose.py): stage 2 of calibration-free capture",
        "",
        f"- Command: `triangulum train metapose {' '.join(sys.argv[3:])}`".rstrip(),
        f"- Commit: {commit}",
        f"- Finished: {datetime.now(UTC).isoformat(timespec='seconds')} "
        f"({(time.time() - started) / 60:.1f} min on this machine, {torch.get_num_threads()} threads)",
        f"- Motion capture: CMU subjects {', '.join(TRAIN_SUBJECTS)} (training), {', '.join(VAL_SUBJECTS)} "
        "(validation); subject 007 is never used here. The data was obtained from mocap.cs.cmu.edu; the database "
        "was created with funding from NSF EIA-0196217.",
        f"- Monocular 3D error model: world_error.toml (fitted on {world_error.source}, {world_error.samples} "
        f"view-frames: tilt {world_error.tilt_deg:.1f} deg RMS, size x{world_error.scale[0]:.2f} +- "
        f"{world_error.scale[1]:.2f}, turned front to back {world_error.p_turned:.0%}, mirrored {world_error.p_mirror:.0%})",
        f"- 2D error model: engines/heads/weights/error_model.toml ({error2d.source})",
        f"- Settings: {config}",
        f"- Best validation (iteration {best.get('iteration')}): "
        + ", ".join(f"{k} {v:.4g}" for k, v in best.items() if k not in ("iteration", "seconds")),
    ]
    (run_dir / "NOTICE.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {run_dir / 'metapose.safetensors'}: validation camera rotations {best['val_init_rot_deg']:.1f} -> "
          f"{best['val_rot_deg']:.1f} deg, pose {best['val_init_pose_mm']:.0f} -> {best['val_pose_mm']:.0f} mm "
          "(stage 1 -> refined)")
    return 0
