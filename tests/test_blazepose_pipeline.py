"""BlazePose per-view pipeline on the real demo videos: tracking, all-people detection, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shared_data import TEST_DATA

from calibration.errors import TriangulumError
from engines.blazepose.pipeline import BlazePoseEstimator
from engines.blazepose.roi import Roi, crop_to_image, image_to_crop, roi_from_points

DATA = TEST_DATA
VIDEOS = sorted((DATA / "pose2sim-demo-single" / "videos").glob("cam*.mp4"))


def frame_sets(count: int) -> list[list[np.ndarray]]:
    import cv2

    if not VIDEOS:
        pytest.skip("demo videos not available")
    caps = [cv2.VideoCapture(str(p)) for p in VIDEOS]
    return [[cv2.cvtColor(c.read()[1], cv2.COLOR_BGR2RGB) for c in caps] for _ in range(count)]


def test_roi_maps_round_trip_and_point_up():
    roi = roi_from_points(np.array([400.0, 900.0]), np.array([430.0, 500.0]))
    # Hip centre -> scale point is turned to point straight up in the crop.
    crop_pts = image_to_crop(np.array([[400.0, 900.0], [430.0, 500.0]]), roi, 256)
    assert np.allclose(crop_pts[0], [128, 128]) and np.isclose(crop_pts[1, 0], 128)
    assert crop_pts[1, 1] < 128
    pts = np.random.default_rng(0).uniform(0, 256, (10, 2))
    assert np.allclose(image_to_crop(crop_to_image(pts, roi, 256), roi, 256), pts)
    assert isinstance(roi, Roi) and np.isclose(roi.size, 2 * np.hypot(30, 400) * 1.25)


@pytest.mark.slow
def test_tracks_between_detections_and_batches_views():
    sets = frame_sets(3)
    est = BlazePoseEstimator("torch")
    calls = []
    original = est.backend.landmarks
    est.backend.landmarks = lambda crops: calls.append(len(crops)) or original(crops)
    first = est(sets[0])
    ids = [p.track_id for p in first]
    assert all(p is not None and p.redetected for p in first)
    for frames in sets[1:]:
        poses = est(frames)
        assert all(p is not None and not p.redetected for p in poses)  # no detector while tracking
        assert [p.track_id for p in poses] == ids  # same person, no silent switch
    assert calls == [4, 4, 4]  # every frame: all views in one landmark batch
    # Consecutive frames at 60 fps: the body barely moves.
    assert np.median(np.linalg.norm(poses[0].keypoints[:33] - first[0].keypoints[:33], axis=1)) < 15


@pytest.mark.slow
def test_people_tracker_and_user_selection():
    from engines.tracker import PeopleTracker

    frames = frame_sets(1)[0]
    est = BlazePoseEstimator("torch")
    # The multi-person tracker runs the estimator's own detect/estimate on BGR frames: the
    # same person as the RGB single-subject path, within the crop snapping's effect.
    people = PeopleTracker(est)([np.ascontiguousarray(f[..., ::-1]) for f in frames])
    assert all(len(p) >= 1 for p in people)
    single = BlazePoseEstimator("torch")(frames)
    for view, pose in zip(people, single, strict=True):
        assert np.min(np.median(np.linalg.norm(view.keypoints - pose.keypoints[:33], axis=-1), axis=1)) < 10
    # Select the person found in view 0: the next call re-detects and follows that person.
    target = est.detect([frames[0]])[0][0].keypoints[0]
    est([frames[0]])
    est.select(0, tuple(target))
    pose = est([frames[0]])[0]
    assert pose.redetected and np.linalg.norm(pose.keypoints[33] - target) < 20


def test_bad_images_are_clear_errors():
    est = BlazePoseEstimator("torch")
    with pytest.raises(TriangulumError, match="uint8 colour image"):
        est([np.zeros((10, 10), np.uint8)])
    with pytest.raises(TriangulumError, match="view ids"):
        est([np.zeros((10, 10, 3), np.uint8)], views=[0, 1])


def test_nobody_in_a_blank_frame():
    est = BlazePoseEstimator("torch")
    assert est([np.full((480, 640, 3), 90, np.uint8)]) == [None]
    assert est.detect([np.zeros((480, 640, 3), np.uint8)]) == [[]]


@pytest.mark.slow
def test_detect2d_cli_writes_keypoints(tmp_path):
    from app.cli import main

    if not VIDEOS:
        pytest.skip("demo videos not available")
    out = tmp_path / "kp.npz"
    assert main(["detect2d", str(VIDEOS[0]), "-o", str(out), "--max-frames", "2"]) == 0
    data = np.load(out)
    kp = data[f"{VIDEOS[0].stem}/keypoints"]
    assert kp.shape == (2, 33, 3) and np.isfinite(kp).all()
    assert (kp[..., 2] >= 0).all() and (kp[..., 2] <= 1).all()
    assert list(data["joint_names"][:2]) == ["nose", "left_eye_inner"]
    assert main(["detect2d", str(tmp_path / "missing.mp4"), "-o", str(out)]) == 2


@pytest.mark.mediapipe
@pytest.mark.slow
def test_agrees_with_mediapipe_pose_on_the_first_frames(tmp_path):
    """mp.solutions.pose (model_complexity=1) on the same decoded frames, run in its own env."""
    import os
    import subprocess

    mp_python = os.environ.get("TRIANGULUM_MP_PYTHON", "/opt/mpref/bin/python")
    if not Path(mp_python).exists():
        pytest.skip("no mediapipe reference environment")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mediapipe_reference.py"
    sets = [[s[0], s[3]] for s in frame_sets(12)]  # cam01 and cam04
    proc = subprocess.Popen([mp_python, str(script), "pose", str(tmp_path / "mp.npz"), "--stdin", "2"],
                            stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for frames in sets:
        for f in frames:
            proc.stdin.write(np.array(f.shape[:2], np.int32).tobytes() + f.tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    ref = np.load(tmp_path / "mp.npz")
    est = BlazePoseEstimator("torch")
    dist = []
    for i, frames in enumerate(sets):
        for v, pose in enumerate(est(frames)):
            assert pose is not None and ref[f"found_{v}"][i]
            dist.append(np.linalg.norm(pose.keypoints[:33] - ref[f"landmarks_{v}"][i, :, :2], axis=1))
    dist = np.concatenate(dist)
    assert np.median(dist) < 1.5 and np.percentile(dist, 95) < 10


@pytest.mark.slow
def test_onnxruntime_backend_gives_the_same_poses_as_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIANGULUM_CACHE", str(tmp_path))
    frames = frame_sets(1)[0]
    torch_poses = BlazePoseEstimator("torch")(frames)
    ort_poses = BlazePoseEstimator("onnxruntime")(frames)
    for a, b in zip(torch_poses, ort_poses, strict=True):
        assert np.abs(a.keypoints[:33] - b.keypoints[:33]).max() < 0.5
        assert np.abs(a.confidence - b.confidence).max() < 1e-3
    assert any(tmp_path.rglob("*.onnx"))  # exported into the cache it was pointed at
