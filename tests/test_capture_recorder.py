"""Recording and playback: the Matroska MJPEG writer, session folders, a recording killed
with SIGKILL, a full disk, and playback in real time, as fast as possible and with seek."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from shared_data import TEST_DATA

from app.capture.frames import Frame, clock
from app.capture.live import CaptureConfig, LiveCapture
from app.capture.mkv import MjpegMkvWriter
from app.capture.pattern import TestPatternSource, read_barcode
from app.capture.recorder import CameraEntry, Recorder, RecorderConfig
from app.capture.spec import open_sources
from app.capture.worker import PreviewPipeline
from calibration.errors import TriangulumError
from calibration.formats.detect import convert
from calibration.rig_io import load_rig
from calibration.takes import TrackReader, open_session, read_manifest

DATA = TEST_DATA
QCA = DATA / "pose2sim-demo-single" / "calibration" / "Calib.qca.txt"
REPO = Path(__file__).resolve().parents[1]


def pattern_frames(n: int, size=(320, 240), fps=30.0):
    source = TestPatternSource("p", size[0], size[1], fps, paced=False, frames=n)
    source.open()
    source.epoch = 0.0
    return [source.read() for _ in range(n)]


def decode_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            return frames
        frames.append(image)


def test_mkv_plays_in_ffmpeg_with_its_timestamps_even_when_cut_anywhere(tmp_path):
    path = tmp_path / "v.mkv"
    writer = MjpegMkvWriter(path, 320, 240, 30.0, "test")
    times_ms = [round(k * 1000 / 30) + (7 if k % 5 == 0 else 0) for k in range(70)]  # irregular
    spans = []
    for grabbed, t in zip(pattern_frames(70), times_ms, strict=True):
        ok, jpeg = cv2.imencode(".jpg", grabbed.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        spans.append(writer.write(jpeg, t))
    writer.close()
    cap = cv2.VideoCapture(str(path))
    got_ms, codes = [], []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        got_ms.append(cap.get(cv2.CAP_PROP_POS_MSEC))
        codes.append(read_barcode(image))
    assert codes == list(range(70))
    assert got_ms == pytest.approx([t - times_ms[0] for t in times_ms])  # OpenCV counts from the first
    data = path.read_bytes()
    assert data[spans[3][0] : spans[3][0] + 2] == b"\xff\xd8"  # offsets point at each JPEG
    for cut in (len(data) // 3, len(data) // 2 + 1234, len(data) - 10):
        (tmp_path / "cut.mkv").write_bytes(data[:cut])
        complete = sum(1 for off, size in spans if off + size <= cut)
        decoded = decode_all(tmp_path / "cut.mkv")
        assert complete - 1 <= len(decoded) <= complete + 1
        assert [read_barcode(im) for im in decoded[: complete - 1]] == list(range(complete - 1))


def record(tmp_path: Path, specs: list[str], **recorder) -> tuple[LiveCapture, Path]:
    directory = tmp_path / "take"
    config = CaptureConfig(sources=specs, record=directory, recorder=RecorderConfig(**recorder))
    capture = LiveCapture(config)
    capture.start()
    deadline = clock() + 30
    while not capture.finished and clock() < deadline:
        time.sleep(0.05)
    capture.stop()
    return capture, directory


def test_recording_keeps_every_frame_and_its_capture_time(tmp_path):
    specs = ["test:a?fps=30&width=320&height=240&frames=40", "test:b?fps=15&width=160&height=120&frames=20"]
    capture, directory = record(tmp_path, specs)
    manifest = read_manifest(directory)
    assert manifest["status"] == "complete" and manifest["codec"] == "mjpeg"
    grabbed = {g.name: g.stats() for g in capture.grabbers}
    assert [(c["name"], c["frames"], c["complete"], c["width"]) for c in manifest["cameras"]] == [
        ("a", grabbed["a"].frames, True, 320),
        ("b", grabbed["b"].frames, True, 160),
    ]
    session = open_session(directory)
    for track, fps, n in zip(session.tracks, (30, 15), (40, 20), strict=True):
        # Every frame the camera delivered is recorded (a loaded machine may make the
        # paced source itself skip one, which it counts as dropped).
        stats = grabbed[track.name]
        assert track.frames == stats.frames >= n // 2 and stats.frames + stats.dropped == n
        assert np.all(np.diff(track.source_index) > 0) and track.source_index[-1] <= n - 1
        assert track.times == pytest.approx(track.source_index / fps, abs=2e-6)
        images = decode_all(track.video)
        assert [read_barcode(im) for im in images] == track.source_index.tolist()
    stats = capture.recorder.stats()
    assert stats.dropped == {"a": 0, "b": 0} and stats.error == ""


@pytest.mark.skipif(not QCA.exists(), reason="shared data not available")
@pytest.mark.parametrize(("quality", "min_psnr", "max_psnr"), [(90, 40, 45), (100, 50, 99)])
def test_mjpeg_quality_100_is_near_lossless_on_a_real_frame(tmp_path, quality, min_psnr, max_psnr):
    ok, image = cv2.VideoCapture(str(DATA / "pose2sim-demo-single" / "videos" / "cam03.mp4")).read()
    h, w = image.shape[:2]
    recorder = Recorder(tmp_path / "r", [CameraEntry("cam03", "test", w, h, 30.0)], RecorderConfig(quality=quality), clock_origin=0.0)
    recorder.start()
    recorder.submit(Frame("cam03", 0, 0.0, 0.0, image))
    recorder.stop()
    session = open_session(tmp_path / "r")
    (played,) = decode_all(session.tracks[0].video)  # as any player decodes it
    assert min_psnr < cv2.PSNR(image, played) < max_psnr
    # Our reader (libjpeg) and FFmpeg's decoder differ only by their IDCT rounding.
    assert min_psnr < cv2.PSNR(image, TrackReader(session.tracks[0]).read(0)) < max_psnr


def test_recording_saves_the_calibration_and_refuses_a_used_folder(tmp_path):
    if not QCA.exists():
        pytest.skip("shared data not available")
    rig = convert(QCA)
    cams = [CameraEntry("cam01", "test", 64, 48, 30.0)]
    recorder = Recorder(tmp_path / "r", cams, calibration=rig)
    recorder.start()
    recorder.stop()
    assert read_manifest(tmp_path / "r")["calibration"] == "calibration.toml"
    assert load_rig(tmp_path / "r" / "calibration.toml").names == rig.names
    with pytest.raises(TriangulumError, match="not an empty folder"):
        Recorder(tmp_path / "r", cams).start()


class BarcodeReader(PreviewPipeline):
    """A pipeline that notes, for every set, each frame's camera, index and pattern barcode."""

    def __init__(self) -> None:
        self.sets: list[tuple[list[tuple[str, int, int]], float]] = []

    def process(self, frameset):
        self.sets.append(([(f.camera, f.index, read_barcode(f.image)) for f in frameset.frames], frameset.skew))
        return super().process(frameset)


CAPTURE_SCRIPT = """
import sys
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["mjpeg", "ffv1"])
def test_a_recording_killed_with_sigkill_plays_back(tmp_path, codec):
    """`triangulum capture --record` killed mid-session: the session reader finds the frames
    that are really on disk and `session:` plays them back, pixels and times intact.
    (FFmpeg-written codecs keep up to 256 KB in memory, lost in a kill; mjpeg loses at most
    the frame in flight.)"""
    directory = tmp_path / "killed"
    cmd = [
        sys.executable, "-c", CAPTURE_SCRIPT, "capture", "--codec", codec, "--record", str(directory),
        "--source", "test:a?fps=30&width=320&height=240", "--source", "test:b?fps=30&width=320&height=240",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        csv, video = directory / "b_timestamps.csv", directory / ("b.mkv")

        def going() -> bool:
            return csv.exists() and csv.read_text().count("\n") >= 60 and video.exists() and video.stat().st_size > 600_000

        deadline = clock() + 60
        while clock() < deadline and not going():
            time.sleep(0.05)
        assert going(), "the recording did not get going"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    manifest = read_manifest(directory)
    assert manifest["status"] == "recording"  # it never got to say otherwise
    session = open_session(directory)
    rows = {t.name: (directory / f"{t.name}_timestamps.csv").read_text().count("\n") - 1 for t in session.tracks}
    for track in session.tracks:
        assert track.frames <= rows[track.name]
        if codec == "mjpeg":  # written straight through: at most the frame in flight is lost
            assert track.frames >= rows[track.name] - 1
        assert track.frames >= 20
    # Played back as fast as possible: every readable frame, in order, with its own pixels.
    reader = BarcodeReader()
    capture = LiveCapture(CaptureConfig(sources=[f"session:{directory}?speed=0"], mode="lockstep"), reader)
    capture.start()
    deadline = clock() + 60
    while not capture.finished and clock() < deadline:
        time.sleep(0.05)
    capture.stop()
    assert len(reader.sets) >= min(t.frames for t in session.tracks) - 2
    for frames, skew in reader.sets:
        for camera, index, code in frames:
            assert code == session.track(camera).source_index[index]
        assert skew < 1 / 60


def test_free_space_under_the_reserve_stops_recording_and_says_so(tmp_path):
    """Free space under the recorder's reserve: it stops, closes its files, says how much is
    free, what the reserve is and how to change it (the disk is not called full), and what it
    wrote plays."""
    cams = [CameraEntry("a", "test", 320, 240, 30.0)]
    recorder = Recorder(tmp_path / "r", cams, RecorderConfig(min_free_bytes=1 << 62))
    recorder.start()
    for grabbed in pattern_frames(5):
        recorder.submit(Frame("a", grabbed.index, grabbed.t_capture, 0.0, grabbed.image))
    deadline = clock() + 10
    while recorder.stats().state in ("recording", "stopping") and clock() < deadline:
        time.sleep(0.02)
    stats = recorder.stats()
    assert stats.state == "stopped" and "full" not in stats.error
    free_mb = shutil.disk_usage(tmp_path).free / 2**20
    said = re.search(r"only ([\d,.]+) (MB|GB) free .* under the ([\d,.]+) GB the recorder keeps free", stats.error)
    assert said, stats.error
    told_mb = float(said[1].replace(",", "")) * (1024 if said[2] == "GB" else 1)
    assert abs(told_mb - free_mb) < max(0.05 * free_mb, 50)
    assert float(said[3].replace(",", "")) == pytest.approx((1 << 62) / 2**30)
    assert "--min-free MB" in stats.error and "capture goes on" in stats.error
    recorder.submit(Frame("a", 9, 1.0, 0.0, pattern_frames(1)[0].image))  # ignored, no error
    recorder.stop()
    manifest = read_manifest(tmp_path / "r")
    assert manifest["status"] == "stopped" and "--min-free" in manifest["stop_reason"]
    assert manifest["cameras"][0]["complete"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_a_really_full_disk_stops_recording_cleanly(tmp_path):
    """A 1 MiB file system fills up mid-recording: the write fails with ENOSPC, recording
    stops with a clear message, and the frames already written play back."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        cams = [CameraEntry("a", "test", 640, 480, 30.0)]
        recorder = Recorder(mount / "r", cams, RecorderConfig(quality=100, min_free_bytes=0, queue_frames=500))
        recorder.start()
        frames = pattern_frames(200, size=(640, 480))
        for grabbed in frames:
            recorder.submit(Frame("a", grabbed.index, grabbed.t_capture, 0.0, grabbed.image))
        recorder.stop()
        stats = recorder.stats()
        assert stats.state == "stopped" and "is full" in stats.error
        assert 0 < stats.written["a"] < 200 and stats.dropped["a"] > 0
        session = open_session(mount / "r")
        track = session.tracks[0]
        assert track.frames >= stats.written["a"] - 1
        images = decode_all(track.video)
        assert [read_barcode(im) for im in images[: track.frames]] == list(range(track.frames))
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _record_pattern_session(tmp_path: Path) -> Path:
    """Two cameras, 30 frames each at exactly 20 fps, written by the Recorder."""
    directory = tmp_path / "pattern"
    cams = [CameraEntry(name, "test", 160, 120, 20.0) for name in ("a", "b")]
    recorder = Recorder(directory, cams, RecorderConfig(queue_frames=100), clock_origin=0.0)
    recorder.start()
    for grabbed in pattern_frames(30, size=(160, 120), fps=20.0):
        for name in ("a", "b"):
            recorder.submit(Frame(name, grabbed.index, grabbed.t_capture, 0.0, grabbed.image.copy()))
    recorder.stop()
    assert recorder.stats().written == {"a": 30, "b": 30}
    return directory


def test_playback_in_real_time_keeps_the_original_timing_and_seeks(tmp_path):
    directory = _record_pattern_session(tmp_path)
    sources = open_sources([f"session:{directory}"])
    playback = sources[0].playback
    for s in sources:
        s.open()
    epoch = clock() + 0.05
    for s in sources:
        s.epoch = epoch
    a = sources[0]
    lateness = []
    for k in range(6):
        grabbed = a.read()
        assert grabbed.index == k
        assert grabbed.t_capture == pytest.approx(epoch + k / 20, abs=1e-4)
        lateness.append(clock() - grabbed.t_capture)
    assert min(lateness) >= 0 and np.median(lateness) < 0.03
    playback.seek(1.0)
    t_seek = clock()
    grabbed = a.read()
    assert grabbed.index == 20 and read_barcode(grabbed.image) == 20
    assert clock() - t_seek < 0.2
    assert grabbed.t_capture > epoch + 5 / 20  # the timeline keeps increasing across a seek
    assert playback.position() == pytest.approx(1.0, abs=0.1)
    nxt = a.read()
    assert nxt.index == 21 and nxt.t_capture - grabbed.t_capture == pytest.approx(1 / 20, abs=1e-4)
    playback.seek(0.0)
    assert sources[1].read().index == 0 and a.read().index == 0
    for s in sources:
        s.close()


def test_playback_as_fast_as_possible_and_looping(tmp_path):
    directory = _record_pattern_session(tmp_path)
    (a, _) = open_sources([f"session:{directory}?speed=0&loop=1"])
    a.open()
    a.epoch = 10.0
    t0 = clock()
    got = [a.read() for _ in range(75)]
    assert clock() - t0 < 2.0  # 2.5 s of recording, not paced
    assert [g.index for g in got] == list(range(75))
    assert [read_barcode(g.image) for g in got] == [k % 30 for k in range(75)]
    assert np.diff([g.t_capture for g in got]) == pytest.approx(np.full(74, 1 / 20), abs=1e-4)
    a.close()


def test_a_folder_without_a_session_is_a_clear_error(tmp_path):
    with pytest.raises(TriangulumError, match="no manifest.toml"):
        open_sources([f"session:{tmp_path}"])


def test_capture_min_free_option_sets_the_reserve(tmp_path, capsys):
    from app.cli import main

    src = "test:a?fps=20&width=160&height=120"
    huge = str(shutil.disk_usage(tmp_path).free / 2**20 * 4)
    assert main(["capture", "--source", src, "--record", str(tmp_path / "r1"), "--duration", "1.5",
                 "--min-free", huge]) == 0
    out = capsys.readouterr().out
    assert "recording: only" in out and "--min-free MB" in out and "is full" not in out
    assert read_manifest(tmp_path / "r1")["status"] == "stopped"
    assert main(["capture", "--source", src, "--record", str(tmp_path / "r2"), "--duration", "1.0",
                 "--min-free", "0"]) == 0
    assert read_manifest(tmp_path / "r2")["status"] == "complete"
    assert main(["capture", "--source", src, "--record", str(tmp_path / "r3"), "--min-free", "-5"]) == 2
    assert "--min-free -5" in capsys.readouterr().err


def test_lockstep_capture_records_every_frame_of_full_size_videos(tmp_path, capsys):
    """Four 1088x1920 studio videos read in lock-step are read faster than they can be
    encoded: the readers wait for the recorder, and every frame of every camera is recorded."""
    from app.cli import main
    from app.sample import SAMPLE_DIR

    sources = [a for c in ("cam01", "cam02", "cam03", "cam04")
               for a in ("--source", f"video:{SAMPLE_DIR / f'{c}.mp4'}?lockstep=1")]
    assert main(["capture", *sources, "--lockstep", "--record", str(tmp_path / "take")]) == 0
    manifest = read_manifest(tmp_path / "take")
    assert manifest["status"] == "complete"
    assert [(c["frames"], c["dropped"]) for c in manifest["cameras"]] == [(100, 0)] * 4
    session = open_session(tmp_path / "take")
    assert [t.frames for t in session.tracks] == [100] * 4
    assert all(np.array_equal(t.source_index, np.arange(100)) for t in session.tracks)
