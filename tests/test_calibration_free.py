"""Calibration-free capture: cameras and the person from the views alone (calibration.uncalibrated).

Synthetic: real motion capture (a CMU clip) filmed by the real Qualisys rig, 2D with
noise and outliers, BlazePose-like single-view 3D poses (the body in each camera's axes, 2 cm
noise, some frames mirrored as BlazePose mirrors a body seen from behind). Real: the studio
videos through `triangulum process --calib none`, against the Qualisys calibration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from calib_support import QCA, needs_pose2sim
from shared_data import TEST_DATA

from app.person_calibration import person_options
from calibration.alignment import compare_rigs
from calibration.bundle_adjust import BundleOptions, Observations, bundle_adjust
from calibration.errors import TriangulumError
from calibration.formats import convert
from calibration.rig import Rig
from calibration.rig_io import load_rig
from calibration.uncalibrated import (
    average_rotation,
    guess_intrinsics,
    initialise,
    solve_uncalibrated,
)

pytestmark = needs_pose2sim
ROOT = Path(__file__).resolve().parents[1]
VIDEOS = TEST_DATA / "pose2sim-demo-single" / "videos"


@pytest.fixture(scope="module")
def qualisys():
    return convert(QCA)


@pytest.fixture(scope="module")
def motion():
    from training.mocap import load_clips

    # 003_01 is in a fresh clone's copy of the motion capture too
    clip = load_clips(TEST_DATA / "mocap-cmu", ("003",), step=1)["003_01"][:120].astype(np.float64)
    assert len(clip) == 120
    # stand the person where the studio's cameras look (the force plate near the origin)
    hips = clip[:, [23, 24]].mean(1).mean(0) * np.array([1, 1, 0])
    return clip - hips


def _views(rig: Rig, X: np.ndarray, seed: int = 0, mirrored: float = 0.1):
    """2D (C, F, J, 2) with 2 px noise and 3 % outliers, confidences, and single-view 3D poses."""
    rng = np.random.default_rng(seed)
    x = rig.project(X) + rng.normal(size=(len(rig), *X.shape[:2], 2)) * 2.0
    bad = rng.random(x.shape[:-1]) < 0.03
    x[bad] += rng.normal(size=(int(bad.sum()), 2)) * 60
    conf = np.full(x.shape[:-1], 0.9)
    hip = X[:, [23, 24]].mean(1, keepdims=True)
    world = np.stack([(X - hip) @ cam.R.T for cam in rig.cameras]) + rng.normal(size=(len(rig), *X.shape)) * 0.02
    flip = rng.random(world.shape[:2]) < mirrored  # a mirrored monocular pose (a body seen from behind)
    world[flip, :, 0] *= -1
    return x, conf, world


def _guess(rig: Rig, ratio: float = 0.866) -> Rig:
    return guess_intrinsics(rig.names, [c.size for c in rig.cameras], ratio)


def test_robust_rotation_average_outvotes_wrong_frames():
    rng = np.random.default_rng(3)
    from scipy.spatial.transform import Rotation

    truth = Rotation.from_rotvec([0.3, -1.2, 0.4])
    good = (Rotation.from_rotvec(rng.normal(size=(40, 3)) * np.radians(2)) * truth).as_matrix()
    wrong = Rotation.random(12, random_state=4).as_matrix()
    R, inliers = average_rotation(np.concatenate([good, wrong]), np.ones(52))
    angle = np.degrees(np.linalg.norm(Rotation.from_matrix(R @ truth.as_matrix().T).as_rotvec()))
    assert angle < 1.0 and inliers[:40].all() and inliers[40:].sum() <= 1


def test_one_focal_per_camera_keeps_square_pixels(qualisys, motion):
    """Bundle adjustment with "f": fx = fy throughout, and the focal length is found again from a
    start 10 % off when the poses are right."""
    rig = Rig([cam.__class__(cam.name, cam.size, cam.K * np.array([[1, 0, 1], [0, 1, 1], [0, 0, 1]]), np.zeros(5),
                             cam.R, cam.t) for cam in qualisys.cameras])
    for cam in rig.cameras:
        cam.K[1, 1] = cam.K[0, 0]
    X = motion[::6].reshape(-1, 3)
    x = rig.project(X)
    start = Rig([cam.__class__(cam.name, cam.size, cam.K * np.array([[0.9, 0, 1], [0, 0.9, 1], [0, 0, 1]]),
                               cam.dist, cam.R, cam.t) for cam in rig.cameras])
    c, e = np.meshgrid(np.arange(len(rig)), np.arange(len(X)), indexing="ij")
    obs = Observations(c.ravel(), e.ravel(), x.reshape(-1, 2))
    res = bundle_adjust(start, obs, X, BundleOptions(intrinsics=("f",), fixed_cameras=tuple(range(len(rig)))))
    for got, want in zip(res.rig.cameras, rig.cameras, strict=True):
        assert got.K[0, 0] == got.K[1, 1]
        assert abs(got.K[0, 0] / want.K[0, 0] - 1) < 1e-3


def test_the_stages_recover_the_rig_from_the_views_alone(qualisys, motion):
    x, conf, world = _views(qualisys, motion)
    guess = _guess(qualisys)
    rig1, P1 = initialise(x, conf, world, guess)
    first = compare_rigs(rig1, qualisys)
    # stage 1 is an initialisation: degrees and decimetres, good enough for the adjustment
    assert first.max_angle_error() < 10, first.summary()
    res = solve_uncalibrated(x, conf, world, guess, person_options(1.75, max_frames=60))
    cmp = compare_rigs(res.rig, qualisys)
    assert cmp.max_angle_error() < 1.5 and cmp.max_centre_error() < 0.10, cmp.summary()
    assert [s.name[0] for s in res.stages] == ["1", "3"]
    assert res.stages[-1].median_px < res.stages[0].median_px
    for got, want in zip(res.rig.cameras, qualisys.cameras, strict=True):
        assert abs(got.K[0, 0] / want.K[0, 0] - 1) < 0.06
    # Z up on the floor, metric: the feet near z = 0 and the person about as tall as told
    assert abs(np.nanpercentile(res.points[:, [29, 30, 31, 32], 2], 5)) < 0.05
    assert res.rig.metadata["source"] == "calibration-free"


def test_a_bystander_listed_first_in_some_views_does_not_break_it(qualisys, motion):
    """Every view tracks the performer and a second person walking 2 m away (listed first in
    two views, as a tracker may list them): the person who is the same across views is found
    with the guessed intrinsics, and the rig comes out as from the performer alone."""
    from calibration.same_person import Candidates, same_person

    x, conf, world = _views(qualisys, motion)
    other = motion[::-1] + np.array([-1.6, -1.3, 0.0])
    bx, bconf, bworld = _views(qualisys, other, seed=1)
    views = []
    for c in range(len(qualisys)):
        order = [1, 0] if c in (1, 2) else [0, 1]
        people = [(x[c], conf[c], world[c]), (bx[c], bconf[c], bworld[c])]
        views.append(Candidates(np.stack([people[k][0] for k in order]), np.stack([people[k][1] for k in order]),
                                np.array(order), np.stack([people[k][2] for k in order])))
    guess = _guess(qualisys)
    chosen = same_person(views, guess, intrinsics_known=False)
    assert chosen.tracks == [[0], [0], [0], [0]]
    res = solve_uncalibrated(chosen.keypoints, chosen.confidence, chosen.world, guess,
                             person_options(1.75, max_frames=60))
    cmp = compare_rigs(res.rig, qualisys)
    assert cmp.max_angle_error() < 1.5 and cmp.max_centre_error() < 0.10, cmp.summary()


def test_views_that_cannot_agree_are_refused(qualisys, motion):
    """cam03 films another moment of the motion: its 2D fits no camera, and the solver says so
    instead of writing a rig whose kept keypoints agree only because cam03's were culled."""
    x, conf, world = _views(qualisys, motion)
    x[2] = x[2][::-1]
    world[2] = world[2][::-1]
    with pytest.raises(TriangulumError, match="cam03"):
        solve_uncalibrated(x, conf, world, _guess(qualisys), person_options(1.75, max_frames=60))


def test_process_without_a_calibration_on_the_studio_videos(qualisys, tmp_path):
    """The user's command: videos, no calibration. The rig it writes is within 5 degrees and
    10 cm of the Qualisys calibration (after a similarity), and is a calibration `--calib` reads."""
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "app.cli", "process", *sorted(map(str, VIDEOS.glob("cam*.mp4"))),
                          "--no-overlays", "--formats", "trc", "-o", str(out)], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "No calibration: cameras estimated from the person" in run.stdout
    rig = load_rig(out / "calibration.toml")
    cmp = compare_rigs(rig, qualisys)
    assert cmp.max_angle_error() < 5 and cmp.max_centre_error() < 0.10, cmp.summary()
    figures = json.loads((out / "calibration_free.json").read_text())
    assert [s["stage"][0] for s in figures["stages"]] == ["1", "2", "3"]
    assert (out / "poses3d.npz").is_file() and (out / "person0.trc").is_file()


def test_calib_none_needs_videos(tmp_path):
    run = subprocess.run([sys.executable, "-m", "app.cli", "process", "--calib", "none", "-o", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0 and "--calib none needs the videos" in run.stderr
