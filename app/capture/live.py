"""A whole capture wired together: sources, grabbers, sync buffer, recorder, pose worker, stream.

    capture = LiveCapture(CaptureConfig(sources=["video:a.mp4", "video:b.mp4"]), pipeline)
    capture.start()
    ...  capture.stats() once a second; capture.worker.subscribe() for poses
    capture.stop()

Used by `triangulum capture`, the capture benchmark and the GUI.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from app.capture.buffers import keep_large_allocations_out_of_the_heap
from app.capture.frames import clock
from app.capture.grabber import Grabber, GrabberStats, RetryPolicy
from app.capture.recorder import CameraEntry, Recorder, RecorderConfig, RecorderStats
from app.capture.session import SessionCameraSource
from app.capture.spec import open_sources
from app.capture.stream import PoseStreamer, parse_stream_target
from app.capture.sync import SyncBuffer, SyncStats, default_tolerance
from app.capture.worker import PosePipeline, PoseWorker, PreviewPipeline, WorkerStats
from calibration.errors import TriangulumError
from calibration.rig import Rig, fit_source_size

log = logging.getLogger(__name__)

START_LEAD = 0.1  # seconds between opening the sources and their first due frame
POSE_NICENESS = 10  # the pose worker's lower priority while recording live


@dataclass
class CaptureConfig:
    """sources: spec strings (see spec.py). mode: "live" or "lockstep" (every set, for
    offline runs). tolerance: sync tolerance in seconds (None: half the slowest camera's
    frame period). record: a new folder to record into. calibration: the rig, saved with
    the recording. stream: "HOST:PORT" or
    "osc://HOST:PORT" to send joints to. spare_buffers: image buffers per camera beyond
    what the sync buffer and recorder hold (for the pose worker and displays). fill: in live
    mode, poses for the sets the pipeline skipped, interpolated and marked (PoseWorker)."""

    sources: list[str]
    mode: str = "live"
    tolerance: float | None = None
    sync_depth: int = 4
    record: Path | None = None
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    calibration: Rig | None = None
    stream: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    spare_buffers: int = 6
    fill: bool = True  # live: fill in the 3D of sets the pipeline skipped (app.capture.worker)


@dataclass(frozen=True)
class CaptureStats:
    t: float  # seconds since start
    cameras: list[GrabberStats]
    sync: SyncStats
    worker: WorkerStats
    recorder: RecorderStats | None
    streamed: int


class LiveCapture:
    """Owns every thread of one capture; `stop()` ends them all and closes the recording."""

    def __init__(self, config: CaptureConfig, pipeline: PosePipeline | None = None) -> None:
        keep_large_allocations_out_of_the_heap()
        self.config = config
        self.pipeline = pipeline or PreviewPipeline()
        self.sources = open_sources(config.sources)
        for s in self.sources:
            # Compressed frames stay compressed: recorded as they came, decoded only for pose.
            s.passthrough = True
        if config.mode == "lockstep":
            # Every set of every frame: files are read as fast as the sets are consumed.
            for s in self.sources:
                if s.kind == "webcam":
                    raise TriangulumError(f"camera '{s.name}' is a live webcam and cannot be read in lock-step; leave out --lockstep.")
                s.paced = False
        self.grabbers: list[Grabber] = []
        self.sync: SyncBuffer | None = None
        self.recorder: Recorder | None = None
        self.worker: PoseWorker | None = None
        self.streamer: PoseStreamer | None = None
        self.epoch = 0.0

    @property
    def cameras(self) -> list[str]:
        return [s.name for s in self.sources]

    def open(self) -> None:
        """Open every source and build the sync buffer, worker and stream (no threads yet).

        Subscribe to `worker` between `open()` and `start()` to receive every pose."""
        cfg = self.config
        queue_frames = cfg.recorder.queue_frames if cfg.record else 0
        pool = cfg.sync_depth + queue_frames + cfg.spare_buffers
        self.grabbers = [
            Grabber(s, [], pool_frames=pool, retry=cfg.retry, on_state=self._on_state) for s in self.sources
        ]
        try:
            infos = [g.open() for g in self.grabbers]
            self._fit_calibration(infos)
            tolerance = cfg.tolerance or default_tolerance(i.fps or 30.0 for i in infos)
            self.sync = SyncBuffer(self.cameras, tolerance, cfg.mode, cfg.sync_depth)
            # Recording live comes first: the pose worker yields the CPU to grabbers and recorder.
            live_recording = bool(cfg.record) and cfg.mode == "live"
            self.worker = PoseWorker(self.sync, self.pipeline, niceness=POSE_NICENESS if live_recording else 0,
                                     fill=cfg.fill and cfg.mode == "live")
            if cfg.stream:
                target = parse_stream_target(cfg.stream)
                self.streamer = PoseStreamer(self.worker.subscribe(capacity=8, images=False), target)
            if cfg.record:
                entries = [
                    CameraEntry(s.name, s.spec or s.description, i.width, i.height, i.fps or 30.0)
                    for s, i in zip(self.sources, infos, strict=True)
                ]
                # In lock-step the files wait for the recorder: every frame is recorded.
                self.recorder = Recorder(cfg.record, entries, cfg.recorder, self.config.calibration,
                                         hold_back=cfg.mode == "lockstep")
        except BaseException:
            for s in self.sources:
                s.close()
            raise
        for g in self.grabbers:
            g.sinks = [self.sync.push] + ([self.recorder.submit] if self.recorder else [])
        for s, i in zip(self.sources, infos, strict=True):
            log.info("camera %s: %s, %dx%d, %s", s.name, s.description, i.width, i.height, i.detail)
        log.info("sync: %s mode, tolerance %.1f ms", cfg.mode, tolerance * 1000)

    def _fit_calibration(self, infos: list) -> None:
        """Check each source's size against its calibrated camera (as offline processing does)
        and hand the pipeline and the recording the rig fitted to the sources."""
        rig = self.config.calibration
        if rig is None:
            return
        notes: list[str] = []
        for s, i in zip(self.sources, infos, strict=True):
            if s.name in rig.names and i.width and i.height:
                rig = fit_source_size(rig, s.name, (i.width, i.height), f"the source {s.description}", notes)
        for note in notes:
            log.warning(note)
        if rig is not self.config.calibration:
            self.config = dataclasses.replace(self.config, calibration=rig)
            if hasattr(self.pipeline, "use_rig"):
                self.pipeline.use_rig(rig)

    def start(self) -> None:
        """Start recording, the worker, the stream and the grabbers (opening first if needed)."""
        if self.sync is None:
            self.open()
        # The shared epoch is fixed last, so that no source is late for its first frame.
        self.epoch = clock() + START_LEAD
        for s in self.sources:
            s.epoch = self.epoch
        if self.recorder is not None:
            self.recorder.clock_origin = self.epoch
            try:
                self.recorder.start()
            except BaseException:
                for s in self.sources:
                    s.close()
                raise
        if self.streamer is not None:
            self.streamer.start()
        self.worker.start()
        for g in self.grabbers:
            g.start()

    def _on_state(self, camera: str, state: str, message: str) -> None:
        if self.sync is None:
            return
        if state == "ended":
            self.sync.end(camera)
        elif state == "failed":
            self.sync.set_active(camera, False)

    def seek(self, t: float) -> None:
        """Move a session playback to session time t (seconds)."""
        playbacks = {id(s.playback): s.playback for s in self.sources if isinstance(s, SessionCameraSource)}
        for playback in playbacks.values():
            playback.seek(t)
        if self.sync is not None:
            self.sync.flush()

    @property
    def finished(self) -> bool:
        """No more sets will come (too few sources left) and the worker has published the last pose."""
        return self.worker is not None and self.worker.finished

    def stop(self) -> None:
        for g in self.grabbers:
            g.request_stop()
        if self.sync is not None:
            self.sync.close()  # releases grabbers waiting in a lock-step push
        for g in self.grabbers:
            g.stop()
        if self.worker is not None:
            self.worker.stop(timeout=None)  # the set in hand is finished, however slow
        if self.streamer is not None:
            self.streamer.stop()
        if self.recorder is not None:
            self.recorder.stop()

    def stats(self) -> CaptureStats:
        return CaptureStats(
            t=clock() - self.epoch,
            cameras=[g.stats() for g in self.grabbers],
            sync=self.sync.stats(),
            worker=self.worker.stats(),
            recorder=self.recorder.stats() if self.recorder else None,
            streamed=self.streamer.sent if self.streamer else 0,
        )
