"""Offline media as one seekable timeline: video files filmed in sync, or a recorded session.

    media = open_media(["video:cam01.mp4", "video:cam02.mp4"])   # or ["session:takes/t1"]
    images = media.read(k)          # frame set k: one (H, W, 3) uint8 BGR image per camera

Frame set k is the reference (first) camera's frame k with, from every other camera, the
frame nearest in time. Video files count as filmed in sync: frame i is at i / fps.
Frames are read with the capture core's `TrackReader` (random access, JPEG offsets for
Matroska-MJPEG sessions, seeking otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.capture.sources import SourceFailure
from app.capture.spec import SourceSpec, parse_spec
from calibration.errors import TriangulumError
from calibration.takes import DamagedFrame, Track, TrackReader, open_session

MEDIA_KINDS = ("video", "session")
SEEK_STRIDE = 8  # TrackReader reads up to this many frames ahead without seeking
MAX_FORWARD = 240  # further than this a seek is cheaper than decoding every frame on the way


@dataclass
class MediaCamera:
    """One camera of the media: its track (times in seconds) and where it came from."""

    track: Track
    source: str

    @property
    def name(self) -> str:
        return self.track.name


class Media:
    """Cameras on one timeline. times: (K,) seconds of the K frame sets; picks: (K, C) frame
    index of each camera in each set; calibration: the rig file saved with a session, if any."""

    def __init__(self, cameras: list[MediaCamera], calibration: Path | None = None) -> None:
        if not cameras:
            raise TriangulumError("no cameras to play; add video files or a recorded session.")
        names = [c.name for c in cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TriangulumError(f"camera name(s) {dupes} are used twice; add ?name=... to the sources to tell them apart.")
        self.cameras = cameras
        self.calibration = calibration
        self.times = cameras[0].track.times.astype(np.float64)
        self.picks = np.stack([_nearest(c.track.times, self.times) for c in cameras], axis=1)
        self._readers = [TrackReader(c.track) for c in cameras]
        self._last = [-1] * len(cameras)  # frame each reader returned last

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def __len__(self) -> int:
        return len(self.times)

    @property
    def fps(self) -> float:
        """Nominal frame rate of the reference camera."""
        return float(self.cameras[0].track.fps)

    @property
    def duration(self) -> float:
        """Seconds from the first set to one frame past the last."""
        return float(self.times[-1] - self.times[0] + 1.0 / self.fps) if len(self) else 0.0

    def index_at(self, seconds: float) -> int:
        """The set shown at media time `seconds` (from the start of the media)."""
        k = int(np.searchsorted(self.times, self.times[0] + seconds + 1e-9, side="right")) - 1
        return min(max(k, 0), len(self) - 1)

    def skew(self, k: int) -> float:
        """Spread of capture times within set k (seconds)."""
        t = [c.track.times[i] for c, i in zip(self.cameras, self.picks[k], strict=True)]
        return float(max(t) - min(t))

    def read(self, k: int) -> list[np.ndarray]:
        """The images of set k, one (H, W, 3) uint8 BGR per camera."""
        if not 0 <= k < len(self):
            raise TriangulumError(f"frame {k} is outside the media (0 to {len(self) - 1}).")
        try:
            return [self._read(c, int(i)) for c, i in enumerate(self.picks[k])]
        except (SourceFailure, DamagedFrame) as exc:
            raise TriangulumError(f"{exc}; the file may be damaged or still being written.") from exc

    def _read(self, camera: int, i: int) -> np.ndarray:
        reader, last = self._readers[camera], self._last[camera]
        if reader.track.offsets is None and last < i - SEEK_STRIDE and i - last <= MAX_FORWARD:
            # Skipping ahead in a compressed video: a seek decodes from the previous keyframe,
            # which costs far more than decoding the frames in between, so walk there in steps
            # the reader takes without seeking.
            for j in range(last + SEEK_STRIDE, i, SEEK_STRIDE):
                reader.read(j)
        image = reader.read(i)
        self._last[camera] = i
        return image

    def close(self) -> None:
        for r in self._readers:
            r.close()


def _nearest(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index into sorted `times` (N,) of the nearest entry to each target (K,) -> (K,)."""
    right = np.clip(np.searchsorted(times, targets), 0, len(times) - 1)
    left = np.clip(right - 1, 0, len(times) - 1)
    return np.where(np.abs(times[left] - targets) <= np.abs(times[right] - targets), left, right)


def is_media(specs: list[str]) -> bool:
    """True when every source is a file that can be played and sought (video or session)."""
    return bool(specs) and all(parse_spec(s).kind in MEDIA_KINDS for s in specs)


def _video_camera(spec: SourceSpec) -> MediaCamera:
    path = Path(spec.target).expanduser()
    if not path.is_file():
        raise TriangulumError(f"video {path} does not exist; check the path.")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise TriangulumError(f"{path} cannot be opened as a video; is it a video file OpenCV can read?")
        fps = spec.number("fps", None) or cap.get(cv2.CAP_PROP_FPS) or 30.0
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    if frames <= 0:
        raise TriangulumError(f"{path} reports no frames; re-encode it (e.g. ffmpeg -i in.avi out.mp4).")
    index = np.arange(frames)
    track = Track(spec.options.get("name") or path.stem, path, width, height, float(fps),
                  index / float(fps), index, None, None, True)
    return MediaCamera(track, spec.text)


def open_media(specs: list[str]) -> Media:
    """Video files and/or one recorded session as a Media timeline."""
    cameras: list[MediaCamera] = []
    calibration = None
    for text in specs:
        spec = parse_spec(text)
        if spec.kind == "video":
            cameras.append(_video_camera(spec))
        elif spec.kind == "session":
            session = open_session(Path(spec.target).expanduser())
            cameras += [MediaCamera(t, f"{text} ({t.name})") for t in session.tracks if t.frames]
            calibration = calibration or session.calibration
        else:
            raise TriangulumError(f"source '{text}' is live ({spec.kind}); only video files and recorded sessions can be played back.")
    return Media(cameras, calibration if calibration and calibration.is_file() else None)
