"""Play offline media through the pose pipeline with play/pause, step, seek and speed.

    player = Player(media, pipeline)
    player.start(); player.play(); ... player.seek(40); player.step(); ... player.stop()
    pose = player.poses.get(0)        # latest PoseFrame, its FrameSet attached

One thread reads frame set k of the media when it is due (media time / speed on `clock`)
and hands it to the capture core's PoseWorker, which runs the pipeline and publishes
PoseFrames to mailboxes, as in live capture. The reader waits until the worker has taken
the previous set, so at most one set is ahead: pause, step and seek act at once. With
`every_frame` each set is processed (the video slows to the pipeline's pace); without it
the reader skips to the set due now, as a live camera would.

While `recording`, each frame also goes to a Recorder stamped with its media time, so the
recorded session keeps the timing of the original.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from app.capture.frames import Frame, FrameSet, clock
from app.capture.recorder import CameraEntry, Recorder, RecorderConfig, RecorderStats
from app.capture.worker import Mailbox, PosePipeline, PoseWorker, WorkerStats
from app.gui.media import Media
from calibration.rig import Rig

RATE_WINDOW = 3.0  # seconds over which rates are measured (a slow pipeline makes few sets)


class SetSlot:
    """Hands one FrameSet at a time from the reader to the PoseWorker (in place of a SyncBuffer)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: FrameSet | None = None
        self._closed = False

    def put(self, frameset: FrameSet) -> bool:
        """Offer a set and wait until the worker takes it; False if flushed or closed first."""
        with self._cond:
            self._item = frameset
            self._cond.notify_all()
            while self._item is frameset and not self._closed:
                self._cond.wait()
            taken = self._item is None and not self._closed
            if self._item is frameset:
                self._item = None
            return taken

    def flush(self) -> None:
        """Withdraw a set the worker has not taken yet (after a seek)."""
        with self._cond:
            self._item = None
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> FrameSet | None:
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            self._cond.notify_all()
            return None if self._closed else item

    @property
    def finished(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass(frozen=True)
class PlayerState:
    """position: index of the set shown last (-1 before the first); playing; ended: the
    last set was played; sets_per_second: sets handed to the pipeline over the last RATE_WINDOW s; skew: spread of
    capture times in the last set (s)."""

    position: int
    playing: bool
    ended: bool
    sets_per_second: float
    skew: float


class Player:
    """Plays `media` through `pipeline`; every method returns at once (the work is threaded)."""

    def __init__(self, media: Media, pipeline: PosePipeline, speed: float = 1.0,
                 every_frame: bool = True, loop: bool = False) -> None:
        self.media = media
        self.pipeline = pipeline
        self.speed = float(speed)
        self.every_frame = every_frame
        self.loop = loop
        self._slot = SetSlot()
        self.worker = PoseWorker(self._slot, pipeline)  # type: ignore[arg-type]
        self.poses: Mailbox = self.worker.subscribe(capacity=1, images=True)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._playing = False
        self._ended = False
        self._next = 0  # the set to read next
        self._shown = -1  # the set handed out last
        self._show_once = True  # hand out set `_next` even when paused (first frame, step, seek)
        self._generation = 0
        self._anchor: tuple[int, float] | None = None  # (set index, clock) of the pace
        self._handed: list[float] = []
        self._skew = 0.0
        self._recorder: Recorder | None = None
        self._recorded_last: tuple[int, float] | None = None  # (set, recording time) written last

    # --- control ------------------------------------------------------------
    def start(self) -> None:
        self.worker.start()
        self._thread = threading.Thread(target=self._run, name="media-player", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the reader and the worker; a recording in progress is finished."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._slot.close()
        if self._thread is not None:
            self._thread.join(10.0)
        self.worker.stop()
        self.stop_recording()
        self.media.close()

    def play(self) -> None:
        with self._cond:
            if self._ended or self._next >= len(self.media):
                self._next, self._ended = 0, False
            self._playing = True
            self._anchor = None
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._playing = False
            self._cond.notify_all()

    def step(self, count: int = 1) -> None:
        """Pause and show the set `count` after (or before, if negative) the one shown."""
        with self._cond:
            self._playing = False
            self._move(max(self._shown, 0) + count)

    def seek(self, k: int) -> None:
        """Show set k next (keeps playing or paused as it was)."""
        with self._cond:
            self._move(k)

    def _move(self, k: int) -> None:
        self._next = min(max(int(k), 0), len(self.media) - 1)
        self._ended = False
        self._show_once = True
        self._anchor = None
        self._generation += 1
        self._slot.flush()
        self._cond.notify_all()

    def set_speed(self, speed: float) -> None:
        with self._cond:
            self.speed = max(float(speed), 1e-3)
            self._anchor = None
            self._cond.notify_all()

    def set_every_frame(self, every_frame: bool) -> None:
        with self._cond:
            self.every_frame = bool(every_frame)

    def state(self) -> PlayerState:
        now = clock()
        with self._cond:
            recent = [t for t in self._handed if now - t <= RATE_WINDOW]
            rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 2 and recent[-1] > recent[0] else 0.0
            return PlayerState(self._shown, self._playing, self._ended, rate, self._skew)

    def worker_stats(self) -> WorkerStats:
        return self.worker.stats()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- recording ----------------------------------------------------------
    def start_recording(self, directory: Path, config: RecorderConfig | None = None,
                        calibration: Rig | None = None) -> Recorder:
        """Record the frames played from now on into a new session folder."""
        entries = [
            CameraEntry(c.name, c.source, c.track.width, c.track.height, c.track.fps) for c in self.media.cameras
        ]
        recorder = Recorder(directory, entries, config, calibration, clock_origin=0.0)
        recorder.start()
        with self._cond:
            self._recorder = recorder
            self._recorded_last = None
        return recorder

    def stop_recording(self) -> RecorderStats | None:
        with self._cond:
            recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        recorder.stop()
        return recorder.stats()

    @property
    def recorder(self) -> Recorder | None:
        return self._recorder

    def _record(self, recorder: Recorder, k: int, frames: tuple[Frame, ...]) -> None:
        """Submit set k stamped on the recording's own timeline: media time while playing
        forwards, one frame period after a jump back (a seek, a loop), so time never runs back."""
        times = self.media.times
        if self._recorded_last is None:
            t = 0.0
        else:
            last_k, last_t = self._recorded_last
            t = last_t + (times[k] - times[last_k] if k > last_k else 1.0 / self.media.fps)
        self._recorded_last = (k, t)
        for f, c, i in zip(frames, self.media.cameras, self.media.picks[k], strict=True):
            offset = float(c.track.times[i] - times[k])  # this camera's own capture time in the set
            recorder.submit(Frame(f.camera, f.index, max(t + offset, 0.0), f.t_grab, f.image))

    # --- reader thread ------------------------------------------------------
    def _next_due(self) -> tuple[int, int, float | None] | None:
        """Under the lock: (set, generation, due clock or None for now), or None to stop."""
        while not self._stop:
            if self._show_once:
                return self._next, self._generation, None
            if self._playing:
                if self._next >= len(self.media):
                    if not self.loop:
                        self._playing, self._ended = False, True
                        continue
                    self._next, self._anchor = 0, None
                k = self._next
                now = clock()
                if self._anchor is None:
                    self._anchor = (k, now)
                a_k, a_clock = self._anchor
                due = a_clock + (self.media.times[k] - self.media.times[a_k]) / self.speed
                if not self.every_frame and now > due:
                    # Late: jump to the set due now, as a live camera would.
                    elapsed = (now - a_clock) * self.speed
                    k = max(k, self.media.index_at(self.media.times[a_k] - self.media.times[0] + elapsed))
                    self._next = k
                    due = now
                elif self.every_frame and now > due + 0.1:
                    self._anchor = (k, now)  # behind the pace: slow down instead of rushing
                    due = now
                return k, self._generation, due
            self._cond.wait()
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next_due()
                if job is None:
                    return
                k, generation, due = job
                while (due is not None and clock() < due and not self._stop and self._playing
                       and generation == self._generation):
                    self._cond.wait(due - clock())
                if self._stop:
                    return
                if generation != self._generation or not (self._playing or self._show_once):
                    continue
            images = self.media.read(k)
            t_read = clock()
            frames = tuple(
                Frame(c.name, int(i), t_read if due is None else due, t_read, im)
                for c, i, im in zip(self.media.cameras, self.media.picks[k], images, strict=True)
            )
            with self._cond:
                if generation != self._generation:
                    continue
                self._show_once = False
                self._next = k + 1
                recorder = self._recorder
                self._skew = self.media.skew(k)
            if recorder is not None:
                self._record(recorder, k, frames)
            if self._slot.put(FrameSet(k, frames, clock())):
                with self._cond:
                    self._shown = k
                    now = clock()
                    self._handed = [t for t in self._handed[-240:] if now - t <= RATE_WINDOW] + [now]
