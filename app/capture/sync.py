"""Group frames from several cameras into sets taken at nearly the same instant.

A set holds one frame per camera whose capture times lie within `tolerance` of each other
(max - min); by default half a frame period of the slowest camera, so that every frame of
the slowest camera has a partner in each faster camera whatever their phase.

Two modes:
- live: `get()` hands out the newest complete set and discards everything older (latency
  first; frames discarded without being used count as drops of their camera). A set is
  held back only while a camera's next frame, due within about a frame period, would
  match the others more closely;
- lock-step: `get()` hands out every set in time order, and `push()` waits while a
  camera's queue is full, so file sources are read no faster than sets are consumed. The
  decisions depend only on the timestamps, never on arrival order, so an offline run gives
  the same sets every time.

Cameras marked inactive (failed) or ended are left out of the sets until they deliver
again; a set needs at least `min_cameras` cameras (default 2, or 1 for a single camera).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from app.capture.frames import Frame, FrameSet, clock, recent_rate

MODES = ("live", "lockstep")


def default_tolerance(fps: Iterable[float]) -> float:
    """Half the frame period of the slowest camera (seconds)."""
    rates = [f for f in fps if f > 0]
    if not rates:
        raise ValueError("default_tolerance needs at least one positive frame rate")
    return 0.5 / min(rates)


@dataclass(frozen=True)
class SyncStats:
    """A snapshot. skew_*: max - min capture time within recent sets (seconds);
    received, dropped, pending: frames per camera."""

    sets: int
    sets_per_second: float
    skew_median: float
    skew_p95: float
    skew_max: float
    received: dict[str, int]
    dropped: dict[str, int]
    pending: dict[str, int]


def _span(frames: Iterable[Frame]) -> float:
    times = [f.t_capture for f in frames]
    return max(times) - min(times)


class SyncBuffer:
    """Thread-safe: grabbers `push()`, one consumer calls `get()`.

    depth: frames kept per camera. min_cameras: fewest cameras in a set. now: the time
    source the live mode's waiting and the sets' t_ready use (the capture clock;
    simulations pass their own).
    """

    def __init__(
        self,
        cameras: Sequence[str],
        tolerance: float,
        mode: str = "live",
        depth: int = 4,
        min_cameras: int | None = None,
        now: Callable[[], float] = clock,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"sync mode must be one of {MODES}, not {mode!r}")
        if depth < 2:
            raise ValueError("sync depth must be at least 2")
        if len(set(cameras)) != len(cameras) or not cameras:
            raise ValueError(f"cameras must be unique and non-empty: {list(cameras)}")
        self.cameras = list(cameras)
        self.tolerance = float(tolerance)
        self.mode = mode
        self.depth = depth
        self.min_cameras = min(2, len(cameras)) if min_cameras is None else min_cameras
        if not 1 <= self.min_cameras <= len(cameras):
            raise ValueError(f"min_cameras must be between 1 and {len(cameras)}")
        self._now = now
        self._queues: dict[str, deque[Frame]] = {c: deque() for c in cameras}
        self._active = dict.fromkeys(cameras, True)
        self._ended = dict.fromkeys(cameras, False)
        self._last_used = dict.fromkeys(cameras, -np.inf)
        self._received = dict.fromkeys(cameras, 0)
        self._dropped = dict.fromkeys(cameras, 0)
        self._cond = threading.Condition()
        self._closed = False
        self._sets = 0
        self._skews: deque[float] = deque(maxlen=1024)
        self._ready_times: deque[float] = deque(maxlen=1024)
        self._arrivals = {c: deque(maxlen=9) for c in cameras}  # recent capture times

    # -- producers -----------------------------------------------------------------------

    def push(self, frame: Frame) -> None:
        """Add a frame. Live: never waits (the oldest frame is dropped when the camera's
        queue is full). Lock-step: waits while the queue is full, until a set makes room,
        `close()`, or no set can form any more."""
        cam = frame.camera
        with self._cond:
            q = self._queues[cam]
            if self.mode == "lockstep":
                while len(q) >= self.depth and not self._closed and not self._finished():
                    self._cond.wait()
            if self._closed:
                return
            self._received[cam] += 1
            newest = q[-1].t_capture if q else self._last_used[cam]
            if frame.t_capture <= newest:
                self._dropped[cam] += 1  # out of order, e.g. the source restarted its clock
                return
            if len(q) >= self.depth:
                q.popleft()
                self._dropped[cam] += 1
            q.append(frame)
            self._arrivals[cam].append(frame.t_capture)
            self._active[cam] = True
            self._cond.notify_all()

    def set_active(self, camera: str, active: bool) -> None:
        """Leave a failed camera out of the sets (its queued frames are dropped), or take it back."""
        with self._cond:
            self._active[camera] = active
            if not active:
                self._dropped[camera] += len(self._queues[camera])
                self._queues[camera].clear()
            self._cond.notify_all()

    def end(self, camera: str) -> None:
        """The camera will deliver no more frames; sets go on without it once its queue is used up."""
        with self._cond:
            self._ended[camera] = True
            self._cond.notify_all()

    def flush(self) -> None:
        """Drop every queued frame (after a seek)."""
        with self._cond:
            for cam, q in self._queues.items():
                self._dropped[cam] += len(q)
                q.clear()
            self._cond.notify_all()

    def close(self) -> None:
        """Wake everyone; `push()` ignores frames and `get()` answers None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- consumer ------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> FrameSet | None:
        """The next set (see the modes above), or None after `timeout` s or once finished."""
        deadline = None if timeout is None else self._now() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                now = self._now()
                wake = None
                if self.mode == "live":
                    frames, wake = self._take_live(now)
                else:
                    frames = self._take_lockstep()
                if frames is not None:
                    return self._emit(frames)
                if self._finished():
                    return None
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    return None
                if wake is not None:
                    remaining = wake - now if remaining is None else min(remaining, wake - now)
                self._cond.wait(remaining)

    @property
    def finished(self) -> bool:
        """Too few cameras can still deliver (the others ended): no set will come any more."""
        with self._cond:
            return self._finished()

    def frame_period(self) -> float | None:
        """The slowest active camera's recent frame period (s), None before two frames."""
        with self._cond:
            periods = [p for c in self._participants() if (p := self._period(c)) is not None and p > 0]
        return max(periods) if periods else None

    def _finished(self) -> bool:
        # Once too few cameras can still deliver, no set will ever be handed out again, and
        # a lock-step push no longer waits (the last camera's frames are dropped).
        can_deliver = [c for c in self.cameras if self._queues[c] or not self._ended[c]]
        return self._closed or len(can_deliver) < self.min_cameras

    def _participants(self) -> list[str]:
        return [c for c in self.cameras if self._active[c] and (self._queues[c] or not self._ended[c])]

    def _period(self, camera: str) -> float | None:
        times = self._arrivals[camera]
        return float(np.median(np.diff(times))) if len(times) >= 2 else None

    def _take_live(self, now: float) -> tuple[dict[str, Frame] | None, float | None]:
        """The newest complete set, or (None, when to look again if a better one is due)."""
        cams = self._participants()
        if len(cams) < self.min_cameras or any(not self._queues[c] for c in cams):
            return None, None
        # Sets including the lagging camera's newest frame are the newest that can exist.
        lagging = min(cams, key=lambda c: self._queues[c][-1].t_capture)
        for anchor in reversed(self._queues[lagging]):
            chosen = {
                c: min(self._queues[c], key=lambda f: abs(f.t_capture - anchor.t_capture)) for c in cams
            }
            if _span(chosen.values()) <= self.tolerance:
                wake = self._closer_frame_due(chosen, now)
                return (chosen, None) if wake is None else (None, wake)
        return None, None

    def _closer_frame_due(self, chosen: dict[str, Frame], now: float) -> float | None:
        """When a camera whose chosen frame is its newest should, by its frame period,
        deliver a frame nearer to the set's latest frame: the time to give up waiting for it
        (a period after it is due); None when no such frame is worth waiting for."""
        latest = max(f.t_capture for f in chosen.values())
        wake = None
        for cam, frame in chosen.items():
            period = self._period(cam)
            if period is None or self._queues[cam][-1] is not frame:
                continue
            expected = frame.t_capture + period
            if abs(expected - latest) < latest - frame.t_capture - 1e-4:
                give_up = expected + period
                if now < give_up:
                    wake = give_up if wake is None else min(wake, give_up)
        return wake

    def _take_lockstep(self) -> dict[str, Frame] | None:
        while True:
            cams = self._participants()
            if len(cams) < self.min_cameras or any(not self._queues[c] for c in cams):
                return None
            heads = {c: self._queues[c][0] for c in cams}
            first = min(cams, key=lambda c: heads[c].t_capture)
            span = _span(heads.values())
            if span > self.tolerance:
                # Every other camera's frames are later than its head, so the earliest
                # head can never be matched: it is dropped.
                self._drop_head(first)
                continue
            if any(len(self._queues[c]) < 2 and not self._ended[c] for c in cams):
                return None  # a camera's next frame might match better: wait for it
            # The latest head's camera has nothing earlier, so the set is built around it:
            # a camera whose next frame is nearer to it than its head gives up its head.
            latest = max(f.t_capture for f in heads.values())
            closer = [
                c
                for c in cams
                if len(self._queues[c]) >= 2
                and abs(self._queues[c][1].t_capture - latest) < latest - heads[c].t_capture
            ]
            if not closer:
                return heads
            self._drop_head(closer[0])

    def _drop_head(self, camera: str) -> None:
        self._queues[camera].popleft()
        self._dropped[camera] += 1
        self._cond.notify_all()

    def _emit(self, chosen: dict[str, Frame]) -> FrameSet:
        for cam, frame in chosen.items():
            q = self._queues[cam]
            while q and q[0].t_capture <= frame.t_capture:
                if q.popleft() is not frame:
                    self._dropped[cam] += 1
            self._last_used[cam] = frame.t_capture
        frames = tuple(chosen[c] for c in self.cameras if c in chosen)
        now = self._now()
        fs = FrameSet(self._sets, frames, now)
        self._sets += 1
        self._skews.append(_span(frames))
        self._ready_times.append(now)
        self._cond.notify_all()
        return fs

    def stats(self) -> SyncStats:
        now = self._now()
        with self._cond:
            skews = np.array(self._skews) if self._skews else np.zeros(1)
            return SyncStats(
                sets=self._sets,
                sets_per_second=recent_rate(self._ready_times, now),
                skew_median=float(np.median(skews)),
                skew_p95=float(np.percentile(skews, 95)),
                skew_max=float(skews.max()),
                received=dict(self._received),
                dropped=dict(self._dropped),
                pending={c: len(q) for c, q in self._queues.items()},
            )
