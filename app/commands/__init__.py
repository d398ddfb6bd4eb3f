"""The `triangulum` subcommands, one module each; arguments shared by several live here."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_method_arguments(p: argparse.ArgumentParser) -> None:
    """--method and --weights, as `process` and `capture` take them (the list is engines.heads)."""
    from engines.heads import DEFAULT_METHOD, METHODS

    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help="triangulation: learned (trained per-view confidences), volumetric (trained voxel "
                   "head), confidence-weighted DLT (algebraic, default), GeoMed/WSS (robust), ransac, or plain DLT")
    p.add_argument("--weights", type=Path, metavar="PATH",
                   help="with --method learned or volumetric: another checkpoint of that head (a .safetensors "
                   "file or a training run folder) "
                   "instead of the shipped weights")


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    """--precision of the landmark network, as `process` and `capture` take it (the choices are
    app.process.pipeline.PRECISIONS, not imported here: it would load the whole pipeline)."""
    p.add_argument("--precision", choices=("float", "int8"), default="float",
                   help="landmark network: float (default) or int8 (ONNX Runtime static quantisation, about 1.9x "
                   "faster per crop here; moves the 2D by a few px: benchmarks/process_quality.py --speed-options)")
    add_backbone_argument(p)


def add_backbone_argument(p: argparse.ArgumentParser) -> None:
    """--backbone: an adapted landmark network (`triangulum adapt`) instead of the shipped one."""
    p.add_argument("--backbone", type=Path, metavar="PATH",
                   help="the 2D landmark network to run: a MODEL_DIR written by `triangulum adapt` (or its "
                   "landmark.safetensors); default the shipped BlazePose network")


def resolve_threads(threads: int | None) -> int | None:
    """--threads as given -> the 2D model's threads: None (not given) the default (one per core,
    up to 4), 0 None (ONNX Runtime's own pool); negative is an error."""
    from calibration.errors import TriangulumError
    from engines.runtimes.onnx_runtime import default_threads

    if threads is None:
        return default_threads()
    if threads < 0:
        raise TriangulumError(f"--threads {threads} must be 0 (the runtime's choice) or more.")
    return threads or None
