"""Wizard page 3: pose the cameras from the board seen by several of them at the same instants.

A worker thread reads all cameras together (the same synchronised instants as `triangulum
calib extrinsics`: a session's capture times or caliscope's timestamps.csv when present),
detects the board and updates the pair matrix live: how many instants each two cameras
both saw the board, with advice for pairs that share too few. Then it solves the poses
(board poses, camera graph, bundle adjustment) and the page shows each camera's
reprojection error.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from PyQt6 import QtWidgets

from app.gui.wizard.jobs import JobContext
from app.gui.wizard.page import WizardPage
from app.gui.wizard.state import WizardState
from app.gui.wizard.streams import live_synchronised, resolve_sync, shrink
from app.gui.wizard.widgets import ImageView, PairMatrix, fill_table, table
from calibration.boards import Board
from calibration.camera_graph import graph_messages
from calibration.errors import TriangulumError
from calibration.extrinsics import (
    ExtrinsicsOptions,
    ExtrinsicsResult,
    calibrate_extrinsics,
    shared_views,
)
from calibration.frames import FrameSource, frame_count
from calibration.intrinsics import coverage_map, draw_coverage, no_board_error
from calibration.rig import Rig

THUMB_SIDE = 480


@dataclass
class CameraPreview:
    """A camera's frame at `instant`: (h, w, 3) BGR with its corners over its coverage so far."""

    camera: str
    instant: int
    preview: np.ndarray


@dataclass
class PairCounts:
    """counts: (C, C) instants both cameras saw the board so far; messages: advice per weak pair."""

    counts: np.ndarray
    messages: list[str]
    frames_read: int
    total: int


@dataclass
class Stage:
    text: str


@dataclass
class Posed:
    """The job's result: detections {camera: {instant: Detection}}, image sizes, the solution."""

    detections: dict
    sizes: dict[str, tuple[int, int]]
    result: ExtrinsicsResult
    timings: dict[str, float]


def _planned_frames(sources: list[FrameSource], sync: dict | None, step: int) -> int:
    if sync is None:
        return sum(max(1, frame_count(s) // step) for s in sources)
    return sum(1 for s, cams in sync.items() if s % step == 0 for c in cams if c in {x.name for x in sources})


def pose_cameras(ctx: JobContext, sources: list[FrameSource], board: Board, intrinsics: Rig, step: int,
                 options: ExtrinsicsOptions) -> Posed:
    """The page's job (see the module docstring)."""
    names = [s.name for s in sources]
    t0 = time.perf_counter()
    sync = resolve_sync(sources)
    total = _planned_frames(sources, sync, step)
    dets: dict = {n: {} for n in names}
    read = dict.fromkeys(names, 0)
    sizes: dict[str, tuple[int, int]] = {}
    n = 0
    for item in live_synchronised(sources, board, sync, step):
        ctx.check()
        n += 1
        read[item.camera] += 1
        size = (item.image.shape[1], item.image.shape[0])
        sizes[item.camera] = size
        if item.detection is not None:
            dets[item.camera][item.instant] = item.detection
        if ctx.due(item.camera, 0.15):
            cov = coverage_map(list(dets[item.camera].values()), size)
            shown = [item.detection] if item.detection is not None else []
            ctx.emit(CameraPreview(item.camera, item.instant, shrink(draw_coverage(item.image, cov, shown), THUMB_SIDE)))
        if ctx.due("counts", 0.2):
            counts = shared_views(dets, names)
            ctx.emit(PairCounts(counts, graph_messages(counts, names, options.min_shared), n, total))
    counts = shared_views(dets, names)
    ctx.emit(PairCounts(counts, graph_messages(counts, names, options.min_shared), n, max(n, total)))
    for name in names:
        if not dets[name]:
            raise no_board_error(name, board, read[name])
    for cam in intrinsics.cameras:
        if tuple(cam.size) != tuple(sizes[cam.name]):
            raise TriangulumError(f"camera '{cam.name}': the video is {sizes[cam.name][0]}x{sizes[cam.name][1]} but its intrinsics "
                                  f"are for {cam.size[0]}x{cam.size[1]}; calibrate the intrinsics at this resolution.")
    timings = {"detection": time.perf_counter() - t0}
    t0 = time.perf_counter()
    ctx.emit(Stage("solving: board poses, camera graph, bundle adjustment…"))
    result = calibrate_extrinsics(dets, intrinsics, board, options,
                                  lambda stage, done, of: ctx.emit(Stage(f"solving: {stage} {done}/{of}")))
    timings["extrinsics"] = time.perf_counter() - t0
    return Posed(dets, sizes, result, timings)


class ExtrinsicsPage(WizardPage):
    """See the module docstring. Entering the page starts the job; `run()` starts it again."""

    def __init__(self, state: WizardState) -> None:
        super().__init__(state, "Extrinsics",
                         "Where each camera is, from instants at which several cameras saw the board together. "
                         "Every camera must be linked to the others through pairs that share views.")
        self._key: tuple | None = None
        self.thumbs: dict[str, ImageView] = {}
        self.posed: Posed | None = None
        self.live_counts: np.ndarray | None = None

        self.thumb_grid = QtWidgets.QGridLayout()
        thumbs = QtWidgets.QWidget()
        thumbs.setLayout(self.thumb_grid)
        self.matrix = PairMatrix()
        self.matrix.setObjectName("wizard-pair-matrix")
        self.matrix.setMinimumHeight(170)
        self.matrix_label = QtWidgets.QLabel("Instants both cameras saw the board")
        self.advice = QtWidgets.QLabel("")
        self.advice.setWordWrap(True)
        self.stage = QtWidgets.QLabel("")
        self.progress = QtWidgets.QProgressBar()
        self.min_shared = QtWidgets.QSpinBox()
        self.min_shared.setRange(1, 1000)
        self.min_shared.setValue(3)
        self.refine = QtWidgets.QCheckBox("Also refine focal lengths and principal points")
        options = QtWidgets.QGroupBox("Options")
        of = QtWidgets.QFormLayout(options)
        of.addRow("Views a pair must share to be linked", self.min_shared)
        of.addRow(self.refine)
        self.run_button = QtWidgets.QPushButton("Run again")
        self.run_button.clicked.connect(self.run)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.clicked.connect(self.job.cancel)
        self.summary = QtWidgets.QLabel("")
        self.summary.setWordWrap(True)
        self.per_camera = table(["camera", "board seen", "RMS px", "linked to"])
        self.per_camera.setMinimumHeight(130)

        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.matrix_label)
        right.addWidget(self.matrix, 1)
        right.addWidget(self.advice)
        right.addWidget(self.stage)
        self.add_job_controls(right, options)
        right.addWidget(self.summary)
        right.addWidget(self.per_camera, 1)
        self.arrange(right, 520, (thumbs, 1))

        self.job.event.connect(self._on_event)
        self.job.done.connect(self._on_done)
        self.job.failed.connect(lambda _: self.stage.setText("stopped: see the message above"))
        self.job.running_changed.connect(self._running)
        self._running(False)

    def options(self) -> ExtrinsicsOptions:
        return ExtrinsicsOptions(min_shared=self.min_shared.value(),
                                 intrinsics=("fx", "fy", "cx", "cy") if self.refine.isChecked() else ())

    def _inputs(self) -> tuple:
        s = self.state
        cams = [s.camera(n) for n in s.names]
        return (s.revision, tuple((c.name, *c.K.ravel().tolist(), *c.dist.tolist()) for c in cams if c is not None))

    def initializePage(self) -> None:
        if self._key == self._inputs() and (self.state.extrinsics is not None or self.job.running):
            return
        names = self.state.names
        for view in self.thumbs.values():
            view.setParent(None)
        self.thumbs = {}
        cols = max(1, math.ceil(math.sqrt(len(names))))
        for i, name in enumerate(names):
            view = ImageView(name)
            view.setObjectName(f"wizard-thumb-{name}")
            self.thumb_grid.addWidget(view, i // cols, i % cols)
            self.thumbs[name] = view
        self.matrix.set_counts(np.zeros((len(names), len(names)), np.int64), names, self.min_shared.value())
        self.run()

    def run(self) -> None:
        s = self.state
        self.clear_error()
        s.extrinsics, self.posed = None, None
        self._key = self._inputs()
        try:
            intrinsics = s.intrinsics_rig()
        except TriangulumError as exc:
            self.show_error(str(exc))
            return
        s.extrinsics_options = options = self.options()
        fill_table(self.per_camera, [])
        self.summary.setText("")
        sources, board, step = list(s.sources), s.board, s.step
        self.stage.setText("detecting the board in every camera…")
        self.job.start(lambda ctx: pose_cameras(ctx, sources, board, intrinsics, step, options))
        self.completeChanged.emit()

    def _on_event(self, event: object) -> None:
        if isinstance(event, CameraPreview):
            view = self.thumbs.get(event.camera)
            if view is not None:
                view.set_image(event.preview)
                view.setToolTip(f"{event.camera}, instant {event.instant}")
        elif isinstance(event, PairCounts):
            self.live_counts = event.counts
            self.matrix.set_counts(event.counts, self.state.names, self.min_shared.value())
            self.matrix_label.setText(f"Instants both cameras saw the board ({event.frames_read} of {event.total} frames read)")
            self._advise(event.messages)
            self.progress.setRange(0, max(1, event.total))
            self.progress.setValue(event.frames_read)
        elif isinstance(event, Stage):
            self.stage.setText(event.text)

    def _on_done(self, posed: Posed) -> None:
        s = self.state
        self.posed = posed
        result = posed.result
        s.extrinsics = result
        s.timings = dict(posed.timings)
        s.world = s.world_spec_default()
        names = result.rig.names
        # The solver's own counts: instants with a trusted board pose in both cameras.
        self.matrix.set_counts(result.shared, names, self.min_shared.value())
        self.matrix_label.setText("Instants both cameras saw the board (with a trusted board pose)")
        self._advise(result.warnings)
        parent = {c: p for p, c, _ in result.tree}
        rms = result.per_camera_rms()
        fill_table(self.per_camera, [[n, str(int(result.shared[i, i])), f"{rms[n]:.3f}",
                                      parent.get(n, "root (fixed)")] for i, n in enumerate(names)])
        self.summary.setText(
            f"Median reprojection error {np.median(result.errors):.3f} px over {len(result.errors)} corners, "
            f"{result.dropped} outliers dropped, {len(result.board_poses)} board poses; "
            f"detection {posed.timings['detection']:.1f} s, solve {posed.timings['extrinsics']:.1f} s.")
        self.stage.setText("done")
        self.completeChanged.emit()

    def _advise(self, messages: list[str]) -> None:
        self.advice.setStyleSheet("color: #d08000;" if messages else "")
        self.advice.setText("\n".join(f"⚠ {m}" for m in messages) if messages else "Every pair shares enough views.")

    def _running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.min_shared.setEnabled(not running)
        self.refine.setEnabled(not running)

    def isComplete(self) -> bool:
        return self.state.extrinsics is not None and not self.job.running
