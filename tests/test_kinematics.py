"""Joint angles through the real OpenSim (optional extra `triangulum[opensim]`; skipped
cleanly without it): scaling + IK on the processed sample, Pose2Sim's own kinematics on our
TRC as written, and our errors for files OpenSim cannot use."""

import json

import numpy as np
import pytest
from test_process_support import sample_result

from app.cli import main
from app.export.trc import write_trc
from app.kinematics import (
    KinematicsConfig,
    check_available,
    inverse_kinematics,
    read_motion,
    run_people,
)
from app.process.report import write_report
from calibration.errors import TriangulumError
from engines.skeleton import BLAZEPOSE33

opensim = pytest.importorskip("opensim", reason="OpenSim not installed (pip install 'triangulum[opensim]')")
try:
    check_available()
except TriangulumError as exc:  # OpenSim without Pose2Sim's model files
    pytest.skip(str(exc), allow_module_level=True)


@pytest.fixture(scope="module")
def sample_kinematics(tmp_path_factory):
    result = sample_result()
    out = tmp_path_factory.mktemp("kinematics")
    return result, out, run_people(result, out / "kinematics", KinematicsConfig(height=1.72, mass=68.0))


@pytest.mark.slow
def test_the_sample_gets_a_scaled_model_joint_angles_and_marker_errors(sample_kinematics):
    result, out, kin = sample_kinematics
    k = kin[result.main]
    assert len(k.times) == 100 and k.frames_skipped == 0
    np.testing.assert_allclose(k.times, np.arange(100) / 60, atol=1e-6)
    # IK follows the markers to a few cm (2.9 cm median when measured); the feet closer
    assert 0.005 < np.median(k.marker_rms) < 0.045
    # a person balancing on one leg: knees bend between straight and 90 degrees
    for side in ("r", "l"):
        assert -5 < k.angles[f"knee_angle_{side}"].min() and k.angles[f"knee_angle_{side}"].max() < 100
    # the scaled model loads in OpenSim, is symmetric and weighs what was asked
    model = opensim.Model(str(k.model))
    state = model.initSystem()
    assert model.getTotalMass(state) == pytest.approx(68.0, rel=1e-6)
    assert k.scales["femur_r"] == k.scales["femur_l"] and 0.8 < k.scales["femur_r"] < 1.25
    t, motion = read_motion(k.motion)
    assert {"hip_flexion_r", "knee_angle_l", "ankle_angle_r"} <= set(motion) and len(t) == 100
    assert k.plot.is_file() and k.plot.stat().st_size > 5000
    report, _ = write_report(result, out, kinematics=kin)
    data = json.loads(report.read_text())
    assert data["kinematics"][str(result.main)]["frames"] == 100
    assert "kinematics/person0_angles.png" in data["plots"]


@pytest.mark.slow
def test_pose2sim_kinematics_runs_on_our_trc_as_written(sample_kinematics, tmp_path):
    kinematics = pytest.importorskip("Pose2Sim.kinematics", reason="Pose2Sim's dependencies not installed")
    result, out, kin = sample_kinematics
    (tmp_path / "pose-3d").mkdir()
    write_trc(tmp_path / "pose-3d" / "person0.trc", result.person(result.main).final.joints, BLAZEPOSE33, 60.0)
    kinematics.kinematics_all({
        "project": {"project_dir": str(tmp_path), "participant_height": "auto", "participant_mass": 70.0},
        "pose": {"pose_model": "BLAZEPOSE"},
        "kinematics": {"use_augmentation": False, "use_simple_model": True},
    })
    _, theirs = read_motion(tmp_path / "kinematics" / "person0.mot")
    ours = kin[result.main].angles
    # the same IK setup; only the scaling differs (ours: trimmed marker distances, theirs: its own)
    for angle in ("hip_flexion_r", "knee_angle_l", "ankle_angle_r"):
        assert np.sqrt(np.mean((theirs[angle] - ours[angle]) ** 2)) < 3.0


def test_files_opensim_cannot_use_get_our_error(tmp_path):
    take = np.random.default_rng(0).normal(0, 0.3, (20, 33, 3)) + [0, 0, 1]
    named_ours = write_trc(tmp_path / "ours.trc", take, BLAZEPOSE33, 30.0, names="triangulum")
    with pytest.raises(TriangulumError, match="OpenSim marker names"):
        inverse_kinematics(named_ours, "blazepose", tmp_path / "k")
    empty = take.copy()
    empty[:, 11:] = np.nan  # no limbs in any frame: nobody to compute angles for
    with pytest.raises(TriangulumError, match="no frame has"):
        inverse_kinematics(write_trc(tmp_path / "empty.trc", empty, BLAZEPOSE33, 30.0), "blazepose", tmp_path / "k")
    with pytest.raises(TriangulumError, match="not plausible"):
        KinematicsConfig(height=172.0)
    with pytest.raises(TriangulumError, match="no OpenSim setup"):
        inverse_kinematics(write_trc(tmp_path / "x.trc", take, BLAZEPOSE33, 30.0), "nosuchset", tmp_path / "k")


def test_height_without_kinematics_is_refused():
    assert main(["process", "--height", "1.7"]) == 2


@pytest.mark.slow
def test_the_guis_export_writes_joint_angles_too(tmp_path):
    from app.capture.frames import PoseFrame
    from app.gui.take import ExportRequest, Take, export_take

    result = sample_result()
    joints = result.person(result.main).final.joints
    take = Take(frame_indexed=True, fps=60.0)
    for i, pose in enumerate(joints[:60]):
        take.add(PoseFrame(i, i / 60, (), pose, np.zeros((0, 33, 2)), np.zeros((0, 33)), np.zeros((0, 33, 2)),
                           joint_names=BLAZEPOSE33.joints))
    paths = export_take(take, ExportRequest(tmp_path, "take", formats=("trc",), kinematics=True))
    t, angles = read_motion(paths["kinematics"])
    assert len(t) == 60 and "knee_angle_r" in angles
    assert (tmp_path / "kinematics" / "take.osim").is_file()


@pytest.mark.slow
def test_process_kinematics_on_the_command_line(tmp_path):
    out = tmp_path / "out"
    assert main(["process", "--frames", "0:40", "--no-overlays", "--formats", "csv", "--kinematics",
                 "--mass", "65", "-o", str(out)]) == 0
    t, angles = read_motion(out / "kinematics" / "person0.mot")
    assert len(t) == 40 and {"hip_flexion_l", "ankle_angle_r"} <= set(angles)
    report = json.loads((out / "report.json").read_text())
    assert report["kinematics"]["0"]["frames"] == 40
    assert (out / "kinematics" / "person0_angles.png").is_file()
