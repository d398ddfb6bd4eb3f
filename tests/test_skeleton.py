"""Joint sets, trees, mirroring and conversions."""

import numpy as np
import pytest

from calibration.errors import TriangulumError
from engines.skeleton import (
    BLAZEPOSE33,
    COCO17,
    H36M17,
    LIMB_BONES,
    all_skeletons,
    bone_colours,
    convert,
    extend,
    flip_left_right,
    flip_permutation,
    get_skeleton,
    joint_colours,
    left_right_pairs,
    limb_bone_indices,
    limb_joint_indices,
    side,
)


def test_blazepose_order_matches_mediapipe():
    j = BLAZEPOSE33.joints
    assert len(j) == 33
    assert j[:5] == ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner")
    assert j[11:13] == ("left_shoulder", "right_shoulder")
    assert j[23:25] == ("left_hip", "right_hip")
    assert j[31:] == ("left_foot_index", "right_foot_index")


def test_h36m_order_matches_reference():
    j = H36M17.joints
    assert len(j) == 17
    assert j[0] == "right_ankle" and j[5] == "left_ankle" and j[6] == "pelvis"
    assert j[8] == "thorax" and j[9] == "head_top" and j[10] == "right_wrist"
    assert j[12] == "right_shoulder" and j[15] == "left_wrist" and j[16] == "neck_nose"
    assert H36M17.root == 6


def test_coco_order():
    assert COCO17.joints[0] == "nose" and COCO17.joints[5] == "left_shoulder"
    assert COCO17.joints[16] == "right_ankle"


@pytest.mark.parametrize("sk", list(all_skeletons().values()), ids=list(all_skeletons()))
def test_tree_is_connected_and_rooted_at_pelvis(sk):
    names = sk.tree_names
    assert names[sk.root] == "pelvis"
    for j in range(len(names)):
        seen, k = set(), j
        while sk.parents[k] >= 0:
            assert k not in seen, "cycle"
            seen.add(k)
            k = sk.parents[k]
        assert k == sk.root


@pytest.mark.parametrize("sk", list(all_skeletons().values()), ids=list(all_skeletons()))
def test_flip_is_an_involution_that_swaps_sides(sk):
    perm = flip_permutation(sk)
    assert np.array_equal(perm[perm], np.arange(sk.num_joints))
    for i, p in enumerate(perm):
        a, b = sk.joints[i], sk.joints[p]
        if side(a) == "centre":
            assert p == i
        else:
            assert side(a) != side(b)
            assert a.replace("left", "X").replace("right", "X") == b.replace("left", "X").replace(
                "right", "X"
            )
    pts = np.random.default_rng(0).normal(size=(4, sk.num_joints, 3))
    flipped = flip_left_right(pts, sk)
    assert np.array_equal(flip_left_right(flipped, sk), pts)
    li, ri = sk.index["left_knee"], sk.index["right_knee"]
    assert np.array_equal(flipped[:, li], pts[:, ri])


def test_left_right_pairs_counts():
    assert len(left_right_pairs(BLAZEPOSE33)) == 16  # 33 = nose + 16 pairs
    assert len(left_right_pairs(COCO17)) == 8
    assert len(left_right_pairs(H36M17)) == 6


def test_colours_follow_sides():
    jc = joint_colours(BLAZEPOSE33)
    assert jc.shape == (35, 3)
    assert not np.array_equal(jc[BLAZEPOSE33.index["left_knee"]], jc[BLAZEPOSE33.index["right_knee"]])
    bc = bone_colours(COCO17)
    assert bc.shape == (len(COCO17.bones), 3)
    hips = COCO17.bones.index((COCO17.index["left_hip"], COCO17.index["right_hip"]))
    assert tuple(bc[hips]) == (200, 200, 200)


def test_convert_blazepose_to_h36m_by_hand():
    pts = np.full((33, 3), np.nan)
    ix = BLAZEPOSE33.index
    pts[ix["left_hip"]] = [1.0, 0.0, 1.0]
    pts[ix["right_hip"]] = [-1.0, 0.0, 1.0]
    pts[ix["left_shoulder"]] = [1.0, 0.0, 3.0]
    pts[ix["right_shoulder"]] = [-1.0, 2.0, 3.0]
    pts[ix["nose"]] = [0.0, 0.5, 3.5]
    out = convert(pts, BLAZEPOSE33, H36M17)
    h = H36M17.index
    assert np.allclose(out[h["pelvis"]], [0.0, 0.0, 1.0])
    assert np.allclose(out[h["thorax"]], [0.0, 1.0, 3.0])
    assert np.allclose(out[h["spine"]], [0.0, 0.5, 2.0])
    assert np.allclose(out[h["neck_nose"]], [0.0, 0.5, 3.5])
    assert np.allclose(out[h["left_hip"]], [1.0, 0.0, 1.0])
    assert np.isnan(out[h["head_top"]]).all()  # no correspondence
    assert np.isnan(out[h["left_knee"]]).all()  # missing in the input


def test_convert_roundtrips_shared_joints_and_batches():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(2, 5, 17, 3))
    coco = convert(pts, H36M17, COCO17)
    assert coco.shape == (2, 5, 17, 3)
    assert np.isnan(coco[..., COCO17.index["left_eye"], :]).all()
    back = convert(coco, COCO17, H36M17)
    for name in ("left_knee", "right_wrist", "left_shoulder"):
        assert np.allclose(back[..., H36M17.index[name], :], pts[..., H36M17.index[name], :])
    # H36M pelvis is not the hip midpoint, so the COCO round trip replaces it by that midpoint
    mid = 0.5 * (pts[..., 2, :] + pts[..., 3, :])
    assert np.allclose(back[..., 6, :], mid)
    same = convert(pts, H36M17, H36M17)
    assert np.array_equal(same, pts) and same is not pts


def test_convert_rejects_wrong_joint_count():
    with pytest.raises(TriangulumError, match="blazepose33"):
        convert(np.zeros((17, 3)), BLAZEPOSE33, H36M17)


def test_extend_adds_virtual_midpoints():
    pts = np.arange(33 * 3, dtype=float).reshape(33, 3)
    ext = extend(pts, BLAZEPOSE33)
    assert ext.shape == (35, 3)
    assert np.allclose(ext[BLAZEPOSE33.index["pelvis"]], 0.5 * (pts[23] + pts[24]))
    assert np.allclose(ext[BLAZEPOSE33.index["thorax"]], 0.5 * (pts[11] + pts[12]))
    pts[23] = np.nan
    assert np.isnan(extend(pts, BLAZEPOSE33)[BLAZEPOSE33.index["pelvis"]]).all()
    assert extend(np.zeros((17, 3)), H36M17).shape == (17, 3)


@pytest.mark.parametrize("sk", list(all_skeletons().values()), ids=list(all_skeletons()))
def test_limb_indices(sk):
    lj = limb_joint_indices(sk)
    assert len(lj) == 12 and len(set(lj.tolist())) == 12
    bones = limb_bone_indices(sk)
    assert set(bones) == set(LIMB_BONES)
    a, b = bones["left_shank"]
    assert sk.tree_names[a] == "left_knee" and sk.tree_names[b] == "left_ankle"


def test_get_skeleton_error():
    assert get_skeleton("coco17") is COCO17
    assert get_skeleton("body25").num_joints == 25  # other detectors' skeletons are declared too
    with pytest.raises(TriangulumError, match="Unknown skeleton 'body135'"):
        get_skeleton("body135")


def test_other_detectors_orders():
    from engines.detector_skeletons import BODY25, BODY25B, COCO18, HALPE26

    assert BODY25.joints[1] == "neck" and BODY25.joints[8] == "pelvis" and BODY25.joints[24] == "right_heel"
    assert BODY25.joints[15] == "right_eye" and BODY25.joints[19] == "left_big_toe"
    assert BODY25B.joints[:5] == COCO17.joints[:5] and BODY25B.joints[17:19] == ("neck", "head_top")
    assert COCO18.joints[8] == "right_hip" and COCO18.joints[17] == "left_ear"
    assert HALPE26.joints[:17] == COCO17.joints and HALPE26.joints[17:20] == ("head_top", "neck", "pelvis")
    assert HALPE26.joints[25] == "right_heel"
