"""Takes: what the cameras recorded, read from disk, and their frames matched in time.
The one reader that processing, calibration, capture playback and the GUI use.

    session = open_session("takes/take1")       # a recorded session (layout below)
    reader = TrackReader(session.track("cam01")); image = reader.read(10)
    info = probe_video("cam01", Path("cam01.mp4"))
    index, times, frame_times, fps = video_index([info, ...], warnings)   # plain videos by time
    index, times, frame_times, fps = session_index(session, names, warnings)  # by capture time

Frames are matched in time with `calibration.timing` (frame sets at the fastest camera's
instants, each camera's nearest frame within half the fastest frame period). Live capture
groups frames as they arrive instead (`app.capture.sync.SyncBuffer`): it cannot wait for a
slower camera's next frame, so its sets come at the slowest camera's rate.

Recorded sessions: folder layout, manifest, tolerant reading, and playback with seek.

A session folder, as written by `app.capture.recorder.Recorder`:

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

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tomli_w

from calibration.errors import TriangulumError
from calibration.jpeg import into_buffer, is_jpeg
from calibration.timing import common_instants, frame_times, match_instants

LENGTH_TOLERANCE = 2  # frames a plain video may be longer than the others before a warning
DEFAULT_FPS = 30.0


class DamagedFrame(Exception):
    """A recorded frame cannot be read (a damaged or cut-off file)."""


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


def _video_size(video: Path) -> tuple[int, int]:
    """(width, height) of a video, for a manifest that does not say (0, 0 if unreadable)."""
    cap = cv2.VideoCapture(str(video))
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    return size


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
        width=int(cam.get("width") or 0) or _video_size(video)[0],
        height=int(cam.get("height") or 0) or _video_size(video)[1],
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
            raise DamagedFrame(f"{self.track.video}: frame {i} is not a whole JPEG")
        return data

    def read(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        if self._fd >= 0:
            data = os.pread(self._fd, int(self.track.sizes[i]), int(self.track.offsets[i]))
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise DamagedFrame(f"{self.track.video}: frame {i} cannot be decoded")
            return into_buffer(out, image)
        if self._cap is None or i <= self._pos or i > self._pos + 8:
            self._seek(i)
        while self._pos < i - 1:
            if not self._cap.grab():
                raise DamagedFrame(f"{self.track.video}: frame {self._pos + 1} cannot be read")
            self._pos += 1
        ok, image = self._cap.read(out)
        if not ok:
            raise DamagedFrame(f"{self.track.video}: frame {i} cannot be read")
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


@dataclass
class VideoInfo:
    """One camera's video: path, size (width, height) px, frames, fps as the file says."""

    camera: str
    path: Path
    size: tuple[int, int]
    frames: int
    fps: float


def probe_video(camera: str, path: Path) -> VideoInfo:
    """Size, frame count and rate of a video file (TriangulumError if it cannot be read)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise TriangulumError(f"camera '{camera}': video {path} cannot be opened; is it a video file "
                                  "(mp4, avi, mkv, mov) and not damaged?")
        ok, image = cap.read()
        if not ok or image is None:
            raise TriangulumError(f"camera '{camera}': video {path} has no readable frame.")
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    h, w = image.shape[:2]
    return VideoInfo(camera, path, (w, h), frames, fps)


def video_track(camera: str, path: Path) -> Track:
    """A plain video as a Track (frame i at i / fps), so TrackReader reads it by frame number."""
    info = probe_video(camera, Path(path))
    return Track(camera, info.path, *info.size, info.fps, np.arange(info.frames) / max(info.fps, 1e-9),
                 np.arange(info.frames), None, None, True)


def _video_fps(videos: list[VideoInfo], warnings: list[str]) -> list[float]:
    unknown = [v.camera for v in videos if not v.fps > 0]
    known = [v.fps for v in videos if v.fps > 0]
    if unknown:
        fallback = max(known) if known else DEFAULT_FPS
        warnings.append(f"camera(s) {', '.join(unknown)}: the video does not say its frame rate; taking "
                        f"{fallback:g} fps.")
        return [v.fps if v.fps > 0 else fallback for v in videos]
    return [float(v.fps) for v in videos]


def video_index(videos: list[VideoInfo], warnings: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Frame sets of plain videos by time (frame i at i/fps from each video's start) ->
    frame_index (F, C) (-1 missing), set times (F,) s, frame times (F, C) s, fps per camera.

    The sets are the fastest camera's frames over the time every video covers."""
    lengths = np.array([v.frames for v in videos])
    if (lengths <= 0).any():
        bad = [v.camera for v in videos if v.frames <= 0]
        raise TriangulumError(f"camera(s) {bad}: the video reports no frames; re-encode it (e.g. with ffmpeg).")
    fps = _video_fps(videos, warnings)
    times = [frame_times(v.frames, r) for v, r in zip(videos, fps, strict=True)]
    durations = lengths / np.array(fps)
    instants, ref = common_instants(times, [1.0 / r for r in fps])
    if len({round(r, 3) for r in fps}) == 1:
        shortest = int(lengths.min())
        if lengths.max() - shortest > 0:
            detail = ", ".join(f"{v.camera} {v.frames}" for v in videos)
            msg = (f"the videos have different lengths ({detail} frames); processing the first {shortest} "
                   "frames of each.")
            if lengths.max() - shortest > LENGTH_TOLERANCE:
                msg += " Check that the videos start together: plain videos are matched by time from their start."
            warnings.append(msg)
    elif durations.max() - durations.min() > LENGTH_TOLERANCE / max(fps):
        detail = ", ".join(f"{v.camera} {d:.2f} s" for v, d in zip(videos, durations, strict=True))
        warnings.append(f"the videos last different times ({detail}); processing the {durations.min():.2f} s "
                        "they all cover. Check that the videos start together.")
    tol = 0.5 / fps[ref]
    index = np.stack([match_instants(instants, t, tol) for t in times], axis=1)
    used = np.where(index >= 0, np.stack([t[np.maximum(index[:, c], 0)] for c, t in enumerate(times)], 1), np.nan)
    return index, instants, used, fps


def session_index(session: Session, cameras: list[str], warnings: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Frame sets of a recorded session by capture time -> frame_index (F, C) (-1 missing),
    set times (F,) s from the start, frame times (F, C) s from the start, fps per camera.

    The camera with the most frames sets the timeline; every other camera contributes its
    frame nearest in time, if within half a frame period (else it is missing from that set).
    """
    tracks = [session.track(c) for c in cameras]
    ref = max(range(len(tracks)), key=lambda k: tracks[k].frames)
    times = tracks[ref].times
    index = np.full((len(times), len(tracks)), -1, np.int64)
    used = np.full((len(times), len(tracks)), np.nan)
    for k, tr in enumerate(tracks):
        if not tr.frames:
            warnings.append(f"camera '{tr.name}': the session has no readable frames for it; it is left out.")
            continue
        tol = 0.5 / max(tr.fps, tracks[ref].fps)
        j = match_instants(times, tr.times, tol)
        ok = j >= 0
        index[:, k] = j
        used[ok, k] = tr.times[j[ok]]
        missing = int((~ok).sum())
        gaps = int((np.diff(tr.source_index) > 1).sum()) if tr.frames > 1 else 0
        if missing:
            warnings.append(f"camera '{tr.name}': no frame within {tol * 1e3:.0f} ms in {missing} of "
                            f"{len(times)} frame sets (dropped frames: {gaps}); those sets go without it.")
    return index, times - times[0], used - times[0], [t.fps for t in tracks]


