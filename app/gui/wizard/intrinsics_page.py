"""Wizard page 2: each camera's lens from views of the board, with the coverage drawn live.

A worker thread reads every camera's frames, detects the board and sends the current frame
with its corners over the coverage so far (green covered, red never covered), then
calibrates; the page shows the RMS, each parameter with its uncertainty, the warnings and,
on request, the frame undistorted. Changing the options recalibrates from the detections
already made. Cameras whose intrinsics came from a file are not touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PyQt6 import QtWidgets

from app.gui.wizard.jobs import JobContext
from app.gui.wizard.page import WizardPage
from app.gui.wizard.state import WizardState
from app.gui.wizard.streams import live_views, shrink
from app.gui.wizard.widgets import ImageView, fill_table, table
from calibration.boards import Board
from calibration.errors import TriangulumError
from calibration.frames import FrameSource, frame_count
from calibration.intrinsics import (
    PARAMS,
    IntrinsicsOptions,
    IntrinsicsResult,
    ViewDetections,
    calibrate_intrinsics,
    coverage_map,
    draw_coverage,
    undistort_preview,
)


@dataclass
class FramePreview:
    """The frame just read: preview (h, w, 3) BGR with corners over the coverage so far."""

    camera: str
    preview: np.ndarray
    frames_read: int
    total: int
    found: int
    coverage_fraction: float


@dataclass
class CameraCalibrated:
    """One camera done: its detections, result, a frame (H, W, 3) that shows the board, and
    previews of it (corners of the used views over their coverage; undistorted)."""

    camera: str
    views: ViewDetections
    result: IntrinsicsResult
    frame: np.ndarray
    coverage_preview: np.ndarray
    undistorted_preview: np.ndarray


@dataclass
class CameraFailed:
    camera: str
    message: str


def _detect(ctx: JobContext, source: FrameSource, board: Board, step: int) -> tuple[ViewDetections, np.ndarray]:
    """Detect the board in every step-th frame, sending previews. -> (views, a full frame showing the board)"""
    total = max(1, frame_count(source) // step)
    found: dict = {}
    size, shown, n = None, None, 0
    for n, (index, image, det) in enumerate(live_views(source, board, step), start=1):
        ctx.check()
        size = (image.shape[1], image.shape[0])
        if det is not None:
            found[index] = det
            shown = image
        if ctx.due(source.name) or n >= total:
            cov = coverage_map(list(found.values()), size)
            preview = draw_coverage(image, cov, [det] if det is not None else [])
            ctx.emit(FramePreview(source.name, shrink(preview), n, total, len(found), float((cov > 0).mean())))
    if size is None:
        raise TriangulumError(f"camera '{source.name}': {source.path} yields no frames.")
    return ViewDetections(source.name, size, found, n), shown if shown is not None else image


def calibrate_cameras(ctx: JobContext, sources: list[FrameSource], board: Board, step: int,
                      options: IntrinsicsOptions, known: dict[str, tuple[ViewDetections, np.ndarray]]) -> None:
    """The page's job: detect (unless `known` has the camera's views and frame) and calibrate each source."""
    for source in sources:
        try:
            views, frame = known.get(source.name) or _detect(ctx, source, board, step)
            ctx.check()
            result = calibrate_intrinsics(views, board, options)
            used = [views.detections[f] for f in result.used]
            cov = shrink(draw_coverage(frame, result.coverage, used))
            und = shrink(undistort_preview(result.camera, frame))
            ctx.emit(CameraCalibrated(source.name, views, result, frame, cov, und))
        except TriangulumError as exc:
            ctx.emit(CameraFailed(source.name, str(exc)))


class IntrinsicsPage(WizardPage):
    """See the module docstring. `run()` starts the job; `results` view is `state.intrinsics`."""

    def __init__(self, state: WizardState) -> None:
        super().__init__(state, "Intrinsics",
                         "Each camera's focal length, principal point and distortion from its views of the board. "
                         "Green areas were covered by the board, red ones never: fill the image, tilt the board.")
        self._revision = -1
        self._frames: dict[str, np.ndarray] = {}  # a full frame showing the board, per camera
        self._previews: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.errors: dict[str, str] = {}
        self.status: dict[str, str] = {}
        self.count_text: dict[str, str] = {}  # frames read and board found, per camera
        self.previews_shown = 0
        self.current: str | None = None

        self.cameras = QtWidgets.QListWidget()
        self.cameras.setObjectName("wizard-intrinsics-cameras")
        self.cameras.setMaximumWidth(260)
        self.cameras.currentRowChanged.connect(self._select)
        self.view = ImageView("the frames appear here while the board is detected")
        self.view.setObjectName("wizard-intrinsics-view")
        self.progress = QtWidgets.QProgressBar()
        self.counts = QtWidgets.QLabel("")
        self.counts.setWordWrap(True)

        self.model = QtWidgets.QComboBox()
        self.model.addItem("standard (pinhole + k1 k2 p1 p2 k3)", "standard")
        self.model.addItem("fisheye (fitted, stored as standard)", "fisheye")
        self.max_views = QtWidgets.QSpinBox()
        self.max_views.setRange(3, 500)
        self.max_views.setValue(40)
        self.fix_k3 = QtWidgets.QCheckBox("Hold k3 at 0 (few views, narrow lens)")
        self.zero_tangent = QtWidgets.QCheckBox("Hold p1, p2 at 0")
        options = QtWidgets.QGroupBox("Options")
        of = QtWidgets.QFormLayout(options)
        of.addRow("Model", self.model)
        of.addRow("Views kept", self.max_views)
        of.addRow(self.fix_k3)
        of.addRow(self.zero_tangent)

        self.run_button = QtWidgets.QPushButton("Detect and calibrate")
        self.run_button.clicked.connect(self.run)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.clicked.connect(self.job.cancel)
        self.undistort = QtWidgets.QCheckBox("Show the frame undistorted")
        self.undistort.toggled.connect(lambda _: self._show_result())
        self.rms = QtWidgets.QLabel("")
        self.rms.setWordWrap(True)
        self.params = table(["parameter", "value", "± (larger)", "formal σ", "jackknife σ"])
        self.params.setMinimumHeight(150)
        self.warnings = QtWidgets.QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #d08000;")

        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.counts)
        self.add_job_controls(right, options)
        right.addWidget(self.rms)
        right.addWidget(self.params, 1)
        right.addWidget(self.warnings)
        right.addWidget(self.undistort)
        self.arrange(right, 430, (self.cameras, 0), (self.view, 1))

        self.job.event.connect(self._on_event)
        self.job.done.connect(lambda _: self._finished())
        self.job.failed.connect(lambda _: self._finished())
        self.job.running_changed.connect(self._running)
        self._running(False)

    # --- flow ---------------------------------------------------------------------------------
    def initializePage(self) -> None:
        if self._revision == self.state.revision:
            return
        self._revision = self.state.revision
        self._frames, self._previews, self.errors, self.count_text = {}, {}, {}, {}
        self.status = {n: ("given: " + (self.state.given_path or "file")) if n in self.state.given else "waiting"
                       for n in self.state.names}
        self.cameras.blockSignals(True)
        self.cameras.clear()
        self.cameras.addItems(self.state.names)
        self.cameras.blockSignals(False)
        self._refresh_list()
        self.cameras.setCurrentRow(0)
        if self.state.needs_intrinsics:
            self.run()

    def options(self) -> IntrinsicsOptions:
        return IntrinsicsOptions(model=self.model.currentData(), max_views=self.max_views.value(),
                                 fix_k3=self.fix_k3.isChecked(), zero_tangent=self.zero_tangent.isChecked())

    def run(self) -> None:
        """Detect (where not done yet) and calibrate every camera without given intrinsics."""
        s = self.state
        todo = [src for src in s.sources if src.name in s.needs_intrinsics]
        if not todo:
            return
        self.clear_error()
        self.errors = {}
        options = self.options()
        s.intrinsics_options = options
        known = {n: (s.views[n], self._frames[n]) for n in s.views if n in self._frames}
        for src in todo:
            s.intrinsics.pop(src.name, None)
            self.status[src.name] = "calibrating…" if src.name in known else "detecting…"
        self._refresh_list()
        board, step = s.board, s.step
        self.job.start(lambda ctx: calibrate_cameras(ctx, todo, board, step, options, known))

    def _on_event(self, event: object) -> None:
        if isinstance(event, FramePreview):
            self.status[event.camera] = f"detecting {event.frames_read}/{event.total}, board in {event.found}"
            if self.current != event.camera:
                self._select_name(event.camera)
            self.view.set_image(event.preview)
            self.previews_shown += 1
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.frames_read)
            self.count_text[event.camera] = (f"{event.camera}: {event.frames_read} of {event.total} frames read, board "
                                             f"found in {event.found}; covered {event.coverage_fraction:.0%} of the image")
            self.counts.setText(self.count_text[event.camera])
        elif isinstance(event, CameraCalibrated):
            r = event.result
            self.state.intrinsics[event.camera] = r
            self.state.views[event.camera] = event.views
            self._frames[event.camera] = event.frame
            self._previews[event.camera] = (event.coverage_preview, event.undistorted_preview)
            self.status[event.camera] = f"RMS {r.rms:.2f} px, {len(r.used)} views" + (" ⚠" if r.warnings else "")
            self._select_name(event.camera)
            self._show_result()
            self.completeChanged.emit()
        elif isinstance(event, CameraFailed):
            self.errors[event.camera] = event.message
            self.status[event.camera] = "failed"
            self.show_error(" ".join(self.errors.values()))
        self._refresh_list()

    def _finished(self) -> None:
        self.progress.setValue(self.progress.maximum())
        self.completeChanged.emit()

    def _running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for w in (self.model, self.max_views, self.fix_k3, self.zero_tangent):
            w.setEnabled(not running)
        self.run_button.setText("Calibrate again" if self.state.views else "Detect and calibrate")

    # --- display -------------------------------------------------------------------------------
    def _refresh_list(self) -> None:
        for i, name in enumerate(self.state.names):
            item = self.cameras.item(i)
            if item is not None:
                item.setText(f"{name} — {self.status.get(name, '')}")

    def _select_name(self, name: str) -> None:
        if name in self.state.names:
            self.cameras.setCurrentRow(self.state.names.index(name))

    def _select(self, row: int) -> None:
        names = self.state.names
        self.current = names[row] if 0 <= row < len(names) else None
        self._show_result()

    def _show_result(self) -> None:
        name = self.current
        self.counts.setText(self.count_text.get(name, "") if name else "")
        r = self.state.intrinsics.get(name) if name else None
        if r is None:
            given = self.state.given.get(name) if name else None
            self.rms.setText(f"{name}: intrinsics given by the file (fx {given.K[0, 0]:.1f} px)." if given is not None else "")
            fill_table(self.params, [])
            self.warnings.setText("")
            return
        self.rms.setText(f"{name}: RMS {r.rms:.3f} px over {len(r.used)} views ({len(r.rejected)} rejected, "
                         f"{r.detected} with the board); coverage {r.coverage_fraction:.0%}")
        values = [r.camera.K[0, 0], r.camera.K[1, 1], r.camera.K[0, 2], r.camera.K[1, 2], *r.camera.dist]
        rows = []
        for p, v in zip(PARAMS, values, strict=True):
            fmt = "{:.2f}" if p in ("fx", "fy", "cx", "cy") else "{:+.4f}"
            sig = "{:.2f}" if p in ("fx", "fy", "cx", "cy") else "{:.4f}"
            rows.append([p, fmt.format(v), sig.format(r.uncertainty(p)), sig.format(r.std.get(p, np.nan)),
                         sig.format(r.spread.get(p, np.nan))])
        fill_table(self.params, rows)
        self.warnings.setText("\n".join(f"⚠ {w}" for w in r.warnings))
        cov, und = self._previews.get(name, (None, None))
        if cov is not None:
            self.view.set_image(und if self.undistort.isChecked() else cov)

    def isComplete(self) -> bool:
        return self.state.has_intrinsics and not self.job.running
