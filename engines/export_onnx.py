"""Export the BlazePose detector and landmark networks to ONNX (static or dynamic batch).

    python -m engines.export_onnx OUT_DIR [--static-batch N]

The graphs use only operators on TensorRT's ONNX support list
(engines/runtimes/tensorrt_onnx_ops.json; tests check every node). Exported files are cached
by weights hash under $TRIANGULUM_CACHE (default ~/.cache/triangulum/onnx) for the runtimes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import torch

from engines.blazepose.modules import (
    DETECTOR_INPUT,
    DETECTOR_OUTPUTS,
    LANDMARK_INPUT,
    LANDMARK_OUTPUTS,
)
from engines.blazepose.weights import (
    DETECTOR_WEIGHTS,
    LANDMARK_WEIGHTS,
    load_detector,
    load_landmark,
)

OPSET = 17


class _LandmarkOutputs(torch.nn.Module):
    """Tuple-returning wrapper: ONNX needs positional outputs in LANDMARK_OUTPUTS order."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(crops)
        return tuple(out[k] for k in LANDMARK_OUTPUTS)


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str,
            output_names: tuple[str, ...], dynamic: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {input_name: {0: "batch"}, **{n: {0: "batch"} for n in output_names}} if dynamic else None
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(
        module.eval(), (example,), str(tmp), input_names=[input_name],
        output_names=list(output_names), dynamic_axes=axes, opset_version=OPSET, dynamo=False,
    )
    os.replace(tmp, path)  # a half-written file never looks like a finished export
    return path


def export_detector(path: Path, dynamic: bool = True, batch: int = 1) -> Path:
    """Detector: input `images` (N, 3, 224, 224) -> `regressors` (N, 2254, 12), `scores` (N, 2254, 1)."""
    example = torch.zeros(batch, 3, DETECTOR_INPUT, DETECTOR_INPUT)
    return _export(load_detector(), example, Path(path), "images", DETECTOR_OUTPUTS, dynamic)


def export_landmark(path: Path, dynamic: bool = True, batch: int = 1, weights: Path = LANDMARK_WEIGHTS) -> Path:
    """Landmark net: input `crops` (N, 3, 256, 256) -> landmarks (N, 39, 5), pose_flag (N,),
    heatmaps (N, 39, 64, 64), world (N, 39, 3), features (N, 48, 64, 64). weights: the
    shipped ones, or an adapted network's (engines.blazepose.backbone)."""
    example = torch.zeros(batch, 3, LANDMARK_INPUT, LANDMARK_INPUT)
    return _export(_LandmarkOutputs(load_landmark(weights)), example, Path(path), "crops",
                   LANDMARK_OUTPUTS, dynamic)


def _weights_tag() -> str:
    h = hashlib.sha256()
    for p in (DETECTOR_WEIGHTS, LANDMARK_WEIGHTS, Path(__file__), Path(__file__).parent / "blazepose" / "modules.py"):
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def default_cache_dir() -> Path:
    root = os.environ.get("TRIANGULUM_CACHE") or Path.home() / ".cache" / "triangulum"
    return Path(root) / "onnx"


def ensure_exported(model_dir: Path | None = None, dynamic: bool = True) -> dict[str, Path]:
    """Paths of both ONNX files, exporting them first if the cache lacks this weights version."""
    model_dir = Path(model_dir) if model_dir else default_cache_dir()
    kind = "dyn" if dynamic else "b1"
    tag = _weights_tag()
    paths = {
        "detector": model_dir / f"blazepose_detector_{kind}_{tag}.onnx",
        "landmark": model_dir / f"blazepose_landmark_full_{kind}_{tag}.onnx",
    }
    if not paths["detector"].is_file():
        export_detector(paths["detector"], dynamic)
    if not paths["landmark"].is_file():
        export_landmark(paths["landmark"], dynamic)
    return paths


TRT_OPS_FILE = Path(__file__).resolve().parent / "runtimes" / "tensorrt_onnx_ops.json"


def unsupported_by_tensorrt(path: Path) -> set[str]:
    """Operator types of the ONNX graph at `path` missing from TensorRT's support list."""
    import json

    import onnx

    ops = json.loads(TRT_OPS_FILE.read_text())
    supported = set(ops["supported"]) | set(ops.get("later_versions", {}))  # later: the version they need is noted
    return {n.op_type for n in onnx.load(str(path)).graph.node} - supported


def max_abs_diff(path: Path, batch: int) -> dict[str, float]:
    """Max |ONNX Runtime - torch| per output on a smooth synthetic batch."""
    import numpy as np

    from engines.runtimes.onnx_runtime import OnnxRuntimeModel

    model = OnnxRuntimeModel(path)
    name = model.input_names[0]
    size = DETECTOR_INPUT if name == "images" else LANDMARK_INPUT
    yy, xx = np.mgrid[0:size, 0:size] / size
    x = np.stack([np.stack([xx, yy, 0.5 + 0.5 * np.sin(9 * xx + 4 * yy + i)]) for i in range(batch)])
    x = x.astype(np.float32) * (2 if name == "images" else 1) - (1 if name == "images" else 0)
    with torch.no_grad():
        if name == "images":
            ref = dict(zip(DETECTOR_OUTPUTS, load_detector()(torch.from_numpy(x)), strict=True))
        else:
            ref = load_landmark()(torch.from_numpy(x))
    out = model(**{name: x})
    return {k: float(np.abs(out[k] - ref[k].numpy()).max()) for k in out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export the BlazePose networks to ONNX.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--static-batch", type=int, default=0,
                        help="export with this fixed batch size instead of a dynamic one")
    args = parser.parse_args(argv)
    dynamic = args.static_batch == 0
    batch = args.static_batch or 1
    suffix = "dyn" if dynamic else f"b{batch}"
    for name, fn in (("detector", export_detector), ("landmark_full", export_landmark)):
        path = fn(args.out_dir / f"blazepose_{name}_{suffix}.onnx", dynamic, batch)
        missing = unsupported_by_tensorrt(path)
        diffs = max_abs_diff(path, 2 if dynamic else batch)
        print(f"wrote {path}")
        print("  ops outside TensorRT's list: " + (", ".join(sorted(missing)) or "none"))
        print("  max |onnxruntime - torch|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
