"""Playback of recorded sessions with seek: one camera source per track on a shared timeline.

Reading a session (folder layout, manifest, tolerant timestamp reading, frames) is in
`calibration.takes`, the one take reader; its names are re-exported here for the capture code.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from app.capture.frames import clock
from app.capture.sources import CameraSource, Grabbed, SourceEnded, SourceFailure, SourceInfo
from calibration.errors import TriangulumError
from calibration.takes import (  # noqa: F401 (re-exported for the capture code)
    CALIBRATION,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    DamagedFrame,
    Session,
    Track,
    TrackReader,
    open_session,
    read_manifest,
    read_timestamps,
    timestamp_columns,
    write_manifest,
)


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
        try:
            if self.passthrough and self._reader.encoded:
                # Hand the recorded JPEG on undecoded: the recorder stores it as it is and pose
                # decodes it at the size it needs.
                data = self._reader.read_encoded(self._i)
                self._i += 1
                self.playback._delivered(t)
                return Grabbed(None, index, t, 0, data)
            image = self._reader.read(self._i, out)
        except DamagedFrame as exc:
            raise SourceFailure(str(exc)) from None
        self._i += 1
        self.playback._delivered(t)
        return Grabbed(image, index, t, 0)

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
