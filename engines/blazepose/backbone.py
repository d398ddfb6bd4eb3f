"""Which landmark network the 2D stage runs: the shipped one or an adapted copy (`--backbone`).

    backbone = resolve_backbone("models/studio")      # MODEL_DIR of `triangulum adapt`, or a file
    make_backend("onnxruntime", backbone=backbone)    # every backend takes it

An adapted backbone (training/adapt.py) is a folder holding `landmark.safetensors` (float32
weights of engines.blazepose.modules.BlazePoseLandmark), `landmark.onnx` (the same weights as
the dynamic-batch graph the ONNX Runtime and TensorRT backends run) and `adapt.json` (the takes
and settings it came from). `--backbone` takes that folder, either file in it, or a bare
.safetensors file (its ONNX graph is then exported once into the cache). The detector is never
adapted: it only places the first crop.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from calibration.errors import TriangulumError

WEIGHTS_FILE = "landmark.safetensors"
ONNX_FILE = "landmark.onnx"
RECORD_FILE = "adapt.json"


@dataclass(frozen=True)
class Backbone:
    """weights: the landmark network's safetensors; onnx: its graph (None: export on demand);
    record: what adapt.json says about where it came from ({} for a bare file)."""

    weights: Path
    onnx: Path | None = None
    record: dict = field(default_factory=dict, compare=False)

    def onnx_graph(self) -> Path:
        """The ONNX file of these weights, exported into the cache the first time if the folder has none."""
        if self.onnx is not None:
            return self.onnx
        from engines.export_onnx import default_cache_dir, export_landmark

        tag = hashlib.sha256(self.weights.read_bytes()).hexdigest()[:12]
        path = default_cache_dir() / f"blazepose_landmark_adapted_dyn_{tag}.onnx"
        if not path.is_file():
            export_landmark(path, dynamic=True, weights=self.weights)
        return path


def resolve_backbone(path: str | Path | None) -> Backbone | None:
    """`--backbone PATH` -> Backbone (None: the shipped network). PATH: a MODEL_DIR written by
    `triangulum adapt`, its landmark.safetensors or landmark.onnx, or any .safetensors of the
    landmark network."""
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        folder = p
    elif p.is_file() and p.suffix in (".safetensors", ".onnx"):
        folder = p.parent
        if p.suffix == ".safetensors" and p.name != WEIGHTS_FILE:
            return Backbone(p)
    else:
        raise TriangulumError(f"--backbone {p}: no such folder or .safetensors/.onnx file; give the MODEL_DIR "
                              "that `triangulum adapt` wrote (it holds landmark.safetensors).")
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise TriangulumError(f"--backbone {p}: {weights.name} is missing in {folder}; give the MODEL_DIR that "
                              "`triangulum adapt` wrote, or run the adaptation again.")
    onnx = folder / ONNX_FILE
    record = {}
    if (folder / RECORD_FILE).is_file():
        try:
            record = json.loads((folder / RECORD_FILE).read_text())
        except (OSError, ValueError) as e:
            raise TriangulumError(f"--backbone {p}: {RECORD_FILE} cannot be read ({e}); the folder is damaged, "
                                  "run `triangulum adapt` again.") from None
    return Backbone(weights, onnx if onnx.is_file() else None, record)
