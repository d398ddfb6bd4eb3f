"""The learned algebraic head (engines/heads/algebraic.py), its export and its training
(training/confidence.py), on the real studio 2D and real motion capture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from calib_support import KEYPOINTS, QCA
from shared_data import TEST_DATA

from calibration.errors import TriangulumError
from engines.heads import METHODS
from engines.heads.algebraic import (
    DESCRIPTORS,
    ConfidenceHead,
    LearnedTriangulation,
    load_head,
    read_head,
)
from engines.heads.export import example_inputs, export_head, float32_copy

MOCAP = TEST_DATA / "mocap-cmu"


@pytest.fixture(scope="module")
def clips():
    from training.mocap import load_clips

    return load_clips(MOCAP, ("002",)), load_clips(MOCAP, ("003",))


@pytest.fixture(scope="module")
def error_model():
    from engines.heads.algebraic import WEIGHTS
    from training.error_model import ErrorModel

    return ErrorModel.load(WEIGHTS.with_name("error_model.toml"))


def test_confidences_sum_to_one_over_the_views_of_each_joint():
    torch.manual_seed(0)
    head = ConfidenceHead()
    f = torch.randn(3, 5, 33, DESCRIPTORS)
    valid = torch.rand(3, 5, 33) > 0.3
    w = head(f, valid)
    some = valid.any(1)
    assert torch.allclose(w.sum(1)[some], torch.ones(int(some.sum())), atol=1e-6)
    assert (w[~valid] == 0).all() and (w[valid] > 0).all()


def test_gradients_reach_the_head_through_the_dlt():
    net = LearnedTriangulation()
    P, x, conf = example_inputs(3, 4)
    X, _ = net(P, x, conf)
    X[torch.isfinite(X)].sum().backward()
    for name, p in net.head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_shipped_head_downweights_a_wrong_view():
    P, x, conf = example_inputs(4, 4, seed=1)  # the last view is 150 px off everywhere
    X, w = load_head()(P, x, conf)
    assert (w[:, -1].mean(-1) < 0.5 * w[:, :3].mean((1, 2))).all()
    assert torch.isfinite(X).all()


def test_onnx_graph_equals_torch_and_uses_only_tensorrt_operators(tmp_path):
    pytest.importorskip("onnxruntime")
    from engines.export_onnx import unsupported_by_tensorrt
    from engines.runtimes.onnx_runtime import OnnxRuntimeModel

    path = export_head(tmp_path / "head.onnx")
    assert unsupported_by_tensorrt(path) == set()
    P, x, conf = example_inputs(7, 4, seed=5)  # another batch size than exported with
    out = OnnxRuntimeModel(path)(P=P.numpy(), keypoints=x.numpy(), confidence=conf.numpy())
    with torch.no_grad():
        X, w = load_head()(P, x, conf)
        X32, _ = float32_copy(load_head())(P, x, conf)
    assert np.abs(out["points"] - X.numpy()).max() < 1e-3
    assert np.abs(out["points"] - X32.numpy()).max() < 1e-3
    assert np.abs(out["confidences"] - w.numpy()).max() < 1e-3


def test_a_few_training_steps_lower_the_loss_on_fixed_data(clips, error_model):
    from training.confidence import synthetic_loss
    from training.synthetic import SyntheticViews

    b = SyntheticViews(clips[0], error_model, seed=3).sample(64, views=(4, 6), forced_failures=(1, 1))
    P, x, conf, truth = (torch.as_tensor(a) for a in (b.P, b.x, b.conf, b.truth))
    torch.manual_seed(0)
    net = LearnedTriangulation()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = synthetic_loss(net(P, x, conf)[0], truth)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0]


def test_checkpoint_resumes_to_the_same_state(tmp_path, clips, error_model):
    from training.confidence import TrainConfig, train

    cfg = TrainConfig(steps=8, epoch=4, batch=8, val_samples=12)
    train(cfg, *clips, error_model, [], tmp_path / "straight", progress=False)
    train(cfg, *clips, error_model, [], tmp_path / "resumed", progress=False, until=4)  # interrupted
    train(cfg, *clips, error_model, [], tmp_path / "resumed", progress=False)  # continues from step 4
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert read_head(tmp_path / "resumed").head.config == load_head().head.config


def test_learned_method_through_process_reconstruct():
    from app.process.reconstruct import TriangulationConfig, reconstruct
    from calibration.formats.detect import convert

    rig = convert(QCA)
    with np.load(KEYPOINTS) as z:
        kp, cf = z["keypoints"][:, :20], z["confidence"][:, :20]
    learned = reconstruct(rig, kp, cf, TriangulationConfig("learned"))
    algebraic = reconstruct(rig, kp, cf, TriangulationConfig("algebraic"))
    both = np.isfinite(learned.joints).all(-1) & np.isfinite(algebraic.joints).all(-1)
    assert both.mean() > 0.9
    # Same 2D, same rig: the two agree closely where every view agrees.
    assert np.median(np.linalg.norm(learned.joints - algebraic.joints, axis=-1)[both]) < 0.03
    assert learned.views_used.any(-1)[both].all()


def test_one_registry_for_every_consumer():
    from app.cli import build_parser
    from app.gui.pipelines import METHOD_LABELS
    from app.process.reconstruct import METHODS as PROCESS_METHODS

    assert tuple(PROCESS_METHODS) == tuple(METHODS) and list(METHOD_LABELS) == list(METHODS)
    parser = build_parser()
    for command in ("process", "capture"):
        sub = parser._subparsers._group_actions[0].choices[command]
        method = next(a for a in sub._actions if a.dest == "method")
        assert list(method.choices) == list(METHODS)


def test_a_missing_checkpoint_says_what_to_give(tmp_path):
    with pytest.raises(TriangulumError, match="--weights"):
        read_head(tmp_path / "nothing.safetensors")
