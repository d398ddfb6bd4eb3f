"""Calibration file formats on the real calibrations in ../shared/data, and their errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from shared_data import TEST_DATA

from app.cli import main
from calibration.camera import Camera
from calibration.errors import TriangulumError
from calibration.formats import convert, detect_format, export
from calibration.geometry import rodrigues_to_matrix
from calibration.rig import Rig
from calibration.rig_io import dumps_rig, load_rig, save_rig

DATA = TEST_DATA
QCA = DATA / "pose2sim-demo-single" / "calibration" / "Calib.qca.txt"
CALISCOPE = DATA / "caliscope-charuco-4cam" / "reference_camera_array.toml"
needs_qca = pytest.mark.skipif(not QCA.is_file(), reason="shared data (pose2sim-demo-single) not present")
needs_caliscope = pytest.mark.skipif(not CALISCOPE.is_file(), reason="shared data (caliscope-charuco-4cam) not present")

# The table of ../shared/data/README.md: fx, fy, cx, cy; Rodrigues; translation (m).
QUALISYS_TABLE = {
    "cam01": ((1681.2449, 1681.0754, 532.9737, 948.1374), (1.688275, 1.048322, -0.419559), (0.321105, 0.956332, 2.890713)),
    "cam02": ((1673.7296, 1673.7972, 534.4946, 963.2259), (1.349759, 1.596381, -1.198329), (-0.111528, 0.776618, 3.067552)),
    "cam03": ((1681.5984, 1681.5099, 513.2084, 955.0051), (0.810965, -2.197213, 1.376028), (-0.793480, 0.322836, 4.353515)),
    "cam04": ((1675.2350, 1675.2042, 540.1062, 964.0303), (1.404557, -1.388741, 0.425357), (0.503022, 0.048949, 4.406564)),
}


def small_rig() -> Rig:
    """Three cameras with every parameter non-trivial (distortion, rmse, poses)."""
    cams = []
    for i, (rvec, t) in enumerate([((0.1, -0.2, 0.05), (0.3, -0.1, 3.0)),
                                   ((1.2, 0.4, -0.3), (-0.5, 0.2, 2.5)),
                                   ((-0.7, 2.0, 0.9), (0.0, 0.4, 4.0))]):
        R = rodrigues_to_matrix(torch.tensor(rvec, dtype=torch.float64)).numpy()
        K = np.array([[1400.0 + 10 * i, 0.0, 960.5 - i], [0.0, 1401.5 + 9 * i, 540.25 + i], [0, 0, 1]])
        dist = np.array([-0.21 + 0.01 * i, 0.08, 1e-3, -5e-4, -0.01 * i])
        cams.append(Camera(f"cam{i}", (1920, 1080), K, dist, R, np.array(t), 0.3 + 0.1 * i))
    return Rig(cams, {"note": "test rig"})


def assert_same_cameras(a: Rig, b: Rig, rmse: bool = True) -> None:
    assert a.names == b.names
    for ca, cb in zip(a.cameras, b.cameras, strict=True):
        assert ca.size == cb.size
        np.testing.assert_allclose(cb.K, ca.K, rtol=0, atol=1e-9)
        np.testing.assert_allclose(cb.dist, ca.dist, rtol=0, atol=1e-12)
        np.testing.assert_allclose(cb.R, ca.R, rtol=0, atol=1e-12)
        np.testing.assert_allclose(cb.t, ca.t, rtol=0, atol=1e-12)
        if rmse:
            assert cb.rmse == ca.rmse


def expect_error(fn, *words: str) -> str:
    """Run fn, which must raise TriangulumError mentioning every word; -> the message."""
    with pytest.raises(TriangulumError) as info:
        fn()
    msg = str(info.value)
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"
    return msg


# --- Qualisys -----------------------------------------------------------------

@needs_qca
def test_qualisys_matches_readme_table():
    assert detect_format(QCA) == "qualisys"
    rig = convert(QCA)
    assert rig.names == list(QUALISYS_TABLE)
    for cam in rig.cameras:
        (fx, fy, cx, cy), rvec, t = QUALISYS_TABLE[cam.name]
        got = (cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2])
        np.testing.assert_allclose(got, (fx, fy, cx, cy), rtol=0, atol=1e-3)
        np.testing.assert_allclose(cam.rvec, rvec, rtol=0, atol=1e-5)
        np.testing.assert_allclose(cam.t, t, rtol=0, atol=1e-5)
        assert cam.size == (1088, 1920)
    assert rig.metadata["world"] == "Z-up"


@needs_qca
def test_qualisys_world_origin_projects_where_readme_says():
    px = convert(QCA)["cam01"].project(np.zeros(3))
    np.testing.assert_allclose(px, (719.7, 1504.3), atol=0.1)


def qca_variant(tmp_path: Path, old: str, new: str, camera: str = "cam02") -> Path:
    """The demo calibration with one attribute of one camera replaced."""
    text = QCA.read_text()
    start = text.index(f'serial="{camera}"')
    end = text.index("</camera>", start)
    block = text[start:end]
    assert old in block
    out = tmp_path / "Calib.qca.txt"
    out.write_text(text[:start] + block.replace(old, new, 1) + text[end:])
    return out


@needs_qca
def test_qualisys_negative_focal_length_names_file_camera_field(tmp_path):
    path = qca_variant(tmp_path, 'focalLengthU="', 'focalLengthU="-')
    msg = expect_error(lambda: convert(path), "Calib.qca.txt", "cam02", "focalLengthU", "negative")
    assert msg.count("\n") == 0


@needs_qca
def test_qualisys_non_orthonormal_rotation(tmp_path):
    path = qca_variant(tmp_path, 'r11="-0.1966832217091926"', 'r11="-0.25"')
    expect_error(lambda: convert(path), "Calib.qca.txt", "cam02", "transform", "orthonormal")


@needs_qca
def test_qualisys_mirrored_rotation(tmp_path):
    text = QCA.read_text()
    # Negating a whole row keeps M orthonormal but makes det -1.
    path = qca_variant(tmp_path, 'r31="0.9285626460991909" r32="0.20017570994064315" r33="0.3125717476340885"',
                       'r31="-0.9285626460991909" r32="-0.20017570994064315" r33="-0.3125717476340885"')
    assert path.read_text() != text
    expect_error(lambda: convert(path), "Calib.qca.txt", "cam02", "transform", "determinant")


@needs_qca
def test_qualisys_missing_field(tmp_path):
    path = qca_variant(tmp_path, 'centerPointV="61646.457031" ', "")
    expect_error(lambda: convert(path), "Calib.qca.txt", "cam02", "centerPointV", "missing")


@needs_qca
def test_qualisys_non_numeric_field(tmp_path):
    path = qca_variant(tmp_path, 'x="2582.0136248568124"', 'x="2582,01"')
    expect_error(lambda: convert(path), "Calib.qca.txt", "cam02", "'x'", "not a number")


@needs_qca
def test_qualisys_truncated_file(tmp_path):
    path = tmp_path / "Calib.qca.txt"
    path.write_bytes(QCA.read_bytes()[:2500])
    assert detect_format(path) == "qualisys"
    expect_error(lambda: convert(path), "Calib.qca.txt", "XML", "truncated")


# --- caliscope ------------------------------------------------------------------

@needs_caliscope
def test_caliscope_reference_import():
    assert detect_format(CALISCOPE) == "caliscope"
    rig = convert(CALISCOPE)
    assert rig.names == ["cam_0", "cam_1", "cam_2", "cam_3"]
    cam = rig["cam_0"]
    assert cam.size == (1280, 720)
    np.testing.assert_allclose(cam.K[[0, 1, 0, 1], [0, 1, 2, 2]], (903.550124089999, 907.8788668762852,
                                                                   618.3086297620227, 394.213230569746), rtol=1e-12)
    np.testing.assert_allclose(cam.dist, [-0.3320992998866297, 0.04641968621160267, -0.004295771569519648,
                                          0.004113240100199701, 0.0665682301495769], rtol=1e-12)
    np.testing.assert_allclose(cam.t, [0.17125994082321383, -0.03234536459937444, 1.208386461814154], rtol=1e-12)
    np.testing.assert_allclose(cam.R[0], [-0.7070716153979968, 0.5639880775931625, -0.42657611165094056], rtol=1e-12)
    assert [c.rmse for c in rig.cameras] == [0.541, 0.401, 0.366, 0.329]
    assert rig["cam_3"].K[0, 0] == pytest.approx(639.8834321530571)
    # A webcam rig in a room: camera centres within a few metres of each other.
    centres = np.stack([c.center for c in rig.cameras])
    assert np.linalg.norm(centres - centres.mean(0), axis=1).max() < 3.0


@needs_caliscope
def test_caliscope_ignore_rodrigues_and_unposed(tmp_path, caplog):
    text = CALISCOPE.read_text()
    # Camera 1 ignored; camera 2 with a Rodrigues rotation (caliscope's newer files); camera 3 unposed.
    text = text.replace("ignore = false", "ignore = true", 2).replace("ignore = true", "ignore = false", 1)
    rig_ref = convert(CALISCOPE)
    rvec = ", ".join(repr(float(v)) for v in rig_ref["cam_2"].rvec)
    blocks = text.split("[cameras.")
    blocks[3] = re.sub(r"rotation = \[\[.*\]\]", f"rotation = [{rvec}]", blocks[3])
    blocks[4] = re.sub(r"(rotation|translation) = .*\n", "", blocks[4])
    path = tmp_path / "camera_array.toml"
    path.write_text("[cameras.".join(blocks))
    rig = convert(path)
    assert rig.names == ["cam_0", "cam_2"]
    np.testing.assert_allclose(rig["cam_2"].R, rig_ref["cam_2"].R, atol=1e-12)
    assert "cam_3" in caplog.text and "left out" in caplog.text


@needs_caliscope
@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("matrix = [[903.550124089999,", "matrix = [[-903.550124089999,", ("cam_0", "matrix", "negative")),
        ("size = [1280, 720]", "size = [1280, 720, 3]", ("cam_0", "size", "shape")),
        ("matrix = [[903.550124089999, 0.0, 618.3086297620227], ", "matrix = [", ("cam_0", "matrix", "shape")),
        ("rotation = [[-0.7070716153979968,", "rotation = [[-0.8070716153979968,", ("cam_0", "rotation", "orthonormal")),
        ("distortions = [-0.3320992998866297, 0.04641968621160267, ", "distortions = [",
         ("cam_0", "distortions", "shape")),
    ],
)
def test_caliscope_bad_values_name_file_camera_field(tmp_path, old, new, words):
    text = CALISCOPE.read_text()
    assert old in text
    path = tmp_path / "camera_array.toml"
    path.write_text(text.replace(old, new, 1))
    expect_error(lambda: convert(path), "camera_array.toml", *words)


@needs_caliscope
def test_caliscope_missing_translation_names_field(tmp_path):
    text = CALISCOPE.read_text()
    path = tmp_path / "camera_array.toml"
    path.write_text(text.replace("translation = [0.17125994082321383, -0.03234536459937444, 1.208386461814154]\n", ""))
    expect_error(lambda: convert(path), "camera_array.toml", "cam_0", "translation", "missing")


@needs_caliscope
def test_caliscope_truncated(tmp_path):
    text = CALISCOPE.read_text()
    path = tmp_path / "camera_array.toml"
    path.write_text(text[:650])  # inside a value: not TOML any more
    expect_error(lambda: convert(path), "camera_array.toml", "TOML", "truncated")
    path.write_text(text[: text.index("[cameras.1]") + 12])  # just after a table header: TOML, but incomplete
    expect_error(lambda: convert(path), "camera_array.toml", "cam_1", "size", "missing")


# --- our TOML, Pose2Sim/Anipose TOML ---------------------------------------------

def test_our_toml_round_trip(tmp_path):
    rig = small_rig()
    path = save_rig(rig, tmp_path / "rig.toml")
    assert detect_format(path) == "toml"
    back = convert(path)
    assert_same_cameras(rig, back)
    assert back.metadata["note"] == "test rig"
    # A second round trip writes the same text: nothing drifts.
    again = save_rig(back, tmp_path / "again.toml")
    assert dumps_rig(load_rig(again)) == dumps_rig(back)


@needs_qca
def test_qualisys_to_toml_keeps_values(tmp_path):
    path = tmp_path / "rig.toml"
    export(convert(QCA), path)
    assert_same_cameras(convert(QCA), load_rig(path))


def test_pose2sim_style_toml_loads(tmp_path):
    # As Pose2Sim writes it: sizes as floats, 4 distortions, a fisheye key, [metadata].
    text = """
[cam_01]
name = "cam_01"
size = [ 1088.0, 1920.0,]
matrix = [ [ 1681.2448730, 0.0, 532.9736938,], [ 0.0, 1681.0754394, 948.1373901,], [ 0.0, 0.0, 1.0,],]
distortions = [ -0.0007216, 0.0021872, 9.5e-06, 1.078e-05,]
rotation = [ 1.688275, 1.048322, -0.419559,]
translation = [ 0.321105, 0.956332, 2.890713,]
fisheye = false

[cam_02]
name = "cam_02"
size = [ 1088.0, 1920.0,]
matrix = [ [ 1673.7296142, 0.0, 534.4945678,], [ 0.0, 1673.7972412, 963.2258911,], [ 0.0, 0.0, 1.0,],]
distortions = [ -0.0007476, 0.0021372, 1.5e-05, 4.5e-06,]
rotation = [ 1.349759, 1.596381, -1.198329,]
translation = [ -0.111528, 0.776618, 3.067552,]
fisheye = false

[metadata]
adjusted = false
error = 0.0
"""
    path = tmp_path / "Calib_scene.toml"
    path.write_text(text)
    assert detect_format(path) == "toml"
    rig = convert(path)
    assert rig.names == ["cam_01", "cam_02"]
    cam = rig["cam_01"]
    assert cam.size == (1088, 1920)
    np.testing.assert_allclose(cam.dist, [-0.0007216, 0.0021872, 9.5e-06, 1.078e-05, 0.0])
    np.testing.assert_allclose(cam.rvec, [1.688275, 1.048322, -0.419559], atol=1e-12)
    assert convert(path, "pose2sim").names == rig.names


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("matrix = [[1400.0,", "matrix = [[-1400.0,", ("cam0", "matrix", "positive")),
        ("matrix = [[1400.0, 0.0, 960.5], ", "matrix = [", ("cam0", "matrix", "shape")),
        ("translation = [0.3, -0.1, 3.0]\n", "", ("cam0", "translation", "missing")),
        ("size = [1920, 1080]", "size = [1920]", ("cam0", "size", "shape")),
    ],
)
def test_toml_bad_values_name_file_camera_field(tmp_path, old, new, words):
    text = dumps_rig(small_rig())
    assert old in text, text
    path = tmp_path / "rig.toml"
    path.write_text(text.replace(old, new, 1))
    expect_error(lambda: convert(path), "rig.toml", *words)


def test_toml_non_orthonormal_rotation_as_matrix(tmp_path):
    text = dumps_rig(small_rig())
    line = next(x for x in text.splitlines() if x.startswith("rotation"))
    path = tmp_path / "rig.toml"
    path.write_text(text.replace(line, "rotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 1.0]]", 1))
    expect_error(lambda: convert(path), "rig.toml", "cam0", "rotation", "not a proper rotation")


def test_toml_truncated(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text(dumps_rig(small_rig())[:400])
    expect_error(lambda: convert(path), "rig.toml", "TOML", "truncated")


def test_unknown_content_and_empty_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a calibration\n")
    expect_error(lambda: convert(path), "notes.txt", "not a recognised calibration")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    expect_error(lambda: convert(empty), "empty.toml", "empty")
    expect_error(lambda: convert(tmp_path / "absent.toml"), "absent.toml", "does not exist")


# --- EasyMocap ---------------------------------------------------------------------

def test_easymocap_round_trip(tmp_path):
    rig = small_rig()
    intri, extri = export(rig, tmp_path / "calib", "easymocap")
    assert (intri.name, extri.name) == ("intri.yml", "extri.yml")
    assert detect_format(intri) == detect_format(tmp_path / "calib") == "easymocap"
    # EasyMocap files carry no RMSE; everything else comes back.
    back = convert(tmp_path / "calib")
    assert_same_cameras(rig, back, rmse=False)
    assert back.metadata["size_source"] == "file"
    assert_same_cameras(back, convert(extri), rmse=False)
    # ours -> EasyMocap -> ours -> EasyMocap -> ours: still the same cameras (to round-off).
    save_rig(back, tmp_path / "rig.toml")
    written = export(load_rig(tmp_path / "rig.toml"), tmp_path / "again" / "intri.yml")
    assert written == [tmp_path / "again" / "intri.yml", tmp_path / "again" / "extri.yml"]
    assert_same_cameras(rig, convert(tmp_path / "again"), rmse=False)


def _strip_sizes(intri: Path) -> None:
    intri.write_text("".join(line for line in intri.read_text().splitlines(keepends=True)
                             if not re.match(r"^[HW]_", line)))


def test_easymocap_without_size_uses_given_or_principal_point(tmp_path, caplog):
    rig = small_rig()
    intri, _ = export(rig, tmp_path, "easymocap")
    _strip_sizes(intri)
    given = convert(tmp_path, size=(1920, 1080))
    assert [c.size for c in given.cameras] == [(1920, 1080)] * 3
    assert given.metadata["size_source"] == "given"
    inferred = convert(tmp_path)
    assert inferred.metadata["size_source"] == "principal point"
    assert inferred["cam0"].size == (1922, 1082)  # 2 * (960.5, 540.25) + 1
    assert "--size" in caplog.text


def test_easymocap_size_conflict_and_size_for_other_formats(tmp_path):
    export(small_rig(), tmp_path, "easymocap")
    expect_error(lambda: convert(tmp_path, size=(1280, 720)), "intri.yml", "cam0", "W_cam0", "1280x720")
    save_rig(small_rig(), tmp_path / "rig.toml")
    expect_error(lambda: convert(tmp_path / "rig.toml", size=(1280, 720)), "rig.toml", "size")


def test_easymocap_hand_written_opencv4_files(tmp_path):
    # OpenCV 4 headers, numeric names, dist as 5x1 and no Rot_ matrix: all accepted.
    (tmp_path / "intri.yml").write_text("""%YAML:1.0
---
names:
   - "1"
K_1: !!opencv-matrix
   rows: 3
   cols: 3
   dt: d
   data: [ 1000., 0., 640., 0., 1000., 360., 0., 0., 1. ]
dist_1: !!opencv-matrix
   rows: 5
   cols: 1
   dt: d
   data: [ -0.1, 0.01, 0., 0., 0. ]
""")
    (tmp_path / "extri.yml").write_text("""%YAML:1.0
---
names:
   - "1"
R_1: !!opencv-matrix
   rows: 3
   cols: 1
   dt: d
   data: [ 0., 0., 0.5 ]
T_1: !!opencv-matrix
   rows: 3
   cols: 1
   dt: d
   data: [ 0.1, 0.2, 3. ]
""")
    cam = convert(tmp_path / "intri.yml", size=(1280, 720))["1"]
    assert cam.size == (1280, 720)
    np.testing.assert_allclose(cam.rvec, [0, 0, 0.5], atol=1e-12)
    np.testing.assert_allclose(cam.dist, [-0.1, 0.01, 0, 0, 0])


@pytest.mark.parametrize(
    ("which", "edit", "words"),
    [
        ("intri", lambda s: s.replace("data: [ 1400.", "data: [ -1400.", 1), ("intri.yml", "cam0", "K_cam0", "negative")),
        ("intri", lambda s: s.replace("K_cam1: !!opencv-matrix\n   rows: 3", "K_cam1: !!opencv-matrix\n   rows: 1", 1)
         .replace("cols: 3\n   dt: d\n   data: [ 1410.", "cols: 9\n   dt: d\n   data: [ 1410.", 1),
         ("intri.yml", "cam1", "K_cam1", "shape")),
        ("extri", lambda s: re.sub(r"T_cam2: !!opencv-matrix\n(   .*\n)+", "", s), ("extri.yml", "cam2", "T_cam2", "missing")),
        ("extri", lambda s: re.sub(r"(Rot_cam0: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n   data: \[ )\S+",
                                   r"\g<1>0.5,", s), ("extri.yml", "cam0", "Rot_cam0", "orthonormal")),
        ("intri", lambda s: s[: s.index("dist_cam2") + 60], ("intri.yml", "truncated")),
        ("extri", lambda s: s.replace("R_cam1:", "Q_cam1:").replace("Rot_cam1:", "Qot_cam1:"),
         ("extri.yml", "cam1", "R_cam1", "missing")),
    ],
)
def test_easymocap_bad_files_name_file_camera_field(tmp_path, which, edit, words):
    export(small_rig(), tmp_path, "easymocap")
    path = tmp_path / f"{which}.yml"
    path.write_text(edit(path.read_text()))
    expect_error(lambda: convert(tmp_path), *words)


def test_easymocap_rotation_disagreement(tmp_path):
    export(small_rig(), tmp_path, "easymocap")
    path = tmp_path / "extri.yml"
    text = path.read_text()
    start = text.index("R_cam0:")
    data = text.index("data: [", start) + len("data: [ ")
    path.write_text(text[:data] + "0.3" + text[text.index(",", data):])
    expect_error(lambda: convert(tmp_path), "extri.yml", "cam0", "Rot_cam0", "R_cam0", "disagrees")


def test_easymocap_needs_both_files_and_key_safe_names(tmp_path):
    export(small_rig(), tmp_path, "easymocap")
    (tmp_path / "extri.yml").unlink()
    expect_error(lambda: convert(tmp_path / "intri.yml"), "extri.yml", "missing")
    bad = Rig([Camera("left cam", (640, 480), np.diag([500.0, 500.0, 1.0]))])
    expect_error(lambda: export(bad, tmp_path / "out", "easymocap"), "left cam", "name")


# --- CLI ------------------------------------------------------------------------------

@needs_qca
def test_cli_convert_qualisys_then_show(tmp_path, capsys):
    out = tmp_path / "rig.toml"
    assert main(["calib", "convert", str(QCA), "-o", str(out)]) == 0
    assert "qualisys" in capsys.readouterr().out
    assert_same_cameras(convert(QCA), load_rig(out))

    assert main(["calib", "show", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("camera"))
    rows = lines[header + 2 : header + 6]
    assert [r.split()[0] for r in rows] == ["cam01", "cam02", "cam03", "cam04"]
    assert "1681.245" in rows[0] and "532.974" in rows[0] and "1088x1920" in rows[0]
    # Aligned: every row as wide as the rule under the header; numbers right-aligned.
    assert len({len(r) for r in rows}) == 1
    centre = convert(QCA)["cam01"].center
    assert f"{centre[0]:.4f}" in rows[0]

    assert main(["calib", "show", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "toml" and len(doc["cameras"]) == 4
    assert doc["cameras"][0]["fx"] == pytest.approx(1681.2449, abs=1e-3)
    assert doc["cameras"][0]["rmse_px"] is None


@needs_caliscope
def test_cli_show_caliscope_rmse_and_convert_to_easymocap(tmp_path, capsys):
    assert main(["calib", "show", str(CALISCOPE)]) == 0
    text = capsys.readouterr().out
    assert "caliscope" in text and "0.541" in text and "cam_3" in text
    assert main(["calib", "convert", str(CALISCOPE), "-o", str(tmp_path / "em"), "--to", "easymocap"]) == 0
    assert_same_cameras(convert(CALISCOPE), convert(tmp_path / "em"), rmse=False)


def test_cli_bad_file_exit_code_2_and_message(tmp_path, capsys):
    text = dumps_rig(small_rig()).replace("matrix = [[1400.0,", "matrix = [[-1400.0,", 1)
    path = tmp_path / "bad_rig.toml"
    path.write_text(text)
    assert main(["calib", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad_rig.toml" in err and "cam0" in err and "matrix" in err
    assert "Traceback" not in err
    assert main(["calib", "convert", str(path), "-o", str(tmp_path / "out.toml")]) == 2
    assert "bad_rig.toml" in capsys.readouterr().err
    assert not (tmp_path / "out.toml").exists()


def test_cli_convert_errors(tmp_path, capsys):
    path = save_rig(small_rig(), tmp_path / "rig.toml")
    assert main(["calib", "convert", str(path), "-o", str(tmp_path / "rig.out")]) == 2
    assert "output format" in capsys.readouterr().err
    assert main(["calib", "convert", str(path), "-o", str(path)]) == 2
    assert "input" in capsys.readouterr().err
    assert main(["calib", "convert", str(path), "--from", "nonsense", "-o", str(tmp_path / "x.toml")]) == 2
    assert "unknown calibration format" in capsys.readouterr().err
    # --from forces a reader: a rig TOML read as caliscope has no [cameras.N].
    assert main(["calib", "show", str(path), "--from", "caliscope"]) == 2
    assert "cameras" in capsys.readouterr().err


def test_cli_easymocap_size_option(tmp_path, capsys):
    intri, _ = export(small_rig(), tmp_path, "easymocap")
    _strip_sizes(intri)
    assert main(["calib", "show", str(tmp_path), "--size", "1920", "1080", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["size"] for c in doc["cameras"]] == [[1920, 1080]] * 3
