"""`triangulum adapt TAKE... -o MODEL_DIR`: fine-tune the 2D landmark network on your own takes.

    triangulum adapt takes/take1 takes/take2 -o models/studio
    triangulum adapt cams/ --calib rig.toml --frames 0:600 -o models/studio   # then checks 600: itself
    triangulum process takes/take3 --backbone models/studio

Self-supervised (training/adapt.py): each take is processed, every view's joints are labelled
by the robust triangulation of the other views where those agree, and the network is
fine-tuned on its own crops with guards against forgetting (distillation from the shipped
network, generic crops of the built-in sample, an L2 pull to the shipped weights, early
stopping on the last 20 % of each take's frames). A TAKE is what `process` reads: a session
folder, or a folder of videos with `--calib`. MODEL_DIR then holds landmark.safetensors,
landmark.onnx, adapt.json (takes, settings, metrics), config.toml, NOTICE.md (with the command
line that repeats the run) and metrics.csv, and
`--backbone MODEL_DIR` runs it in process, capture, detect2d and the GUI.

When --frames leaves frames after it, those frames are processed with the shipped and the
adapted network at the end (the before/after report): nothing of them was trained on.
At most 120 evenly spaced frame sets per take give crops; about 0.05 s per crop and epoch on
a 2-core CPU (120 four-view sets: about 4 minutes of training); the GPU is used where PyTorch
sees one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calibration.errors import TriangulumError


def register(subparsers: argparse._SubParsersAction) -> None:
    from calibration.units import CHOICES as UNIT_CHOICES

    p = subparsers.add_parser("adapt", help="fine-tune the 2D network on your own takes (self-supervised)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("takes", nargs="+", type=Path, metavar="TAKE", help="session folders or folders of videos")
    p.add_argument("--calib", nargs="*", type=Path, default=[], metavar="RIG",
                   help="calibration of each video folder (one for all, or one per take in order)")
    p.add_argument("--calib-units", choices=UNIT_CHOICES, default="auto")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL_DIR")
    p.add_argument("--frames", metavar="START:STOP", help="adapt on these frame sets of every take (default all)")
    p.add_argument("--epochs", type=int, help="most passes over the crops (default 8; early stopping picks the best)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-generic", action="store_true", help="do not mix in crops of the built-in sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backbone", type=Path, metavar="PATH",
                   help="start from this adapted network (a MODEL_DIR of an earlier run) instead of the shipped one")
    p.set_defaults(func=run)


def reproduce(args: argparse.Namespace) -> str:
    """The command line that repeats this run (written into adapt.json and NOTICE.md)."""
    parts = ["triangulum", "adapt", *map(str, args.takes)]
    if args.calib:
        parts += ["--calib", *map(str, args.calib)]
    for flag, value in (("--calib-units", None if args.calib_units == "auto" else args.calib_units),
                        ("--frames", args.frames), ("--epochs", args.epochs), ("--backbone", args.backbone),
                        ("--device", None if args.device == "auto" else args.device),
                        ("--seed", args.seed or None)):
        if value is not None:
            parts += [flag, str(value)]
    if args.no_generic:
        parts.append("--no-generic")
    return " ".join([*parts, "-o", str(args.output)])


def run(args: argparse.Namespace) -> int:
    import torch

    from app.adapt import TakeRange, adapt_takes, check_after, summary
    from app.commands.process import _frame_range
    from app.process.inputs import open_take
    from training.adapt import AdaptConfig

    if args.output.exists() and any(args.output.iterdir()) and not (args.output / "adapt.json").is_file():
        raise TriangulumError(f"{args.output} exists and is not an adapted model folder; choose an empty or new "
                              "folder for -o.")
    if len(args.calib) > 1 and len(args.calib) != len(args.takes):
        raise TriangulumError(f"--calib gives {len(args.calib)} files for {len(args.takes)} takes; give one for all "
                              "takes or one per take, in order.")
    calibs = args.calib * len(args.takes) if len(args.calib) == 1 else (args.calib or [None] * len(args.takes))
    start, stop = _frame_range(args.frames)
    takes = [TakeRange(open_take([path], calib, args.calib_units), start, stop)
             for path, calib in zip(args.takes, calibs, strict=True)]
    config = AdaptConfig(seed=args.seed, device=args.device, generic=0 if args.no_generic else AdaptConfig.generic)
    if args.epochs:
        config.epochs = args.epochs
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="step" if stage == "training" else "frame",
                                     leave=False, mininterval=0.5)
        bar.update(max(done - bar.n, 0))

    command = reproduce(args)
    try:
        result = adapt_takes(takes, config, args.output, str(args.backbone) if args.backbone else None, command,
                             progress)
    finally:
        for bar in bars.values():
            bar.close()
    for line in summary(result):  # the command's lines start in lower case, as its other output
        print(line[0].lower() + line[1:])
    print(f"wrote {args.output}/ (landmark.safetensors, landmark.onnx, adapt.json, NOTICE.md); use it with "
          f"--backbone {args.output}")
    for tr in takes:
        line = check_after(tr.take, stop, str(args.output))
        if line:
            print(f"{tr.take.source}: check on {line}")
    return 0
