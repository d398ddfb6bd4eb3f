"""Frames that stay compressed: a recorded MJPEG session (or an MJPEG webcam) hands its JPEGs
on undecoded, the recorder stores them byte for byte, pose decodes them at full or reduced
size, and while recording live the pose worker yields the CPU to the recorder."""

from __future__ import annotations

import os
import threading
import time

import cv2
import numpy as np
import pytest
from test_capture_recorder import pattern_frames

from app.capture.frames import Frame, FrameSet
from app.capture.live import CaptureConfig, LiveCapture
from app.capture.pattern import read_barcode
from app.capture.recorder import CameraEntry, Recorder, RecorderConfig
from app.capture.sources import WebcamSource
from app.capture.worker import lower_thread_priority
from app.process.pipeline import pose_image
from app.sample import SAMPLE_DIR
from calibration.jpeg import jpeg_size
from calibration.takes import TrackReader, open_session


def _jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def _studio_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(SAMPLE_DIR / "cam03.mp4"))
    ok, image = cap.read()
    cap.release()
    assert ok
    return image


def test_an_encoded_frame_decodes_on_demand_in_full_or_reduced():
    image = _studio_frame()
    data = _jpeg(image)
    assert jpeg_size(data) == (1088, 1920)
    frame = Frame("cam03", 0, 0.0, 0.0, encoded=data)
    assert not frame.decoded
    half = frame.pixels(2)
    assert half.shape == (960, 544, 3) and not frame.decoded
    full = frame.image
    assert full.shape == image.shape and frame.decoded
    assert np.abs(full.astype(int) - image).mean() < 3  # JPEG at quality 90
    assert np.abs(cv2.resize(full, (544, 960), interpolation=cv2.INTER_AREA).astype(int) - half).mean() < 3
    with pytest.raises(ValueError, match="an image, its encoded bytes or its decoded planes"):
        Frame("a", 0, 0.0, 0.0)
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        _ = Frame("a", 0, 0.0, 0.0, encoded=b"\xff\xd8nonsense\xff\xd9").image


def test_pose_decodes_large_compressed_frames_at_half_size_only_when_asked():
    big = Frame("a", 0, 0.0, 0.0, encoded=_jpeg(_studio_frame()))
    webcam = Frame("b", 0, 0.0, 0.0, encoded=_jpeg(np.zeros((720, 1280, 3), np.uint8)))
    raw = Frame("c", 0, 0.0, 0.0, image=np.zeros((1920, 1088, 3), np.uint8))
    assert [pose_image(f, 480)[0].shape[:2] for f in (big, webcam, raw)] == [(960, 544), (720, 1280), (1920, 1088)]
    assert [pose_image(f, 480)[1] for f in (big, webcam, raw)] == [0.5, 1.0, 1.0]
    assert raw.pixels(2).shape == (960, 544, 3)
    assert pose_image(big, None)[0].shape[:2] == (1920, 1088)


def test_the_tracker_on_a_half_size_decode_finds_the_same_person_in_full_size_pixels():
    from engines.blazepose.pipeline import BlazePoseEstimator
    from engines.tracker import PeopleTracker

    image = _studio_frame()
    frame = Frame("cam03", 0, 0.0, 0.0, encoded=_jpeg(image, 95))
    estimator = BlazePoseEstimator("onnxruntime")
    half = PeopleTracker(estimator)([frame.pixels(2)], [0.5])[0]
    full = PeopleTracker(estimator)([frame.image])[0]
    assert frame.pixels(2).shape == (960, 544, 3)  # still half size after the full decode
    assert len(full) >= 1 and len(half) == len(full)
    d = np.linalg.norm(full.keypoints[0] - half.keypoints[0], axis=-1)
    assert np.median(d) < 6  # px in the 1088 x 1920 image (~0.3 % of its height)


def test_the_recorder_stores_encoded_frames_byte_for_byte(tmp_path):
    frames = pattern_frames(6)
    rec = Recorder(tmp_path / "r", [CameraEntry("a", "test", 320, 240, 30.0)], RecorderConfig(codec="mjpeg"))
    rec.start()
    sent = []
    for g in frames:
        data = _jpeg(g.image, 80)
        sent.append(data)
        rec.submit(Frame("a", g.index, g.t_capture, 0.0, encoded=data))
    rec.stop()
    stats = rec.stats()
    assert stats.written["a"] == 6 and stats.passed_through["a"] == 6
    reader = TrackReader(open_session(tmp_path / "r").tracks[0])
    assert [reader.read_encoded(i) for i in range(6)] == sent
    assert [read_barcode(reader.read(i)) for i in range(6)] == list(range(6))
    # A JPEG of another size than the camera's is decoded and resized, not stored as it is.
    rec2 = Recorder(tmp_path / "r2", [CameraEntry("a", "test", 160, 120, 30.0)], RecorderConfig(codec="mjpeg"))
    rec2.start()
    rec2.submit(Frame("a", 0, 0.0, 0.0, encoded=sent[0]))
    rec2.stop()
    assert rec2.stats().passed_through["a"] == 0
    assert TrackReader(open_session(tmp_path / "r2").tracks[0]).read(0).shape == (120, 160, 3)


def test_a_replayed_session_is_recorded_again_without_re_encoding(tmp_path):
    first = tmp_path / "first"
    sources = [f"test:{n}?fps=30&width=320&height=240&frames=20&lockstep=1" for n in ("a", "b")]
    capture = LiveCapture(CaptureConfig(sources=sources, mode="lockstep", record=first))
    capture.start()
    while not capture.finished:
        time.sleep(0.05)
    capture.stop()
    again = tmp_path / "again"
    capture = LiveCapture(CaptureConfig(sources=[f"session:{first}?speed=0"], mode="lockstep", record=again))
    capture.start()
    while not capture.finished:
        time.sleep(0.05)
    capture.stop()
    assert capture.recorder.stats().passed_through == {"a": 20, "b": 20}
    for name in ("a", "b"):
        a = TrackReader(open_session(first).track(name))
        b = TrackReader(open_session(again).track(name))
        assert [b.read_encoded(i) for i in range(20)] == [a.read_encoded(i) for i in range(20)]


def test_the_pose_worker_runs_at_a_lower_priority_while_recording_live(tmp_path):
    seen = {}

    class Probe:
        """A pose pipeline that notes its thread's nice value."""

        def process(self, frameset: FrameSet):
            from app.capture.worker import PreviewPipeline

            seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            return PreviewPipeline().process(frameset)

        def reset(self) -> None:
            pass

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    capture = LiveCapture(CaptureConfig(sources=["test:a?fps=30&width=160&height=120"], record=tmp_path / "r"),
                          Probe())
    capture.start()
    deadline = time.monotonic() + 10
    while "nice" not in seen and time.monotonic() < deadline:
        time.sleep(0.05)
    capture.stop()
    assert seen["nice"] == min(base + 10, 19)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # only that thread


def test_lower_thread_priority_leaves_other_threads_alone():
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    out = {}

    def work():
        out["ok"] = lower_thread_priority(5)
        out["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out == {"ok": True, "nice": min(base + 5, 19)}
    assert not lower_thread_priority(0)


class _MjpegDevice:
    """Stands in for an MJPEG USB camera behind OpenCV's V4L2 backend (none on this machine):
    with CONVERT_RGB off it returns the camera's JPEG as one row of bytes, as V4L2 does."""

    def __init__(self, *_):
        self.convert = 1
        self.k = 0

    def isOpened(self):
        return True

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_CONVERT_RGB:
            self.convert = value
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter_fourcc(*"MJPG"))}.get(prop, 0.0)

    def read(self, out=None):
        image = pattern_frames(self.k + 1, size=(320, 240))[-1].image
        self.k += 1
        if self.convert:
            return True, image
        return True, np.frombuffer(_jpeg(image), np.uint8)[None, :]

    def release(self):
        pass


def test_an_mjpeg_webcam_hands_on_its_jpegs(monkeypatch):
    monkeypatch.setattr(cv2, "VideoCapture", _MjpegDevice)
    cam = WebcamSource("w", 0, 320, 240, 30.0, mjpg=True)
    cam.passthrough = True
    info = cam.open()
    assert (info.width, info.height) == (320, 240) and "JPEG passed through" in info.detail
    grabbed = cam.read()
    assert grabbed.image is None and jpeg_size(grabbed.encoded) == (320, 240)
    plain = WebcamSource("w", 0, 320, 240, 30.0, mjpg=True)
    plain.open()
    assert plain.read().image.shape == (240, 320, 3)
