"""Adapt to my studio (training/adapt.py, `triangulum adapt`, `--backbone`): the pseudo-label
step on a synthetic take with a corrupted view, a short adaptation on the real studio take
(weights change, the loss on its crops falls), and the adapted file loading everywhere
`--backbone` is accepted (process, capture, detect2d, the GUI) with its ONNX graph equal to torch."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from calib_support import QCA
from shared_data import TEST_DATA

from app.adapt import TakeRange, adapt_takes
from app.cli import main
from calibration.errors import TriangulumError
from engines.blazepose.backbone import resolve_backbone
from training.adapt import HEAD_MODULES, AdaptConfig, Crops, agreement_px, label_crops
from training.error_model import leave_one_out

VIDEOS = TEST_DATA / "pose2sim-demo-single" / "videos"
MOCAP = TEST_DATA / "mocap-cmu"


def _synthetic_take(seed: int = 0):
    from engines.blazepose.roi import Roi
    from training.mocap import load_clips
    from training.synthetic import random_studio

    clip = next(iter(load_clips(MOCAP, ("002",)).values()))[:20]
    rng = np.random.default_rng(seed)
    rig = random_studio(rng, 4, np.nanmean(clip.reshape(-1, 3), 0))
    truth = rig.project(clip)  # (C, F, 33, 2)
    kp = truth + rng.normal(0, 1.0, truth.shape)
    cf = np.full(kp.shape[:-1], 0.9)
    # The ROI of each view: a square around the person, as the tracker's crop.
    lo, hi = np.nanmin(truth, 2), np.nanmax(truth, 2)
    rois = [[Roi((lo[c, f] + hi[c, f]) / 2, 1.3 * float((hi[c, f] - lo[c, f]).max()), 0.0)
             for f in range(truth.shape[1])] for c in range(4)]
    return rig, truth, kp, cf, rois


def test_pseudo_labels_of_a_corrupted_view_come_from_the_other_views():
    rig, truth, kp, cf, rois = _synthetic_take()
    arm = [13, 15, 17, 19, 21]  # left elbow, wrist, hand: a limb that follows something else in view 2
    kp[2][:, arm] += np.array([120.0, -80.0])
    targets, agreement = leave_one_out(rig, kp, cf, agree=0.03)
    err = np.linalg.norm(targets[2][:, arm] - truth[2][:, arm], axis=-1)
    assert np.nanmax(err) < 5.0, "view 2's labels are where the other views put the arm, not where it saw it"
    assert (agreement[2][:, arm] >= 2 / 3).all(), "three clean views agree on view 2's arm"
    # In the clean views the corrupted view is outvoted: the labels stay on the truth.
    for v in (0, 1, 3):
        assert np.nanmedian(np.linalg.norm(targets[v] - truth[v], axis=-1)) < 3.0
    labels, weights, usable = label_crops(rig, kp, cf, rois, AdaptConfig())
    assert usable.all(), "a crop with one wrong limb is still the right person: it is kept and relabelled"
    from engines.blazepose.roi import crop_to_image

    back = np.stack([crop_to_image(labels[2, f], rois[2][f], 1.0) for f in range(kp.shape[1])])
    assert np.nanmax(np.linalg.norm(back[:, arm] - truth[2][:, arm], axis=-1)) < 5.0


def test_a_view_on_another_person_gives_no_crop_and_disagreeing_views_no_label():
    rig, truth, kp, cf, rois = _synthetic_take(1)
    from training.error_model import person_size

    # View 1 follows someone else entirely: another pose, one and a half body sizes away.
    kp[1] = kp[1][::-1] + np.nanmedian(person_size(truth[1])) * np.array([0.0, 1.5])
    labels, weights, usable = label_crops(rig, kp, cf, rois, AdaptConfig())
    assert not usable[1].any() and usable[[0, 2, 3]].all()
    # With only two clean views left besides the one labelled, a joint the others disagree on is unlabelled.
    kp2 = kp.copy()
    kp2[3][:, 27] += np.array([200.0, 0.0])  # view 3's left ankle is wrong too
    _, agreement = leave_one_out(rig, kp2, cf, agree=0.03)
    assert (agreement[0][:, 27] == 0).all(), "of views 1-3 only view 2 has the ankle right: no label for view 0"


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """A short adaptation on the first 8 frame sets of the real studio take."""
    from app.process.inputs import open_take

    out = tmp_path_factory.mktemp("adapted")
    take = open_take([VIDEOS], QCA)
    # No held-out frames: the last epoch is kept (with them, early stopping may keep the shipped weights).
    config = AdaptConfig(epochs=2, batch=4, generic=0, holdout=0.0, patience=5, augment=False, lr=1e-4)
    result = adapt_takes([TakeRange(take, 0, 8)], config, out)
    return out, result, take


@pytest.mark.slow
def test_adaptation_changes_the_weights_and_lowers_the_loss_on_its_crops(adapted):
    from safetensors.torch import load_file

    from engines.blazepose.weights import LANDMARK_WEIGHTS

    out, result, take = adapted
    shipped = {k: v.float() for k, v in load_file(str(LANDMARK_WEIGHTS)).items()}
    new = load_file(str(out / "landmark.safetensors"))
    assert set(new) == set(shipped)
    moved = sum(float((new[k] - shipped[k]).abs().max()) > 1e-6 for k in new)
    trained = [k for k in new if k.split(".")[0] in HEAD_MODULES]
    moved = [k for k in trained if float((new[k] - shipped[k]).abs().max()) > 1e-6]
    frozen = [k for k in new if k not in trained and not torch.equal(new[k], shipped[k])]
    assert result.best_epoch == 2 and len(moved) == len(trained) and not frozen, "the heads moved, the encoder did not"
    rows = result.epochs
    assert len(rows) == 2 and rows[1]["label_px"] < rows[0]["label_px"], rows
    record = json.loads((out / "adapt.json").read_text())
    assert record["takes"][0]["frames"] == [0, 7] and "commit" in record and (out / "NOTICE.md").is_file()


def _crops_of(take, frames):
    from app.adapt import collect_take
    from app.process.take import ProcessConfig

    return collect_take(take, ProcessConfig(start=frames[0], stop=frames[1]), AdaptConfig())


@pytest.mark.slow
def test_the_adapted_onnx_graph_equals_torch_and_agrees_better_with_the_views_it_learned_from(adapted):
    from engines.blazepose.backends import OnnxRuntimeBackend, TorchBackend

    out, result, take = adapted
    backbone = resolve_backbone(out)
    assert backbone.onnx == out / "landmark.onnx" and backbone.record["steps"] == result.steps
    crops: Crops = _crops_of(take, (0, 6))
    x = np.ascontiguousarray(crops.images[:4].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    a = TorchBackend(backbone=backbone).landmarks(x)
    b = OnnxRuntimeBackend(backbone=backbone, threads=1).landmarks(x)
    for k in ("landmarks", "heatmaps"):
        np.testing.assert_allclose(a[k], b[k], atol=2e-3, rtol=1e-3)
    stock = OnnxRuntimeBackend(threads=1).landmarks(x)
    assert np.abs(stock["landmarks"] - b["landmarks"]).max() > 0.05, "the graph holds the adapted weights"
    from engines.blazepose.weights import load_landmark

    shipped = agreement_px(load_landmark(), crops, torch.device("cpu"))
    mine = agreement_px(load_landmark(out / "landmark.safetensors"), crops, torch.device("cpu"))
    assert mine < shipped, (mine, shipped)


@pytest.mark.slow
def test_the_adapted_backbone_loads_in_process_detect2d_capture_and_the_gui(adapted, tmp_path, capsys):
    out, _, _ = adapted
    assert main(["process", str(VIDEOS), "--calib", str(QCA), "--frames", "0:3", "--backbone", str(out),
                 "-o", str(tmp_path / "p"), "--no-overlay", "--formats", "csv"]) == 0
    assert (tmp_path / "p" / "poses3d.npz").is_file()
    assert main(["detect2d", str(VIDEOS / "cam01.mp4"), "--max-frames", "2", "--backbone",
                 str(out / "landmark.safetensors"), "-o", str(tmp_path / "d.npz")]) == 0
    assert main(["process", str(VIDEOS), "--calib", str(QCA), "--frames", "0:2", "--backbone", str(out),
                 "--precision", "int8", "-o", str(tmp_path / "q")]) == 2
    assert "runs in float" in capsys.readouterr().err
    from app.commands.capture import build_pipeline

    args = argparse.Namespace(threads=1, method="algebraic", filter="none", calib=QCA, backend="torch",
                              precision="float", backbone=out)
    _, pipeline = build_pipeline(args)
    assert pipeline.people2d.estimator.backend.landmark is not None
    from app.gui.pipelines import PipelineChoice
    from app.gui.pipelines import build_pipeline as gui_pipeline
    from calibration.formats.detect import convert

    choice = PipelineChoice(backbone=str(out))
    gui = gui_pipeline(convert(QCA), choice)
    assert gui.inner.people2d.estimator.backend.landmark.path == out / "landmark.onnx"


def test_a_wrong_backbone_path_says_what_to_give(tmp_path):
    with pytest.raises(TriangulumError, match="--backbone"):
        resolve_backbone(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TriangulumError, match="landmark.safetensors is missing"):
        resolve_backbone(tmp_path / "empty")
    assert resolve_backbone(None) is None
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(other))
    from engines.blazepose.backends import TorchBackend

    with pytest.raises(TriangulumError, match="does not hold BlazePoseLandmark weights"):
        TorchBackend(backbone=resolve_backbone(other))


@pytest.mark.slow
def test_the_adapt_command_writes_the_model_and_checks_the_frames_after_its_range(tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["adapt", str(VIDEOS), "--calib", str(QCA), "--frames", "0:6", "--epochs", "1", "--no-generic",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "held-out agreement" in printed and f"--backbone {out}" in printed
    assert "check on frames 6-99" in printed and "never trained on" in printed
    for name in ("landmark.safetensors", "landmark.onnx", "adapt.json", "NOTICE.md", "metrics.csv", "config.toml"):
        assert (out / name).is_file(), name
    assert AdaptConfig.load(out / "config.toml") == AdaptConfig(epochs=1, generic=0)
    record = json.loads((out / "adapt.json").read_text())
    assert record["command"] == f"triangulum adapt {VIDEOS} --calib {QCA} --frames 0:6 --epochs 1 --no-generic -o {out}"
    assert record["config"]["generic"] == 0 and record["takes"][0]["frames"][1] <= 5
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    assert main(["adapt", str(VIDEOS), "--calib", str(QCA), "-o", str(tmp_path / "other")]) == 2
    assert "not an adapted model folder" in capsys.readouterr().err
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
