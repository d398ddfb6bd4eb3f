"""2D keypoints from files (`triangulum process --keypoints`): the studio take's own 2D written
as OpenPose JSON and read back gives the 3D of processing the videos; other detectors'
skeletons (BODY_25) reconstruct in their own joints; bad files get our error."""

import json

import numpy as np
import pytest
from test_process_support import sample_result

from app.cli import main
from app.process.keypoints import keypoint_take, read_openpose
from app.sample import sample_calibration
from calibration.errors import TriangulumError
from engines.detector_skeletons import BODY25
from engines.skeleton import BLAZEPOSE33

pytestmark = pytest.mark.slow


def write_openpose(folder, views_per_frame, camera: int, convert=None):
    """Every person of one camera's views as OpenPose JSON, one file per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, views in enumerate(views_per_frame):
        v = views[camera]
        people = []
        for p in range(len(v)):
            kp, cf = v.keypoints[p], v.confidence[p]
            if convert is not None:
                kp, cf = convert(kp, cf)
            a = np.concatenate([np.nan_to_num(kp), np.where(np.isfinite(kp).all(-1), cf, 0.0)[:, None]], 1)
            people.append({"person_id": [-1], "pose_keypoints_2d": a.ravel().tolist()})
        (folder / f"take_{k:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))


def to_body25(kp, cf):
    """BlazePose 2D -> BODY_25's joints (neck and mid-hip as midpoints, big toe = foot index)."""
    ix = BLAZEPOSE33.index
    out, c = np.full((25, 2), np.nan), np.zeros(25)
    for j, name in enumerate(BODY25.joints):
        src = {"neck": ("left_shoulder", "right_shoulder"), "pelvis": ("left_hip", "right_hip"),
               "left_big_toe": ("left_foot_index",), "right_big_toe": ("right_foot_index",)}.get(name, (name,))
        if all(s in ix for s in src):
            out[j] = kp[[ix[s] for s in src]].mean(0)
            c[j] = cf[[ix[s] for s in src]].min()
    return out, c


def test_the_studio_take_as_openpose_json_gives_the_same_3d(tmp_path):
    result = sample_result()
    views = [fr.views for fr in result.frames]
    for c, cam in enumerate(result.take.cameras):
        write_openpose(tmp_path / "json" / f"{cam}_json", views, c)
    out = tmp_path / "out"
    assert main(["process", "--keypoints", str(tmp_path / "json"), "--calib", str(sample_calibration()),
                 "--fps", "60", "-o", str(out), "--formats", "trc,csv"]) == 0
    z = np.load(out / "poses3d.npz")
    ours = result.person(result.main).final.joints
    theirs = z[f"person{int(z['main_person'])}_joints"]
    assert theirs.shape == ours.shape == (100, 33, 3)
    d = np.linalg.norm(theirs - ours, axis=-1)
    assert np.nanmax(d) < 1e-3  # the same 3D within 1 mm
    assert (out / "person0.trc").is_file()


def test_body25_keypoints_reconstruct_in_body25(tmp_path):
    result = sample_result()
    views = [fr.views for fr in result.frames[:40]]
    for c, cam in enumerate(result.take.cameras):
        write_openpose(tmp_path / f"{cam}_json", views, c, to_body25)
    take, per_frame, skeleton = keypoint_take(sorted(tmp_path.glob("*_json")), "openpose", sample_calibration(), 60.0)
    assert skeleton is BODY25 and take.frames == 40 and len(per_frame[0]) == 4
    out = tmp_path / "out"
    assert main(["process", "--keypoints", *map(str, sorted(tmp_path.glob("*_json"))), "--calib",
                 str(sample_calibration()), "--fps", "60", "-o", str(out), "--formats", "trc,bvh"]) == 0
    z = np.load(out / "poses3d.npz")
    joints = z[f"person{int(z['main_person'])}_joints"]
    assert joints.shape == (40, 25, 3) and z["joint_names"].tolist() == list(BODY25.joints)
    # the joints both skeletons have come out where the BlazePose take has them
    ref = result.person(result.main).final.joints[:40]
    for name in ("left_knee", "right_wrist", "left_ankle"):
        d = np.linalg.norm(joints[:, BODY25.index[name]] - ref[:, BLAZEPOSE33.index[name]], axis=-1)
        assert np.nanmedian(d) < 0.01, name
    names = (out / "person0.trc").read_text().splitlines()[3].split("\t")
    assert "CHip" in names and "LBigToe" in names and "Neck" in names  # Pose2Sim's BODY_25 marker names
    assert "JOINT LeftToeBase" in (out / "person0.bvh").read_text()


def test_bad_keypoint_files_get_our_error(tmp_path):
    folder = tmp_path / "cam01_json"
    folder.mkdir()
    (folder / "x_000000000000_keypoints.json").write_text("{not json")
    with pytest.raises(TriangulumError, match="frame 0.*not an OpenPose JSON"):
        read_openpose(folder, "cam01")
    (folder / "x_000000000000_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2]}]}))
    with pytest.raises(TriangulumError, match="2 values"):
        read_openpose(folder, "cam01")
    assert main(["process", "--keypoints", str(folder), "--calib", str(sample_calibration())]) == 2
    assert main(["process", "--keypoints", str(tmp_path / "nothing"), "--calib", str(sample_calibration()),
                 "--fps", "30"]) == 2


def test_mmpose_coco17_json_and_our_detect2d_npz(tmp_path):
    from engines.skeleton import COCO17, convert

    result = sample_result()
    person = result.person(result.main)  # (C, F, 33, 2) as repaired for the main performer
    kp, cf = person.keypoints[:, :30], person.confidence[:, :30]
    for c, cam in enumerate(result.take.cameras):
        coco = convert(kp[c], BLAZEPOSE33, COCO17)
        scores = convert(cf[c][..., None], BLAZEPOSE33, COCO17)[..., 0]
        frames = [{"frame_id": k, "instances": [{"keypoints": np.nan_to_num(coco[k]).tolist(),
                                                 "keypoint_scores": np.where(np.isfinite(coco[k, :, 0]), scores[k], 0).tolist()}]}
                  for k in range(30)]
        (tmp_path / f"{cam}.json").write_text(json.dumps(frames))
    take, views, skeleton = keypoint_take(sorted(tmp_path.glob("cam*.json")), "mmpose", sample_calibration(), 60.0)
    assert skeleton is COCO17 and take.frames == 30 and views[0][0].keypoints.shape == (1, 17, 2)
    out = tmp_path / "coco"
    assert main(["process", "--keypoints", *map(str, sorted(tmp_path.glob("cam*.json"))), "--keypoint-format",
                 "mmpose", "--calib", str(sample_calibration()), "--fps", "60", "-o", str(out), "--formats", "csv"]) == 0
    assert np.load(out / "poses3d.npz")["person0_joints"].shape == (30, 17, 3)

    # detect2d's layout: <camera>/keypoints (F, 33, 3) with the confidence last
    arrays = {f"{cam}/keypoints": np.concatenate([kp[c], cf[c][..., None]], -1).astype(np.float32)
              for c, cam in enumerate(result.take.cameras)}
    np.savez(tmp_path / "detect2d.npz", **arrays)
    out = tmp_path / "npz"
    assert main(["process", "--keypoints", str(tmp_path / "detect2d.npz"), "--keypoint-format", "npz",
                 "--calib", str(sample_calibration()), "--fps", "60", "-o", str(out), "--formats", "csv"]) == 0
    joints = np.load(out / "poses3d.npz")["person0_joints"]
    ref = person.final.joints[:30]
    assert np.nanmedian(np.linalg.norm(joints - ref, axis=-1)) < 2e-3


DLC_PARTS = {"LeftHip": "left_hip", "RightHip": "right_hip", "knee_l": "left_knee", "knee_r": "right_knee",
             "l_ankle": "left_ankle", "r_ankle": "right_ankle", "LShoulder": "left_shoulder",
             "RShoulder": "right_shoulder", "elbowL": "left_elbow", "elbowR": "right_elbow",
             "LeftWrist": "left_wrist", "RightWrist": "right_wrist", "Nose": "nose"}


def write_dlc(path, kp, cf, individuals=("single",)):
    """A DeepLabCut CSV of one camera: kp (F, 33, 2), cf (F, 33); multi-animal with several
    individuals (the others a copy moved 300 px right)."""
    ix = BLAZEPOSE33.index
    multi = len(individuals) > 1
    head = [["scorer"] + ["DLC_resnet50"] * (3 * len(DLC_PARTS) * len(individuals))]
    if multi:
        head.append(["individuals"] + [w for w in individuals for _ in range(3 * len(DLC_PARTS))])
    head.append(["bodyparts"] + [p for _ in individuals for p in DLC_PARTS for _ in range(3)])
    head.append(["coords"] + ["x", "y", "likelihood"] * (len(DLC_PARTS) * len(individuals)))
    lines = [",".join(r) for r in head]
    for f in range(len(kp)):
        row = [str(f)]
        for k, _ in enumerate(individuals):
            for part in DLC_PARTS.values():
                x, y = kp[f, ix[part]] + [300 * k, 0]
                ok = np.isfinite(x)
                row += [f"{x:.3f}" if ok else "", f"{y:.3f}" if ok else "", f"{cf[f, ix[part]]:.4f}" if ok else "0"]
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")


def test_deeplabcut_csv_single_and_multi_animal(tmp_path):
    result = sample_result()
    person = result.person(result.main)
    kp, cf = person.keypoints[:, :30], person.confidence[:, :30]
    for c, cam in enumerate(result.take.cameras):
        write_dlc(tmp_path / f"{cam}DLC_resnet50.csv", kp[c], cf[c])
    files = sorted(tmp_path.glob("cam*.csv"))
    take, views, skeleton = keypoint_take(files, "dlc", sample_calibration(), 60.0)
    assert skeleton.name == "dlc" and skeleton.joints[:2] == ("left_hip", "right_hip") and skeleton.num_joints == 13
    out = tmp_path / "out"
    assert main(["process", "--keypoints", *map(str, files), "--keypoint-format", "dlc", "--calib",
                 str(sample_calibration()), "--fps", "60", "-o", str(out), "--formats", "trc,csv"]) == 0
    joints = np.load(out / "poses3d.npz")["person0_joints"]
    ref = person.final.joints[:30]
    for j, name in enumerate(skeleton.joints):
        d = np.linalg.norm(joints[:, j] - ref[:, BLAZEPOSE33.index[name]], axis=-1)
        assert np.nanmedian(d) < 0.01, name
    multi = tmp_path / "multi"
    multi.mkdir()
    for c, cam in enumerate(result.take.cameras):
        write_dlc(multi / f"{cam}.csv", kp[c], cf[c], individuals=("ind1", "ind2"))
    _, views, _ = keypoint_take(sorted(multi.glob("*.csv")), "dlc", sample_calibration(), 60.0)
    assert views[0][0].keypoints.shape == (2, 13, 2)
    bad = tmp_path / "bad"
    bad.mkdir()
    for cam in result.take.cameras:
        (bad / f"{cam}.csv").write_text("scorer,a,a,a\nbodyparts,tail,tail,tail\ncoords,x,y,likelihood\n0,1,2,0.9\n")
    with pytest.raises(TriangulumError, match="tail have no anatomical name"):
        keypoint_take(sorted(bad.glob("*.csv")), "dlc", sample_calibration(), 60.0)


def test_deeplabcut_h5_reads_as_its_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables", reason="PyTables not installed (DeepLabCut's .h5 needs it)")
    from app.process.keypoints import read_dlc

    result = sample_result()
    person = result.person(result.main)
    write_dlc(tmp_path / "cam01.csv", person.keypoints[0, :20], person.confidence[0, :20])
    pd.read_csv(tmp_path / "cam01.csv", header=[0, 1, 2], index_col=0).to_hdf(tmp_path / "cam01.h5", key="df_with_missing")
    a, names_a = read_dlc(tmp_path / "cam01.csv", "cam01")
    b, names_b = read_dlc(tmp_path / "cam01.h5", "cam01")
    assert names_a == names_b and len(a.frames) == len(b.frames) == 20
    for fa, fb in zip(a.frames, b.frames, strict=True):
        np.testing.assert_allclose(fa, fb, atol=1e-3)
