"""ONNX export of both BlazePose networks: ONNX Runtime matches torch; TensorRT-supported ops only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.blazepose.weights import load_detector, load_landmark

TRT_OPS = Path(__file__).resolve().parents[1] / "engines" / "runtimes" / "tensorrt_onnx_ops.json"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from engines.export_onnx import export_detector, export_landmark

    d = tmp_path_factory.mktemp("onnx")
    return {
        ("detector", "dyn"): export_detector(d / "det_dyn.onnx", dynamic=True),
        ("landmark", "dyn"): export_landmark(d / "lm_dyn.onnx", dynamic=True),
        ("detector", "b1"): export_detector(d / "det_b1.onnx", dynamic=False),
        ("landmark", "b1"): export_landmark(d / "lm_b1.onnx", dynamic=False),
    }


def _inputs(batch: int, size: int, lo: float) -> np.ndarray:
    # Smooth, image-like input (a gradient and stripes) rather than white noise.
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([xx, yy, 0.5 + 0.5 * np.sin(12 * xx + 5 * yy)])
    batch_x = np.stack([np.roll(base, 17 * i, axis=2) for i in range(batch)]).astype(np.float32)
    return lo + (1 - lo) * batch_x


@pytest.mark.slow
def test_every_exported_op_is_supported_by_tensorrt(exported):
    import onnx

    supported = set(json.loads(TRT_OPS.read_text())["supported"])
    for key, path in exported.items():
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert ops <= supported, (key, ops - supported)


@pytest.mark.slow
def test_onnxruntime_matches_torch_static_and_dynamic_batch(exported):
    from engines.runtimes.onnx_runtime import OnnxRuntimeModel

    det, lm = load_detector(), load_landmark()
    for batch, kind in ((1, "b1"), (3, "dyn")):
        x = _inputs(batch, 224, -1.0)
        with torch.no_grad():
            reg, score = det(torch.from_numpy(x))
        out = OnnxRuntimeModel(exported[("detector", kind)])(images=x)
        assert np.abs(out["regressors"] - reg.numpy()).max() < 2e-3
        assert np.abs(out["scores"] - score.numpy()).max() < 2e-3

        x = _inputs(batch, 256, 0.0)
        with torch.no_grad():
            ref = lm(torch.from_numpy(x))
        out = OnnxRuntimeModel(exported[("landmark", kind)])(crops=x)
        for name in ("landmarks", "pose_flag", "heatmaps", "world", "features"):
            assert out[name].shape == tuple(ref[name].shape), name
            tol = 2e-2 if name == "landmarks" else 2e-3  # landmarks are in 256-crop pixels
            assert np.abs(out[name] - ref[name].numpy()).max() < tol, name


@pytest.mark.slow
def test_static_export_rejects_another_batch(exported):
    from engines.runtimes.onnx_runtime import OnnxRuntimeModel

    with pytest.raises(Exception, match="(?i)dimension|shape"):  # the graph is fixed to batch 1
        OnnxRuntimeModel(exported[("landmark", "b1")])(crops=_inputs(2, 256, 0.0))


def test_tensorrt_runtime_imports_without_tensorrt():
    import importlib

    module = importlib.import_module("engines.runtimes.tensorrt_runtime")
    assert hasattr(module, "TensorRTModel")
    assert "tensorrt" not in module.__dict__  # imported lazily, inside the class


def test_a_batch_run_as_parallel_chunks_equals_one_run():
    """threads > 1 on the CPU splits the batch into chunks run at once (OnnxRuntimeModel):
    the outputs are those of one single-threaded run, in order, for uneven chunks too."""
    from engines.export_onnx import ensure_exported
    from engines.runtimes.onnx_runtime import OnnxRuntimeModel

    path = ensure_exported(dynamic=True)["landmark"]
    x = np.random.default_rng(3).uniform(0, 1, (3, 3, 256, 256)).astype(np.float32)
    one = OnnxRuntimeModel(path, threads=1)(crops=x)
    chunked = OnnxRuntimeModel(path, threads=2)
    assert chunked.chunks == 2
    out = chunked(crops=x)
    assert out.keys() == one.keys()
    for k in one:
        np.testing.assert_array_equal(out[k], one[k])
    single = chunked(crops=x[:1])  # a batch of one: one run
    np.testing.assert_array_equal(single["landmarks"], one["landmarks"][:1])
