"""Crops cut straight from a decoder's YUV 4:2:0 planes match crops of the converted frame."""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest

from app.capture.frames import Frame
from app.process.inputs import open_take
from app.process.reader import frame_sets
from app.process.video_file import VideoReader
from engines.blazepose import yuv
from engines.blazepose.roi import Roi, crop
from engines.blazepose.yuv import Yuv420


def planes_of(bgr: np.ndarray) -> Yuv420:
    """What an H.264 decoder would hand out for this BGR image (BT.601, limited range)."""
    h, w = bgr.shape[:2]
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    y = i420[: h * w].reshape(h, w)
    u = i420[h * w: h * w * 5 // 4].reshape(h // 2, w // 2)
    v = i420[h * w * 5 // 4:].reshape(h // 2, w // 2)
    return Yuv420(y, u, v)


def test_crops_from_the_sample_planes_match_crops_of_opencvs_bgr_frame():
    take = open_take([])
    first = next(iter(frame_sets(take, 0, 1)))
    planes = first.frames[0].planes
    assert isinstance(planes, Yuv420) and planes.shape == (1920, 1080, 3)
    ok, bgr = cv2.VideoCapture(str(take.videos[0].path)).read()
    assert ok
    # The whole frame: OpenCV's own conversion differs from FFmpeg's by rounding and chroma
    # upsampling only.
    assert np.abs(planes.bgr().astype(int) - bgr).mean() < 2.0
    for roi in (Roi(np.array([540.0, 900.0]), 900.0, 0.3), Roi(np.array([100.0, 1800.0]), 700.0, -1.0)):
        a, b = crop(planes, roi, 256), crop(bgr, roi, 256)
        assert a.shape == b.shape == (256, 256, 3) and a.dtype == np.uint8
        assert np.abs(a.astype(int) - b).mean() < 2.5
        assert np.median(np.abs(a.astype(int) - b)) <= 1


def test_chroma_is_aligned_with_luma_and_the_letterbox_is_black(monkeypatch):
    # Sharp colour edges on a slant: chroma sampled a pixel off would show along them.
    yy, xx = np.mgrid[0:480, 0:640]
    bgr = np.zeros((480, 640, 3), np.uint8)
    bgr[(xx + 0.5 * yy) % 160 < 80] = (40, 60, 220)
    bgr[(xx - 0.3 * yy) % 120 < 40] = (200, 180, 30)
    bgr[(yy + 0.4 * xx) % 100 < 30] = (90, 220, 90)
    planes = planes_of(bgr)
    rois = [Roi(np.array([320.0, 240.0]), 256.0, 0.0), Roi(np.array([300.0, 250.0]), 200.0, 0.7)]

    def error(roi: Roi) -> float:
        return float(np.abs(crop(planes, roi, 256).astype(int) - crop(bgr, roi, 256)).mean())

    aligned = np.mean([error(roi) for roi in rois])
    assert aligned < 3.0
    exact = yuv._chroma_matrix
    for dx, dy in ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)):
        # The same crops with the chroma planes sampled one luma pixel off.
        monkeypatch.setattr(yuv, "_chroma_matrix", lambda m, d=(dx, dy): exact(m) + np.array([[0, 0, d[0] / 2], [0, 0, d[1] / 2]]))
        assert aligned < 0.95 * np.mean([error(roi) for roi in rois])
    monkeypatch.setattr(yuv, "_chroma_matrix", exact)
    # A ROI reaching past the frame with a zero border (the detector's letterbox) is black there.
    outside = crop(planes, Roi(np.array([0.0, 0.0]), 400.0, 0.0), 224, border="zero")
    assert outside[:100, :100].max() <= 2


def test_a_frame_with_planes_converts_only_when_asked_and_keeps_its_reductions():
    bgr = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    frame = Frame("cam", 0, 0.0, 0.0, planes=planes_of(bgr))
    assert not frame.decoded
    image = frame.image
    assert frame.decoded and image.shape == (96, 128, 3)
    assert np.array_equal(image, frame.planes.bgr())
    assert frame.pixels(2).shape == (48, 64, 3)
    with pytest.raises(ValueError, match="needs an image"):
        Frame("cam", 0, 0.0, 0.0)


def test_odd_sized_planes_convert_with_full_size_chroma():
    bgr = np.full((5, 7, 3), (30, 120, 200), np.uint8)
    y = np.full((5, 7), 16 + 100, np.uint8)
    c = np.full((3, 4), 128, np.uint8)
    out = Yuv420(y, c, c).bgr()
    assert out.shape == bgr.shape[:2] + (3,)
    assert np.ptp(out) == 0  # grey: Y only


def test_a_full_range_video_is_read_as_bgr(tmp_path):
    """Motion-JPEG decodes to full-range "yuvj" planes, which OpenCV's I420 formula would
    misread; the reader converts such frames through FFmpeg instead."""
    path = tmp_path / "mjpeg.avi"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-frames:v", "3",
                    "-c:v", "mjpeg", "-q:v", "2", str(path)], check=True)
    video = VideoReader("cam", path)
    try:
        image = video.read(1)
    finally:
        video.close()
    ok, expected = None, None
    cap = cv2.VideoCapture(str(path))
    for _ in range(2):
        ok, expected = cap.read()
    assert ok and isinstance(image, np.ndarray) and image.shape == (240, 320, 3)
    assert np.abs(image.astype(int) - expected).mean() < 2.0


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_a_rotated_phone_video_is_read_upright_as_opencv_reads_it(tmp_path, rotate):
    """Portrait phone videos are stored landscape with a display rotation; the calibration and
    every other reader see them upright, so the offline reader turns them too."""
    plain, turned = tmp_path / "plain.mp4", tmp_path / f"rot{rotate}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-frames:v", "3",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}",
                    str(turned)], check=True)
    video = VideoReader("cam", turned)
    try:
        image = video.read(0)
    finally:
        video.close()
    ok, expected = cv2.VideoCapture(str(turned)).read()
    assert ok and isinstance(image, np.ndarray) and image.shape == expected.shape
    assert np.array_equal(image, expected)
