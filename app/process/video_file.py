"""Video files decoded frame after frame for offline processing, into what the pose
networks crop from.

PyAV (FFmpeg, the decoder OpenCV's reader wraps too) hands a YUV 4:2:0 frame over as the
decoder's own planes (engines.blazepose.yuv.Yuv420): the networks crop from them, and the
whole frame is converted to BGR only for whoever asks for `Frame.image` (an overlay video).
On the sample's four 1080 x 1920 H.264 videos that conversion was 4.5 of 20 CPU-ms per
frame set, and `process` spends 68 instead of 72-75 CPU-ms per set. FFmpeg decodes on one
thread per file: its frame threads cost CPU time for every frame, and `prefetch` already
decodes in parallel with the networks.

The live `video:` source (app.capture.sources) keeps OpenCV's reader: there the frames are
small (a file standing in for a 544 x 960 camera), the BGR frame is needed anyway by the
recorder, and PyAV's per-frame Python work in four grabber threads cost more pose rate than
the conversion saves (measured with benchmarks/capture_latency.py --only record: 19.7-21.3
against 22.0-22.8 sets/s). So a file captured live in lock-step and the same file processed
offline see pixels that differ by conversion rounding (a level or two), not the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calibration.errors import TriangulumError
from engines.blazepose.yuv import Yuv420

_FULL_RANGE = 2  # AVCOL_RANGE_JPEG: "yuvj" video, which OpenCV's I420 formula would misread


class VideoReader:
    """Frames of one camera's video file by increasing index (decodes forward, never seeks):
    `read(i)` -> Yuv420 planes (limited-range 4:2:0, nearly every camera and encoder) or
    (H, W, 3) uint8 BGR (anything else). Asking for an earlier frame starts the file again."""

    def __init__(self, camera: str, path: str | Path) -> None:
        self.camera = camera
        self.path = Path(path)
        self._container = None
        self._start()

    def _start(self) -> None:
        import av

        self.close()
        try:
            self._container = av.open(str(self.path))
            stream = self._container.streams.best("video")  # as OpenCV picks it (not cover art)
            if stream is None:
                raise IndexError("no video stream")
        except (av.error.FFmpegError, IndexError, OSError) as exc:
            raise TriangulumError(f"camera '{self.camera}': {self.path.name} cannot be read as a video ({exc}); "
                                  "check the file, or re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4).") from None
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        self._frames = self._container.decode(stream)
        self._pos = -1

    def _next(self, i: int):
        """The next decoded frame (a PyAV VideoFrame); i, the frame asked for, is for the messages."""
        import av

        try:
            frame = next(self._frames, None)
        except av.error.FFmpegError as exc:
            raise TriangulumError(f"camera '{self.camera}': frame {self._pos + 1} of {self.path.name} cannot be "
                                  f"decoded ({exc}); the file is damaged there (re-encode it, or process up to it "
                                  f"with --frames 0:{i}).") from None
        if frame is None:
            raise TriangulumError(f"camera '{self.camera}': video {self.path.name} ends at frame {self._pos + 1}, "
                                  f"before frame {i}; the file is shorter than it says (re-encode it).")
        self._pos += 1
        return frame

    def read(self, i: int) -> Yuv420 | np.ndarray:
        if i <= self._pos:
            self._start()
        while self._pos < i - 1:
            self._next(i)  # decoded, not converted
        return pixels(self._next(i))

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


# A phone's portrait video is stored landscape with a display rotation (degrees counter-
# clockwise). OpenCV's reader turns such frames upright, and so must we: the calibration, the
# probed frame sizes and every other reader see them upright.
_TURN = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def pixels(frame) -> Yuv420 | np.ndarray:
    """A PyAV VideoFrame -> Yuv420 views of its planes, or BGR for other formats and for
    rotated video (converted by FFmpeg and turned upright, as OpenCV's reader does)."""
    turn = _TURN.get(round(getattr(frame, "rotation", 0) or 0) % 360)
    if turn is None and frame.format.name == "yuv420p" and frame.color_range != _FULL_RANGE:
        return Yuv420(*(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in frame.planes))
    image = frame.to_ndarray(format="bgr24")
    return image if turn is None else cv2.rotate(image, turn)
