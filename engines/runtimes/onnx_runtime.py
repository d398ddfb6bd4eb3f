"""Run an ONNX model with ONNX Runtime: named numpy inputs in, named numpy outputs out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError


class OnnxRuntimeModel:
    """One InferenceSession; `model(name=array, ...)` returns {output name: array}."""

    def __init__(self, path: str | Path, providers: list[str] | None = None,
                 threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise TriangulumError(f"ONNX model {path} does not exist; export it first.")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(path), options, providers=providers or ["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        return dict(zip(self.output_names, self.session.run(self.output_names, feed), strict=True))
