"""What `triangulum process` reads: the sample, videos matched to cameras, size and length
mismatches, recorded sessions with dropped frames, and the lock-step reader."""

import dataclasses
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.capture.frames import Frame
from app.capture.recorder import CameraEntry, Recorder, RecorderConfig
from app.process.inputs import VideoInfo, fit_camera_size, match_videos, open_take
from app.process.reader import frame_sets, prefetch
from app.sample import SAMPLE_DIR, sample_calibration, sample_videos
from calibration.errors import TriangulumError
from calibration.formats.detect import convert
from calibration.rig import Rig
from calibration.rig_io import save_rig


def test_the_sample_is_complete_and_its_crop_is_reported():
    assert (SAMPLE_DIR / "LICENSE").read_text().startswith("BSD 3-Clause")
    assert "Pose2Sim" in (SAMPLE_DIR / "NOTICE").read_text()
    take = open_take([])
    assert take.cameras == ["cam01", "cam02", "cam03", "cam04"] and take.frames == 100 and take.fps == 60
    assert [c.size for c in take.rig.cameras] == [(1080, 1920), (1080, 1920), (1088, 1920), (1088, 1920)]
    calibrated = convert(sample_calibration())
    for cam in take.rig.cameras:  # a right/bottom crop leaves the intrinsics alone
        np.testing.assert_array_equal(cam.K, calibrated[cam.name].K)
    assert len(take.warnings) == 2
    assert all("cropped by 8 px on the right" in w for w in take.warnings)
    assert "cam01" in take.warnings[0] and "cam02" in take.warnings[1]


def _info(size, camera="cam03"):
    return VideoInfo(camera, Path(f"{camera}.mp4"), size, 100, 60.0)


@pytest.mark.parametrize("size", [(1040, 1920), (1088, 1900), (544, 960), (1100, 1920), (1920, 1088)])
def test_other_size_mismatches_are_errors_naming_camera_and_sizes(size):
    rig = convert(sample_calibration())
    with pytest.raises(TriangulumError) as err:
        fit_camera_size(rig, _info(size), [])
    msg = str(err.value)
    assert "cam03" in msg and f"{size[0]}x{size[1]}" in msg and "1088x1920" in msg


def test_small_crops_on_both_sides_are_accepted():
    rig = convert(sample_calibration())
    warnings = []
    out = fit_camera_size(rig, _info((1080, 1910)), warnings)
    assert out["cam03"].size == (1080, 1910) and "10 px at the bottom" in warnings[0]
    assert fit_camera_size(rig, _info((1088, 1920)), warnings) is rig


def test_videos_are_matched_to_cameras_by_name(tmp_path):
    rig = convert(sample_calibration())
    got = match_videos([Path("take3_cam02.mp4"), Path("cam01.mp4")], rig.names, "rig.toml")
    assert got == {"cam02": Path("take3_cam02.mp4"), "cam01": Path("cam01.mp4")}
    with pytest.raises(TriangulumError, match="camX.mp4 matches no camera .*cam01, cam02, cam03, cam04"):
        match_videos([Path("cam01.mp4"), Path("camX.mp4")], rig.names, "rig.toml")
    with pytest.raises(TriangulumError, match="two videos"):
        match_videos([Path("cam01.mp4"), Path("a_cam01.mp4")], rig.names, "rig.toml")
    with pytest.raises(TriangulumError, match="at least two cameras"):
        match_videos([Path("cam01.mp4")], rig.names, "rig.toml")


def test_a_camera_missing_from_the_calibration_is_named(tmp_path):
    videos = sample_videos()
    shutil.copy(videos[0], tmp_path / "cam01.mp4")
    shutil.copy(videos[1], tmp_path / "cam07.mp4")
    with pytest.raises(TriangulumError, match="cam07.mp4 matches no camera"):
        open_take([tmp_path / "cam01.mp4", tmp_path / "cam07.mp4"], sample_calibration())
    with pytest.raises(TriangulumError, match="--calib"):
        open_take([tmp_path / "cam01.mp4", tmp_path / "cam07.mp4"])


def _small_rig(tmp_path, scale=0.125) -> tuple[Rig, Path]:
    """The sample rig for videos shrunk by `scale` (cameras resized consistently)."""
    rig = convert(sample_calibration())
    small = Rig([c.scaled(scale) for c in rig.cameras])
    return small, save_rig(small, tmp_path / "rig.toml")


def _write_video(path, frames, size, fps=60.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for k in range(frames):
        writer.write(np.full((size[1], size[0], 3), k * 9 % 255, np.uint8))
    writer.release()


def test_unequal_lengths_are_cut_to_the_shortest_with_a_warning(tmp_path):
    rig, calib = _small_rig(tmp_path)
    for cam, n in zip(rig.cameras, (12, 12, 9, 12), strict=True):
        _write_video(tmp_path / f"{cam.name}.mp4", n, cam.size)
    take = open_take([tmp_path], None)  # a folder: finds rig.toml itself
    assert take.frames == 9
    assert any("different lengths (cam01 12, cam02 12, cam03 9, cam04 12" in w for w in take.warnings)
    sets = list(frame_sets(take))
    assert len(sets) == 9 and all(len(s) == 4 for s in sets)
    assert sets[5]["cam03"].index == 5 and sets[5]["cam03"].image.shape == (240, 136, 3)


def test_a_folder_without_calibration_or_videos_says_what_to_do(tmp_path):
    with pytest.raises(TriangulumError, match="holds no videos"):
        open_take([tmp_path])
    rig, _ = _small_rig(tmp_path)
    (tmp_path / "rig.toml").unlink()
    for cam in rig.cameras[:2]:
        _write_video(tmp_path / f"{cam.name}.mp4", 3, cam.size)
    with pytest.raises(TriangulumError, match="no calibration found.*--calib"):
        open_take([tmp_path])


def record_session(directory: Path, rig: Rig, frames: int, drop: dict[str, list[int]], source_scale=0.25) -> Path:
    """A real recorded session (the app's Recorder, MJPEG) of the sample's first frames at
    `source_scale`, with the frames in `drop` never submitted for those cameras."""
    small = Rig([c.scaled(source_scale) for c in rig.cameras])
    entries = [CameraEntry(c.name, f"video:{c.name}.mp4", c.size[0], c.size[1], 60.0) for c in small.cameras]
    rec = Recorder(directory, entries, RecorderConfig(codec="mjpeg", quality=95), calibration=small, clock_origin=0.0)
    rec.start()
    caps = {c.name: cv2.VideoCapture(str(SAMPLE_DIR / f"{c.name}.mp4")) for c in small.cameras}
    for k in range(frames):
        for c, cam in enumerate(small.cameras):
            ok, image = caps[cam.name].read()
            assert ok
            if k in drop.get(cam.name, []):
                continue
            image = cv2.resize(image, cam.size, interpolation=cv2.INTER_AREA)
            t = k / 60.0 + 0.0005 * c  # cameras are never exactly simultaneous
            rec.submit(Frame(cam.name, k, t, t, image))
        while rec.stats().queued:
            threading.Event().wait(0.005)
    rec.stop()
    return directory


def test_a_recorded_session_is_read_by_capture_time(tmp_path):
    rig = convert(sample_calibration())
    # The sample's cam01/cam02 are 1080 wide: calibrate the session at the video sizes.
    rig = Rig([dataclasses.replace(c, size=(1080, 1920)) if c.name in ("cam01", "cam02") else c for c in rig.cameras])
    session = record_session(tmp_path / "take", rig, 12, {"cam03": [4, 5]})
    take = open_take([session])
    assert take.source.startswith("session") and take.frames == 12
    assert take.calibration == session / "calibration.toml"
    col = take.cameras.index("cam03")
    assert take.frame_index[:, col].tolist() == [0, 1, 2, 3, -1, -1, 4, 5, 6, 7, 8, 9]
    assert (take.frame_index[:, [c for c in range(4) if c != col]] == np.arange(12)[:, None]).all()
    assert any("cam03" in w and "2 of 12 frame sets" in w for w in take.warnings)
    np.testing.assert_allclose(take.times, np.arange(12) / 60.0, atol=2e-3)
    sets = list(frame_sets(take))
    assert [len(s) for s in sets] == [4, 4, 4, 4, 3, 3, 4, 4, 4, 4, 4, 4]
    assert "cam03" not in sets[4].cameras and sets[6]["cam03"].index == 4
    (session / "calibration.toml").unlink()
    import tomllib

    import tomli_w

    manifest = tomllib.loads((session / "manifest.toml").read_text())
    manifest.pop("calibration")
    (session / "manifest.toml").write_text(tomli_w.dumps(manifest))
    with pytest.raises(TriangulumError, match="no calibration.toml; pass the rig with --calib"):
        open_take([session])


def test_prefetch_keeps_order_passes_errors_and_stops_early():
    assert [x for x in prefetch(iter(range(50)), depth=3)] == list(range(50))

    def broken():
        yield 1
        raise TriangulumError("camera 'cam02': frame 1 cannot be decoded")

    got = []
    with pytest.raises(TriangulumError, match="cam02"):
        for x in prefetch(broken()):
            got.append(x)
    assert got == [1]
    before = threading.active_count()
    for x in prefetch(iter(range(10_000)), depth=2):
        if x == 3:
            break
    assert threading.active_count() <= before
