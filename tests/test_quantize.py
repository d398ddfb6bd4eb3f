"""The int8 landmark network (engines.blazepose.quantize): calibrated on real crops, the
encoder quantised and the heads kept float, close to the float graph on crops it was not
calibrated on, run by the ONNX Runtime backend, and a clear error for unusable videos."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from app.sample import sample_videos
from calibration.errors import TriangulumError
from engines.blazepose.backends import OnnxRuntimeBackend
from engines.blazepose.keypoints import refine_landmarks
from engines.blazepose.quantize import FLOAT_NODES, calibration_crops, quantize_landmark
from engines.export_onnx import ensure_exported


def _refined(out: dict[str, np.ndarray]) -> np.ndarray:
    points, _ = refine_landmarks(torch.from_numpy(out["heatmaps"]), torch.from_numpy(out["landmarks"][..., :2] / 256))
    return points.numpy()[:, :33] * 256


@pytest.mark.slow
def test_int8_landmarks_stay_close_to_float_on_crops_it_was_not_calibrated_on(tmp_path):
    crops = calibration_crops(sample_videos(), frames=12)  # 4 views x 12 frames of one person
    assert crops.shape[1:] == (3, 256, 256) and len(crops) >= 40
    path = quantize_landmark(ensure_exported()["landmark"], crops[:24], tmp_path / "int8.onnx")
    graph = onnx.load(str(path)).graph
    quantised = {n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    assert any("weight" in name for name in quantised), "the encoder's weights are int8"
    heads = [n for n in graph.node if n.op_type == "Conv" and any(k in n.name for k in FLOAT_NODES)]
    assert heads and not any(n.input[1] in {o for d in graph.node if d.op_type == "DequantizeLinear" for o in d.output}
                             for n in heads), "the heads keep float weights"
    held_out = crops[24:]
    fp = OnnxRuntimeBackend(threads=1).landmarks(held_out)
    q8 = OnnxRuntimeBackend(threads=1, landmark_path=path).landmarks(held_out)
    moved = np.linalg.norm(_refined(q8) - _refined(fp), axis=-1)  # pixels of the 256 crop
    assert np.median(moved) < 2.5, np.median(moved)
    assert np.abs(q8["pose_flag"] - fp["pose_flag"]).max() < 0.1


def test_calibration_needs_readable_videos_with_people(tmp_path):
    with pytest.raises(TriangulumError, match="cannot read"):
        calibration_crops([tmp_path / "missing.mp4"], frames=2)
