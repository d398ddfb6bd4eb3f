"""Sources, spec strings, pooled buffers, grabber threads (including a camera that fails
mid-run and comes back) and live capture of the real pose2sim videos."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from capture_support import wait_for
from shared_data import TEST_DATA

from app.capture.buffers import FramePool
from app.capture.frames import clock
from app.capture.grabber import Grabber, RetryPolicy
from app.capture.live import CaptureConfig, LiveCapture
from app.capture.pattern import TestPatternSource, read_barcode
from app.capture.sources import SourceEnded
from app.capture.spec import open_sources, parse_spec
from app.capture.sync import SyncBuffer
from calibration.errors import TriangulumError

DATA = TEST_DATA
VIDEOS = DATA / "pose2sim-demo-single" / "videos"
needs_data = pytest.mark.skipif(not VIDEOS.exists(), reason="shared data not available")


def test_spec_strings_parse_and_bad_ones_say_what_is_wrong(tmp_path):
    spec = parse_spec("webcam:0?width=1280&height=720&fps=30&mjpg=0")
    assert (spec.kind, spec.target, spec.integer("width", None), spec.flag("mjpg", True)) == ("webcam", "0", 1280, False)
    assert parse_spec("video:C:/x/y.mp4?loop").flag("loop")
    with pytest.raises(TriangulumError, match="KIND:TARGET"):
        parse_spec("camera0")
    with pytest.raises(TriangulumError, match="unknown option"):
        parse_spec("video:x.mp4?speed=2")
    with pytest.raises(TriangulumError, match="not a number"):
        parse_spec("test:a?fps=fast").number("fps", 30.0)
    with pytest.raises(TriangulumError, match="does not exist"):
        open_sources([f"video:{tmp_path / 'missing.mp4'}"])
    with pytest.raises(TriangulumError, match="used twice"):
        open_sources(["test:a", "test:a"])
    names = [s.name for s in open_sources(["test:a", "test:b?name=left", f"images:{tmp_path}"])]
    assert names == ["a", "left", tmp_path.name]


def test_a_webcam_that_is_not_there_is_a_clear_error():
    grabber = Grabber(open_sources(["webcam:97"])[0], [])
    with pytest.raises(TriangulumError, match="webcam97.*cannot start"):
        grabber.open()


def test_pool_buffers_come_back_when_the_last_view_goes():
    pool = FramePool((4, 6, 3), capacity=2)
    a, b = pool.acquire(), pool.acquire()
    assert pool.acquire() is None and pool.available == 0
    a[:] = 7
    corner = a[1:3, 2:4]  # a slice keeps the buffer in use
    del a
    gc.collect()
    assert pool.available == 0
    assert (corner == 7).all()
    del corner
    assert pool.available == 1
    c = pool.acquire()
    assert c is not None and np.shares_memory(c, pool._store) and not np.shares_memory(c, b)


def test_test_pattern_carries_its_frame_number():
    source = TestPatternSource("t", 320, 240, 30.0, paced=False, frames=5)
    source.open()
    source.epoch = 100.0
    out = np.empty((240, 320, 3), np.uint8)
    for k in range(5):
        grabbed = source.read(out)
        assert grabbed.image is out
        assert read_barcode(out) == k
        assert grabbed.t_capture == pytest.approx(100.0 + k / 30)
    with pytest.raises(SourceEnded):
        source.read(out)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert read_barcode(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)) == 4  # survives compression


@needs_data
def test_video_lockstep_reads_every_frame_on_the_file_timeline():
    (source,) = open_sources([f"video:{VIDEOS / 'cam01.mp4'}?lockstep=1"])
    info = source.open()
    assert (info.width, info.height, info.fps, info.frames) == (1080, 1920, 60.0, 100)
    source.epoch = 5.0
    reference = cv2.VideoCapture(str(VIDEOS / "cam01.mp4"))
    out = np.empty((1920, 1080, 3), np.uint8)
    for k in range(100):
        grabbed = source.read(out)
        assert (grabbed.index, grabbed.skipped) == (k, 0)
        assert grabbed.t_capture == pytest.approx(5.0 + k / 60)
        if k in (0, 99):
            ok, expected = reference.read()
            assert ok and np.array_equal(grabbed.image, expected)
        else:
            reference.grab()
    with pytest.raises(SourceEnded):
        source.read(out)
    source.close()


@needs_data
def test_paced_video_delivers_on_schedule():
    (source,) = open_sources([f"video:{VIDEOS / 'cam03.mp4'}?fps=20"])
    source.open()
    source.epoch = clock() + 0.05
    lateness = []
    for _ in range(10):
        grabbed = source.read()
        assert grabbed.t_capture == pytest.approx(source.epoch + grabbed.index / 20)
        lateness.append(clock() - grabbed.t_capture)
    assert min(lateness) >= 0  # never delivered before its time
    assert np.median(lateness) < 0.05
    source.close()


def _write_pattern_images(folder: Path, n: int) -> None:
    source = TestPatternSource("img", 128, 96, 30.0, paced=False, frames=n)
    source.open()
    folder.mkdir()
    for k in range(n):
        cv2.imwrite(str(folder / f"{k:04d}.png"), source.read().image)


def test_a_camera_that_fails_mid_run_is_retried_and_comes_back_while_others_run(tmp_path):
    """An image folder that disappears (a storage device unplugged) and reappears: its
    grabber reports the failure and reconnects; the test-pattern camera never stops."""
    folder = tmp_path / "cam"
    _write_pattern_images(folder, 10)
    sources = open_sources([f"images:{folder}?fps=30&loop=1", "test:steady?fps=30&width=128&height=96"])
    sync = SyncBuffer([s.name for s in sources], 0.017, "live")
    states: list[tuple[str, str]] = []
    received: dict[str, list[int]] = {s.name: [] for s in sources}

    def sink(frame):
        received[frame.camera].append(read_barcode(frame.image))
        sync.push(frame)

    def on_state(camera, state, message):
        states.append((camera, state))
        if state == "failed":
            sync.set_active(camera, False)

    retry = RetryPolicy(first_delay=0.05, factor=2.0, max_delay=0.2)
    grabbers = [Grabber(s, [sink], pool_frames=8, retry=retry, on_state=on_state) for s in sources]
    for g in grabbers:
        g.open()
    epoch = clock() + 0.05
    for s in sources:
        s.epoch = epoch
    for g in grabbers:
        g.start()
    try:
        assert wait_for(lambda: grabbers[0].stats().frames >= 10)
        hidden = tmp_path / "unplugged"
        folder.rename(hidden)
        assert wait_for(lambda: grabbers[0].stats().state == "failed")
        time.sleep(0.3)  # a few retries fail while the folder is away
        during = grabbers[0].stats()
        steady_before = grabbers[1].stats().frames
        assert during.failures == 1 and "cannot be" in during.last_error
        assert wait_for(lambda: grabbers[1].stats().frames >= steady_before + 8), "the other camera kept running"
        assert grabbers[0].stats().frames == during.frames
        hidden.rename(folder)
        assert wait_for(lambda: grabbers[0].stats().state == "running")
        assert wait_for(lambda: grabbers[0].stats().frames > during.frames + 5)
        assert grabbers[0].stats().reconnects == 1
        assert sync.get(timeout=2.0).cameras == ("cam", "steady")
    finally:
        for g in grabbers:
            g.stop()
    assert ("cam", "failed") in states and states[-1][1] == "stopped"
    assert all(g.stats().failures == 0 for g in grabbers[1:])
    # Pixels arrived intact in the pooled buffers: the pattern's barcode is its own index.
    assert received["steady"] == sorted(received["steady"])
    assert set(received["cam"]) <= set(range(10))


@needs_data
def test_four_real_videos_in_lockstep_give_every_set_with_zero_skew():
    specs = [f"video:{VIDEOS / f'cam0{i}.mp4'}?lockstep=1" for i in range(1, 5)]
    capture = LiveCapture(CaptureConfig(sources=specs, mode="lockstep"))
    capture.open()
    box = capture.worker.subscribe(capacity=100, images=False)
    capture.start()
    deadline = clock() + 60
    while not capture.finished and clock() < deadline:
        time.sleep(0.05)
    capture.stop()
    stats = capture.stats()
    assert stats.sync.sets == 100
    assert stats.sync.skew_max == 0.0
    assert all(v == 0 for v in stats.sync.dropped.values())
    assert [c.frames for c in stats.cameras] == [100] * 4
    poses = []
    while (p := box.get(timeout=0)) is not None:
        poses.append(p)
    assert [p.index for p in poses] == list(range(100)) and box.dropped == 0
    assert [p.t_capture - capture.epoch for p in poses] == pytest.approx([k / 60 for k in range(100)])
    assert [c.camera for c in stats.cameras] == ["cam01", "cam02", "cam03", "cam04"]
    assert {c.width for c in stats.cameras} == {1080, 1088}


def test_lockstep_capture_reads_paced_specs_unpaced_and_refuses_webcams():
    capture = LiveCapture(CaptureConfig(sources=["test:a?fps=5&frames=25", "test:b?fps=5&frames=25"], mode="lockstep"))
    t0 = clock()
    capture.start()
    assert wait_for(lambda: capture.finished, timeout=30)
    capture.stop()
    assert clock() - t0 < 4.0  # 25 frames at 5 fps would take 5 s paced
    assert capture.stats().sync.sets == 25
    with pytest.raises(TriangulumError, match="lock-step"):
        LiveCapture(CaptureConfig(sources=["webcam:0"], mode="lockstep"))


class _RigUser:
    """A pipeline that only records the rig the capture hands it."""

    def __init__(self) -> None:
        self.rig = None

    def use_rig(self, rig) -> None:
        self.rig = rig

    def process(self, frameset):  # pragma: no cover - not started
        raise AssertionError


def test_live_sources_are_checked_against_the_calibrated_sizes_as_offline():
    from calibration.camera import Camera
    from calibration.rig import Rig

    def cam(name, size):
        return Camera(name, size, np.array([[500.0, 0, size[0] / 2], [0, 500.0, size[1] / 2], [0, 0, 1]]),
                      np.zeros(5), np.eye(3), np.array([0.0, 0, 3]))

    rig = Rig([cam("a", (640, 480)), cam("b", (640, 480))])
    # b delivers 8 px less at the bottom: a crop, accepted with the camera's size fitted.
    pipeline = _RigUser()
    capture = LiveCapture(CaptureConfig(sources=["test:a?width=640&height=480", "test:b?width=640&height=472"],
                                        calibration=rig), pipeline)
    capture.open()
    try:
        assert pipeline.rig["b"].size == (640, 472) and pipeline.rig["a"] is rig["a"]
        assert capture.config.calibration is pipeline.rig
    finally:
        for s in capture.sources:
            s.close()
    # Half the calibrated size is another resolution: an error naming the camera and both sizes.
    capture = LiveCapture(CaptureConfig(sources=["test:a?width=320&height=240", "test:b?width=640&height=480"],
                                        calibration=rig), _RigUser())
    with pytest.raises(TriangulumError, match=r"camera 'a'.*320x240.*640x480"):
        capture.open()
