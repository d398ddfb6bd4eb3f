"""Calibration from a person: synthetic joints from the real Qualisys rig, then real BlazePose detections."""

from __future__ import annotations

import numpy as np
import pytest
from calib_support import KEYPOINTS, QCA, needs_pose2sim, trc_world

from calibration.alignment import compare_rigs
from calibration.errors import TriangulumError
from calibration.formats import convert
from calibration.from_person import PersonOptions, calibrate_from_person

pytestmark = needs_pose2sim

# Pose2Sim's BODY_25B markers in the reference TRC.
TRC_HEAD, TRC_FEET, TRC_TRUNK = (13,), ((5, 11), (3, 9)), (0, 6, 15, 18)  # Head; heels, big toes; hips, shoulders
# BlazePose-33 (engines/skeleton.py): left/right eye, heels and foot tips.
BP_EYES, BP_FEET, BP_TRUNK = (2, 5), ((29, 30), (31, 32)), (11, 12, 23, 24)


@pytest.fixture(scope="module")
def qualisys():
    return convert(QCA)


def _synthetic(rig, walk: bool, seed: int = 0):
    """Pose2Sim's reconstructed motion seen by the real rig, 2 px noise, 5 % gross outliers."""
    W = trc_world()
    if walk:  # carry the balancing person around the floor: stand, move 0.5 m, stand...
        f = np.arange(len(W))
        hop = np.clip((f % 25 - 20) / 5, 0, 1) + f // 25  # 0 .. 4 in four steps
        path = np.array([[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5], [0, 0]])
        lo = np.minimum(np.floor(hop).astype(int), 3)
        xy = path[lo] + (hop - lo)[:, None] * (path[lo + 1] - path[lo])
        W = W + np.concatenate([xy, np.zeros((len(W), 1))], 1)[:, None, :]
    rng = np.random.default_rng(seed)
    x = rig.project(W)
    x = x + rng.normal(size=x.shape) * 2.0
    conf = np.full(x.shape[:-1], 0.9)
    bad = rng.random(conf.shape) < 0.05
    x[bad] += rng.normal(size=(int(bad.sum()), 2)) * 80
    conf[rng.random(conf.shape) < 0.05] = 0.1
    return x, conf


@pytest.mark.parametrize("walk", [False, True])
def test_synthetic_person_recovers_the_rig(qualisys, walk):
    x, conf = _synthetic(qualisys, walk)
    # The head marker sits near the top of the head: ratio ~0.99 of stature.
    opts = PersonOptions(height=1.75, top=TRC_HEAD, feet=TRC_FEET, trunk=TRC_TRUNK, top_ratio=0.99, max_frames=50)
    res = calibrate_from_person(x, conf, qualisys, opts)
    cmp = compare_rigs(res.rig, qualisys)
    assert cmp.max_angle_error() < 0.5 and cmp.max_centre_error() < 0.02, cmp.summary()
    assert np.median(res.errors) < 3.0
    assert res.rig.names == qualisys.names
    if walk:
        # Walking over the floor levels the world: Z up within 3 degrees (the planted feet
        # of Pose2Sim's reconstruction are themselves ~1.3 degrees off level), feet on z ~ 0.
        assert cmp.up_angle_deg() < 3.0
        feet_z = res.points[:, [j for g in TRC_FEET for j in g], 2]
        assert np.nanpercentile(feet_z, 5) == pytest.approx(0.0, abs=0.02)
        assert not any("one spot" in w for w in res.warnings)
    else:
        # Standing in one spot: up comes from balance (trunk over the planted foot).
        assert any("one spot" in w for w in res.warnings)
        assert cmp.up_angle_deg() < 4.0
    # Scale from the stature: head-marker height in the TRC is ~1.70 m at the top.
    assert res.scale is not None and cmp.scale == pytest.approx(1.0, abs=0.1)


def test_real_blazepose_detections_recover_the_rig(qualisys):
    data = np.load(KEYPOINTS)
    assert list(data["cameras"]) == qualisys.names
    opts = PersonOptions(height=1.70, top=BP_EYES, feet=BP_FEET, trunk=BP_TRUNK, max_frames=50)
    res = calibrate_from_person(data["keypoints"], data["confidence"], qualisys, opts)
    cmp = compare_rigs(res.rig, qualisys)
    assert cmp.max_angle_error() < 5.0, cmp.summary()
    assert cmp.max_centre_error() < 0.10, cmp.summary()
    assert np.median(res.errors) < 8.0
    # The balancing person's trunk over the planted foot levels the floor within a few degrees.
    assert cmp.up_angle_deg() < 5.0


def test_bad_inputs(qualisys):
    x, conf = _synthetic(qualisys, False)
    with pytest.raises(TriangulumError, match="expected \\(4, frames, joints, 2\\)"):
        calibrate_from_person(x[:3], conf[:3], qualisys)
    with pytest.raises(TriangulumError, match="confidences have shape"):
        calibrate_from_person(x, conf[..., :5], qualisys)
    hidden = conf.copy()
    hidden[2] = 0.0
    with pytest.raises(TriangulumError, match="camera 'cam03': only 0 confident keypoints"):
        calibrate_from_person(x, hidden, qualisys)


@pytest.mark.parametrize("bystander", ["standing", "moving"])
def test_a_view_that_follows_another_person_is_refused_not_written_as_good(qualisys, bystander):
    """cam03 follows someone 2 m away (standing still, or moving as the performer does, played
    backwards) while the other views follow the performer. Before this check the solver culled
    cam03's keypoints as outliers and returned cam03 14-108 degrees and 0.8-1.9 m off at a
    1.5 px median error; now it refuses and names the camera."""
    x, conf = _synthetic(qualisys, walk=False)
    W = trc_world()
    other = (np.repeat(W[:1], len(W), 0) if bystander == "standing" else W[::-1]) + np.array([-1.65, -1.38, 0.0])
    x[2] = qualisys.subset(["cam03"]).project(other)[0] + np.random.default_rng(1).normal(size=x[2].shape) * 2.0
    opts = PersonOptions(height=1.75, top=TRC_HEAD, feet=TRC_FEET, trunk=TRC_TRUNK, top_ratio=0.99, max_frames=50)
    with pytest.raises(TriangulumError, match=r"camera\(s\) cam03 \(\d+ %\) agree with the others.*another person"):
        calibrate_from_person(x, conf, qualisys, opts)
    # The same views with cam03 on the performer give the rig (the check does not fire on good data).
    good, good_conf = _synthetic(qualisys, walk=False)
    res = calibrate_from_person(good, good_conf, qualisys, opts)
    assert compare_rigs(res.rig, qualisys).max_angle_error() < 0.5


def _candidates(x: np.ndarray, conf: np.ndarray, others: list[np.ndarray], order: list[int]):
    """Per view: the performer (x[c]) and each other person's 2D, in `order[c]` (0: performer first)."""
    from calibration.same_person import Candidates

    views = []
    for c in range(len(x)):
        people = [(x[c], conf[c])] + [(o[c], np.full(conf[c].shape, 0.9)) for o in others]
        if order[c]:
            people = people[::-1]
        views.append(Candidates(np.stack([p[0] for p in people]), np.stack([p[1] for p in people]),
                                np.arange(len(people)) + 10 * c))
    return views


@pytest.mark.parametrize("bystander", ["standing", "moving"])
def test_the_same_person_is_found_among_everyone_tracked_so_a_bystander_does_not_break_it(qualisys, bystander):
    """Every view tracks both people (cam03 lists the bystander first, as a one-person tracker
    would follow him); the candidate search picks the performer everywhere and the rig is right."""
    from calibration.same_person import same_person

    x, conf = _synthetic(qualisys, walk=True)
    W = trc_world()
    other_3d = (np.repeat(W[:1], len(W), 0) if bystander == "standing" else W[::-1]) + np.array([-1.65, -1.38, 0.0])
    other = qualisys.project(other_3d) + np.random.default_rng(2).normal(size=x.shape) * 2.0
    views = _candidates(x, conf, [other], order=[0, 1, 1, 0])
    chosen = same_person(views, qualisys)
    assert chosen.consistent and chosen.tracks == [[0], [11], [21], [30]]  # the performer in every view
    assert np.nanmin(chosen.agreement) > 0.7
    opts = PersonOptions(height=1.75, top=TRC_HEAD, feet=TRC_FEET, trunk=TRC_TRUNK, top_ratio=0.99, max_frames=50)
    res = calibrate_from_person(chosen.keypoints, chosen.confidence, qualisys, opts)
    cmp = compare_rigs(res.rig, qualisys)
    assert cmp.max_angle_error() < 0.5 and cmp.max_centre_error() < 0.02, cmp.summary()
    # The other views see only the performer and cam03 only the bystander: no choice agrees;
    # that is said, and calibration refuses.
    views = _candidates(x, conf, [], order=[0, 0, 0, 0])
    views[2] = _candidates(other, conf, [], order=[0, 0, 0, 0])[2]
    chosen = same_person(views, qualisys)
    assert not chosen.consistent and any("no choice of people agrees" in n for n in chosen.notes)
    with pytest.raises(TriangulumError, match=r"cam03.*another person"):
        calibrate_from_person(chosen.keypoints, chosen.confidence, qualisys, opts)


def test_a_track_broken_by_an_occlusion_is_joined_again(qualisys):
    from calibration.same_person import same_person

    x, conf = _synthetic(qualisys, walk=True)
    views = _candidates(x, conf, [], order=[0, 0, 0, 0])
    # cam02's tracker lost the performer at frame 50 and gave him a new ID.
    from calibration.same_person import Candidates

    first, second = x[1].copy(), x[1].copy()
    first[50:], second[:50] = np.nan, np.nan
    views[1] = Candidates(np.stack([first, second]), np.stack([conf[1], conf[1]]), np.array([5, 6]))
    chosen = same_person(views, qualisys)
    assert chosen.tracks[1] == [5, 6]
    assert np.allclose(chosen.keypoints[1], x[1], equal_nan=True)
