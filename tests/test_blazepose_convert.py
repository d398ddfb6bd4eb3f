"""Converter and shipped weights: anchors, loading, byte-exact regeneration from the wheel."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from engines.blazepose import convert
from engines.blazepose.anchors import ssd_anchors
from engines.blazepose.weights import (
    DETECTOR_WEIGHTS,
    LANDMARK_WEIGHTS,
    load_detector,
    load_landmark,
)


def _tflite_files():
    if importlib.util.find_spec("tflite") is None:
        return None
    for root in convert.candidate_roots():
        files = {m.tflite: root / m.tflite for m in convert.MODELS}
        if all(p.is_file() for p in files.values()):
            return root
    return None


def test_anchor_layout():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)
    # 28x28x2 then 14x14x2 then 7x7x6, row-major cells, anchors of a cell adjacent.
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[0], anchors[1])
    assert np.allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    assert np.allclose(anchors[1568], [0.5 / 14, 0.5 / 14])
    assert np.allclose(anchors[1960:1966], [0.5 / 7, 0.5 / 7])
    assert np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_shipped_weights_load_strictly_and_are_float16():
    from safetensors.torch import load_file

    for path, net in ((DETECTOR_WEIGHTS, load_detector()), (LANDMARK_WEIGHTS, load_landmark())):
        stored = load_file(str(path))
        assert {t.dtype for t in stored.values()} == {torch.float16}
        assert set(stored) == set(net.state_dict())
        # The float32 module holds exactly the stored float16 values.
        name = next(iter(stored))
        assert torch.equal(net.state_dict()[name], stored[name].float())


def test_conv_order_covers_every_layer_once():
    for net in (load_detector(), load_landmark()):
        convs = {n for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}
        order = net.tflite_conv_order()
        assert len(order) == len(set(order)) and set(order) == convs


@pytest.mark.slow
def test_regenerates_shipped_weights_bit_for_bit(tmp_path):
    root = _tflite_files()
    if root is None:
        pytest.skip("mediapipe's .tflite files or the tflite parser are not available")
    written = convert.convert(root, tmp_path)
    for name, path in written.items():
        assert convert.sha256(path) == convert.sha256(convert.WEIGHTS_DIR / name), name


def test_missing_source_is_a_clear_error(tmp_path):
    from calibration.errors import TriangulumError

    with pytest.raises(TriangulumError, match="Could not find the BlazePose"):
        convert.locate_tflite(tmp_path, tmp_path)
