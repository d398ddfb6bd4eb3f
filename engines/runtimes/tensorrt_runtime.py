"""Run an ONNX model as a TensorRT 10 engine on the GPU (optional extra `triangulum[tensorrt]`).

This is the only module that imports `tensorrt`, and it does so inside the class, so importing
it never fails where TensorRT is missing. Buffers are torch CUDA tensors; the engine is built
once with a batch profile 1..max_batch and cached next to the ONNX file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError


class TensorRTModel:
    """`model(name=array, ...)` -> {output name: array}, like OnnxRuntimeModel."""

    def __init__(self, onnx_path: str | Path, max_batch: int = 8, fp16: bool = True,
                 engine_path: str | Path | None = None):
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise TriangulumError(
                "The TensorRT backend needs the `tensorrt` package and an NVIDIA GPU: install "
                "`triangulum[tensorrt]` or choose --backend torch / onnxruntime."
            ) from exc
        import torch

        if not torch.cuda.is_available():
            raise TriangulumError("The TensorRT backend needs a CUDA GPU; none is visible to torch.")
        self._torch = torch
        self._trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        onnx_path = Path(onnx_path)
        precision = "fp16" if fp16 else "fp32"
        engine_path = Path(engine_path) if engine_path else onnx_path.with_suffix(
            f".b{max_batch}.{precision}.engine")
        if engine_path.is_file():
            serialized = engine_path.read_bytes()
        else:
            serialized = self._build(onnx_path, max_batch, fp16)
            engine_path.write_bytes(serialized)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise TriangulumError(f"TensorRT could not load the engine {engine_path}; delete it to rebuild.")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]

    def _build(self, onnx_path: Path, max_batch: int, fp16: bool) -> bytes:
        trt = self._trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise TriangulumError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            dims = tuple(tensor.shape)[1:]
            profile.set_shape(tensor.name, (1, *dims), (max(1, max_batch // 2), *dims),
                              (max_batch, *dims))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise TriangulumError(f"TensorRT failed to build an engine from {onnx_path}.")
        return bytes(serialized)

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        stream = torch.cuda.current_stream()
        keep = []
        for name in self.input_names:
            t = torch.from_numpy(np.ascontiguousarray(inputs[name], dtype=np.float32)).cuda()
            keep.append(t)
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=torch.float32, device="cuda")
            outputs[name] = out
            self.context.set_tensor_address(name, out.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise TriangulumError("TensorRT inference failed; see the TensorRT log above.")
        stream.synchronize()
        return {k: v.cpu().numpy() for k, v in outputs.items()}
