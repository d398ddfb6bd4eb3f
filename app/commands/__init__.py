"""The `triangulum` subcommands, one module each; arguments shared by several live here."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_method_arguments(p: argparse.ArgumentParser) -> None:
    """--method and --weights, as `process` and `capture` take them (the list is engines.heads)."""
    from engines.heads import DEFAULT_METHOD, METHODS

    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help="triangulation: learned (trained per-view confidences), confidence-weighted DLT "
                   "(algebraic, default), GeoMed/WSS (robust), ransac, or plain DLT")
    p.add_argument("--weights", type=Path, metavar="PATH",
                   help="with --method learned: another checkpoint (a .safetensors file or a training run folder) "
                   "instead of the shipped weights")
