"""`triangulum process` on files as other tools and ordinary cameras make them, on the real
studio take (the built-in sample): a calibration in millimetres, one camera at 30 fps among
60 fps ones, a 6 fps take, a take with nobody in it; and the exit codes scripts rely on."""

import json
import shutil

import cv2
import numpy as np
import pytest
from test_process_support import sample_result
from test_units import write_in_units

from app.cli import EXIT_BAD_INPUT, EXIT_NOTHING_RECONSTRUCTED, EXIT_OK, main
from app.process.inputs import open_take
from app.process.take import ProcessConfig, process_take
from app.sample import SAMPLE_DIR, sample_calibration
from calibration.formats.detect import convert
from calibration.rig import Rig
from calibration.rig_io import save_rig

pytestmark = pytest.mark.slow
CAMERAS = ("cam01", "cam02", "cam03", "cam04")


def every_nth(src, dst, n: int, fps: float) -> int:
    """Re-encode a video keeping every n-th frame at `fps` -> frames written."""
    cap, writer, k, kept = cv2.VideoCapture(str(src)), None, 0, 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if k % n == 0:
            if writer is None:
                writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (image.shape[1], image.shape[0]))
            writer.write(image)
            kept += 1
        k += 1
    writer.release()
    return kept


def main_joints(result) -> np.ndarray:
    return result.person(result.main).final.joints


def test_a_calibration_in_millimetres_gives_the_metres_result(tmp_path):
    mm = write_in_units(tmp_path / "rig_mm.toml", 1000.0)
    videos = [SAMPLE_DIR / f"{c}.mp4" for c in CAMERAS]
    take = open_take(videos, mm)
    assert any("fits millimetres; converted to metres" in w for w in take.warnings)
    result = process_take(take, ProcessConfig())
    d = np.linalg.norm(main_joints(result) - main_joints(sample_result()), axis=-1)
    assert np.nanmax(d) < 1e-3


@pytest.fixture(scope="module")
def take30(tmp_path_factory):
    """The studio take with cam04 re-encoded at 30 fps (every other frame)."""
    folder = tmp_path_factory.mktemp("take30")
    for cam in CAMERAS[:3]:
        shutil.copy(SAMPLE_DIR / f"{cam}.mp4", folder / f"{cam}.mp4")
    assert every_nth(SAMPLE_DIR / "cam04.mp4", folder / "cam04.mp4", 2, 30.0) == 50
    shutil.copy(sample_calibration(), folder / "calibration.toml")
    return folder


def test_a_30fps_camera_among_60fps_ones_is_matched_in_time(take30, capsys):
    out = take30 / "out"
    assert main(["process", str(take30), "-o", str(out), "--no-overlays"]) == EXIT_OK
    printed = capsys.readouterr()
    assert "cam04 at 30 fps run slower" in printed.out
    report = json.loads((out / "report.json").read_text())
    assert report["fps"] == 60 and report["frames"] == 100
    timing = report["camera_timing"]
    assert timing["cam04"] == {"fps": 30.0, "frame_sets_with_a_frame": 50, "interpolated_2d": True,
                               "frame_sets_interpolated": 50}
    assert timing["cam01"]["interpolated_2d"] is False and timing["cam01"]["frame_sets_with_a_frame"] == 100
    assert any("cam04 at 30 fps" in w for w in report["warnings"])
    data = np.load(out / "poses3d.npz")
    joints = data[f"person{int(data['main_person'])}_joints"]
    reference = main_joints(sample_result())
    d = np.linalg.norm(joints - reference, axis=-1)
    assert np.nanmedian(d) < 0.01  # 1 cm
    assert np.nanmedian(d[1::2]) < 0.01  # the sets cam04 has no frame for, through its interpolated 2D
    cam04 = data[f"person{int(data['main_person'])}_keypoints2d"][3]
    assert np.isfinite(cam04[1:-1:2]).all(-1).mean() > 0.8  # interpolated 2D fills the odd sets
    assert report["people"][0]["reprojection_px"]["p95"] < 40


def test_a_6fps_take_processes_with_the_defaults(tmp_path, capsys):
    for cam in CAMERAS:
        assert every_nth(SAMPLE_DIR / f"{cam}.mp4", tmp_path / f"{cam}.mp4", 10, 6.0) == 10
    shutil.copy(sample_calibration(), tmp_path / "calibration.toml")
    assert main(["process", str(tmp_path), "-o", str(tmp_path / "out"), "--no-overlays"]) == EXIT_OK
    printed = capsys.readouterr()
    assert "filtering at 2.4 Hz instead" in printed.out
    assert "RuntimeWarning" not in printed.err and "Traceback" not in printed.err
    meta = json.loads(str(np.load(tmp_path / "out" / "poses3d.npz")["metadata"]))
    assert {"filter": "butterworth", "cutoff_hz": 2.4, "order": 4} in meta["filters"]
    assert (tmp_path / "out" / "person0.trc").is_file()
    # A cutoff the user chose that cannot work is refused before any 2D is run.
    out = tmp_path / "refused"
    assert main(["process", str(tmp_path), "-o", str(out), "--cutoff", "4"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "half the frame rate of this take (3 Hz at 6 fps)" in err
    assert not out.exists()


def _noise_take(folder, frames=8):
    rng = np.random.default_rng(0)
    rig = convert(sample_calibration())
    small = Rig([c.scaled(0.25) for c in rig.cameras])
    save_rig(small, folder / "rig.toml")
    for cam in small.cameras:
        writer = cv2.VideoWriter(str(folder / f"{cam.name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, cam.size)
        for _ in range(frames):
            writer.write((100 + 40 * rng.random((cam.size[1], cam.size[0], 3))).astype(np.uint8))
        writer.release()


def test_a_take_with_nobody_exits_with_its_own_code(tmp_path, capsys):
    _noise_take(tmp_path)
    out = tmp_path / "out"
    assert main(["process", str(tmp_path), "-o", str(out), "--no-overlays"]) == EXIT_NOTHING_RECONSTRUCTED
    err = capsys.readouterr().err
    assert "nothing reconstructed: BlazePose found nobody in any view" in err
    assert "RuntimeWarning" not in err and "Traceback" not in err
    report = json.loads((out / "report.json").read_text())
    assert report["outcome"]["exit_code"] == EXIT_NOTHING_RECONSTRUCTED
    assert report["outcome"]["people_reconstructed"] == 0 and "nobody in any view" in report["outcome"]["reason"]


def test_a_wrong_calibration_says_why_nobody_was_reconstructed(tmp_path, capsys):
    """People are seen, but the rig does not fit the take (a millimetre file stated as metres,
    as before units were told from the rig): the reason points at the calibration."""
    mm = write_in_units(tmp_path / "rig.toml", 1000.0)
    for cam in CAMERAS:
        every_nth(SAMPLE_DIR / f"{cam}.mp4", tmp_path / f"{cam}.mp4", 10, 6.0)
    code = main(["process", str(tmp_path), "--calib", str(mm), "--calib-units", "m", "-o", str(tmp_path / "out"),
                 "--no-overlays"])
    err = capsys.readouterr().err
    assert code == EXIT_NOTHING_RECONSTRUCTED
    assert "never matched across two cameras" in err and "--calib-units" in err


def test_report_statistics_of_empty_views_give_no_numpy_warnings():
    import dataclasses
    import warnings

    from app.process.report import quality

    result = sample_result()
    person = result.person(result.main)
    errors = person.final.errors.copy()
    errors[1] = np.nan  # a camera that never saw the person
    final = dataclasses.replace(person.final, errors=errors)
    blank = dataclasses.replace(person, final=final)
    copy = dataclasses.replace(result, people=[blank])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = quality(copy)
    assert data["people"][0]["reprojection_px"]["per_camera"]["cam02"] is None
