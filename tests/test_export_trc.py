"""TRC: the reader on Pose2Sim's reference file, and writer -> reader round trips."""


import numpy as np
import pytest
import torch
from shared_data import TEST_DATA

from app.export.trc import marker_names, read_trc, write_trc
from calibration.errors import TriangulumError
from calibration.geometry import project, rodrigues_to_matrix
from engines.skeleton import BLAZEPOSE33, COCO17

DATA = TEST_DATA
REFERENCE_TRC = DATA / "pose2sim-demo-single" / "reference" / "pose2sim_body25b_0-100.trc"

# fx, fy, cx, cy; Rodrigues; t (m): the published calibration of the demo (data README)
DEMO_CAMERAS = {
    "cam01": ((1681.2449, 1681.0754, 532.9737, 948.1374), (1.688275, 1.048322, -0.419559), (0.321105, 0.956332, 2.890713)),
    "cam02": ((1673.7296, 1673.7972, 534.4946, 963.2259), (1.349759, 1.596381, -1.198329), (-0.111528, 0.776618, 3.067552)),
    "cam03": ((1681.5984, 1681.5099, 513.2084, 955.0051), (0.810965, -2.197213, 1.376028), (-0.793480, 0.322836, 4.353515)),
    "cam04": ((1675.2350, 1675.2042, 540.1062, 964.0303), (1.404557, -1.388741, 0.425357), (0.503022, 0.048949, 4.406564)),
}


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE_TRC.exists():
        pytest.skip("shared data not available")
    return read_trc(REFERENCE_TRC)


def test_read_reference_header_and_values(reference):
    assert reference.rate == 60.0 and reference.units == "m"
    assert len(reference.names) == 21 and reference.names[0] == "RHip"
    assert reference.names[-1] == "LWrist"
    assert reference.points.shape == (100, 21, 3)
    assert reference.frame_numbers.tolist() == list(range(1, 101))
    assert reference.times[:2] == pytest.approx([1 / 60, 2 / 60])
    # first data row, first marker, straight from the file
    assert reference.points[0, 0] == pytest.approx(
        [-0.06497214796810755, 0.9015045550714222, -1.4005886926185436]
    )
    assert not np.isnan(reference.points).any()


def _project(points, camera):
    (fx, fy, cx, cy), rvec, t = camera
    k = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]], dtype=torch.float64)
    r = rodrigues_to_matrix(torch.tensor(rvec, dtype=torch.float64))
    x = torch.tensor(points.reshape(-1, 3), dtype=torch.float64)
    uv = project(x, k, torch.zeros(5, dtype=torch.float64), r, torch.tensor(t, dtype=torch.float64))
    return uv.numpy().reshape(points.shape[:-1] + (2,))


def test_reference_world_axes_agree_with_the_calibration(reference):
    world = reference.world
    head, ankle = reference.names.index("Head"), reference.names.index("RAnkle")
    assert (world[:, head, 2] > world[:, ankle, 2] + 0.9).all()  # Z is up (one foot lifts)
    for name, camera in DEMO_CAMERAS.items():
        uv = _project(world, camera)
        inside = (uv[..., 0] > 0) & (uv[..., 0] < 1088) & (uv[..., 1] > 0) & (uv[..., 1] < 1920)
        assert inside.all(), name  # the person is in every view, every frame
        assert (uv[:, head, 1] < uv[:, ankle, 1]).all(), name  # and upright
        # read without the axis change, the body would leave the views or stand on its head
        raw = _project(reference.points, camera)
        ok = (raw[..., 0] > 0) & (raw[..., 0] < 1088) & (raw[..., 1] > 0) & (raw[..., 1] < 1920)
        assert not (ok.all() and (raw[:, head, 1] < raw[:, ankle, 1]).all()), name


def test_rewriting_reference_reproduces_its_numbers(tmp_path, reference):
    joints = np.full((100, BLAZEPOSE33.num_joints, 3), np.nan)
    pairs = {"RHip": "right_hip", "LWrist": "left_wrist", "Nose": "nose", "LHeel": "left_heel"}
    for src, dst in pairs.items():
        joints[:, BLAZEPOSE33.index[dst]] = reference.world[:, reference.names.index(src)]
    path = write_trc(tmp_path / "out.trc", joints, BLAZEPOSE33, 60.0)
    again = read_trc(path)
    assert again.names == marker_names(BLAZEPOSE33)
    for src, dst in pairs.items():
        # the file's own (Y-up) numbers match the reference's, to the 6 written decimals
        ours = again.points[:, BLAZEPOSE33.index[dst]]
        assert np.allclose(ours, reference.points[:, reference.names.index(src)], atol=5e-7)
    assert np.isnan(again.points[:, BLAZEPOSE33.index["left_eye"]]).all()


def test_write_layout_and_missing_fields(tmp_path):
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(7, 17, 3))
    joints[3, 5] = np.nan
    path = write_trc(tmp_path / "t.trc", joints, COCO17, 30.0, start_time=2.0)
    lines = path.read_text().splitlines()
    assert lines[0] == "PathFileType\t4\t(X/Y/Z)\tt.trc"
    assert lines[1].split("\t")[:5] == ["DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units"]
    assert lines[2].split("\t") == ["30", "30", "7", "17", "m", "30", "1", "7"]
    assert lines[3].split("\t")[:6] == ["Frame#", "Time", "Nose", "", "", "LEye"]
    assert lines[4].split("\t")[2:5] == ["X1", "Y1", "Z1"]
    row = lines[5 + 3].split("\t")
    assert row[0] == "4" and row[1] == "2.100000"
    assert row[2 + 15 : 2 + 18] == ["NaN", "NaN", "NaN"]  # marker 6 missing
    first = lines[5].split("\t")
    # TRC (X, Y, Z) = world (Y, Z, X)
    assert [float(v) for v in first[2:5]] == pytest.approx(joints[0, 0, [1, 2, 0]], abs=5e-7)
    back = read_trc(path)
    assert np.allclose(back.world, joints, atol=5e-7, equal_nan=True)
    assert back.times == pytest.approx(2.0 + np.arange(7) / 30.0, abs=1e-6)


def test_read_errors(tmp_path):
    bad = tmp_path / "bad.trc"
    bad.write_text("hello\n")
    with pytest.raises(TriangulumError, match="not a TRC"):
        read_trc(bad)
    with pytest.raises(TriangulumError, match="Cannot read"):
        read_trc(tmp_path / "missing.trc")
    with pytest.raises(TriangulumError, match="needs"):
        write_trc(tmp_path / "x.trc", np.zeros((3, 5, 3)), COCO17, 30.0)


def test_gaps_in_the_first_a_middle_and_the_last_marker_read_as_missing_by_opensim(tmp_path):
    opensim = pytest.importorskip("opensim", reason="OpenSim not installed (pip install 'triangulum[opensim]')")
    take = np.random.default_rng(1).normal(0, 0.3, (6, 33, 3))
    gaps = [(1, 0), (2, 16), (3, 32), (4, 32), (4, 0)]  # (frame, marker): first, middle, last
    for f, m in gaps:
        take[f, m] = np.nan
    path = write_trc(tmp_path / "gaps.trc", take, BLAZEPOSE33, 50.0)
    table = opensim.TimeSeriesTableVec3(str(path))  # OpenSim 4.6's own TRC reader
    assert (table.getNumRows(), table.getNumColumns()) == (6, 33)
    assert table.getTableMetaDataAsString("DataRate") == "50"
    assert table.getTableMetaDataAsString("Units") == "m"
    assert list(table.getColumnLabels())[:2] == ["Nose", "LEyeInner"]
    read = np.array([[list(table.getRowAtIndex(f)[m].to_numpy()) for m in range(33)] for f in range(6)])
    missing = np.isnan(read).all(-1)
    assert sorted(zip(*np.nonzero(missing), strict=True)) == sorted(gaps)
    assert not np.isnan(read[~missing]).any()
    # the values are the take's in OpenSim's Y-up axes
    np.testing.assert_allclose(read[0, 5], take[0, 5][[1, 2, 0]], atol=1e-6)
    np.testing.assert_allclose(np.array(table.getIndependentColumn()), np.arange(6) / 50.0, atol=1e-9)


def test_marker_names_are_pose2sims_and_ours_are_one_option_away(tmp_path):
    names = marker_names(BLAZEPOSE33)
    assert len(set(names)) == 33
    assert names[BLAZEPOSE33.index["left_hip"]] == "LHip"
    assert names[BLAZEPOSE33.index["right_foot_index"]] == "RBigToe"
    assert marker_names(BLAZEPOSE33, "triangulum") == BLAZEPOSE33.joints
    assert marker_names(COCO17)[COCO17.index["left_ankle"]] == "LAnkle"
    take = np.zeros((2, 33, 3))
    assert read_trc(write_trc(tmp_path / "a.trc", take, BLAZEPOSE33, 30.0, names="triangulum")).names == BLAZEPOSE33.joints
    with pytest.raises(TriangulumError, match="opensim or triangulum"):
        marker_names(BLAZEPOSE33, "vicon")


def test_every_marker_of_pose2sims_blazepose_marker_set_is_in_our_trc():
    import importlib.util
    import xml.etree.ElementTree as ET
    from pathlib import Path

    spec = importlib.util.find_spec("Pose2Sim")
    if spec is None:
        pytest.skip("Pose2Sim not installed (pip install 'triangulum[opensim]')")
    markers = Path(next(iter(spec.submodule_search_locations))) / "OpenSim_Setup" / "Markers_BlazePose.xml"
    theirs = {m.get("name") for m in ET.parse(markers).getroot().iter("Marker")}
    assert len(theirs) == 25 and theirs <= set(marker_names(BLAZEPOSE33))
