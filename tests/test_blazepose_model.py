"""BlazePose torch modules on real frames: person found, tflite parity, gradients, soft-argmax."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from shared_data import TEST_DATA

from engines.blazepose.keypoints import refine_landmarks, windowed_soft_argmax
from engines.blazepose.pipeline import BlazePoseEstimator, landmark_input
from engines.blazepose.weights import load_landmark

DATA = TEST_DATA
VIDEOS = DATA / "pose2sim-demo-single" / "videos"
MP_PYTHON = os.environ.get("TRIANGULUM_MP_PYTHON", "/opt/mpref/bin/python")


def first_frames(count: int = 1) -> list[list[np.ndarray]]:
    """`count` frame sets of the four demo views, RGB."""
    import cv2

    if not VIDEOS.is_dir():
        pytest.skip("demo videos not available")
    caps = [cv2.VideoCapture(str(p)) for p in sorted(VIDEOS.glob("cam*.mp4"))]
    return [[cv2.cvtColor(c.read()[1], cv2.COLOR_BGR2RGB) for c in caps] for _ in range(count)]


@pytest.fixture(scope="module")
def estimator():
    return BlazePoseEstimator("torch")


def test_finds_the_person_with_anatomically_ordered_keypoints(estimator):
    images = first_frames()[0]
    poses = estimator(images)
    for image, pose in zip(images, poses, strict=True):
        assert pose is not None and pose.pose_score > 0.9 and pose.redetected
        h, w = image.shape[:2]
        body = pose.keypoints[:33]
        assert (body >= 0).all() and (body[:, 0] < w).all() and (body[:, 1] < h).all()
        x0, y0, x1, y1 = pose.roi.bounding_box()
        assert (body[:, 0] > x0).all() and (body[:, 0] < x1).all()
        assert (body[:, 1] > y0).all() and (body[:, 1] < y1).all()
        # A standing person, image y down: head above shoulders above hips above knees above ankles.
        y = {name: body[list(idx), 1].mean() for name, idx in
             {"nose": [0], "shoulders": [11, 12], "hips": [23, 24], "knees": [25, 26], "ankles": [27, 28]}.items()}
        assert y["nose"] < y["shoulders"] < y["hips"] < y["knees"] < y["ankles"]
        # The person fills a good part of these portrait frames: ankles well below the nose.
        assert y["ankles"] - y["nose"] > 0.2 * h
        assert np.median(pose.confidence[:33]) > 0.5
        assert pose.heatmaps.shape == (39, 64, 64) and pose.features.shape == (48, 64, 64)
        # World landmarks: metres, hip-centred; a person is 1-2.2 m from ankle to nose.
        assert np.linalg.norm(pose.world[23:25].mean(0)) < 0.1
        assert 0.8 < np.linalg.norm(pose.world[0] - pose.world[27:29].mean(0)) < 2.2


def test_gradients_flow_from_soft_argmax_keypoints_into_weights():
    images = first_frames()[0][:2]
    net = load_landmark()
    est = BlazePoseEstimator("torch")
    people = est.detect(images)
    from engines.blazepose.roi import roi_from_points

    rois = [roi_from_points(p[0].keypoints[0], p[0].keypoints[1]) for p in people]
    crops = torch.from_numpy(landmark_input(images, rois))
    out = net(crops)
    centres = (out["landmarks"][..., :2] / 256).detach()
    coords, confidence, valid = windowed_soft_argmax(out["heatmaps"], centres)
    assert valid[:, :33].all()
    loss = ((coords - 0.5) ** 2).sum() - confidence.sum()
    loss.backward()
    for name in ("heatmap.weight", "b15.project.weight", "stem.conv.weight"):
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    # The regression-only branch does not feed the soft-argmax.
    assert net.world_out.weight.grad is None or net.world_out.weight.grad.abs().sum() == 0


def test_windowed_soft_argmax_matches_a_direct_window_average_and_finds_a_sharp_peak():
    size = 64
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    peak = np.array([20.3, 41.7])  # x, y in cells
    logits = 3.0 - 2.0 * ((xx - peak[0]) ** 2 + (yy - peak[1]) ** 2)
    logits += 9.0 * np.exp(-((xx - 50) ** 2 + (yy - 5) ** 2) / 4.0)  # a far, stronger mode
    heat = torch.tensor(logits, dtype=torch.float32)[None, None]
    centre = torch.tensor([[[20.6 / size, 41.2 / size]]])
    coords, conf, valid = windowed_soft_argmax(heat, centre, kernel=9)
    # Direct average over the 9 x 9 cells around cell (20, 41).
    prob = 1 / (1 + np.exp(-logits[37:46, 16:25]))
    expected = [(prob * xx[37:46, 16:25]).sum() / prob.sum(), (prob * yy[37:46, 16:25]).sum() / prob.sum()]
    assert valid.all() and np.isclose(conf.item(), prob.max(), atol=1e-6)
    assert np.allclose(coords[0, 0].numpy() * size, expected, atol=1e-4)
    assert np.allclose(coords[0, 0].numpy() * size, peak, atol=0.1)  # the far mode is ignored
    # A window that is cut by the map's edge uses only the cells on the map.
    broad = 1.0 - ((xx - 0.5) ** 2 + (yy - 41.0) ** 2) / 20.0
    edge, _, _ = windowed_soft_argmax(torch.tensor(broad, dtype=torch.float32)[None, None],
                                      torch.tensor([[[1.0 / size, 41.2 / size]]]), kernel=9)
    p = 1 / (1 + np.exp(-broad[37:46, 0:6]))
    assert np.isclose(edge[0, 0, 0].item() * size, (p * xx[37:46, 0:6]).sum() / p.sum(), atol=1e-4)
    # A weak window (peak sigmoid < 0.5) keeps the regressed point.
    kept, _ = refine_landmarks(heat - 20.0, centre, kernel=9)
    assert torch.equal(kept, centre)
    # A centre off the map is left as it is.
    off = torch.tensor([[[1.2, 0.5]]])
    kept, conf = refine_landmarks(heat, off, kernel=9)
    assert torch.equal(kept, off) and conf.item() == 0.0


_TFLITE_SCRIPT = r"""
import json, sys, numpy as np, mediapipe
from pathlib import Path
from ai_edge_litert.interpreter import Interpreter
x = np.load(sys.argv[1])
base = Path(mediapipe.__file__).parent / "modules"
out = {}
for key, rel in (("det", "pose_detection/pose_detection.tflite"), ("lm", "pose_landmark/pose_landmark_full.tflite")):
    it = Interpreter(model_path=str(base / rel)); it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x[key]); it.invoke()
    for d in it.get_output_details():
        out[key + d["name"]] = it.get_tensor(d["index"])
np.savez(sys.argv[2], **out)
"""


@pytest.mark.mediapipe
def test_matches_the_tflite_interpreter_on_a_real_frame(tmp_path, estimator):
    if not Path(MP_PYTHON).exists():
        pytest.skip("no mediapipe reference environment")
    check = subprocess.run([MP_PYTHON, "-c", "import ai_edge_litert, mediapipe"], capture_output=True)
    if check.returncode != 0:
        pytest.skip("the reference environment lacks ai-edge-litert")
    from engines.blazepose.pipeline import detector_input
    from engines.blazepose.roi import roi_from_points

    image = first_frames()[0][0]
    det_in = detector_input([image])
    person = estimator.detect([image])[0][0]
    lm_in = landmark_input([image], [roi_from_points(person.keypoints[0], person.keypoints[1])])
    np.savez(tmp_path / "in.npz", det=det_in.transpose(0, 2, 3, 1), lm=lm_in.transpose(0, 2, 3, 1))
    subprocess.run([MP_PYTHON, "-c", _TFLITE_SCRIPT, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                   check=True, capture_output=True)
    ref = np.load(tmp_path / "out.npz")
    det = estimator.backend.detect(det_in)
    lm = estimator.backend.landmarks(lm_in)
    diffs = {
        "regressors": np.abs(det["regressors"] - ref["detIdentity"]).max(),
        "scores": np.abs(det["scores"] - ref["detIdentity_1"]).max(),
        "landmarks": np.abs(lm["landmarks"].reshape(1, -1) - ref["lmIdentity"]).max(),
        "pose_flag": np.abs(lm["pose_flag"] - ref["lmIdentity_1"].ravel()).max(),
        "heatmaps": np.abs(lm["heatmaps"].transpose(0, 2, 3, 1) - ref["lmIdentity_3"]).max(),
        "world": np.abs(lm["world"].reshape(1, -1) - ref["lmIdentity_4"]).max(),
    }
    print(json.dumps({k: float(v) for k, v in diffs.items()}), file=sys.stderr)
    assert diffs["regressors"] < 5e-3 and diffs["scores"] < 5e-3  # values up to ~200
    assert diffs["landmarks"] < 2e-2  # 256-pixel crop units
    assert diffs["heatmaps"] < 5e-3 and diffs["world"] < 1e-3 and diffs["pose_flag"] < 1e-4
