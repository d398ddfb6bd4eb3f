"""One thread per camera: grab into pooled buffers, stamp, count, hand on, survive failures.

The grabber never waits for its consumers when its source is paced (a camera, a file
played in real time): every frame goes to the sinks (the SyncBuffer, the Recorder), each of
which either takes it at once or drops it. When all buffers of the pool are still held by
slow consumers, the frame is read into a scratch buffer and dropped, so the camera keeps
being drained and memory stays bounded. A lock-step source instead waits for a free buffer:
nothing is lost, and reading simply follows the consumers.

A source that fails (camera unplugged, file vanished) is closed, reported through logging,
the stats and the `on_state` callback, and reopened with exponential back-off; the other
cameras' grabbers are unaffected.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from app.capture.buffers import FramePool
from app.capture.frames import Frame, clock, recent_rate
from app.capture.sources import CameraSource, SourceEnded, SourceFailure, SourceInfo
from calibration.errors import TriangulumError

log = logging.getLogger(__name__)

FrameSink = Callable[[Frame], None]


@dataclass(frozen=True)
class RetryPolicy:
    """Reopen a failed source after first_delay s, multiplying by factor up to max_delay s."""

    first_delay: float = 0.25
    factor: float = 2.0
    max_delay: float = 5.0


@dataclass(frozen=True)
class GrabberStats:
    """A snapshot. fps: frames per second over the last second; dropped: frames the source
    skipped plus frames lost for want of a free buffer; state: "idle", "running",
    "failed", "ended" or "stopped"."""

    camera: str
    state: str
    frames: int
    fps: float
    dropped: int
    failures: int
    reconnects: int
    last_error: str
    width: int
    height: int


class Grabber:
    """Reads one CameraSource on its own thread and passes each Frame to `sinks`.

    `pool_frames` buffers are allocated for the source's image size: size it to the most
    frames the consumers hold at once (sync depth + recorder queue + frames in the pose
    worker and displays). `on_state(camera, state, message)` is called on every change of
    state, from the grabber thread.
    """

    def __init__(
        self,
        source: CameraSource,
        sinks: Sequence[FrameSink],
        pool_frames: int = 16,
        retry: RetryPolicy | None = None,
        on_state: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.source = source
        self.sinks = list(sinks)
        self.pool_frames = pool_frames
        self.retry = retry or RetryPolicy()
        self.on_state = on_state
        self.info: SourceInfo | None = None
        self._pool: FramePool | None = None
        self._scratch: np.ndarray | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = "idle"
        self._frames = 0
        self._dropped = 0
        self._failures = 0
        self._reconnects = 0
        self._last_error = ""
        self._last_index: int | None = None
        self._recent: deque[float] = deque(maxlen=512)

    @property
    def name(self) -> str:
        return self.source.name

    def open(self) -> SourceInfo:
        """Open the source and allocate buffers; a source that cannot open is a user error."""
        try:
            self.info = self.source.open()
        except (SourceFailure, SourceEnded, cv2.error, OSError) as exc:
            raise TriangulumError(f"camera '{self.name}' cannot start: {exc}; check the source spec and the device.") from exc
        self._allocate(self.info.height, self.info.width)
        return self.info

    def _allocate(self, height: int, width: int) -> None:
        self._pool = FramePool((height, width, 3), self.pool_frames)
        self._scratch = np.empty((height, width, 3), np.uint8)

    def start(self) -> None:
        if self.info is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name=f"grab-{self.name}", daemon=True)
        self._set_state("running", "")
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end after the frame in hand (returns at once)."""
        self._stop.set()
        self.source.interrupt()

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("camera %s: its grabber did not stop within %.0f s", self.name, timeout)
        if self._state in ("running", "failed"):
            self._set_state("stopped", "")

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set_state(self, state: str, message: str) -> None:
        with self._lock:
            self._state = state
            if message:
                self._last_error = message
        if self.on_state is not None:
            self.on_state(self.name, state, message)

    def stats(self) -> GrabberStats:
        now = clock()
        with self._lock:
            return GrabberStats(
                camera=self.name,
                state=self._state,
                frames=self._frames,
                fps=recent_rate(self._recent, now),
                dropped=self._dropped,
                failures=self._failures,
                reconnects=self._reconnects,
                last_error=self._last_error,
                width=self.info.width if self.info else 0,
                height=self.info.height if self.info else 0,
            )

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug in a sink must not pass silently; report and end
            log.exception("camera %s: grabber stopped by an unexpected error", self.name)
            self._set_state("failed", f"unexpected error: {exc}")
        finally:
            self.source.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            buffer = self._pool.acquire()
            while buffer is None and not self.source.paced and not self._stop.is_set():
                # Buffers come back from whichever thread lets go of a frame last; polling
                # avoids taking a lock inside that release.
                self._stop.wait(0.002)
                buffer = self._pool.acquire()
            target = buffer if buffer is not None else self._scratch
            t_grab = clock()
            try:
                grabbed = self.source.read(target)
            except SourceEnded:
                if not self._stop.is_set():  # else it was only interrupted: "stopped" follows
                    self._set_state("ended", "")
                return
            except (SourceFailure, cv2.error, OSError) as exc:
                if not self._recover(str(exc)):
                    return
                continue
            t_done = clock()
            image = grabbed.image
            if grabbed.encoded is not None:
                buffer = None  # compressed as it came: no pixels, decoded only where needed
            elif image is not target:
                if image.shape != self._pool.shape:
                    # The camera came back at another resolution: size buffers to match.
                    self._allocate(image.shape[0], image.shape[1])
                    log.info("camera %s now delivers %dx%d", self.name, image.shape[1], image.shape[0])
                buffer = image
            delivered = buffer is not None or grabbed.encoded is not None
            with self._lock:
                self._dropped += grabbed.skipped + (0 if delivered else 1)
                if delivered:
                    self._frames += 1
                    self._recent.append(t_done)
            if not delivered:
                continue
            frame = Frame(
                camera=self.name,
                index=grabbed.index,
                t_capture=grabbed.t_capture if grabbed.t_capture is not None else t_done,
                t_grab=t_grab,
                image=buffer,
                encoded=grabbed.encoded,
            )
            del buffer, image, target, grabbed
            for sink in self.sinks:
                sink(frame)
            del frame  # give the buffer back as soon as the sinks let go

    def _recover(self, message: str) -> bool:
        """Close, report, and reopen the source with back-off; False when asked to stop."""
        with self._lock:
            self._failures += 1
        log.warning("camera %s failed: %s; retrying", self.name, message)
        self._set_state("failed", message)
        self.source.close()
        delay = self.retry.first_delay
        while not self._stop.wait(delay):
            try:
                info = self.source.open()
            except (SourceFailure, cv2.error, OSError) as exc:
                log.debug("camera %s: reopening failed: %s", self.name, exc)
                delay = min(delay * self.retry.factor, self.retry.max_delay)
                continue
            if (info.height, info.width) != self._pool.shape[:2]:
                self._allocate(info.height, info.width)
            self.info = info
            with self._lock:
                self._reconnects += 1
            log.info("camera %s is back (%s)", self.name, info.detail)
            self._set_state("running", "")
            return True
        return False
