"""Pose metrics against values computed by hand."""

import numpy as np
import pytest

from calibration.errors import TriangulumError
from engines.skeleton import BLAZEPOSE33
from training.metrics import (
    PCP_LIMBS,
    acceleration,
    bone_length_stats,
    face_forward,
    jitter,
    kmeans,
    match_people,
    mpjpe,
    multi_person_pcp,
    n_mpjpe,
    p_mpjpe,
    pck,
    pcp_limbs,
    pose_structure_score,
    procrustes_align,
    relative_mpjpe,
    reprojection_stats,
)


def _rot(axis, deg):
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def test_mpjpe_two_frames_by_hand():
    gt = np.zeros((2, 2, 3))
    pred = np.zeros((2, 2, 3))
    pred[0, 0] = [3.0, 4.0, 0.0]  # frame 0: errors 5, 0 -> 2.5
    pred[1, 0] = [0.0, 0.0, 1.0]  # frame 1: errors 1, 3 -> 2.0
    pred[1, 1] = [0.0, 3.0, 0.0]
    assert mpjpe(pred, gt) == pytest.approx(2.25)
    # a missing joint drops out of its frame's mean: frame 1 becomes 1.0
    pred[1, 1] = np.nan
    assert mpjpe(pred, gt) == pytest.approx((2.5 + 1.0) / 2)


def test_mpjpe_shape_mismatch():
    with pytest.raises(TriangulumError, match="same shape"):
        mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))


def test_relative_mpjpe_removes_translation():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(5, 17, 3))
    pred = gt + np.array([0.3, 0.0, 0.4])
    assert mpjpe(pred, gt) == pytest.approx(0.5)
    assert relative_mpjpe(pred, gt, root=6) == pytest.approx(0.0, abs=1e-12)


def test_n_mpjpe_by_hand():
    pred = np.array([[[1.0, 0.0, 0.0]]])
    gt = np.array([[[2.0, 1.0, 0.0]]])
    # s = <p,g>/<p,p> = 2 -> aligned (2,0,0), error 1
    assert n_mpjpe(pred, gt) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    g = rng.normal(size=(3, 17, 3))
    assert n_mpjpe(0.37 * g, g) == pytest.approx(0.0, abs=1e-12)
    # root-centred variant ignores translation as well
    assert n_mpjpe(0.5 * g + 1.0, g, root=6) == pytest.approx(0.0, abs=1e-12)


def test_procrustes_recovers_similarity_exactly():
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(4, 17, 3))
    r = _rot(2, 40.0) @ _rot(0, -25.0)
    pred = 1.7 * gt @ r.T + np.array([0.5, -2.0, 3.0])
    assert mpjpe(pred, gt) > 1.0
    assert p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-10)
    aligned = procrustes_align(pred, gt)
    assert np.allclose(aligned, gt, atol=1e-10)


def test_procrustes_stretched_cross_by_hand():
    gt = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]])
    pred = np.array([[2.0, 0, 0], [-2, 0, 0], [0, 1, 0], [0, -1, 0]])
    # R = I, t = 0, s = tr(D)/sum|p|^2 = (4 + 2)/10 = 0.6; errors 0.2, 0.2, 0.4, 0.4
    assert p_mpjpe(pred, gt) == pytest.approx(0.3)
    assert np.allclose(procrustes_align(pred, gt)[0], [1.2, 0, 0])


def test_procrustes_does_not_reflect():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(17, 3))
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    # an alignment allowing reflections would reach 0; a proper rotation cannot
    assert p_mpjpe(mirrored, gt) > 0.1
    aligned = procrustes_align(mirrored, gt)
    a, b = aligned - aligned.mean(0), mirrored - mirrored.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    assert np.linalg.det(u @ vt) > 0  # aligned is a proper rotation of the input


def test_procrustes_nan_and_degenerate():
    rng = np.random.default_rng(4)
    gt = rng.normal(size=(2, 6, 3))
    pred = gt @ _rot(1, 30.0).T
    pred[0, 2] = np.nan
    aligned = procrustes_align(pred, gt)
    assert np.isnan(aligned[0, 2]).all()
    assert np.allclose(np.delete(aligned[0], 2, axis=0), np.delete(gt[0], 2, axis=0))
    pred[1, :4] = np.nan  # two valid joints: no rotation can be fixed
    assert np.isnan(procrustes_align(pred, gt)[1]).all()


def test_pck_by_hand():
    gt = np.zeros((1, 4, 3))
    pred = np.zeros((1, 4, 3))
    pred[0, :, 0] = [0.1, 0.2, np.nan, 0.149]
    assert pck(pred, gt, threshold=0.150) == pytest.approx(2 / 3)
    assert pck(pred, gt, threshold=0.5) == pytest.approx(1.0)


def _prototypes():
    protos = np.zeros((3, 4, 3))
    protos[0, 1:] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    protos[1, 1:] = [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]
    protos[2, 1:] = [[0, 0, -1], [1, 1, 0], [0, -1, -1]]
    return protos


def test_pss_constructed_clusters():
    rng = np.random.default_rng(5)
    protos = _prototypes()
    which = np.repeat(np.arange(3), 10)
    gt = protos[which] + rng.normal(scale=0.01, size=(30, 4, 3))
    gt[:, 0] = 0.0
    pred = gt.copy()
    # five predictions take the structure of the next prototype: they must not count
    wrong = np.array([0, 3, 12, 20, 29])
    pred[wrong] = protos[(which[wrong] + 1) % 3]
    # scale and translation do not change a pose's structure
    pred = 3.0 * pred + np.array([1.0, 2.0, 3.0])
    assert pose_structure_score(pred, gt, root=0, k=3) == pytest.approx(25 / 30)
    assert pose_structure_score(gt * 0.5, gt, root=0, k=3) == pytest.approx(1.0)


def test_kmeans_deterministic_and_finds_groups():
    rng = np.random.default_rng(6)
    pts = np.concatenate([rng.normal(c, 0.05, size=(20, 2)) for c in ([0, 0], [5, 0], [0, 5])])
    a, b = kmeans(pts, 3, seed=1), kmeans(pts, 3, seed=1)
    assert np.array_equal(a, b)
    found = sorted(map(tuple, np.round(a).astype(int).tolist()))
    assert found == [(0, 0), (0, 5), (5, 0)]
    with pytest.raises(TriangulumError, match="at least k"):
        kmeans(pts[:2], 3)


def test_bone_length_stats_by_hand():
    pts = np.zeros((4, 3, 3))
    pts[:, 1, 0] = [1.0, 2.0, 3.0, np.nan]  # bone 0-1 lengths 1, 2, 3, missing
    pts[:, 2, 0] = 5.0  # bone 0-2 always 5
    st = bone_length_stats(pts, [(0, 1), (0, 2)])
    assert st.mean == pytest.approx([2.0, 5.0])
    assert st.std == pytest.approx([np.sqrt(2 / 3), 0.0])
    assert st.cv == pytest.approx([np.sqrt(2 / 3) / 2, 0.0])
    assert st.count.tolist() == [3, 4]


def test_reprojection_stats_by_hand():
    err = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 100.0]).reshape(2, 3, 1)
    st = reprojection_stats(err, threshold=10.0)
    assert st.mean == pytest.approx(22.0)
    assert st.median == pytest.approx(3.0)
    # linear percentile over [1,2,3,4,100]: position 3.8 -> 4 + 0.8 * 96
    assert st.p95 == pytest.approx(80.8)
    assert st.share_above == pytest.approx(0.2)
    assert st.count == 5
    assert st.per_camera == pytest.approx([2.0, 52.0])
    assert st.per_joint == pytest.approx([22.0])
    with pytest.raises(TriangulumError, match="cameras, frames, joints"):
        reprojection_stats(np.zeros((3, 4)))


def test_jitter_by_hand():
    fps = 10.0
    t = np.arange(20) / fps
    pts = np.zeros((20, 1, 3))
    pts[:, 0, 0] = 3.0 * t  # constant velocity: no acceleration
    assert jitter(pts, fps) == pytest.approx(0.0, abs=1e-9)
    pts[:, 0, 1] = 0.5 * 2.0 * t**2  # constant acceleration 2 m/s^2
    assert jitter(pts, fps) == pytest.approx(2.0)
    noise = np.zeros((6, 1, 3))
    noise[::2, 0, 2] = 0.001  # 1 mm zig-zag: |1 - 2*0 + 1| = 2 mm per frame^2 = 0.2 m/s^2 at 10 fps
    assert acceleration(noise, fps)[:, 0] == pytest.approx([0.2] * 4)
    noise[3] = np.nan  # triplets touching frame 3 drop out
    assert np.isnan(acceleration(noise, fps)[1:4, 0]).all()
    assert jitter(noise, fps) == pytest.approx(0.2)


def _body(offset=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A BlazePose-33 body whose PCP limbs have known ends and lengths (other joints NaN)."""
    b = np.full((33, 3), np.nan)
    i = BLAZEPOSE33.index
    at = {"nose": (0, 0, 1.7), "left_shoulder": (0.2, 0, 1.5), "right_shoulder": (-0.2, 0, 1.5),
          "left_elbow": (0.2, 0, 1.2), "right_elbow": (-0.2, 0, 1.2), "left_wrist": (0.2, 0, 0.95),
          "right_wrist": (-0.2, 0, 0.95), "left_hip": (0.1, 0, 1.0), "right_hip": (-0.1, 0, 1.0),
          "left_knee": (0.1, 0, 0.55), "right_knee": (-0.1, 0, 0.55), "left_ankle": (0.1, 0, 0.1),
          "right_ankle": (-0.1, 0, 0.1)}
    for name, p in at.items():
        b[i[name]] = np.add(p, offset)
    return b


def test_pcp_by_hand():
    gt = _body()
    pred = gt.copy()
    i = BLAZEPOSE33.index
    # Left forearm (elbow-wrist, 0.25 m): move the wrist 0.24 m: mean end error 0.12 <= 0.125.
    pred[i["left_wrist"]] += (0.24, 0, 0)
    # Right thigh (hip-knee, 0.45 m) and right shank (0.45 m): knee 0.5 m off: 0.25 > 0.225 wrong.
    pred[i["right_knee"]] += (0, 0.5, 0)
    # Head (thorax at z 1.5 to nose, 0.2 m): nose missing: wrong, as a missed joint counts.
    pred[i["nose"]] = np.nan
    correct, classes = pcp_limbs(pred, gt, BLAZEPOSE33)
    assert classes == [c for c, limbs in PCP_LIMBS.items() for _ in limbs]
    by = dict(zip([f"{c}{k}" for c, limbs in PCP_LIMBS.items() for k in range(len(limbs))], correct, strict=True))
    assert by["head0"] == 0 and by["torso0"] == 1
    assert by["lower_arms0"] == 1 and by["lower_arms1"] == 1  # 0.12 m error on a 0.25 m limb passes
    assert by["upper_legs1"] == 0 and by["lower_legs1"] == 0 and by["upper_legs0"] == 1
    # Just over the line: 0.26 m wrist move is 0.13 > 0.125.
    pred[i["left_wrist"]] += (0.02, 0, 0)
    assert pcp_limbs(pred, gt, BLAZEPOSE33)[0][classes.index("lower_arms")] == 0


def test_multi_person_pcp_matches_people_and_scores_a_missed_one_zero():
    a, b = _body(), _body((2.0, 0, 0))
    F = 4
    gt = np.stack([np.repeat(a[None], F, 0), np.repeat(b[None], F, 0)])  # (2, F, 33, 3)
    gt[1, 3] = np.nan  # person b has left in the last frame
    # Predictions listed in the other order; b's is missing in frame 1; in frame 2 the IDs swap.
    pred = np.stack([gt[1].copy(), gt[0].copy()])
    pred[0, 1] = np.nan
    pred[:, 2] = pred[::-1, 2]
    assert match_people(pred[:, 0], gt[:, 0]).tolist() == [1, 0]
    s = multi_person_pcp(pred, gt, BLAZEPOSE33)
    assert s.matched.tolist() == [[1, 1, 0, 1], [0, -1, 1, -1]]
    assert s.per_person[0].tolist() == [100.0] * len(PCP_LIMBS)
    # b: frames 0 and 2 right, frame 1 missed (0), frame 3 absent (not scored): 2/3.
    np.testing.assert_allclose(s.per_person[1], 100 * 2 / 3)
    np.testing.assert_allclose(s.average, (100 + 200 / 3) / 2)
    assert s.id_switches.tolist() == [2, 1]
    with pytest.raises(TriangulumError, match="no true person"):
        multi_person_pcp(pred, np.full_like(gt, np.nan), BLAZEPOSE33)


def test_pss_with_clusters_from_training_poses_and_facing_normalised():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, 6, 3))
    gt = train[:60] + rng.normal(0, 0.01, (60, 6, 3))
    assert pose_structure_score(gt, gt, root=0, k=10, training=train) == 1.0
    far = gt + rng.normal(0, 3.0, gt.shape)
    assert pose_structure_score(far, gt, root=0, k=10, training=train) < 0.5
    # Turning a pose about the vertical does not change it once faced forward.
    a = 0.7
    turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    np.testing.assert_allclose(face_forward(gt @ turn.T, 1, 2), face_forward(gt, 1, 2), atol=1e-12)
    ff = face_forward(gt, 1, 2)
    np.testing.assert_allclose((ff[:, 1, 0] - ff[:, 2, 0]), 0, atol=1e-12)
    assert (ff[:, 1, 1] - ff[:, 2, 1] > 0).all()
