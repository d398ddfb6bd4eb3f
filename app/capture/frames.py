"""What flows between the capture threads: frames, frame sets and pose frames.

All times are seconds on `clock()` (the system monotonic clock). It is shared by every
thread and process on the machine, so capture times from different cameras, the recorder
and the pose worker compare directly; it never jumps when the wall clock is set.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from engines.blazepose.yuv import Yuv420

clock = time.monotonic


def recent_rate(times: Sequence[float], now: float, window: float = 1.0) -> float:
    """Events per second among event times (ascending, seconds) within `window` before `now`."""
    recent = [t for t in times if now - t <= window]
    if len(recent) < 3 or recent[-1] <= recent[0]:
        return 0.0
    return (len(recent) - 1) / (recent[-1] - recent[0])


REDUCTIONS = (1, 2, 4, 8)  # JPEG decodes directly at these fractions of the full size
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}


class Frame:
    """One image from one camera.

    camera: the camera's name. index: the source's own frame number (a gap means the
    source skipped frames). t_capture: when the image was taken, seconds on `clock`.
    t_grab: when the grabber asked the source for it. image: (H, W, 3) uint8 BGR; it is a
    pooled buffer (see `buffers.FramePool`) shared by every consumer: treat it as
    read-only and hold the Frame (or the array) for as long as you need the pixels.
    encoded: the JPEG bytes as the source delivered them (an MJPEG camera, a recorded
    session), or None. A frame with `encoded` and no `image` is decoded only when someone
    asks: `image` decodes it in full once; `pixels(reduce)` decodes it at 1/2, 1/4 or 1/8 of
    the size directly, which costs a fraction of a full decode. The recorder writes `encoded`
    as it is, so a compressed camera is recorded without decoding or re-encoding.
    planes: the frame as a video decoder delivered it (engines.blazepose.yuv.Yuv420), or
    None; the pose networks crop from it directly and `image` converts it only when asked.
    """

    __slots__ = ("camera", "index", "t_capture", "t_grab", "encoded", "planes", "_image", "_reduced", "_lock")

    def __init__(self, camera: str, index: int, t_capture: float, t_grab: float,
                 image: np.ndarray | None = None, encoded: bytes | None = None,
                 planes: Yuv420 | None = None) -> None:
        if image is None and encoded is None and planes is None:
            raise ValueError("a Frame needs an image, its encoded bytes or its decoded planes")
        self.camera, self.index, self.t_capture, self.t_grab = camera, index, t_capture, t_grab
        self.encoded = encoded
        self.planes = planes
        self._image = image
        self._reduced: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR at full size (decoded or converted on first use)."""
        if self._image is None:
            with self._lock:
                if self._image is None:
                    self._image = (self.planes.bgr() if self.planes is not None
                                   else _decode(self.encoded, 1, self.camera, self.index))
        return self._image

    @property
    def decoded(self) -> bool:
        """Whether the full-size pixels exist already (no decoding needed for `image`)."""
        return self._image is not None

    def pixels(self, reduce: int = 1) -> np.ndarray:
        """The image at 1/reduce of its size (reduce in REDUCTIONS), always that size: an
        encoded frame is decoded directly at that size (once, whether or not it was decoded in
        full already, so the pixels never depend on who looked first); a raw frame is resized
        (INTER_AREA), which costs more than it saves: ask raw frames for reduce 1."""
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, not {reduce}")
        if reduce == 1:
            return self.image
        full = self.image if self.encoded is None else None  # before the lock: `image` takes it
        with self._lock:
            if reduce not in self._reduced:
                if self.encoded is not None:
                    self._reduced[reduce] = _decode(self.encoded, reduce, self.camera, self.index)
                else:
                    h, w = full.shape[:2]
                    self._reduced[reduce] = cv2.resize(full, ((w + reduce - 1) // reduce, (h + reduce - 1) // reduce),
                                                       interpolation=cv2.INTER_AREA)
            return self._reduced[reduce]


def _decode(data: bytes, reduce: int, camera: str, index: int) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED_FLAGS[reduce])
    if image is None:
        raise ValueError(f"camera {camera}: frame {index} is not a decodable JPEG")
    return image


@dataclass(frozen=True, slots=True, eq=False)
class FrameSet:
    """Frames from several cameras taken at nearly the same instant.

    index: running number of sets handed out by one SyncBuffer. frames: one Frame per
    camera, in the buffer's camera order (cameras that are down are absent).
    t_ready: when the set became complete, seconds on `clock`.
    """

    index: int
    frames: tuple[Frame, ...]
    t_ready: float

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(f.camera for f in self.frames)

    @property
    def t(self) -> float:
        """The set's capture time: mean of its frames' capture times (seconds)."""
        return math.fsum(f.t_capture for f in self.frames) / len(self.frames)

    @property
    def skew(self) -> float:
        """Spread of capture times, max - min (seconds)."""
        times = [f.t_capture for f in self.frames]
        return max(times) - min(times)

    def __getitem__(self, camera: str) -> Frame:
        for f in self.frames:
            if f.camera == camera:
                return f
        raise KeyError(camera)

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(eq=False)
class PoseFrame:
    """The pose computed from one FrameSet.

    joints3d: (J, 3) world metres, NaN where a joint could not be triangulated.
    keypoints2d: (C, J, 2) pixels per view, NaN where a view saw nothing.
    confidences: (C, J) per-view confidences in [0, 1].
    reprojections: (C, J, 2) joints3d projected back into each view, pixels.
    timings: stage name -> seconds (the pipeline's stages plus the worker's "sync",
    "wait", "process" and "latency"). cameras: names of the C views in order. joint_names: the J joint names.
    frameset: the images the pose came from (for display), None where a subscriber did
    not ask for images. t_published: when the worker published it, seconds on `clock`.
    filled: not computed from frames of its own instant: the worker filled it in between two
    computed poses (live, when the pipeline could not run every set; see app.capture.worker),
    so it has no 2D (keypoints2d and reprojections are NaN; confidences are interpolated).
    """

    index: int
    t_capture: float
    cameras: tuple[str, ...]
    joints3d: np.ndarray
    keypoints2d: np.ndarray
    confidences: np.ndarray
    reprojections: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    joint_names: tuple[str, ...] = ()
    frameset: FrameSet | None = None
    t_published: float = math.nan
    filled: bool = False

    @property
    def latency(self) -> float:
        """Seconds from capture (the set's mean capture time) to publication."""
        return self.t_published - self.t_capture
