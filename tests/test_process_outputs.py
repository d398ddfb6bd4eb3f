"""The files of a processed sample, each read back by an independent reader with the same
numbers: poses3d.npz (numpy), TRC and CSV (our readers), BVH (the parser and forward
kinematics of tests/test_export_bvh.py), C3D (the c3d library); the report; the overlays;
and the command line on a recorded session."""

import dataclasses
import json

import c3d
import cv2
import numpy as np
import pytest
from test_export_bvh import ON, joint_distances, read_rig
from test_process_inputs import record_session
from test_process_support import sample_result

from app.cli import main
from app.export.csv_io import read_csv
from app.export.trc import marker_names, read_trc
from app.process.outputs import write_exports, write_npz
from app.process.overlay import draw_frame, write_overlays
from app.process.report import write_report
from app.sample import sample_calibration
from calibration.formats.detect import convert
from engines.skeleton import BLAZEPOSE33, LIMB_JOINTS, indices
from training.metrics import reprojection_stats

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result = sample_result()
    out = tmp_path_factory.mktemp("process_out")
    npz = write_npz(result, out / "poses3d.npz")
    exports = write_exports(result, out)
    report, pngs = write_report(result, out)
    return result, out, npz, exports[result.main], report, pngs


def test_npz_holds_every_array_of_the_person(written):
    result, _, npz, _, _, _ = written
    person = result.person(result.main)
    data = np.load(npz)
    key = f"person{result.main}_"
    np.testing.assert_array_equal(data[key + "joints"], person.final.joints)
    np.testing.assert_array_equal(data[key + "joints_raw"], person.raw.joints)
    np.testing.assert_array_equal(data[key + "keypoints2d"], person.keypoints)
    np.testing.assert_array_equal(data[key + "reprojection_error"], person.final.errors)
    assert data[key + "views_used"].shape == (100, 33, 4) and data[key + "views_used"].dtype == bool
    assert data[key + "flipped"].shape == (100, 4, 16) and "knee" in data[key + "flip_groups"].tolist()
    assert data["cameras"].tolist() == ["cam01", "cam02", "cam03", "cam04"]
    assert data["joint_names"].tolist() == list(BLAZEPOSE33.joints)
    assert int(data["main_person"]) == result.main and data["person_ids"].tolist() == [result.main]
    meta = json.loads(str(data["metadata"]))
    assert meta["method"] == "algebraic" and meta["fps"] == 60
    assert {"filter": "butterworth", "cutoff_hz": 6.0, "order": 4} in meta["filters"]
    assert {"filter": "gap_fill", "max_gap": 10} in meta["filters"]
    assert any("cropped" in w for w in meta["warnings"])
    np.testing.assert_allclose(data["times"], np.arange(100) / 60)


def test_trc_and_csv_read_back_the_same_numbers(written):
    result, _, _, files, _, _ = written
    joints = result.person(result.main).final.joints
    trc = read_trc(files["trc"])
    assert trc.names == marker_names(BLAZEPOSE33) and trc.rate == 60 and trc.units == "m"
    np.testing.assert_allclose(trc.world, joints, atol=1e-6)
    np.testing.assert_allclose(trc.times, np.arange(100) / 60, atol=1e-6)
    names, times, csv_joints = read_csv(files["csv"])
    assert names == BLAZEPOSE33.joints
    np.testing.assert_allclose(csv_joints, joints, atol=1e-6)


def test_c3d_reads_back_in_millimetres(written):
    result, _, _, files, _, _ = written
    joints = result.person(result.main).final.joints
    with open(files["c3d"], "rb") as f:
        reader = c3d.Reader(f)
        labels = [s.strip() for s in reader.point_labels]
        assert labels == list(BLAZEPOSE33.joints) and reader.point_rate == 60
        frames = [points for _, points, _ in reader.read_frames()]
    pts = np.stack(frames)  # (F, J, 5): x, y, z, residual, cameras
    assert len(pts) == 100
    missing = pts[..., 3] < 0
    np.testing.assert_array_equal(missing, np.isnan(joints).any(-1))
    np.testing.assert_allclose(pts[..., :3][~missing], (joints * 1000)[~missing], atol=0.05)


def test_bvh_plays_the_reconstructed_motion(written):
    """Forward kinematics of the BVH's character rig put its joints on the reconstruction's
    (up to the rig's rigid lengths and the feet brought onto the floor) and every arm bone
    along the reconstructed bone's direction."""
    result, _, _, files, _, _ = written
    joints = result.person(result.main).final.joints
    parsed, frame_time, world, tips = read_rig(files["bvh"], BLAZEPOSE33)
    assert len(world["Hips"]) == 100 and abs(frame_time - 1 / 60) < 1e-6
    d = joint_distances(world, tips, joints, BLAZEPOSE33)
    assert np.median(d) < 0.025  # 2.0 cm when measured (1.5 cm without putting the feet down)
    ix = BLAZEPOSE33.index
    for a, b in (("LeftArm", "LeftForeArm"), ("RightArm", "RightForeArm"), ("LeftForeArm", "LeftHand")):
        obs = joints[:, ix[ON[b]]] - joints[:, ix[ON[a]]]
        rec = world[b] - world[a]
        cos = np.sum(rec * obs, -1) / (np.linalg.norm(rec, axis=-1) * np.linalg.norm(obs, axis=-1))
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.01, b


def test_report_numbers_and_plots(written):
    result, out, _, _, report, pngs = written
    data = json.loads(report.read_text())
    person = result.person(result.main)
    limbs = indices(BLAZEPOSE33, LIMB_JOINTS)
    stats = reprojection_stats(person.final.errors[:, :, limbs], 20.0)
    (p,) = data["people"]
    assert p["reprojection_px"]["p95"] == pytest.approx(stats.p95)
    assert p["reprojection_px"]["share_above_20px"] == pytest.approx(stats.share_above)
    assert p["reprojection_px"]["p95"] < 40 and p["bone_length_cv_mean"] < 0.05
    assert p["left_right_corrected_frames"]["cam02"]["any"] >= 20
    assert set(data["timings"]["per_frame_ms"]) >= {"decode", "pose2d", "associate", "triangulate"}
    assert data["plots"] == [q.name for q in pngs] and len(pngs) == 4
    for png in pngs:
        img = cv2.imread(str(png))
        assert img is not None and img.shape[0] > 150 and img.std() > 10


def test_overlays_show_the_reprojection(written, tmp_path):
    result, _, _, _, _, _ = written
    stop = 5
    short = type(result)(result.take, result.config, result.frames[:stop], result.people, result.main,
                         result.tracks, result.timings, result.skeleton)
    paths = write_overlays(short, tmp_path, scale=0.25)
    assert [p.name for p in paths] == [f"overlay_{c}.mp4" for c in result.take.cameras]
    for p, cam in zip(paths, result.take.rig.cameras, strict=True):
        cap = cv2.VideoCapture(str(p))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == stop
        assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
            round(cam.size[0] * 0.25), round(cam.size[1] * 0.25))
        cap.release()
    # drawn where the joints reproject: the overlay differs from the plain frame there
    person = result.person(result.main)
    image = np.full((1920, 1080, 3), 90, np.uint8)
    drawn = draw_frame(image, result, 0, 0, 0.5)
    for j in indices(BLAZEPOSE33, LIMB_JOINTS):
        x, y = np.round(person.final.reprojected[0, 0, j] * 0.5).astype(int)
        assert (drawn[y, x] != 90).any()


def test_command_on_a_recorded_session(tmp_path, capsys):
    rig = convert(sample_calibration())
    rig = type(rig)([dataclasses.replace(c, size=(1080, 1920)) if c.name in ("cam01", "cam02") else c
                     for c in rig.cameras])  # calibrated at the sample's video sizes
    session = record_session(tmp_path / "take", rig, 12, {"cam04": [6]}, source_scale=0.5)
    assert main(["process", str(session), "--no-overlays", "--formats", "trc,csv"]) == 0
    out = capsys.readouterr().out
    results = session / "results"
    assert f"Results in {results}/" in out and "person 0" in out
    assert "cam04" in out and "1 of 12 frame sets" in out
    data = np.load(results / "poses3d.npz")
    assert data["person0_joints"].shape == (12, 33, 3)
    assert np.isfinite(data["person0_joints"][:, indices(BLAZEPOSE33, LIMB_JOINTS)]).mean() > 0.9
    assert (data["frame_index"][:, 3] == [0, 1, 2, 3, 4, 5, -1, 6, 7, 8, 9, 10]).all()
    assert {p.name for p in results.iterdir()} >= {"poses3d.npz", "person0.trc", "person0.csv", "person0.json",
                                                   "report.json"}
    assert read_trc(results / "person0.trc").world.shape == (12, 33, 3)


def test_command_errors_are_one_sentence(capsys, tmp_path):
    assert main(["process", "--people", "all", "--person", "2"]) == 2
    assert "--person picks one person" in capsys.readouterr().err
    assert main(["process", str(tmp_path / "nothing.mp4"), str(tmp_path / "b.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["process", "--formats", "trc,fbx"]) == 2
    assert "Unknown export format(s) fbx" in capsys.readouterr().err
