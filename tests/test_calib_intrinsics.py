"""Intrinsic calibration: the Pose2Sim checkerboard photos against Qualisys, and synthetic views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from calib_support import CAMERAS, QCA, needs_pose2sim, pose2sim_photo_views  # noqa: F401

from calibration.boards import Board, Detection
from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.formats import convert
from calibration.geometry import rodrigues_to_matrix
from calibration.intrinsics import (
    PARAMS,
    IntrinsicsOptions,
    ViewDetections,
    calibrate_intrinsics,
    coverage_map,
    fisheye_to_standard,
    select_views,
    undistort_preview,
)


@needs_pose2sim
@pytest.mark.parametrize("cam", CAMERAS)
def test_pose2sim_photos_agree_with_qualisys(pose2sim_photo_views, cam):  # noqa: F811
    board, views = pose2sim_photo_views
    ref = convert(QCA)[cam]
    result = calibrate_intrinsics(views[cam], board)
    K = result.camera.K
    assert K[0, 0] == pytest.approx(ref.K[0, 0], rel=0.02)
    assert K[1, 1] == pytest.approx(ref.K[1, 1], rel=0.02)
    assert abs(K[0, 2] - ref.K[0, 2]) < 50 and abs(K[1, 2] - ref.K[1, 2]) < 50
    assert result.rms < 0.5 and result.camera.size == (1088, 1920)
    # Every parameter has an uncertainty, and six or seven photos earn warnings.
    assert all(np.isfinite(result.std[p]) and result.std[p] > 0 for p in PARAMS)
    assert all(np.isfinite(result.spread[p]) for p in PARAMS)
    assert any("views" in w for w in result.warnings)
    assert any("covered only" in w for w in result.warnings)


def _synthetic_views(cam: Camera, board: Board, n: int, seed: int = 0, noise: float = 0.2) -> ViewDetections:
    """Board views projected through a known camera, tilted and spread over the image."""
    rng = np.random.default_rng(seed)
    W, H = cam.size
    dets = {}
    obj = board.object_points
    centre = obj.mean(0)
    f = 0
    while len(dets) < n:
        rvec = rng.normal(size=3) * 0.45
        R = rodrigues_to_matrix(torch.as_tensor(rvec)).numpy()
        depth = rng.uniform(0.5, 1.2)
        target = np.array([rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H])
        ray = np.linalg.inv(cam.K) @ np.array([*target, 1.0])
        t = ray * depth - R @ centre
        X = obj @ R.T + t
        x = Camera("v", cam.size, cam.K, cam.dist).project(X)
        inside = np.isfinite(x).all(1) & (x[:, 0] > 0) & (x[:, 0] < W) & (x[:, 1] > 0) & (x[:, 1] < H)
        if inside.all() and (X[:, 2] > 0.1).all():
            dets[f] = Detection(np.arange(len(x)), x + rng.normal(size=x.shape) * noise)
        f += 1
    return ViewDetections(cam.name, cam.size, dets, f)


def test_synthetic_calibration_recovers_the_camera():
    cam = Camera("c", (1280, 720), [[900, 0, 650], [0, 905, 350], [0, 0, 1]], [-0.25, 0.08, 0.001, -0.0005, 0.0])
    board = Board("charuco", 7, 5, 0.04, 0.03)
    views = _synthetic_views(cam, board, 30)
    # One view with a gross error must be rejected.
    bad = views.detections[next(iter(views.detections))]
    bad.corners = bad.corners + np.random.default_rng(1).normal(size=bad.corners.shape) * 8
    result = calibrate_intrinsics(views, board, IntrinsicsOptions(max_views=25))
    assert result.rejected, "the corrupted view was not rejected"
    K = result.camera.K
    assert K[0, 0] == pytest.approx(900, rel=0.005) and K[1, 1] == pytest.approx(905, rel=0.005)
    assert abs(K[0, 2] - 650) < 20 and abs(K[1, 2] - 350) < 20
    assert result.rms < 0.35
    # The true values lie within a few reported standard deviations.
    values = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "k1": result.camera.dist[0]}
    for name, true in (("fx", 900), ("fy", 905), ("cx", 650), ("cy", 350), ("k1", -0.25)):
        assert abs(values[name] - true) < 5 * result.uncertainty(name), name


def test_select_views_prefers_diversity():
    cam = Camera("c", (1280, 720), [[900, 0, 640], [0, 900, 360], [0, 0, 1]])
    board = Board("charuco", 7, 5, 0.04, 0.03)
    views = _synthetic_views(cam, board, 12, seed=3)
    # Forty copies of one view must not crowd out the others.
    first = views.detections[next(iter(views.detections))]
    for k in range(40):
        views.detections[10_000 + k] = Detection(first.ids, first.corners + 0.01 * k)
    chosen = select_views(views, board, 12)
    assert len(chosen) == 12
    assert sum(f >= 10_000 for f in chosen) <= 2


def test_coverage_map_counts_views():
    d = Detection(np.arange(4), np.array([[0, 0], [100, 0], [100, 100], [0, 100]], float))
    cov = coverage_map([d, d], (320, 240), cell=16)
    assert cov.shape == (15, 20)
    assert cov[2, 2] == 2 and cov[12, 18] == 0


def test_fisheye_is_re_expressed_in_the_standard_model():
    import cv2

    K = np.array([[900.0, 0, 640], [0, 900.0, 360], [0, 0, 1]])
    D = np.array([0.05, -0.01, 0.002, 0.0])
    cam, err = fisheye_to_standard(K, D, (1280, 720), "fish")
    assert err < 0.5
    # A 130-degree diagonal is beyond the polynomial model: the error says so.
    _, wide = fisheye_to_standard(K * [[2 / 3], [2 / 3], [1]], D, (1280, 720), "wide")
    assert wide > 5
    # Pixels from cv2.fisheye and from our model agree on random rays inside the image.
    rays = np.random.default_rng(0).uniform([-0.8, -0.45], [0.8, 0.45], (50, 2))
    X = np.concatenate([rays, np.ones((50, 1))], 1)
    fish = cv2.fisheye.projectPoints(X.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D.reshape(4, 1))[0].reshape(-1, 2)
    assert np.abs(cam.project(X) - fish).max() < 0.5


def test_fisheye_model_end_to_end():
    import cv2

    K = np.array([[900.0, 0, 640], [0, 900.0, 360], [0, 0, 1]])
    D = np.array([0.02, -0.005, 0.001, 0.0])
    cam, _ = fisheye_to_standard(K, D, (1280, 720), "fish")
    board = Board("charuco", 7, 5, 0.04, 0.03)
    views = _synthetic_views(cam, board, 20, seed=5, noise=0.1)
    result = calibrate_intrinsics(views, board, IntrinsicsOptions(model="fisheye"))
    assert result.model == "fisheye" and result.fisheye_fit_px is not None and result.fisheye_fit_px < 1.0
    assert result.camera.K[0, 0] == pytest.approx(900, rel=0.01)
    assert result.rms < 0.3
    assert cv2 is not None


def test_too_few_views_and_no_board():
    board = Board("charuco", 7, 5, 0.04, 0.03)
    with pytest.raises(TriangulumError, match="no board detected in any of 30 frames of cam_2"):
        calibrate_intrinsics(ViewDetections("cam_2", (640, 480), {}, 30), board)
    one = Detection(np.arange(24), np.random.default_rng(0).uniform(0, 400, (24, 2)))
    with pytest.raises(TriangulumError, match="only 1 frame"):
        calibrate_intrinsics(ViewDetections("cam_2", (640, 480), {0: one}, 30), board)


def test_undistort_preview_checks_size():
    cam = Camera("c", (64, 48), [[50, 0, 32], [0, 50, 24], [0, 0, 1]], [-0.2, 0, 0, 0, 0])
    out = undistort_preview(cam, np.full((48, 64, 3), 200, np.uint8))
    assert out.shape == (48, 64, 3)
    with pytest.raises(TriangulumError, match="calibration is for 64x48"):
        undistort_preview(cam, np.zeros((10, 10, 3), np.uint8))
