"""`triangulum eval`: our reconstruction of the real studio sample against Pose2Sim's, in every
file format we write, checked against an independent computation; several people; bad input."""

import json

import numpy as np
import pytest
from test_process_support import BODY25B_TO_BLAZEPOSE, REFERENCE_TRC, reference_take, sample_result

from app.cli import main
from app.evaluate import canonical, evaluate, load_people, read_joint_map
from app.export.c3d_io import write_c3d
from app.export.trc import write_trc
from app.process.outputs import write_npz
from calibration.errors import TriangulumError
from engines.skeleton import BLAZEPOSE33


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    result = sample_result()
    out = tmp_path_factory.mktemp("eval")
    person = result.people[0]
    write_npz(result, out / "poses3d.npz")
    write_trc(out / "person.trc", person.final.joints, BLAZEPOSE33, result.take.fps)
    write_c3d(out / "person.c3d", person.final.joints, BLAZEPOSE33, result.take.fps)
    return out, person.final.joints


def test_eval_of_the_real_sample_matches_an_independent_computation(ours, tmp_path, capsys):
    out, joints = ours
    ref = reference_take()  # Pose2Sim's joints by our own table, not by eval's name matching
    F = min(len(ref), len(joints))
    expected = {}
    for dst in BODY25B_TO_BLAZEPOSE.values():
        j = BLAZEPOSE33.index[dst]
        e = np.linalg.norm(joints[:F, j] - ref[:F, j], axis=-1)
        expected[dst] = e[np.isfinite(e)].mean()
    for name, tol in (("poses3d.npz", 1e-9), ("person.trc", 1e-5), ("person.c3d", 1e-4)):
        assert main(["eval", str(out / name), "--reference", str(REFERENCE_TRC), "-o", str(tmp_path / name)]) == 0
        report = json.loads((tmp_path / name / "eval.json").read_text())
        got = {k: v["mean"] for k, v in report["per_joint_m"].items()}
        assert set(got) == set(expected)
        for k in expected:
            assert got[k] == pytest.approx(expected[k], abs=tol), (name, k)
        assert (tmp_path / name / "bland_altman.png").stat().st_size > 10_000
        assert report["pcp"]["average"] > 95  # the two reconstructions agree limb by limb
    printed = capsys.readouterr().out
    assert "MPJPE" in printed and "PCP" in printed and "left_knee" in printed


def test_several_people_are_matched_whatever_their_order(tmp_path):
    ref = reference_take()[:40]
    other = ref + np.array([2.0, 0.0, 0.0])
    truth = {"person_ids": np.array([0, 1]), "joint_names": np.array(BLAZEPOSE33.joints), "fps": np.array(60.0),
             "person0_joints": ref, "person1_joints": other}
    shifted = ref + np.array([0.0, 0.03, 0.0])  # 30 mm off everywhere
    pred = {**truth, "person_ids": np.array([4, 7]), "person4_joints": other, "person7_joints": shifted}
    np.savez(tmp_path / "truth.npz", **truth)
    np.savez(tmp_path / "pred.npz", **{k: v for k, v in pred.items() if not k.startswith("person0") and not k.startswith("person1_")})
    report = evaluate(load_people(tmp_path / "pred.npz"), load_people(tmp_path / "truth.npz"))
    assert report.summary["poses"] == 80
    assert report.summary["mpjpe"] == pytest.approx(0.015)  # half the poses 0, half 30 mm
    assert report.pcp["average"] == pytest.approx(100.0)
    assert report.pcp["id_switches"] == [0, 0]


def test_names_rates_and_files_that_cannot_be_compared(ours, tmp_path):
    out, joints = ours
    assert canonical("RHip") == "right_hip" and canonical("LBigToe") in ("left_foot_index", "left_big_toe")
    slow = load_people(out / "person.trc")
    slow.fps = 30.0
    with pytest.raises(TriangulumError, match="rates differ"):
        evaluate(slow, load_people(REFERENCE_TRC))
    renamed = load_people(out / "person.trc")
    renamed.names = tuple(f"m{i}" for i in range(len(renamed.names)))
    with pytest.raises(TriangulumError, match="--map"):
        evaluate(renamed, load_people(REFERENCE_TRC))
    (tmp_path / "map.toml").write_text('[joints]\nm25 = "LKnee"\nm26 = "RKnee"\n')
    mapped = evaluate(renamed, load_people(REFERENCE_TRC), read_joint_map(tmp_path / "map.toml"))
    plain = evaluate(load_people(out / "person.trc"), load_people(REFERENCE_TRC))
    assert mapped.joints == ["m25", "m26"]
    assert mapped.per_joint["m25"]["mean"] == pytest.approx(plain.per_joint["left_knee"]["mean"])
    (tmp_path / "bad_map.toml").write_text('[joints]\nm99 = "LKnee"\n')
    with pytest.raises(TriangulumError, match="lack"):
        evaluate(renamed, load_people(REFERENCE_TRC), read_joint_map(tmp_path / "bad_map.toml"))
    assert main(["eval", str(out / "person.trc"), "--reference", str(REFERENCE_TRC), "--map",
                 str(tmp_path / "missing.toml"), "-o", str(tmp_path / "x")]) == 2
    with pytest.raises(TriangulumError, match="does not exist"):
        load_people(tmp_path / "nothing.trc")
    (tmp_path / "bad.xyz").write_text("1")
    with pytest.raises(TriangulumError, match="unknown file type"):
        load_people(tmp_path / "bad.xyz")
