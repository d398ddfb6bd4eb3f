"""The command line of supervised training: `python -m training` (under torchrun too) and
`triangulum train supervised`, one parser for both (training/supervised.py says what they do).
A run's config.toml given with --config sets every option; options given beside it win.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tomllib
from pathlib import Path

from calibration.errors import TriangulumError
from training.supervised import TARGETS, SupervisedConfig, train


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `python -m training` and `triangulum train supervised` (one parser)."""
    d = SupervisedConfig()
    p.add_argument("target", nargs="?", choices=TARGETS, help="what to train")
    p.add_argument("--dataset", help="KIND:PATH: h36m:DIR (Learnable Triangulation's layout), panoptic:DIR, "
                                     "session:DIR, mocap:DIR (heads only)")
    p.add_argument("--val-dataset", help="validate on this KIND:PATH (default: the dataset's own split)")
    p.add_argument("-o", "--out", type=Path, help="run folder (running again resumes it)")
    p.add_argument("--config", type=Path, metavar="TOML", help="a run's config.toml: repeat that run (options given here win)")
    for name, help_ in (("steps", f"optimiser steps (default {d.steps})"),
                        ("batch", f"frame sets per step over all processes (default {d.batch})"),
                        ("val-every", f"steps between validations and checkpoints (default {d.val_every})"),
                        ("val-limit", f"validation frame sets at most (default {d.val_limit})"),
                        ("every", "keep every Nth frame set (default 1)"), ("seed", "random seed (default 0)"),
                        ("workers", "backbone: processes reading and augmenting images ahead (default 0)")):
        p.add_argument(f"--{name}", type=int, help=help_)
    p.add_argument("--lr", type=float, help="Adam's rate (default: the reference's: backbone 1e-4, confidence 1e-5, "
                                            "volumetric 1e-3)")
    p.add_argument("--clip", type=float, help="gradient-norm clip (default 1.0)")
    p.add_argument("--init", choices=("shipped", "scratch"), help="heads: start from the shipped weights or random ones")
    p.add_argument("--weights", help="start from these weights (a file, or the run folder holding them) instead of the shipped ones")
    p.add_argument("--backbone", help="heads: train on the 2D of this landmark network (file or MODEL_DIR; default shipped)")
    p.add_argument("--scope", choices=("all", "heads"), help="backbone: train every layer or only after the encoder")
    p.add_argument("--no-amp", dest="amp", action="store_const", const=False, help="no mixed precision on CUDA")
    p.add_argument("--device", help="auto (CUDA when there is one), cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from(args: argparse.Namespace) -> SupervisedConfig:
    base = {}
    if args.config:
        if not args.config.is_file():
            raise TriangulumError(f"{args.config}: no such config file; give a run's config.toml.")
        base = tomllib.loads(args.config.read_text()).get("supervised", {})
    known = {f.name for f in dataclasses.fields(SupervisedConfig)}
    given = {k: v for k, v in vars(args).items() if k in known and v is not None}
    return SupervisedConfig(**{**{k: v for k, v in base.items() if k in known}, **given})


def run_cli(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    if args.out is None:
        raise TriangulumError("give the run folder: -o RUN.")
    best = train(config_from(args), args.out, progress=not args.quiet, argv=argv)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"best validation: step {best.get('step')}, MPJPE {best['mpjpe_mm']:.1f} mm; {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from training import supervised

    p = argparse.ArgumentParser(prog="python -m training", description=supervised.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_cli(args, ["python", "-m", "training", *(sys.argv[1:] if argv is None else argv)])
    except TriangulumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
