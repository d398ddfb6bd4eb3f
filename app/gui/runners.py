"""What the GUI runs: live capture (cameras) or a media player (files), behind one interface.

Both publish PoseFrames to two mailboxes of the capture core's PoseWorker: `poses` (latest
only, with images, for the display) and `take` (every pose, without images, for metrics and
export). The GUI polls them from a timer; nothing here blocks on the UI thread except
`start`, `stop` and `start_recording`, which the controller runs on its own thread.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from app.capture.frames import Frame, clock
from app.capture.live import CaptureConfig, LiveCapture
from app.capture.recorder import RecorderConfig, RecorderStats
from app.capture.spec import open_sources
from app.capture.worker import Mailbox, PosePipeline
from app.gui.media import Media
from app.gui.player import Player
from calibration.rig import Rig

TAKE_CAPACITY = 4096  # poses the take mailbox holds between two polls


@dataclass(frozen=True)
class Snapshot:
    """State for the metrics panel and status bar, taken about once a second.

    camera_fps: frames per second each camera delivers; skew: spread of capture times within
    recent frame sets (s); stages: median seconds per pipeline stage (incl. "latency");
    position/length: frame set shown and sets in the media (-1/0 when live); recorder: the
    recording's state, None when not recording; filled_per_second: live poses filled in between
    computed ones (the pose rate shown counts computed poses only).
    """

    t: float
    camera_fps: dict[str, float]
    skew: float
    stages: dict[str, float]
    errors: int
    last_error: str
    recorder: RecorderStats | None
    recording_dir: Path | None
    position: int = -1
    length: int = 0
    playing: bool = False
    ended: bool = False
    filled_per_second: float = 0.0  # live: poses filled in between computed ones (app.capture.worker)


class LiveRunner:
    """Cameras through the capture core's LiveCapture (live mode: the newest set each time).

    The tiles show each camera's newest frame through a display sink on every grabber, so the
    video runs at the camera's rate even when poses come slower. Recording restarts the
    capture with a recorder, which sizes the frame pools for the recorder's queue.
    """

    seekable = False

    def __init__(self, specs: list[str], pipeline: PosePipeline, rig: Rig | None,
                 recorder: RecorderConfig | None = None) -> None:
        self.config = CaptureConfig(sources=list(specs), calibration=rig, recorder=recorder or RecorderConfig())
        self.pipeline = pipeline
        self.capture: LiveCapture | None = None
        self.poses: Mailbox | None = None
        self.take: Mailbox | None = None
        self._latest: dict[str, tuple[Frame, float]] = {}
        self.cameras = [s.name for s in open_sources(specs)]  # rejects bad specs before anything starts

    def _show(self, frame: Frame) -> None:
        self._latest[frame.camera] = (frame, clock())  # one entry per camera: never waits

    def _run(self, record: Path | None) -> None:
        capture = LiveCapture(dataclasses.replace(self.config, record=record), self.pipeline)
        capture.open()
        # Subscribe and attach the display between open() and start(), so nothing is missed.
        self.poses = capture.worker.subscribe(capacity=1, images=True)
        self.take = capture.worker.subscribe(capacity=TAKE_CAPACITY, images=False)
        for grabber in capture.grabbers:
            grabber.sinks.append(self._show)
        try:
            capture.start()
        except BaseException:
            capture.stop()
            raise
        self.capture = capture
        self.cameras = capture.cameras

    def start(self) -> None:
        self._run(None)

    def stop(self) -> None:
        if self.capture is not None:
            self.capture.stop()
        self._latest = {}

    def latest_frames(self) -> dict[str, tuple[Frame, float]]:
        """Each camera's newest frame and when it reached the display sink (`clock` s)."""
        return dict(self._latest)

    def start_recording(self, directory: Path) -> None:
        self.stop()
        self._run(Path(directory))

    def stop_recording(self) -> RecorderStats | None:
        recorder = self.capture.recorder if self.capture else None
        if recorder is None:
            return None
        self.stop()
        self._run(None)
        return recorder.stats()

    @property
    def recording_dir(self) -> Path | None:
        return self.capture.recorder.directory if self.capture and self.capture.recorder else None

    @property
    def finished(self) -> bool:
        return self.capture is not None and self.capture.finished

    def snapshot(self) -> Snapshot:
        s = self.capture.stats()
        return Snapshot(
            t=clock(),
            camera_fps={c.camera: c.fps for c in s.cameras},
            skew=s.sync.skew_median,
            stages=dict(s.worker.stages),
            errors=s.worker.errors,
            last_error=s.worker.last_error or next((c.last_error for c in s.cameras if c.state == "failed"), ""),
            recorder=s.recorder,
            recording_dir=self.recording_dir,
            filled_per_second=s.worker.filled_per_second,
        )


class PlayerRunner:
    """Video files or a recorded session through the media Player (seekable)."""

    seekable = True

    def __init__(self, media: Media, pipeline: PosePipeline, recorder: RecorderConfig | None = None,
                 rig: Rig | None = None, every_frame: bool = True, loop: bool = False) -> None:
        self.media = media
        self.player = Player(media, pipeline, every_frame=every_frame, loop=loop)
        self.recorder_config = recorder or RecorderConfig()
        self.rig = rig
        self.cameras = media.names
        self.poses: Mailbox = self.player.poses
        self.take: Mailbox = self.player.worker.subscribe(capacity=TAKE_CAPACITY, images=False)

    def start(self) -> None:
        self.player.start()

    def stop(self) -> None:
        self.player.stop()

    def latest_frames(self) -> dict[str, tuple[Frame, float]]:
        return {}  # the display shows the frames each pose came from

    def start_recording(self, directory: Path) -> None:
        self.player.start_recording(Path(directory), self.recorder_config, self.rig)

    def stop_recording(self) -> RecorderStats | None:
        return self.player.stop_recording()

    @property
    def recording_dir(self) -> Path | None:
        return self.player.recorder.directory if self.player.recorder else None

    @property
    def finished(self) -> bool:
        return not self.player.alive

    def snapshot(self) -> Snapshot:
        state = self.player.state()
        w = self.player.worker_stats()
        recorder = self.player.recorder
        return Snapshot(
            t=clock(),
            camera_fps=dict.fromkeys(self.cameras, state.sets_per_second),
            skew=state.skew,
            stages=dict(w.stages),
            errors=w.errors,
            last_error=w.last_error,
            recorder=recorder.stats() if recorder else None,
            recording_dir=self.recording_dir,
            position=state.position,
            length=len(self.media),
            playing=state.playing,
            ended=state.ended,
        )
