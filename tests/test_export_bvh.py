"""BVH export, checked by an independent parser and forward kinematics on real motion."""


import numpy as np
import pytest
from shared_data import TEST_DATA

from app.export.bvh import BvhConfig, write_bvh
from app.export.trc import read_trc
from calibration.errors import TriangulumError
from engines.skeleton import BLAZEPOSE33, COCO17, H36M17, Skeleton, convert, extend

DATA = TEST_DATA
REFERENCE_TRC = DATA / "pose2sim-demo-single" / "reference" / "pose2sim_body25b_0-100.trc"

# OpenPose BODY_25B marker -> BlazePose joint (the big toe stands in for the foot index)
BODY25B_TO_BLAZEPOSE = {
    "RHip": "right_hip", "RKnee": "right_knee", "RAnkle": "right_ankle",
    "RBigToe": "right_foot_index", "RHeel": "right_heel",
    "LHip": "left_hip", "LKnee": "left_knee", "LAnkle": "left_ankle",
    "LBigToe": "left_foot_index", "LHeel": "left_heel", "Nose": "nose",
    "RShoulder": "right_shoulder", "RElbow": "right_elbow", "RWrist": "right_wrist",
    "LShoulder": "left_shoulder", "LElbow": "left_elbow", "LWrist": "left_wrist",
}


def reference_take(skeleton: Skeleton) -> np.ndarray:
    """(100, J, 3) world metres: Pose2Sim's reconstruction of the demo take on `skeleton`."""
    if not REFERENCE_TRC.exists():
        pytest.skip("shared data not available")
    trc = read_trc(REFERENCE_TRC)
    blaze = np.full((len(trc.world), BLAZEPOSE33.num_joints, 3), np.nan)
    for src, dst in BODY25B_TO_BLAZEPOSE.items():
        blaze[:, BLAZEPOSE33.index[dst]] = trc.world[:, trc.names.index(src)]
    if skeleton is BLAZEPOSE33:
        return blaze
    out = convert(blaze, BLAZEPOSE33, skeleton)
    if skeleton is H36M17:
        out[:, H36M17.index["head_top"]] = trc.world[:, trc.names.index("Head")]
    return out


# ---- an independent reader: tokenise, build the tree, forward kinematics --------------------


def _axis_rotation(axis: str, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    if axis == "X":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "Y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def parse_bvh(text: str):
    tokens = text.split()
    joints, stack, pos = [], [], 0
    while tokens[pos] != "MOTION":
        tok = tokens[pos]
        if tok in ("ROOT", "JOINT"):
            joints.append({"name": tokens[pos + 1], "parent": stack[-1] if stack else -1})
            pos += 2
        elif tok == "End":  # End Site
            joints.append({"name": None, "parent": stack[-1], "channels": []})
            pos += 2
        elif tok == "{":
            stack.append(len(joints) - 1)
            pos += 1
        elif tok == "}":
            stack.pop()
            pos += 1
        elif tok == "OFFSET":
            joints[-1]["offset"] = np.array([float(t) for t in tokens[pos + 1 : pos + 4]])
            pos += 4
        elif tok == "CHANNELS":
            n = int(tokens[pos + 1])
            joints[-1]["channels"] = tokens[pos + 2 : pos + 2 + n]
            pos += 2 + n
        else:
            pos += 1
    assert tokens[pos + 1] == "Frames:" and tokens[pos + 3] == "Frame" and tokens[pos + 4] == "Time:"
    frames, frame_time = int(tokens[pos + 2]), float(tokens[pos + 5])
    values = np.array([float(t) for t in tokens[pos + 6 :]]).reshape(frames, -1)
    return joints, frame_time, values


def forward_kinematics(joints, values) -> dict[str, np.ndarray]:
    """Name -> (F, 3) joint positions in the file's frame and units."""
    out = {}
    for f, row in enumerate(values):
        col, glob, posn = 0, {}, {}
        for i, j in enumerate(joints):
            rot, trans = np.eye(3), np.zeros(3)
            for ch in j["channels"]:
                if ch.endswith("position"):
                    trans["XYZ".index(ch[0])] = row[col]
                else:
                    rot = rot @ _axis_rotation(ch[0], row[col])
                col += 1
            p = j["parent"]
            if p < 0:
                posn[i], glob[i] = j["offset"] + trans, rot
            else:
                posn[i] = posn[p] + glob[p] @ j["offset"]
                glob[i] = glob[p] @ rot
            if j["name"] is not None:
                out.setdefault(j["name"], np.zeros((len(values), 3)))[f] = posn[i]
        assert col == values.shape[1]
    return out


def _angle_deg(a, b):
    cos = np.einsum("...i,...i", a, b) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _check_reconstruction(path, joints, skeleton, scale):
    joints_file, frame_time, values = parse_bvh(path.read_text())
    fk = forward_kinematics(joints_file, values)
    tree = extend(joints, skeleton)
    names = skeleton.tree_names
    # file (X, Y, Z) = world (Y, Z, X)
    recon = {n: p[:, [2, 0, 1]] / scale for n, p in fk.items() if n in names}
    root = names[skeleton.root]
    seen = ~np.isnan(tree[:, skeleton.root]).any(-1)
    assert np.allclose(recon[root][seen], tree[seen, skeleton.root], atol=2e-6)
    worst_angle, checked = 0.0, 0
    for parent, child in skeleton.tree_bones():
        if names[child] not in recon:
            assert np.isnan(tree[:, child]).all()  # only never-seen joints are left out
            continue
        obs = tree[:, child] - tree[:, parent]
        rec = recon[names[child]] - recon[names[parent]]
        ok = ~np.isnan(obs).any(-1)
        worst_angle = max(worst_angle, _angle_deg(rec[ok], obs[ok]).max())
        checked += 1
    assert checked >= 14  # legs, trunk, arms and head are all there
    assert worst_angle < 1e-3  # bone directions are reproduced exactly, far below 1 degree
    # positions differ from the input only by each bone's deviation from its rest length
    lengths = {}
    for parent, child in skeleton.tree_bones():
        if names[child] in recon:
            obs_len = np.linalg.norm(tree[:, child] - tree[:, parent], axis=-1)
            rest_len = np.nanmedian(obs_len)
            lengths[child] = (parent, np.abs(obs_len - rest_len))
    for child in lengths:
        bound, j = np.zeros(len(tree)), child
        while j in lengths:
            parent, dev = lengths[j]
            bound += dev
            j = parent
        err = np.linalg.norm(recon[names[child]] - tree[:, child], axis=-1)
        ok = ~np.isnan(bound)
        assert ok.any()
        assert (err[ok] <= bound[ok] + 1e-5).all(), names[child]
    return frame_time, recon


@pytest.mark.parametrize("skeleton", [BLAZEPOSE33, H36M17, COCO17], ids=lambda s: s.name)
def test_bvh_reproduces_real_motion(tmp_path, skeleton):
    joints = reference_take(skeleton)
    path = write_bvh(tmp_path / "take.bvh", joints, skeleton, fps=60.0)
    frame_time, recon = _check_reconstruction(path, joints, skeleton, scale=1.0)
    assert frame_time == pytest.approx(1 / 60, abs=1e-8)
    assert "left_eye" not in recon  # never observed in this take
    text = path.read_text()
    # a joint with several children gets link joints so each bone can turn on its own
    if skeleton is BLAZEPOSE33:
        assert "JOINT pelvis_to_thorax" in text and "JOINT left_ankle_to_left_foot_index" in text
    if skeleton is H36M17:
        assert "ROOT pelvis" in text and "JOINT pelvis_to_left_hip" in text


def test_bvh_centimetres_xyz_and_missing_frames(tmp_path):
    joints = reference_take(H36M17)
    rng = np.random.default_rng(0)
    holes = rng.random(joints.shape[:2]) < 0.05
    joints[holes] = np.nan
    joints[10:13, H36M17.index["pelvis"]] = np.nan
    path = write_bvh(
        tmp_path / "take.bvh", joints, H36M17, 60.0, BvhConfig(units="cm", rotation_order="XYZ")
    )
    assert "CHANNELS 3 Xrotation Yrotation Zrotation" in path.read_text()
    _check_reconstruction(path, joints, H36M17, scale=100.0)


def test_bvh_rest_pose_is_a_tpose_with_median_lengths(tmp_path):
    joints = reference_take(BLAZEPOSE33)
    path = write_bvh(tmp_path / "take.bvh", joints, BLAZEPOSE33, 60.0)
    parsed = {j["name"]: j for j in parse_bvh(path.read_text())[0] if j["name"]}
    ix = BLAZEPOSE33.index
    shank = np.linalg.norm(joints[:, ix["left_ankle"]] - joints[:, ix["left_knee"]], axis=-1)
    assert np.allclose(parsed["left_ankle"]["offset"], [0, -np.median(shank), 0], atol=1e-6)
    assert parsed["left_elbow"]["offset"][0] > 0.2  # arms out along +X, left side
    assert parsed["right_elbow"]["offset"][0] < -0.2


def test_bvh_errors(tmp_path):
    joints = np.full((5, 17, 3), np.nan)
    with pytest.raises(TriangulumError, match="pelvis"):
        write_bvh(tmp_path / "x.bvh", joints, H36M17, 30.0)
    with pytest.raises(TriangulumError, match="units"):
        write_bvh(tmp_path / "x.bvh", np.zeros((5, 17, 3)), H36M17, 30.0, BvhConfig(units="in"))
