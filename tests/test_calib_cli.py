"""`triangulum calib board | intrinsics | extrinsics | from-person` end to end on the real recordings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from calib_support import (
    CALISCOPE,
    CALISCOPE_BOARD,
    CALISCOPE_REF,
    INTRINSIC_PHOTOS,
    KEYPOINTS,
    QCA,
    needs_caliscope,
    needs_pose2sim,
)

from app.cli import main
from calibration.alignment import compare_rigs
from calibration.formats import convert
from calibration.rig_io import load_rig


def test_board_command_creates_and_prints(tmp_path, capsys):
    board = tmp_path / "board.toml"
    rc = main(["calib", "board", str(board), "--create", "charuco", "--columns", "5", "--rows", "7",
               "--square", "0.03", "--dictionary", "DICT_4X4_50", "-o", str(tmp_path / "board.pdf")])
    assert rc == 0 and board.is_file() and (tmp_path / "board.pdf").read_bytes().startswith(b"%PDF")
    assert "100 mm" in capsys.readouterr().out
    rc = main(["calib", "board", str(board), "-o", str(tmp_path / "b.pdf"), "--paper", "100x100"])
    assert rc == 2 and "does not fit" in capsys.readouterr().err


@needs_pose2sim
def test_intrinsics_command_merges_cameras(tmp_path, capsys):
    board = tmp_path / "checker.toml"
    board.write_text('kind = "checkerboard"\ninner_corners = [4, 7]\nsquare_size = 0.06\n')
    out = tmp_path / "rig.toml"
    for cam in ("cam01", "cam02"):
        rc = main(["calib", "intrinsics", "--board", str(board), "--source", f"images:{INTRINSIC_PHOTOS / f'int_{cam}_img'}",
                   "--name", cam, "-o", str(out), "--preview", str(tmp_path / "preview")])
        assert rc == 0
    text = capsys.readouterr().out
    assert "RMS" in text and "warning:" in text
    rig = load_rig(out)
    ref = convert(QCA)
    assert rig.names == ["cam01", "cam02"]
    for name in rig.names:
        assert rig[name].K[0, 0] == pytest.approx(ref[name].K[0, 0], rel=0.02)
    figures = json.loads((tmp_path / "rig.intrinsics.json").read_text())
    assert set(figures) == {"cam01", "cam02"} and figures["cam01"]["std"]["cx"] > 0
    assert (tmp_path / "preview" / "cam01_coverage.png").is_file()
    assert (tmp_path / "preview" / "cam02_undistorted.png").is_file()


@needs_caliscope
def test_extrinsics_command_with_given_intrinsics(tmp_path):
    out = tmp_path / "rig.toml"
    rc = main(["calib", "extrinsics", "--board", str(CALISCOPE_BOARD), "--intrinsics", str(CALISCOPE_REF),
               "--source", str(CALISCOPE / "extrinsic"), "--step", "2", "--world", "board:first", "-o", str(out)])
    assert rc == 0
    rig = load_rig(out)
    cmp = compare_rigs(rig, convert(CALISCOPE_REF))
    assert cmp.max_centre_error() < 0.03 and cmp.max_angle_error() < 1.5
    assert rig.metadata["world"].startswith("z-up") and rig.metadata["adjusted"]
    report = json.loads((tmp_path / "rig.report.json").read_text())
    assert len(report["pairs"]) == 6 and "timings_s" in report["extra"]
    assert (tmp_path / "rig.report.png").is_file()


@needs_caliscope
def test_extrinsics_errors_are_clear(tmp_path, capsys):
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('kind = "charuco"\ncolumns = 4\nrows = 5\nsquare_size = 0.054\nmarker_size = 0.0405\n'
                     'dictionary = "DICT_5X5_1000"\ninverted = true\n')
    video = CALISCOPE / "extrinsic"
    rc = main(["calib", "extrinsics", "--board", str(wrong), "--source", f"video:{video / 'cam_0.mp4'}",
               "--source", f"video:{video / 'cam_1.mp4'}", "--step", "8", "-o", str(tmp_path / "r.toml")])
    err = capsys.readouterr().err
    assert rc == 2 and "no board detected in any of" in err and "cam_0" in err and "dictionary" in err
    rc = main(["calib", "extrinsics", "--board", str(CALISCOPE_BOARD), "--intrinsics", str(QCA),
               "--source", f"video:{video / 'cam_0.mp4'}", "--source", f"video:{video / 'cam_1.mp4'}", "--step", "8",
               "-o", str(tmp_path / "r.toml")])
    assert rc == 2 and "intrinsics file has no camera" in capsys.readouterr().err


@needs_pose2sim
def test_from_person_command(tmp_path):
    out = tmp_path / "rig.toml"
    rc = main(["calib", "from-person", "--intrinsics", str(QCA), "--keypoints", str(KEYPOINTS), "--height", "1.70",
               "-o", str(out)])
    assert rc == 0
    rig = load_rig(out)
    cmp = compare_rigs(rig, convert(QCA))
    assert cmp.max_angle_error() < 5.0 and cmp.max_centre_error() < 0.10
    assert rig.metadata["world"].startswith("z-up")
    report = json.loads((tmp_path / "rig.report.json").read_text())
    assert report["extra"]["scale"] > 0 and np.isfinite(report["per_camera"]["cam01"]["rms"])


@needs_pose2sim
@pytest.mark.slow
def test_from_person_on_the_videos_tracks_everyone_and_calibrates_from_the_same_person(tmp_path, capsys, monkeypatch):
    """`--source`: every person BlazePose tracks in every view is a candidate; the one who is
    geometrically the same across views is calibrated from (calibration.same_person)."""
    import app.person_calibration as sp

    seen = {}
    original = sp.same_person

    def spy(candidates, intrinsics, **kw):
        seen["candidates"] = candidates
        seen["chosen"] = original(candidates, intrinsics, **kw)
        return seen["chosen"]

    monkeypatch.setattr(sp, "same_person", spy)
    videos = QCA.parents[1] / "videos"
    out = tmp_path / "rig.toml"
    sources = [a for n in ("cam01", "cam02", "cam03", "cam04") for a in ("--source", f"video:{videos / n}.mp4")]
    assert main(["calib", "from-person", "--intrinsics", str(QCA), *sources, "--height", "1.70", "-o", str(out)]) == 0
    assert all(len(c.ids) >= 1 for c in seen["candidates"]) and seen["chosen"].consistent
    # Real BlazePose 2D (noise, cam02's left/right swaps): a quarter to a half of the joints are
    # inliers of one essential matrix per pair; test_calib_from_person pins the choice itself.
    assert np.nanmin(seen["chosen"].agreement) > 0.15
    cmp = compare_rigs(load_rig(out), convert(QCA))
    assert cmp.max_angle_error() < 5.0 and cmp.max_centre_error() < 0.10, cmp.summary()


@needs_pose2sim
def test_person_keypoints_from_videos_match_the_cached_file():
    from app.commands.calib_solve import detect_person_2d
    from calibration.frames import FrameSource

    videos = QCA.parents[1] / "videos"
    data = detect_person_2d([FrameSource(n, "video", str(videos / f"{n}.mp4")) for n in ("cam01", "cam02")], max_frames=2)
    cached = np.load(KEYPOINTS)
    assert data["keypoints"].shape == (2, 2, 33, 2) and list(data["cameras"]) == ["cam01", "cam02"]
    assert np.nanmax(np.abs(data["keypoints"] - cached["keypoints"][:2, :2])) < 0.5
