"""What flows between the capture threads: frames, frame sets and pose frames.

All times are seconds on `clock()` (the system monotonic clock). It is shared by every
thread and process on the machine, so capture times from different cameras, the recorder
and the pose worker compare directly; it never jumps when the wall clock is set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

clock = time.monotonic


def recent_rate(times: Sequence[float], now: float, window: float = 1.0) -> float:
    """Events per second among event times (ascending, seconds) within `window` before `now`."""
    recent = [t for t in times if now - t <= window]
    if len(recent) < 3 or recent[-1] <= recent[0]:
        return 0.0
    return (len(recent) - 1) / (recent[-1] - recent[0])


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One image from one camera.

    camera: the camera's name. index: the source's own frame number (a gap means the
    source skipped frames). t_capture: when the image was taken, seconds on `clock`.
    t_grab: when the grabber asked the source for it. image: (H, W, 3) uint8 BGR; it is a
    pooled buffer (see `buffers.FramePool`) shared by every consumer: treat it as
    read-only and hold the Frame (or the array) for as long as you need the pixels.
    """

    camera: str
    index: int
    t_capture: float
    t_grab: float
    image: np.ndarray


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

    @property
    def latency(self) -> float:
        """Seconds from capture (the set's mean capture time) to publication."""
        return self.t_published - self.t_capture
