"""Bundle adjustment, similarity alignment and world frames on synthetic rigs built from the real Qualisys one."""

from __future__ import annotations

import numpy as np
import pytest
from calib_support import QCA, needs_pose2sim

from calibration.alignment import compare_rigs, rotation_angle_deg, umeyama
from calibration.boards import Board
from calibration.bundle_adjust import (
    INTRINSIC_NAMES,
    BundleOptions,
    Observations,
    bundle_adjust,
    camera_from_params,
    camera_params,
    check_projection_agrees,
    params_to_pose,
)
from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.formats import convert
from calibration.rig import Rig
from calibration.world_frame import (
    fit_parallel_planes,
    fit_plane,
    frame_from_board,
    frame_from_floor,
    transform_points,
    transform_rig,
)

pytestmark = needs_pose2sim


@pytest.fixture(scope="module")
def qualisys() -> Rig:
    return convert(QCA)


def _board_scene(rig: Rig, n_poses: int = 15, seed: int = 0, noise: float = 0.3):
    """Board poses in the middle of the Qualisys volume and their noisy observations."""
    rng = np.random.default_rng(seed)
    board = Board("charuco", 6, 5, 0.08, 0.06)
    poses = np.concatenate([rng.normal(size=(n_poses, 3)) * 0.6, rng.normal(size=(n_poses, 3)) * 0.3 + [0, 0, 1.0]], 1)
    cam, el, pts, loc = [], [], [], []
    for s in range(n_poses):
        R, t = params_to_pose(poses[s])
        x = rig.project(board.object_points @ R.T + t)
        for c in range(len(rig)):
            ok = np.isfinite(x[c]).all(-1)
            cam += [c] * int(ok.sum())
            el += [s] * int(ok.sum())
            pts.append(x[c][ok] + rng.normal(size=(int(ok.sum()), 2)) * noise)
            loc.append(board.object_points[ok])
    return Observations(np.array(cam), np.array(el), np.concatenate(pts), np.concatenate(loc)), poses


def _perturbed(rig: Rig, seed: int, rot: float = 0.02, trans: float = 0.05, fixed: int = 0) -> Rig:
    rng = np.random.default_rng(seed)
    cams = []
    for i, c in enumerate(rig.cameras):
        ext, intr = camera_params(c)
        if i != fixed:
            ext = ext + np.concatenate([rng.normal(size=3) * rot, rng.normal(size=3) * trans])
        cams.append(camera_from_params(c, ext, intr))
    return Rig(cams)


def test_residual_path_matches_camera_project(qualisys):
    X = np.random.default_rng(0).normal(size=(100, 3)) * 0.8 + [0, 0, 1]
    for cam in qualisys.cameras:
        assert check_projection_agrees(cam, X) < 1e-9


def test_board_bundle_adjustment_recovers_the_rig(qualisys):
    obs, poses = _board_scene(qualisys)
    start = _perturbed(qualisys, 1)
    rng = np.random.default_rng(2)
    p0 = poses + np.concatenate([rng.normal(size=(len(poses), 3)) * 0.02, rng.normal(size=(len(poses), 3)) * 0.02], 1)
    res = bundle_adjust(start, obs, p0, BundleOptions())
    assert res.cost_final < res.cost_initial / 100
    assert np.median(res.errors) < 0.5
    for got, true in zip(res.rig.cameras, qualisys.cameras, strict=True):
        assert np.linalg.norm(got.center - true.center) < 0.003
        assert rotation_angle_deg(got.R, true.R) < 0.05
    # The gauge camera did not move.
    assert np.allclose(res.rig.cameras[0].R, start.cameras[0].R) and np.allclose(res.rig.cameras[0].t, start.cameras[0].t)


def test_robust_loss_resists_outliers(qualisys):
    obs, poses = _board_scene(qualisys, seed=3)
    rng = np.random.default_rng(4)
    bad = rng.random(len(obs)) < 0.05
    obs.points[bad] += rng.normal(size=(int(bad.sum()), 2)) * 40
    start = _perturbed(qualisys, 5)
    robust = bundle_adjust(start, obs, poses, BundleOptions(loss="soft_l1", f_scale=1.0))
    plain = bundle_adjust(start, obs, poses, BundleOptions(loss="linear"))
    err = [max(np.linalg.norm(a.center - b.center) for a, b in zip(r.rig.cameras, qualisys.cameras, strict=True)) for r in (robust, plain)]
    assert err[0] < 0.01 and err[0] < err[1]


def test_intrinsics_can_be_refined(qualisys):
    obs, poses = _board_scene(qualisys, n_poses=25, seed=6, noise=0.2)
    cams = []
    for c in qualisys.cameras:
        K = c.K.copy()
        K[0, 0] *= 1.01
        K[1, 1] *= 1.01
        cams.append(Camera(c.name, c.size, K, c.dist, c.R, c.t))
    res = bundle_adjust(Rig(cams), obs, poses, BundleOptions(intrinsics=("fx", "fy")))
    for got, true in zip(res.rig.cameras, qualisys.cameras, strict=True):
        assert got.K[0, 0] == pytest.approx(true.K[0, 0], rel=0.002)
    with pytest.raises(TriangulumError, match="unknown intrinsic"):
        bundle_adjust(Rig(cams), obs, poses, BundleOptions(intrinsics=("focal",)))
    assert len(INTRINSIC_NAMES) == 9


def test_free_points_bundle_adjustment(qualisys):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 3)) * [0.4, 0.4, 0.6] + [0, 0, 1.0]
    x = qualisys.project(X)
    c_i, p_i = np.nonzero(np.isfinite(x).all(-1))
    obs = Observations(c_i, p_i, x[c_i, p_i] + rng.normal(size=(len(c_i), 2)) * 0.5)
    start = _perturbed(qualisys, 8, rot=0.01, trans=0.03)
    res = bundle_adjust(start, obs, X + rng.normal(size=X.shape) * 0.01, BundleOptions(f_scale=2.0))
    assert np.median(res.errors) < 0.7
    # Without a board the scale floats: compare after a similarity.
    cmp = compare_rigs(res.rig, qualisys)
    assert cmp.max_angle_error() < 0.1 and cmp.max_centre_error() < 0.01


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(10, 3))
    R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R *= np.sign(np.linalg.det(R))
    dst = 1.7 * src @ R.T + [1, 2, 3]
    s, R2, t = umeyama(src, dst)
    assert s == pytest.approx(1.7) and np.allclose(R2, R) and np.allclose(t, [1, 2, 3])
    with pytest.raises(TriangulumError):
        umeyama(src[:2], dst[:2])


def test_transform_rig_keeps_projections_and_compare_undoes_it(qualisys):
    R = params_to_pose(np.array([0.3, -0.2, 1.0, 0, 0, 0]))[0]
    moved = transform_rig(qualisys, 0.5, R, np.array([1.0, -2.0, 0.3]))
    X = np.random.default_rng(1).normal(size=(20, 3)) * 0.5 + [0, 0, 1]
    X2 = transform_points(X, 0.5, R, np.array([1.0, -2.0, 0.3]))
    assert np.allclose(qualisys.project(X), moved.project(X2), atol=1e-6)
    cmp = compare_rigs(moved, qualisys)
    assert cmp.scale == pytest.approx(2.0) and cmp.max_centre_error() < 1e-9 and cmp.max_angle_error() < 1e-5


def test_world_frame_from_a_floor_board():
    # A board lying face up on the floor of a Z-up world, rotated about Z and shifted.
    yaw = np.radians(30)
    Rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    R_board = Rz @ np.diag([1.0, -1.0, -1.0])  # board z into the board = down
    t_board = np.array([0.5, -0.2, 0.0])
    # Express it in some arbitrary current world.
    Rw = params_to_pose(np.array([0.4, 0.1, -0.7, 0, 0, 0]))[0]
    tw = np.array([2.0, 0.5, -1.0])
    R, t = frame_from_board(Rw @ R_board, Rw @ t_board + tw)
    corner = Rw @ (R_board @ np.array([0.3, 0.2, 0.0]) + t_board) + tw
    new = R @ corner + t
    assert new == pytest.approx([0.3, -0.2, 0.0], abs=1e-9)
    up = R @ (Rw @ np.array([0, 0, 1.0]))
    assert up == pytest.approx([0, 0, 1], abs=1e-9)


def test_floor_plane_and_frame():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-1, 1, (200, 2)), rng.normal(size=(200, 1)) * 0.005], 1)
    pts[:20, 2] += rng.uniform(0.2, 0.5, 20)  # lifted feet
    n, d, inl = fit_plane(pts, threshold=0.03)
    assert abs(abs(n[2]) - 1) < 1e-3 and inl[20:].mean() > 0.95 and inl[:20].mean() < 0.1
    R, t = frame_from_floor(n, d, np.array([0, 0, 1.0]), np.array([0.2, 0.1, 0.5]), np.array([1.0, 0, 0]))
    assert R @ np.array([0.2, 0.1, 0.0]) + t == pytest.approx([0, 0, 0], abs=0.01)
    assert R[2] @ [0, 0, 1] > 0.999


def test_parallel_planes_for_heels_and_toes():
    rng = np.random.default_rng(1)
    tilt = params_to_pose(np.array([0.05, -0.03, 0.0, 0, 0, 0]))[0]  # floor ~3.3 degrees off
    normal = tilt @ np.array([0, 0, 1.0])
    heels = np.concatenate([rng.uniform(-1, 1, (150, 2)), np.full((150, 1), 0.08)], 1)
    toes = np.concatenate([rng.uniform(-1, 1, (150, 2)), np.full((150, 1), 0.03)], 1)
    heels[:30, 2] += rng.uniform(0.1, 0.4, 30)  # a raised foot
    groups = [heels @ tilt.T + rng.normal(size=(150, 3)) * 0.003, toes @ tilt.T + rng.normal(size=(150, 3)) * 0.003]
    for guess in ([0, 0, 1.0], [0.3, 0.2, 1.0]):
        n, offsets, masks = fit_parallel_planes(groups, np.array(guess), 0.02)
        assert np.degrees(np.arccos(np.clip(n @ normal, -1, 1))) < 0.3
        assert offsets == pytest.approx([0.08, 0.03], abs=0.005)
        assert masks[0][:30].mean() < 0.1 and masks[0][30:].mean() > 0.9
