"""Recorded sessions: folder layout, manifest, tolerant reading, and playback with seek.

A session folder, as written by `recorder.Recorder` and read by `triangulum process`:

    DIR/
      manifest.toml            what was recorded (below); written first, rewritten at the end
      <cam>.mkv                one video per camera: Motion-JPEG in Matroska (codec "mjpeg",
                               the default), FFV1 in Matroska ("ffv1", lossless) or MPEG-4
                               part 2 in AVI ("xvid"); named in the manifest
      <cam>_timestamps.csv     one row per frame in the video, flushed as it is written:
                               frame (position in the video, from 0), source_index (the
                               source's frame number; gaps are frames the camera dropped),
                               t_capture (seconds since the session's clock_origin), and for
                               "mjpeg" offset and size (bytes of the frame's JPEG in the video)
      calibration.toml         a copy of the rig calibration used, if one was given

manifest.toml:

    format = "triangulum-session"     format_version = 1
    app_version, start_time (wall clock, ISO 8601), clock_origin (monotonic clock value of
    t_capture = 0), codec, quality, calibration (file name or absent),
    status = "recording" | "complete" | "stopped", stop_reason (why it stopped early),
    duration (seconds, at the end)
    [[cameras]] name, source (spec string), video, timestamps, width, height, fps (nominal),
                frames (written, at the end), dropped (frames the recorder could not keep),
                complete (the video was closed cleanly)

A recording cut short (killed process, power loss, full disk) leaves status "recording" or
"stopped": the reader then trusts only what it can check, the timestamp rows whose frames
are really in the video, and drops a torn last row.
"""

from __future__ import annotations

import math
import os
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tomli_w

from app.capture.frames import clock
from app.capture.sources import (
    CameraSource,
    Grabbed,
    SourceEnded,
    SourceFailure,
    SourceInfo,
    _into,
    is_jpeg,
)
from calibration.errors import TriangulumError

MANIFEST = "manifest.toml"
FORMAT = "triangulum-session"
FORMAT_VERSION = 1
CALIBRATION = "calibration.toml"


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write manifest.toml atomically (a crash leaves the old or the new one, never half)."""
    path = Path(directory) / MANIFEST
    tmp = path.with_suffix(".toml.tmp")
    with open(tmp, "wb") as f:
        tomli_w.dump(manifest, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise TriangulumError(f"{directory} is not a recorded session: it has no {MANIFEST}; pass the folder given to --record.")
    try:
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TriangulumError(f"{path} is not valid TOML ({exc}); restore it or re-record the session.") from exc
    if manifest.get("format") != FORMAT:
        raise TriangulumError(f"{path} is not a Triangulum session manifest (format = {manifest.get('format')!r}).")
    if not manifest.get("cameras"):
        raise TriangulumError(f"{path} lists no cameras; the recording never started.")
    return manifest


def timestamp_columns(codec: str) -> list[str]:
    return ["frame", "source_index", "t_capture"] + (["offset", "size"] if codec == "mjpeg" else [])


def read_timestamps(path: Path) -> np.ndarray:
    """Rows of a timestamp CSV as float64 (N, K), stopping at the first torn or missing row."""
    if not path.is_file():
        return np.zeros((0, 3))
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    header = lines[0].split(",")
    rows: list[list[float]] = []
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) != len(header):
            break  # the last line of a killed recording may be cut mid-way
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            break
        if rows[-1][0] != len(rows) - 1:
            break
    return np.array(rows, dtype=np.float64).reshape(-1, len(header))


@dataclass
class Track:
    """One camera of a session. times: (N,) seconds since clock_origin; source_index: (N,);
    offsets, sizes: (N,) bytes of each JPEG for "mjpeg" videos, else None."""

    name: str
    video: Path
    width: int
    height: int
    fps: float
    times: np.ndarray
    source_index: np.ndarray
    offsets: np.ndarray | None
    sizes: np.ndarray | None
    complete: bool

    @property
    def frames(self) -> int:
        return len(self.times)


@dataclass
class Session:
    directory: Path
    manifest: dict[str, Any]
    tracks: list[Track]

    @property
    def status(self) -> str:
        return self.manifest.get("status", "recording")

    @property
    def calibration(self) -> Path | None:
        name = self.manifest.get("calibration")
        return self.directory / name if name else None

    @property
    def duration(self) -> float:
        """Seconds from the first to one frame period past the last frame of any camera."""
        ends = [t.times[-1] + 1.0 / t.fps for t in self.tracks if t.frames]
        starts = [t.times[0] for t in self.tracks if t.frames]
        return max(ends) - min(starts) if ends else 0.0

    @property
    def start(self) -> float:
        starts = [t.times[0] for t in self.tracks if t.frames]
        return min(starts) if starts else 0.0

    def track(self, name: str) -> Track:
        for t in self.tracks:
            if t.name == name:
                return t
        raise TriangulumError(f"session {self.directory} has no camera '{name}' (it has {[t.name for t in self.tracks]}).")


def _count_decodable(video: Path, limit: int) -> int:
    """Frames OpenCV can read from the start of a video, up to `limit`."""
    cap = cv2.VideoCapture(str(video))
    n = 0
    while n < limit and cap.grab():
        n += 1
    cap.release()
    return n


def _jpeg_complete(video: Path, offset: int, size: int) -> bool:
    with open(video, "rb") as f:
        f.seek(offset + size - 2)
        return f.read(2) == b"\xff\xd9"


def _load_track(directory: Path, cam: dict[str, Any], codec: str) -> Track:
    name = str(cam["name"])
    video = directory / cam["video"]
    rows = read_timestamps(directory / cam["timestamps"])
    offsets = sizes = None
    if not video.is_file():
        rows = rows[:0]
    elif codec == "mjpeg" and rows.shape[1] >= 5:
        size_on_disk = video.stat().st_size
        ends = rows[:, 3] + rows[:, 4]
        n = int(np.searchsorted(ends > size_on_disk, True))  # rows are in file order
        while n and not _jpeg_complete(video, int(rows[n - 1, 3]), int(rows[n - 1, 4])):
            n -= 1
        rows = rows[:n]
        offsets, sizes = rows[:, 3].astype(np.int64), rows[:, 4].astype(np.int64)
    elif not (cam.get("complete") and cam.get("frames") == len(rows)):
        rows = rows[: _count_decodable(video, len(rows))]
    fps = float(cam.get("fps") or 0.0)
    if fps <= 0:
        fps = 1.0 / float(np.median(np.diff(rows[:, 2]))) if len(rows) > 2 else 30.0
    return Track(
        name=name,
        video=video,
        width=int(cam["width"]),
        height=int(cam["height"]),
        fps=fps,
        times=rows[:, 2].copy(),
        source_index=rows[:, 1].astype(np.int64),
        offsets=offsets,
        sizes=sizes,
        complete=bool(cam.get("complete")),
    )


def open_session(directory: str | Path) -> Session:
    """Read a session folder, trusting only frames that are really in each video."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    codec = str(manifest.get("codec", "mjpeg"))
    tracks = [_load_track(directory, cam, codec) for cam in manifest["cameras"]]
    if not any(t.frames for t in tracks):
        raise TriangulumError(f"session {directory} holds no readable frames; it was stopped before the first frame was written.")
    return Session(directory, manifest, tracks)


class TrackReader:
    """Random access to the frames of one track (frame i -> (H, W, 3) uint8)."""

    def __init__(self, track: Track) -> None:
        self.track = track
        self._fd = -1
        self._cap: cv2.VideoCapture | None = None
        self._pos = -1  # index of the frame the VideoCapture returned last
        if track.offsets is not None:
            self._fd = os.open(track.video, os.O_RDONLY)

    @property
    def encoded(self) -> bool:
        """Whether frames are stored as separate JPEGs (`read_encoded` works)."""
        return self._fd >= 0

    def read_encoded(self, i: int) -> bytes:
        """Frame i's JPEG bytes as recorded (MJPEG sessions only)."""
        data = os.pread(self._fd, int(self.track.sizes[i]), int(self.track.offsets[i]))
        if not is_jpeg(data):
            raise SourceFailure(f"{self.track.video}: frame {i} is not a whole JPEG")
        return data

    def read(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        if self._fd >= 0:
            data = os.pread(self._fd, int(self.track.sizes[i]), int(self.track.offsets[i]))
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceFailure(f"{self.track.video}: frame {i} cannot be decoded")
            return _into(out, image)
        if self._cap is None or i <= self._pos or i > self._pos + 8:
            self._seek(i)
        while self._pos < i - 1:
            if not self._cap.grab():
                raise SourceFailure(f"{self.track.video}: frame {self._pos + 1} cannot be read")
            self._pos += 1
        ok, image = self._cap.read(out)
        if not ok:
            raise SourceFailure(f"{self.track.video}: frame {i} cannot be read")
        self._pos = i
        return image

    def _seek(self, i: int) -> None:
        if self._cap is None:
            self._cap = cv2.VideoCapture(str(self.track.video))
        self._pos = -1
        if i > 0 and self._cap.set(cv2.CAP_PROP_POS_FRAMES, i) and int(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) == i:
            self._pos = i - 1
        else:
            # No reliable index (a truncated file): read from the start.
            self._cap.release()
            self._cap = cv2.VideoCapture(str(self.track.video))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class Playback:
    """The shared timeline of one session played back by several camera sources.

    Session time s (seconds, as in the timestamp CSVs) maps to capture time on `clock`:
    anchor_clock + (s - anchor_s) / speed. speed 1 is the original timing; speed 0 plays
    as fast as the consumers read (lock-step) on a speed-1 timeline. `seek(s)` moves every
    camera to session time s; the timeline continues after everything already delivered,
    so capture times keep increasing and frames from before the seek never match later ones.
    """

    def __init__(self, session: Session, speed: float = 1.0, loop: bool = False, start: float | None = None) -> None:
        if speed < 0:
            raise TriangulumError(f"playback speed {speed} is negative; use 1 for real time or 0 for as fast as possible.")
        self.session = session
        self.speed = speed
        self.loop = loop
        self._lock = threading.Lock()
        self._generation = 0
        self._anchor_s = session.start if start is None else float(start)
        self._anchor_clock: float | None = None
        self._latest = -math.inf

    @property
    def paced(self) -> bool:
        return self.speed > 0

    def seek(self, s: float) -> None:
        """Move all cameras to session time s (seconds)."""
        with self._lock:
            self._generation += 1
            self._anchor_s = float(s)
            lead = 1.0 if not self.paced else 0.05
            self._anchor_clock = max(clock() + 0.05 if self.paced else -math.inf, self._latest + lead)

    def position(self) -> float:
        """Session time being played now (seconds)."""
        with self._lock:
            if self._anchor_clock is None:
                return self._anchor_s
            return self._anchor_s + (clock() - self._anchor_clock) * (self.speed or 1.0)

    def _state(self, epoch: float) -> tuple[int, float, float]:
        with self._lock:
            if self._anchor_clock is None:
                self._anchor_clock = epoch
            return self._generation, self._anchor_s, self._anchor_clock

    def _delivered(self, t: float) -> None:
        with self._lock:
            self._latest = max(self._latest, t)


class SessionCameraSource(CameraSource):
    """One camera of a recorded session, on the session's shared Playback timeline."""

    kind = "session"

    def __init__(self, playback: Playback, track: Track) -> None:
        super().__init__(track.name, f"camera {track.name} of session {playback.session.directory}", playback.paced)
        self.playback = playback
        self.track = track
        self._reader: TrackReader | None = None
        self._generation = -1
        self._i = 0
        self._loops = 0

    def _open(self) -> SourceInfo:
        if not self.track.frames:
            raise SourceFailure(f"{self.description}: no readable frames")
        self._reader = TrackReader(self.track)
        return SourceInfo(self.track.width, self.track.height, self.track.fps, self.track.frames, f"recorded, {self.track.video.name}")

    def _read(self, out: np.ndarray | None) -> Grabbed:
        times = self.track.times
        period = self.playback.session.duration
        while True:
            generation, anchor_s, anchor_clock = self.playback._state(self.epoch)
            if generation != self._generation:
                self._generation = generation
                self._loops = 0
                self._i = int(np.searchsorted(times, anchor_s - 1e-9))
            if self._i >= len(times):
                if not self.playback.loop:
                    raise SourceEnded(f"{self.description}: end of recording")
                self._i = 0
                self._loops += 1
            s = times[self._i] + self._loops * period
            t = anchor_clock + (s - anchor_s) / (self.playback.speed or 1.0)
            if not self.paced or t <= clock():
                break
            # Sleep in short steps so that a seek takes effect promptly.
            self._sleep_until(min(t, clock() + 0.05))
            if self._interrupted.is_set():
                break
        index = self._i + self._loops * len(times)
        if self.passthrough and self._reader.encoded:
            # Hand the recorded JPEG on undecoded: the recorder stores it as it is and pose
            # decodes it at the reduced size it needs.
            data = self._reader.read_encoded(self._i)
            self._i += 1
            self.playback._delivered(t)
            return Grabbed(None, index, t, 0, data)
        image = self._reader.read(self._i, out)
        self._i += 1
        self.playback._delivered(t)
        return Grabbed(image, index, t, 0)

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
