"""The GUI's link to the capture core: sources, calibration, pipeline choice, run, record.

Everything that can take a moment (loading the 2D model, opening cameras and files, joining
threads, finishing a recording, writing exports) runs on one background job thread; its
outcome comes back as a Qt signal, so the UI thread never waits. Frames and poses are read by
`poll()` from latest-only mailboxes, which never block.
"""

from __future__ import annotations

import logging
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PyQt6 import QtCore

from app.capture.frames import Frame, PoseFrame
from app.capture.recorder import RecorderConfig
from app.capture.spec import parse_spec
from app.gui.history import History, event_rate
from app.gui.media import is_media, open_media
from app.gui.pipelines import PipelineChoice, build_pipeline
from app.gui.runners import LiveRunner, PlayerRunner, Snapshot
from app.gui.take import ExportRequest, Take, export_take
from calibration.errors import TriangulumError
from calibration.rig import Rig

log = logging.getLogger(__name__)


def user_message(exc: BaseException) -> str:
    """One sentence for the user: the TriangulumError's own text, else a plain summary."""
    if isinstance(exc, TriangulumError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}; check the path and permissions."
    return f"Something went wrong ({type(exc).__name__}: {exc}); the details are in the log."


class CaptureController(QtCore.QObject):
    """State of one capture session in the window; see the module docstring."""

    sources_changed = QtCore.pyqtSignal()
    calibration_changed = QtCore.pyqtSignal()
    running_changed = QtCore.pyqtSignal(bool)
    busy_changed = QtCore.pyqtSignal(bool)
    recording_changed = QtCore.pyqtSignal(bool)
    error = QtCore.pyqtSignal(str)
    info = QtCore.pyqtSignal(str)
    exported = QtCore.pyqtSignal(dict)
    _done = QtCore.pyqtSignal(object, object, object)  # (on_ok, result, exception)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.sources: list[str] = []
        self.rig: Rig | None = None
        self.rig_path: Path | None = None
        self.choice = PipelineChoice()
        self.recorder_config = RecorderConfig()
        self.every_frame = True
        self.loop = False
        # (rig or None, choice) -> pipeline; called on the job thread when a capture starts
        self.pipeline_factory: Callable[[Rig | None, PipelineChoice], Any] = build_pipeline
        self.runner: LiveRunner | PlayerRunner | None = None
        self._newest: LiveRunner | PlayerRunner | None = None
        self.take = Take(frame_indexed=False)
        self.history = History()
        self.pose_times: deque[float] = deque(maxlen=512)
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gui-job")
        self._pending = 0
        self._done.connect(self._finish_job)

    # --- jobs -----------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._pending > 0

    def _submit(self, work: Callable[[], Any], on_ok: Callable[[Any], None] | None = None) -> Future:
        self._pending += 1
        if self._pending == 1:
            self.busy_changed.emit(True)

        def run() -> None:
            try:
                result = work()
            except BaseException as exc:  # every failure reaches the user as a sentence
                if not isinstance(exc, TriangulumError):
                    log.error("background job failed:\n%s", traceback.format_exc())
                self._done.emit(on_ok, None, exc)
                return
            self._done.emit(on_ok, result, None)

        return self._jobs.submit(run)

    def _finish_job(self, on_ok, result, exc) -> None:
        self._pending -= 1
        if exc is not None:
            self.error.emit(user_message(exc))
        elif on_ok is not None:
            try:
                on_ok(result)
            except TriangulumError as err:
                self.error.emit(str(err))
        if self._pending == 0:
            self.busy_changed.emit(False)

    # --- configuration --------------------------------------------------------
    def add_sources(self, specs: list[str]) -> None:
        """Add source spec strings (checked now; opened when the capture starts)."""
        for spec in specs:
            parse_spec(spec)
        self.sources += [s for s in specs if s not in self.sources]
        self.sources_changed.emit()

    def remove_source(self, spec: str) -> None:
        self.sources = [s for s in self.sources if s != spec]
        self.sources_changed.emit()

    def clear_sources(self) -> None:
        self.sources = []
        self.sources_changed.emit()

    def set_calibration(self, rig: Rig | None, path: Path | None = None) -> None:
        self.rig, self.rig_path = rig, path
        self.calibration_changed.emit()

    def load_calibration(self, path: str | Path) -> None:
        """Read a calibration in any supported format (TOML, Qualisys, caliscope, EasyMocap)."""
        from calibration.formats.detect import convert

        path = Path(path)
        notes: list[str] = []
        self.set_calibration(convert(path, notes=notes), path)
        self.info.emit(f"Calibration {path.name}: cameras {', '.join(self.rig.names)}."
                       + "".join(f" {n}" for n in notes))

    @property
    def running(self) -> bool:
        return self.runner is not None

    @property
    def seekable(self) -> bool:
        return self.runner is not None and self.runner.seekable

    # --- run --------------------------------------------------------------------
    def start(self, play: bool = True) -> None:
        """Open the sources and start the pipeline (in the background)."""
        if self.runner is not None or self.busy:
            return
        if not self.sources:
            self.error.emit("Add a source first: a webcam, video files or a recorded session (File menu).")
            return
        sources, rig, choice = list(self.sources), self.rig, PipelineChoice(**vars(self.choice))

        def work():
            media = open_media(sources) if is_media(sources) else None
            use_rig = rig
            if use_rig is None and media is not None and media.calibration is not None:
                from calibration.rig_io import load_rig

                use_rig = load_rig(media.calibration)
            if use_rig is not None:
                cameras = media.names if media is not None else [parse_spec(s).options.get("name") for s in sources]
                missing = [c for c in cameras if c and c not in use_rig.names]
                if missing:
                    raise TriangulumError(
                        f"camera(s) {missing} are not in the calibration (it has {use_rig.names}); "
                        "name the sources after the calibrated cameras (?name=...) or load the matching calibration."
                    )
            pipeline = self.pipeline_factory(use_rig, choice)
            if media is not None:
                runner = PlayerRunner(media, pipeline, self.recorder_config, use_rig, self.every_frame, self.loop)
            else:
                runner = LiveRunner(sources, pipeline, use_rig, self.recorder_config)
            runner.start()
            self._newest = runner  # for shutdown() if the window closes before it is attached
            if play and isinstance(runner, PlayerRunner):
                runner.player.play()
            return runner, use_rig, media

        self._submit(work, self._started)

    def _started(self, result) -> None:
        self.attach(*result)

    def attach(self, runner, rig: Rig | None = None, media=None) -> None:
        """Make a started runner the current one (any object with LiveRunner's interface)."""
        self.runner = runner
        if rig is not None and self.rig is None:
            self.set_calibration(rig, media.calibration if media is not None else None)
        self.take = Take(frame_indexed=runner.seekable, fps=media.fps if media is not None else None)
        self.history.clear()
        self.pose_times.clear()
        self.running_changed.emit(True)

    def stop(self) -> None:
        """Stop the capture (a recording in progress is finished first)."""
        runner = self.runner
        if runner is None:
            return
        was_recording = runner.recording_dir is not None
        self.runner = None
        self.running_changed.emit(False)
        if was_recording:
            self.recording_changed.emit(False)
        self._submit(runner.stop)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop everything and wait for it (closing the window)."""
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.stop()
        self._jobs.shutdown(wait=True, cancel_futures=False)
        if self._newest is not None and self._newest is not runner:
            self._newest.stop()  # started by a job whose result never reached the UI thread

    # --- playback ----------------------------------------------------------------
    def _player(self):
        return self.runner.player if isinstance(self.runner, PlayerRunner) else None

    def play(self) -> None:
        if (p := self._player()) is not None:
            p.play()

    def pause(self) -> None:
        if (p := self._player()) is not None:
            p.pause()

    def toggle_play(self) -> None:
        if (p := self._player()) is None:
            return
        p.pause() if p.state().playing else p.play()

    def step(self, count: int = 1) -> None:
        if (p := self._player()) is not None:
            p.step(count)

    def seek(self, k: int) -> None:
        if (p := self._player()) is not None:
            p.seek(k)

    def set_speed(self, speed: float) -> None:
        if (p := self._player()) is not None:
            p.set_speed(speed)

    def set_loop(self, loop: bool) -> None:
        self.loop = loop
        if (p := self._player()) is not None:
            p.loop = loop

    def set_every_frame(self, every_frame: bool) -> None:
        self.every_frame = every_frame
        if (p := self._player()) is not None:
            p.set_every_frame(every_frame)

    # --- recording -----------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.runner is not None and self.runner.recording_dir is not None

    def start_recording(self, directory: Path) -> None:
        runner = self.runner
        if runner is None:
            self.error.emit("Start the capture before recording (Space or the Start button).")
            return
        self._submit(lambda: runner.start_recording(Path(directory)), lambda _: self.recording_changed.emit(True))

    def stop_recording(self) -> None:
        runner = self.runner
        if runner is None:
            return

        def done(stats) -> None:
            self.recording_changed.emit(False)
            if stats is not None:
                frames = sum(stats.written.values())
                dropped = sum(stats.dropped.values())
                self.info.emit(f"Recording saved: {frames} frames" + (f", {dropped} dropped" if dropped else "") + ".")
                if stats.error:
                    self.error.emit(stats.error)

        self._submit(runner.stop_recording, done)

    # --- export ----------------------------------------------------------------------
    def export(self, request: ExportRequest) -> Future:
        take = self.take.copy()  # the UI thread keeps adding poses to self.take meanwhile
        meta = {"calibration": str(self.rig_path) if self.rig_path else None, "sources": list(self.sources),
                "method": self.choice.method, "live_smoothing": self.choice.smoothing,
                "precision": self.choice.precision, "backbone": self.choice.backbone}
        rig = self.rig
        return self._submit(lambda: export_take(take, request, meta, rig), self.exported.emit)

    # --- polling (UI thread, never blocks) ---------------------------------------------
    def poll(self) -> tuple[dict[str, tuple[Frame, float]], PoseFrame | None]:
        """Newest frames to display, each with when it reached the GUI (`clock` s), and the
        newest pose (None if no new one)."""
        runner = self.runner
        if runner is None:
            return {}, None
        pose = runner.poses.get(0) if runner.poses is not None else None
        if runner.take is not None:
            while (p := runner.take.get(0)) is not None:
                if not p.filled:  # the real pose rate: filled-in poses are counted apart
                    self.pose_times.append(p.t_published)
                try:
                    self.take.add(p)
                except TriangulumError as exc:
                    self.error.emit(str(exc))
        frames = runner.latest_frames()
        if not frames and pose is not None and pose.frameset is not None:
            frames = {f.camera: (f, pose.t_published) for f in pose.frameset.frames}
        return frames, pose

    def sample_metrics(self) -> Snapshot | None:
        """Add one sample of every metric to the history; returns the snapshot."""
        runner = self.runner
        if runner is None or (isinstance(runner, LiveRunner) and runner.capture is None):
            return None
        s = runner.snapshot()
        h = self.history
        for cam, fps in s.camera_fps.items():
            h.add(f"fps:{cam}", s.t, fps)
        h.add("skew:skew", s.t, s.skew * 1e3)
        for stage, seconds in s.stages.items():
            if stage != "process":
                h.add(f"latency:{stage}", s.t, seconds * 1e3)
        h.add("pose:poses/s", s.t, event_rate(list(self.pose_times), s.t))
        if s.filled_per_second:
            h.add("pose:filled in/s", s.t, s.filled_per_second)
        return s
