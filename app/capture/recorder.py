"""Record every frame of every camera, one writer thread per camera, without stalling capture.

Live, grabbers call `submit(frame)`, which never waits: frames go into their camera's
bounded queue, and a frame that finds it full is counted as dropped for its camera (the
timestamp CSV then shows the gap). With `hold_back` (lock-step capture of files, which can be
read as slowly as needed) `submit` instead waits for room, so the readers follow the recorder
and no frame is lost. Each camera's writer thread encodes (or, for a frame that came as a
JPEG, just appends) each frame to its video and writes its timestamp row, flushed at once,
so a killed process leaves everything up to the frame in flight (the folder layout is in
`calibration/takes.py`).

A full disk (a failed write) or free space below the reserve `min_free_bytes` (checked every
second; `capture --min-free MB`) stops the recording cleanly: files are closed, the manifest
says status "stopped" with the reason, and `error` carries a message for the user that says
which of the two it was, how much is free and how to go on; capture itself goes on.
"""

from __future__ import annotations

import errno
import logging
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.capture.frames import Frame, clock
from app.capture.mkv import MjpegMkvWriter
from app.capture.session import (
    CALIBRATION,
    FORMAT,
    FORMAT_VERSION,
    timestamp_columns,
    write_manifest,
)
from calibration.errors import TriangulumError
from calibration.jpeg import jpeg_size
from calibration.rig import Rig
from calibration.rig_io import save_rig

log = logging.getLogger(__name__)

# codec -> (file suffix, FFmpeg fourcc or None for our own Matroska MJPEG writer, note)
CODECS: dict[str, tuple[str, str | None, str]] = {
    "mjpeg": (".mkv", None, "Motion-JPEG in Matroska; quality 95+ keeps full colour (4:4:4), 100 is near-lossless; survives a kill"),
    "ffv1": (".mkv", "FFV1", "lossless FFV1 in Matroska (CPU-heavy; for small images)"),
    "xvid": (".avi", "XVID", "MPEG-4 part 2 in AVI (small files, lossy)"),
}


# From this JPEG quality on, colour is kept at full resolution (4:4:4 instead of 4:2:0):
# on a pose2sim frame 46.8 dB PSNR at 95 and 51.9 dB at 100, against 43.8 dB at 95 in 4:2:0.
NEAR_LOSSLESS_QUALITY = 95


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n < 10 * 2**30 else f"{n / 2**30:,.1f} GB"


def app_version() -> str:
    try:
        return metadata.version("triangulum")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class RecorderConfig:
    """codec: a key of CODECS; quality: JPEG quality 1-100 for "mjpeg" (95+: full colour
    resolution, 100: near-lossless, at 2-4x the size and encoding time); queue_frames:
    frames of one camera that may wait to be written (each holds one pooled buffer);
    min_free_bytes: stop when the disk has less free space than this."""

    codec: str = "mjpeg"
    quality: int = 90
    queue_frames: int = 16
    min_free_bytes: int = 256 * 1024 * 1024


class _LowSpace(Exception):
    """Free space fell under the recorder's reserve (the disk is not full yet)."""


@dataclass(frozen=True)
class CameraEntry:
    """A camera to record: name, source spec, size in pixels, nominal fps."""

    name: str
    source: str
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class RecorderStats:
    state: str  # "idle", "recording", "stopped", "complete"
    written: dict[str, int]
    dropped: dict[str, int]
    queued: int
    bytes: int
    error: str
    cpu_s: float = 0.0  # CPU seconds the recorder thread has used
    passed_through: dict[str, int] | None = None  # frames stored as the camera's own JPEG


class _Track:
    """The open files of one camera."""

    def __init__(self, directory: Path, cam: CameraEntry, config: RecorderConfig, version: str) -> None:
        suffix, fourcc, _ = CODECS[config.codec]
        self.entry = cam
        self.video_name = f"{cam.name}{suffix}"
        self.csv_name = f"{cam.name}_timestamps.csv"
        self.mkv: MjpegMkvWriter | None = None
        self.cv: cv2.VideoWriter | None = None
        path = directory / self.video_name
        if fourcc is None:
            self.mkv = MjpegMkvWriter(path, cam.width, cam.height, cam.fps, f"triangulum {version}")
        else:
            self.cv = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), cam.fps or 30.0, (cam.width, cam.height))
            if not self.cv.isOpened():
                raise TriangulumError(f"OpenCV cannot write {config.codec} video to {path}; choose another --codec ({sorted(CODECS)}).")
        self.csv = open(directory / self.csv_name, "w", encoding="utf-8", newline="")
        self.csv.write(",".join(timestamp_columns(config.codec)) + "\n")
        self.csv.flush()
        self.path = path
        self.written = 0
        self.dropped = 0
        self.queued = 0
        self.complete = False
        self.passed_through = 0  # frames stored as the source's own JPEG
        self._warned_size = False

    def _sized(self, image: np.ndarray) -> np.ndarray:
        """The image at the size being recorded (resized, with one warning, if the camera changed it)."""
        if image.shape[:2] != (self.entry.height, self.entry.width):
            if not self._warned_size:
                log.warning("camera %s delivers %s, recording resized to %dx%d", self.entry.name, image.shape[1::-1], self.entry.width, self.entry.height)
                self._warned_size = True
            image = cv2.resize(image, (self.entry.width, self.entry.height))
        return image

    def write(self, frame: Frame, t: float, quality: int) -> None:
        row = f"{self.written},{frame.index},{t:.6f}"
        if self.mkv is not None:
            if frame.encoded is not None and jpeg_size(frame.encoded) == (self.entry.width, self.entry.height):
                jpeg = frame.encoded  # the camera's own JPEG, stored as it came: no decode, no re-encode
                self.passed_through += 1
            else:
                params = [cv2.IMWRITE_JPEG_QUALITY, quality]
                if quality >= NEAR_LOSSLESS_QUALITY:
                    params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
                ok, jpeg = cv2.imencode(".jpg", self._sized(frame.image), params)
                if not ok:
                    raise TriangulumError(f"camera {self.entry.name}: a frame could not be JPEG-encoded.")
            offset, size = self.mkv.write(jpeg, round(t * 1000))
            row += f",{offset},{size}"
        else:
            self.cv.write(self._sized(frame.image))
        # Video first, then the row: a row never points at data that is not on disk.
        self.csv.write(row + "\n")
        self.csv.flush()
        self.written += 1

    def close(self) -> None:
        for close in (self.mkv.close if self.mkv else self.cv.release, self.csv.close):
            try:
                close()
            except OSError as exc:  # closing a file on a full disk can fail; nothing left to save
                log.warning("camera %s: closing a recording file failed: %s", self.entry.name, exc)
        self.complete = True


class Recorder:
    """Writes a session folder (layout in `session.py`) from frames of `cameras`.

    clock_origin: the `clock` value that becomes t_capture = 0 in the CSVs (use the
    capture's shared epoch). calibration: the rig in use, saved beside the videos.
    """

    def __init__(
        self,
        directory: str | Path,
        cameras: list[CameraEntry],
        config: RecorderConfig | None = None,
        calibration: Rig | None = None,
        clock_origin: float | None = None,
        hold_back: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.hold_back = hold_back
        self.cameras = list(cameras)
        self.config = config or RecorderConfig()
        if self.config.codec not in CODECS:
            raise TriangulumError(f"unknown codec '{self.config.codec}'; choose one of {sorted(CODECS)}.")
        if not 1 <= self.config.quality <= 100:
            raise TriangulumError(f"JPEG quality {self.config.quality} is out of range; use 1 to 100.")
        self.calibration = calibration
        self.clock_origin = clock() if clock_origin is None else clock_origin
        # One queue and one writer thread per camera: cameras encode in parallel, and a slow
        # camera never holds up another's frames.
        self._queues: dict[str, queue.Queue[Frame | None]] = {
            c.name: queue.Queue(self.config.queue_frames + 1) for c in self.cameras}
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._cpu_by: dict[str, float] = {}
        self._tracks: dict[str, _Track] = {}
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # a camera's share of the queue has room
        self._state = "idle"
        self._error = ""
        self._stop_reason = ""
        self._manifest: dict[str, Any] = {}
        self._last_space_check = 0.0
        self._last_t = 0.0

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        """Create the folder and files, write the manifest (status "recording"), start the thread."""
        d = self.directory
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            raise TriangulumError(f"{d} already exists and is not an empty folder; choose a new folder to record into.")
        try:
            d.mkdir(parents=True, exist_ok=True)
            if self.calibration is not None:
                save_rig(self.calibration, d / CALIBRATION)
            version = app_version()
            self._tracks = {c.name: _Track(d, c, self.config, version) for c in self.cameras}
            self._manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "app_version": version,
                "start_time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "clock_origin": self.clock_origin,
                "codec": self.config.codec,
                "quality": self.config.quality,
                "status": "recording",
                "stop_reason": "",
                "duration": 0.0,
                "cameras": [self._camera_table(c) for c in self.cameras],
            }
            if self.calibration is not None:
                self._manifest["calibration"] = CALIBRATION
            write_manifest(d, self._manifest)
        except OSError as exc:
            raise TriangulumError(f"cannot create the recording in {d}: {exc.strerror or exc}; check the path and free space.") from exc
        self._state = "recording"
        self._running = len(self.cameras)
        self._threads = [threading.Thread(target=self._run, args=(c.name,), name=f"recorder-{c.name}", daemon=True)
                         for c in self.cameras]
        for thread in self._threads:
            thread.start()

    def _camera_table(self, cam: CameraEntry) -> dict[str, Any]:
        track = self._tracks[cam.name]
        return {
            "name": cam.name,
            "source": cam.source,
            "video": track.video_name,
            "timestamps": track.csv_name,
            "width": cam.width,
            "height": cam.height,
            "fps": float(cam.fps),
            "frames": track.written,
            "dropped": track.dropped,
            "complete": track.complete,
        }

    def submit(self, frame: Frame) -> None:
        """Queue a frame for writing. Live it never waits (a full share drops the frame); with
        `hold_back` it waits until the camera's share has room or the recording stops."""
        if self._state != "recording":
            return
        track = self._tracks.get(frame.camera)
        if track is None:
            return
        with self._lock:
            if self.hold_back:
                while track.queued >= self.config.queue_frames and self._state == "recording":
                    self._room.wait(0.1)
                if self._state != "recording":
                    track.dropped += 1
                    return
            elif track.queued >= self.config.queue_frames:
                track.dropped += 1
                return
            track.queued += 1
        self._queues[frame.camera].put_nowait(frame)  # never full: the share is bounded above

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, close the files and finish the manifest."""
        if not self._threads:
            return
        for name, thread in zip(self._queues, self._threads, strict=True):
            # Wait for room for the end marker: the queue drains unless the thread already ended.
            while thread.is_alive():
                try:
                    self._queues[name].put(None, timeout=0.1)
                    break
                except queue.Full:
                    continue
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    # -- thread --------------------------------------------------------------------------

    def _run(self, name: str) -> None:
        quality = self.config.quality
        track, q = self._tracks[name], self._queues[name]
        try:
            while True:
                frame = q.get()
                if frame is None or self._state != "recording":
                    if frame is not None:
                        q.put_nowait(frame)  # counted as dropped by _finish
                    break
                self._check_space()
                t = frame.t_capture - self.clock_origin
                track.write(frame, t, quality)
                with self._lock:
                    track.queued -= 1
                    self._room.notify_all()
                    self._cpu_by[name] = time.thread_time()
                    self._last_t = max(self._last_t, t)
                del frame
        except _LowSpace as exc:
            self._fail(str(exc))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._fail(f"the disk holding {self.directory} is full; recording stopped, free space or record to another disk.")
            else:
                self._fail(f"writing to {self.directory} failed ({exc.strerror or exc}); recording stopped.")
        except TriangulumError as exc:
            self._fail(str(exc))
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:  # the last writer to end closes the recording
            self._finish()

    def _check_space(self) -> None:
        now = clock()
        with self._lock:
            if now - self._last_space_check < 1.0:
                return
            self._last_space_check = now
        free = shutil.disk_usage(self.directory).free
        reserve = self.config.min_free_bytes
        if free < reserve:
            raise _LowSpace(
                f"only {_mb(free)} free on the disk holding {self.directory}, under the {_mb(reserve)} the "
                f"recorder keeps free; recording stopped (capture goes on). Free space, record to another disk, "
                f"or lower the reserve with --min-free MB (e.g. --min-free {max(int(free / 2**20) // 2, 0)}).")

    def _fail(self, message: str) -> None:
        log.error("recording: %s", message)
        with self._lock:
            self._error = message
            self._stop_reason = message
            self._state = "stopping"
            self._room.notify_all()
        for q in self._queues.values():  # wake the other writers so that they end too
            try:
                q.put_nowait(None)
            except queue.Full:
                pass  # that writer is busy and sees the state after its frame

    def _finish(self) -> None:
        # Frames still queued are not written; release their buffers and count them.
        for q in self._queues.values():
            while True:
                try:
                    frame = q.get_nowait()
                except queue.Empty:
                    break
                if frame is not None:
                    self._tracks[frame.camera].dropped += 1
        for track in self._tracks.values():
            track.close()
        stopped = bool(self._stop_reason)
        self._manifest.update(
            status="stopped" if stopped else "complete",
            stop_reason=self._stop_reason,
            duration=max(0.0, self._last_t),
            cameras=[self._camera_table(c) for c in self.cameras],
        )
        try:
            write_manifest(self.directory, self._manifest)
        except OSError as exc:
            # The manifest still says "recording"; readers then check every file themselves.
            log.error("recording: the final manifest could not be written (%s)", exc)
        with self._lock:
            self._state = "stopped" if stopped else "complete"
            self._room.notify_all()

    def stats(self) -> RecorderStats:
        with self._lock:
            return RecorderStats(
                state=self._state,
                written={n: t.written for n, t in self._tracks.items()},
                dropped={n: t.dropped for n, t in self._tracks.items()},
                queued=sum(q.qsize() for q in self._queues.values()),
                bytes=sum(t.path.stat().st_size for t in self._tracks.values() if t.path.exists()),
                error=self._error,
                cpu_s=sum(self._cpu_by.values()),
                passed_through={n: t.passed_through for n, t in self._tracks.items()},
            )
