"""The pose worker: frame sets in, PoseFrames out, on its own thread.

The worker takes sets from a SyncBuffer (the newest one in live mode, so a slow pipeline
skips sets instead of falling behind), runs a `PosePipeline` on each and publishes the
result to every subscriber's `Mailbox`. Publishing never waits: a full mailbox drops its
oldest entry, so a slow display or network sender costs only its own frames. Displays
subscribe with capacity 1 (the latest pose only); senders that want every pose use a
larger capacity.

The worker knows nothing about models: any object with `process(frameset) -> PoseFrame`
will do (see `PosePipeline`).

Filling in (`fill=True`, live capture): when the pipeline is slower than the cameras, the
sets it skipped still get a pose. Before publishing a computed pose, the worker publishes,
at the cameras' frame period, poses for the instants since the previous computed one, each
joint (and its confidences) linear in time between the two (`filled=True`; no 2D). They are interpolated, not
extrapolated: the worker has both neighbours when it publishes, so the stream and anything
recording it stay in time order, at the camera rate, without overshoot; gaps longer than
`max_fill_s` (the person was lost, or the pipeline stalled) are not filled. The pose rate in
the stats counts computed poses only; `filled_per_second` counts the others.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.capture.frames import FrameSet, PoseFrame, clock, recent_rate
from app.capture.sync import SyncBuffer

log = logging.getLogger(__name__)


class PosePipeline(Protocol):
    """What the worker runs. Called on the worker thread, one set at a time.

    `process` returns a PoseFrame for the set (index and t_capture from the set, arrays
    shaped as documented on PoseFrame, NaN where nothing was found) with `timings` filled
    per stage (e.g. "detect", "backbone", "triangulate"; seconds). The worker adds
    "sync" (capture -> the set is complete: delivery and matching), "wait" (set complete
    -> processing starts), "process" (the whole call) and "latency" (capture -> published). Raising an exception skips the set; the worker goes on.
    """

    def process(self, frameset: FrameSet) -> PoseFrame: ...


# A pipeline may also offer `split() -> (first, second)`: first(frameset) -> x and
# second(frameset, x) -> PoseFrame, whose composition is `process`. The worker then runs the
# two on two threads, the first on set n + 1 while the second finishes set n (FramePipeline:
# 2D, then association and 3D), so a set costs the slower stage instead of their sum.


class PreviewPipeline:
    """A pipeline for capture without pose estimation (no calibration yet, camera preview):
    publishes each set with no joints, so displays and statistics work the same way."""

    def process(self, frameset: FrameSet) -> PoseFrame:
        views = len(frameset)
        return PoseFrame(
            index=frameset.index,
            t_capture=frameset.t,
            cameras=frameset.cameras,
            joints3d=np.zeros((0, 3)),
            keypoints2d=np.zeros((views, 0, 2)),
            confidences=np.zeros((views, 0)),
            reprojections=np.zeros((views, 0, 2)),
        )


class Mailbox:
    """A bounded queue from the worker to one subscriber that drops its oldest entry when full.

    images: whether poses arrive with their FrameSet (holding the set keeps its image
    buffers in use; senders that need only numbers should say False).
    """

    def __init__(self, capacity: int = 1, images: bool = True) -> None:
        if capacity < 1:
            raise ValueError("a mailbox holds at least one pose")
        self.capacity = capacity
        self.images = images
        self._items: deque[PoseFrame] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, pose: PoseFrame) -> None:
        with self._cond:
            if self._closed:
                return
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(pose)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> PoseFrame | None:
        """The oldest pose waiting, or None after `timeout` s or once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            return self._items.popleft()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass(frozen=True)
class WorkerStats:
    """A snapshot over the recent poses (seconds). stages: median seconds per stage."""

    poses: int
    poses_per_second: float
    filled_per_second: float
    latency_median: float
    latency_p95: float
    stages: dict[str, float]
    errors: int
    last_error: str


def between(a: np.ndarray, t_a: float, b: np.ndarray, t_b: float, t: float) -> np.ndarray:
    """Values a at t_a and b at t_b (same shape), linear in time, at t (NaN stays NaN)."""
    w = (t - t_a) / (t_b - t_a)
    return (1 - w) * a + w * b


def lower_thread_priority(niceness: int) -> bool:
    """Lower the calling thread's CPU priority by `niceness` (Linux: threads have their own
    nice value). The pose worker runs so while recording live: when the CPU is short, the
    grabbers and the recorder are served first and the pose rate falls, never the recording.
    False where the OS does not allow it (nothing else changes)."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + niceness, 19))
        return True
    except OSError:
        return False


class PoseWorker:
    """Runs `pipeline` on sets from `sync` and publishes PoseFrames to subscribers."""

    def __init__(self, sync: SyncBuffer, pipeline: PosePipeline, history: int = 512, niceness: int = 0,
                 fill: bool = False, max_fill_s: float = 0.5) -> None:
        self.sync = sync
        self.fill = fill
        self.max_fill_s = max_fill_s
        self._previous: PoseFrame | None = None  # the last computed pose (for filling in)
        self._filled: deque[float] = deque(maxlen=history)
        self.niceness = niceness
        self.pipeline = pipeline
        self._subscribers: list[Mailbox] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poses = 0
        self._errors = 0
        self._last_error = ""
        self._published: deque[float] = deque(maxlen=history)
        self._latency: deque[float] = deque(maxlen=history)
        self._stages: dict[str, deque[float]] = {}
        self._history = history

    def subscribe(self, capacity: int = 1, images: bool = True) -> Mailbox:
        box = Mailbox(capacity, images)
        with self._lock:
            self._subscribers = [*self._subscribers, box]
        return box

    def unsubscribe(self, box: Mailbox) -> None:
        box.close()
        with self._lock:
            self._subscribers = [b for b in self._subscribers if b is not box]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pose-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        """Started, and ended: the sync buffer will hand out no more sets, or it was stopped."""
        return self._thread is not None and not self._thread.is_alive()

    def _run(self) -> None:
        lower_thread_priority(self.niceness)
        split = getattr(self.pipeline, "split", None)
        second = None
        if split is not None:
            first, finish = split()
            handoff: queue.Queue = queue.Queue(maxsize=1)
            second = threading.Thread(target=self._run_second, args=(finish, handoff), name="pose-worker-3d",
                                      daemon=True)
            second.start()
        try:
            while not self._stop.is_set():
                frameset = self.sync.get(timeout=0.1)
                if frameset is None:
                    if self.sync.finished:
                        break
                    continue
                if second is None:
                    self._handle(frameset)
                else:
                    self._first_stage(first, frameset, handoff)
                del frameset  # the set's image buffers go back to the pools
        finally:
            if second is not None:
                self._put(handoff, None, wait=second)  # the second stage ends after what is queued
                second.join()
            with self._lock:
                boxes = list(self._subscribers)
            for box in boxes:
                box.close()

    def _put(self, handoff: queue.Queue, item, wait: threading.Thread | None = None) -> None:
        """Hand `item` to the second stage, waiting while it is busy (a newer set is worth
        more than a queue of old ones, so the first stage waits rather than runs ahead). Once
        stopped it gives up, unless `wait` names the second stage's thread: then it waits as
        long as that thread lives (the end marker must arrive, but not hang a dead stage)."""
        while True:
            try:
                handoff.put(item, timeout=0.1)
                return
            except queue.Full:
                if wait is None and self._stop.is_set() or wait is not None and not wait.is_alive():
                    return

    def _first_stage(self, first, frameset: FrameSet, handoff: queue.Queue) -> None:
        t0 = clock()
        try:
            found = first(frameset)
        except Exception as exc:  # one bad set must not end live capture
            self._failed(frameset, exc)
            return
        self._put(handoff, (frameset, found, t0, clock() - t0))

    def _run_second(self, finish, handoff: queue.Queue) -> None:
        lower_thread_priority(self.niceness)
        while (item := handoff.get()) is not None:
            frameset, found, t0, busy = item
            t1 = clock()
            try:
                pose = finish(frameset, found)
            except Exception as exc:
                self._failed(frameset, exc)
                continue
            self._publish(frameset, pose, t0, busy + clock() - t1)
            del item, frameset, found

    def _failed(self, frameset: FrameSet, exc: Exception) -> None:
        with self._lock:
            self._errors += 1
            first = self._errors == 1
            self._last_error = f"{type(exc).__name__}: {exc}"
        (log.exception if first else log.debug)("pose pipeline failed on set %d", frameset.index, exc_info=exc)

    def _handle(self, frameset: FrameSet) -> None:
        t0 = clock()
        try:
            pose = self.pipeline.process(frameset)
        except Exception as exc:  # one bad set must not end live capture
            self._failed(frameset, exc)
            return
        self._publish(frameset, pose, t0, clock() - t0)

    def _publish(self, frameset: FrameSet, pose: PoseFrame, t0: float, busy: float) -> None:
        """Stamp the worker's timings on `pose` (t0: processing started; busy: seconds of
        processing, which pipelined is less than t0 -> now) and hand it to every subscriber."""
        pose.timings["sync"] = frameset.t_ready - frameset.t
        pose.timings["wait"] = t0 - frameset.t_ready
        pose.timings["process"] = busy
        pose.frameset = frameset
        pose.t_published = clock()
        pose.timings["latency"] = pose.latency
        if self.fill:
            for filled in self._fill_before(pose):
                self._deliver(filled)
        with self._lock:
            self._poses += 1
            self._published.append(pose.t_published)
            self._latency.append(pose.latency)
            for stage, seconds in pose.timings.items():
                self._stages.setdefault(stage, deque(maxlen=self._history)).append(seconds)
        self._deliver(pose)

    def _fill_before(self, pose: PoseFrame) -> list[PoseFrame]:
        """Poses at the frame period between the previous computed pose and `pose` (module
        docstring); remembers `pose` as the previous one."""
        before, self._previous = self._previous, pose
        period = getattr(self.sync, "frame_period", lambda: None)()
        if before is None or not period or pose.joints3d.size == 0 or pose.joints3d.shape != before.joints3d.shape:
            return []
        gap = pose.t_capture - before.t_capture
        if not 1.5 * period < gap <= self.max_fill_s:
            return []
        C, J = pose.keypoints2d.shape[:2]
        out = []
        for k in range(1, int(round(gap / period))):
            t = before.t_capture + k * period
            if t > pose.t_capture - 0.5 * period:
                break
            out.append(PoseFrame(
                index=before.index, t_capture=t, cameras=pose.cameras,
                joints3d=between(before.joints3d, before.t_capture, pose.joints3d, pose.t_capture, t),
                keypoints2d=np.full((C, J, 2), np.nan),
                confidences=between(before.confidences, before.t_capture, pose.confidences, pose.t_capture, t),
                reprojections=np.full((C, J, 2), np.nan), joint_names=pose.joint_names,
                t_published=pose.t_published, filled=True))
        with self._lock:
            self._filled.extend([pose.t_published] * len(out))
        return out

    def _deliver(self, pose: PoseFrame) -> None:
        with self._lock:
            boxes = self._subscribers
        bare = None
        for box in boxes:
            if box.images:
                box.put(pose)
            else:
                bare = bare or dataclasses.replace(pose, frameset=None)
                box.put(bare)

    def _filled_rate(self, now: float, window: float = 1.0) -> float:
        """Filled poses per second: they come in bursts at each computed pose's publication,
        so their rate is the pose rate times filled per computed pose in the window."""
        computed = sum(1 for t in self._published if now - t <= window)
        filled = sum(1 for t in self._filled if now - t <= window)
        return recent_rate(self._published, now, window) * filled / computed if computed else 0.0

    def stats(self) -> WorkerStats:
        now = clock()
        with self._lock:
            latency = np.array(self._latency) if self._latency else np.full(1, np.nan)
            return WorkerStats(
                poses=self._poses,
                poses_per_second=recent_rate(self._published, now),
                filled_per_second=self._filled_rate(now),
                latency_median=float(np.median(latency)),
                latency_p95=float(np.percentile(latency, 95)),
                stages={k: float(np.median(v)) for k, v in self._stages.items()},
                errors=self._errors,
                last_error=self._last_error,
            )
