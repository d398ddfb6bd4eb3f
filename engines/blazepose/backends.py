"""Where the two BlazePose networks run: PyTorch (eager) or ONNX Runtime, behind one interface.

A backend has `detect(images)` and `landmarks(crops)` taking NCHW float32 numpy batches
((N, 3, 224, 224) in [-1, 1] and (N, 3, 256, 256) in [0, 1]) and returning numpy arrays with
the output names of engines/export_onnx.py. TensorRT is reached the same way through
engines/runtimes/tensorrt_runtime.py, which is imported only when asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from calibration.errors import TriangulumError
from engines.blazepose.backbone import Backbone
from engines.blazepose.modules import DETECTOR_OUTPUTS, LANDMARK_OUTPUTS  # noqa: F401 (re-exported)
from engines.blazepose.weights import LANDMARK_WEIGHTS, load_detector, load_landmark


class TorchBackend:
    """The torch modules, eager, on `device` (float32)."""

    name = "torch"

    def __init__(self, device: str = "cpu", threads: int | None = None, backbone: Backbone | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        # Depthwise convolutions run about twice as fast on the CPU in channels-last layout.
        self.layout = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.detector = load_detector().to(self.device, memory_format=self.layout)
        weights = backbone.weights if backbone is not None else LANDMARK_WEIGHTS
        self.landmark = load_landmark(weights).to(self.device, memory_format=self.layout)

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(self.device).contiguous(memory_format=self.layout)

    @torch.inference_mode()
    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        regressors, scores = self.detector(self._tensor(images))
        return {"regressors": regressors.cpu().numpy(), "scores": scores.cpu().numpy()}

    @torch.inference_mode()
    def landmarks(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        out = self.landmark(self._tensor(crops))
        return {k: out[k].contiguous().cpu().numpy() for k in LANDMARK_OUTPUTS}


class OnnxRuntimeBackend:
    """Both models exported to ONNX (dynamic batch) and run by ONNX Runtime.

    landmark_path: another landmark graph with the same inputs and outputs (the int8 one of
    engines.blazepose.quantize) instead of the float export; backbone: an adapted landmark
    network (engines.blazepose.backbone), run as its ONNX graph.
    """

    name = "onnxruntime"

    def __init__(self, model_dir: Path | None = None, providers: list[str] | None = None,
                 threads: int | None = None, landmark_path: Path | None = None,
                 backbone: Backbone | None = None):
        from engines.export_onnx import ensure_exported
        from engines.runtimes.onnx_runtime import OnnxRuntimeModel

        paths = ensure_exported(model_dir, dynamic=True)
        if backbone is not None:
            if landmark_path is not None:
                raise TriangulumError("an adapted backbone runs in float; int8 is made from the shipped network "
                                      "(drop --precision int8 or --backbone).")
            landmark_path = backbone.onnx_graph()
        self.detector = OnnxRuntimeModel(paths["detector"], providers=providers, threads=threads)
        self.landmark = OnnxRuntimeModel(landmark_path or paths["landmark"], providers=providers, threads=threads)

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.detector(images=images)

    def landmarks(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        return self.landmark(crops=crops)


class TensorRTBackend:
    """Both models as TensorRT engines built from the dynamic-batch ONNX files (needs a GPU)."""

    name = "tensorrt"

    def __init__(self, model_dir: Path | None = None, max_batch: int = 8, fp16: bool = True,
                 backbone: Backbone | None = None):
        from engines.export_onnx import ensure_exported
        from engines.runtimes.tensorrt_runtime import TensorRTModel

        paths = ensure_exported(model_dir, dynamic=True)
        self.detector = TensorRTModel(paths["detector"], max_batch=max_batch, fp16=fp16)
        landmark = backbone.onnx_graph() if backbone is not None else paths["landmark"]
        self.landmark = TensorRTModel(landmark, max_batch=max_batch, fp16=fp16)

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.detector(images=images)

    def landmarks(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        return self.landmark(crops=crops)


def make_backend(name: str = "torch", **kwargs):
    """A backend by name: "torch", "onnxruntime" or "tensorrt"."""
    if name == "torch":
        return TorchBackend(**kwargs)
    if name == "onnxruntime":
        return OnnxRuntimeBackend(**kwargs)
    if name == "tensorrt":
        return TensorRTBackend(**kwargs)
    raise TriangulumError(f"Unknown backend {name!r}; use torch, onnxruntime or tensorrt.")
