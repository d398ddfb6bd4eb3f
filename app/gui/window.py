"""The main window: camera tiles in the centre, the 3D view, session controls and metrics in
docks, a playback bar, menus and shortcuts; layout and choices remembered with QSettings.
What it does is here; its actions, menus, settings and screenshots are in `window_layout`."""

from __future__ import annotations

import logging
import math
import shutil
from datetime import datetime
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from app.capture.frames import Frame, PoseFrame, clock
from app.gui.controller import CaptureController
from app.gui.dialogs import ExportDialog, WebcamDialog, export_progress
from app.gui.metrics_panel import MetricsPanel
from app.gui.overlays import overlay_for
from app.gui.panels import (
    Banner,
    PlaybackBar,
    SessionPanel,
    format_bytes,
    format_duration,
    source_label,
)
from app.gui.scene3d import joint_confidence
from app.gui.take import ExportRequest
from app.gui.tiles import TileGrid
from app.gui.view3d import SkeletonView
from app.gui.window_layout import WindowLayout
from calibration.errors import TriangulumError

log = logging.getLogger(__name__)

DISPLAY_INTERVAL_MS = 15  # the display timer; a tile redraws only when its frame changed
METRICS_INTERVAL_MS = 500


class MainWindow(WindowLayout, QtWidgets.QMainWindow):
    """Triangulum's window. `settings` defaults to the user's QSettings (tests pass their own)."""

    def __init__(self, settings: QtCore.QSettings | None = None, use_opengl: bool | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Triangulum")
        self.settings = settings or QtCore.QSettings("Triangulum", "Triangulum")
        self.controller = CaptureController(self)
        self.record_root: Path | None = None
        self.export_root: Path | None = None
        self.last_error = ""
        self.displayed = 0  # frames drawn into tiles
        self.poses_displayed = 0  # poses drawn (overlays and 3D)
        self.display_times: list[float] = []  # seconds each display update took (recent)
        self._shown: dict[str, Frame] = {}
        self._pose_shown: PoseFrame | None = None
        self._record_started = math.nan
        self._progress: QtWidgets.QProgressDialog | None = None

        # centre: error banner, tiles, playback bar
        self.banner = Banner()
        self.grid = TileGrid()
        self.playback = PlaybackBar()
        self.playback.set_media(0, 0.0)
        centre = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(centre)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(0)
        v.addWidget(self.banner)
        v.addWidget(self.grid, 1)
        v.addWidget(self.playback)
        self.setCentralWidget(centre)

        self.view3d = SkeletonView(use_opengl=use_opengl)
        self.panel = SessionPanel()
        self.metrics = MetricsPanel(self.controller.history)
        self.dock3d = self._dock("3D view", "dock-3d", self.view3d, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock_session = self._dock("Session", "dock-session", self.panel, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.dock_metrics = self._dock("Metrics", "dock-metrics", self.metrics, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)
        self.dock_metrics.hide()

        self.status = QtWidgets.QLabel("Ready")
        self.rates = QtWidgets.QLabel("")
        self.statusBar().addWidget(self.status, 1)
        self.statusBar().addPermanentWidget(self.rates)

        self._build_actions()
        self._build_menus()
        self._connect()
        self._restore_settings()

        self.display_timer = QtCore.QTimer(self)
        self.display_timer.setInterval(DISPLAY_INTERVAL_MS)
        self.display_timer.timeout.connect(self.update_display)
        self.display_timer.start()
        self.metrics_timer = QtCore.QTimer(self)
        self.metrics_timer.setInterval(METRICS_INTERVAL_MS)
        self.metrics_timer.timeout.connect(self.update_metrics)
        self.metrics_timer.start()
        self._update_controls()

    def _connect(self) -> None:
        c, p = self.controller, self.panel
        c.error.connect(self.show_error)
        c.info.connect(self.show_info)
        c.sources_changed.connect(self._sources_changed)
        c.calibration_changed.connect(self._calibration_changed)
        c.running_changed.connect(self._running_changed)
        c.busy_changed.connect(lambda _: self._update_controls())
        c.recording_changed.connect(self._recording_changed)
        c.exported.connect(self._exported)
        p.add_webcam.clicked.connect(self.ask_webcam)
        p.add_videos.clicked.connect(self.ask_videos)
        p.add_session.clicked.connect(self.ask_session)
        p.remove_source.clicked.connect(self.remove_selected_source)
        p.load_calibration.clicked.connect(self.ask_calibration)
        p.estimate_calibration.clicked.connect(self.estimate_calibration)
        p.start_button.clicked.connect(self.toggle_start)
        p.record_button.clicked.connect(lambda _=False: self.toggle_record())
        p.export_button.clicked.connect(self.ask_export)
        p.method.currentIndexChanged.connect(self._pipeline_choice_changed)
        p.smoothing.currentIndexChanged.connect(self._pipeline_choice_changed)
        p.precision.currentIndexChanged.connect(self._pipeline_choice_changed)
        b = self.playback
        b.play_button.clicked.connect(self.play_pause)
        b.step_back.clicked.connect(lambda: c.step(-1))
        b.step_forward.clicked.connect(lambda: c.step(1))
        b.seek_requested.connect(c.seek)
        b.speed.currentIndexChanged.connect(lambda _: c.set_speed(b.speed_value))
        b.every_frame.toggled.connect(c.set_every_frame)
        b.loop.toggled.connect(c.set_loop)
        self.view3d.trail_box.toggled.connect(self.act_trail.setChecked)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.save_settings()
        self.display_timer.stop()
        self.metrics_timer.stop()
        self.controller.shutdown()
        super().closeEvent(event)

    # --- messages ---------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        self.last_error = message
        self.banner.show_message(message)
        self.status.setText(message)
        log.warning("%s", message)

    def show_info(self, message: str) -> None:
        self.status.setText(message)

    def _guard(self, work) -> None:
        """Run a UI action; a user error becomes a message in the window, never a traceback."""
        try:
            work()
        except TriangulumError as exc:
            self.show_error(str(exc))

    # --- sources and calibration --------------------------------------------------------------
    def _settings_dir(self, key: str) -> str:
        return str(self.settings.value(f"paths/{key}", str(Path.home())))

    def ask_webcam(self) -> None:
        dialog = WebcamDialog(self)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            self.add_sources([dialog.spec()])

    def ask_videos(self) -> None:
        files, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Add video files (one per camera)", self._settings_dir("videos"),
            "Videos (*.mp4 *.avi *.mkv *.mov *.m4v);;All files (*)")
        if files:
            self.settings.setValue("paths/videos", str(Path(files[0]).parent))
            self.add_videos([Path(f) for f in files])

    def ask_session(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a recorded session", self._settings_dir("sessions"))
        if folder:
            self.settings.setValue("paths/sessions", str(Path(folder).parent))
            self.open_session(Path(folder))

    def ask_calibration(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Load a calibration", self._settings_dir("calibration"),
            "Calibrations (*.toml *.txt *.qca *.xml *.yml *.yaml);;All files (*)")
        if path:
            self.settings.setValue("paths/calibration", str(Path(path).parent))
            self.load_calibration(Path(path))

    def estimate_calibration(self) -> None:
        from app.gui.free_dialog import open_free_dialog

        open_free_dialog(self)

    def add_sources(self, specs: list[str]) -> None:
        self._guard(lambda: self.controller.add_sources(specs))

    def add_videos(self, paths: list[Path]) -> None:
        self.add_sources([f"video:{p}" for p in paths])

    def open_session(self, folder: Path) -> None:
        self.add_sources([f"session:{folder}"])

    def clear_sources(self) -> None:
        self.controller.stop()
        self.controller.clear_sources()

    def remove_selected_source(self) -> None:
        item = self.panel.source_list.currentItem()
        if item is not None:
            self.controller.remove_source(item.data(QtCore.Qt.ItemDataRole.UserRole))

    def load_calibration(self, path: Path) -> None:
        self._guard(lambda: self.controller.load_calibration(path))

    def open_sample(self) -> None:
        """Play the built-in sample: its four videos with its calibration."""
        from app.gui.sample import sample_calibration, sample_sources

        def work() -> None:
            self.controller.stop()
            self.controller.clear_sources()
            self.controller.load_calibration(sample_calibration())
            self.controller.add_sources(sample_sources())
            self.controller.start(play=True)

        self._guard(work)

    def _sources_changed(self) -> None:
        self.panel.source_list.clear()
        for spec in self.controller.sources:
            item = QtWidgets.QListWidgetItem(source_label(spec))
            item.setData(QtCore.Qt.ItemDataRole.UserRole, spec)
            item.setToolTip(spec)
            self.panel.source_list.addItem(item)
        self._update_controls()

    def _calibration_changed(self) -> None:
        c = self.controller
        if c.rig is None:
            self.panel.calibration_label.setText("none: cameras are shown without poses")
        else:
            name = c.rig_path.name if c.rig_path else "from the session"
            self.panel.calibration_label.setText(f"{name}: {', '.join(c.rig.names)}")
        self.view3d.set_rig(c.rig)

    def _pipeline_choice_changed(self) -> None:
        self.controller.choice.method = self.panel.method.currentData()
        self.controller.choice.smoothing = self.panel.smoothing.currentData()
        self.controller.choice.precision = self.panel.precision.currentData()
        if self.controller.running:
            self.show_info("The new pipeline settings apply the next time the capture starts.")

    # --- run -------------------------------------------------------------------------------------
    def toggle_start(self) -> None:
        if self.controller.running:
            self.controller.stop()
        else:
            self.controller.start(play=True)

    def play_pause(self) -> None:
        if not self.controller.running:
            self.controller.start(play=True)
        else:
            self.controller.toggle_play()

    def _running_changed(self, running: bool) -> None:
        runner = self.controller.runner
        self._shown = {}
        self._pose_shown = None
        if running and runner is not None:
            self.grid.set_cameras(list(runner.cameras))
            media = getattr(runner, "media", None)
            self.playback.set_media(len(media) if media is not None else 0, media.fps if media is not None else 0.0)
            self.metrics.clear()
            self.view3d.set_pose(None)
            self.status.setText(f"Running: {', '.join(runner.cameras)}")
        else:
            self.playback.set_media(0, 0.0)
            self.status.setText("Stopped")
        self._update_controls()

    def _update_controls(self) -> None:
        c = self.controller
        running, busy = c.running, c.busy
        self.panel.start_button.setText("Stop" if running else ("Starting…" if busy and not running else "Start"))
        self.panel.start_button.setEnabled(running or (bool(c.sources) and not busy))
        self.act_start.setText("&Stop" if running else "&Start")
        self.panel.record_button.setEnabled(running and not busy)
        self.panel.record_button.setChecked(c.recording)
        self.panel.record_button.setText("■ Stop recording" if c.recording else "● Record")
        self.panel.export_button.setEnabled(len(c.take) > 0 and not busy)
        for w in (self.panel.method, self.panel.smoothing, self.panel.precision):
            w.setEnabled(not running)

    # --- recording -------------------------------------------------------------------------------
    def toggle_record(self, folder: Path | None = None) -> None:
        c = self.controller
        if c.recording:
            c.stop_recording()
            return
        if not c.running:
            self.show_error("Start the capture before recording (Space or the Start button).")
            self._update_controls()
            return
        if folder is None:
            if self.record_root is None:
                chosen = QtWidgets.QFileDialog.getExistingDirectory(self, "Record takes into", str(Path.home()))
                if not chosen:
                    self._update_controls()
                    return
                self.record_root = Path(chosen)
            folder = self.record_root / datetime.now().strftime("take-%Y%m%d-%H%M%S")
        self.panel.record_folder.setText(str(folder))
        c.start_recording(folder)

    def _recording_changed(self, recording: bool) -> None:
        self._record_started = clock() if recording else math.nan
        if not recording:
            self.panel.record_elapsed.setText("not recording")
        self._update_controls()

    # --- export -----------------------------------------------------------------------------------
    def ask_export(self) -> None:
        root = self.export_root or self.record_root or Path.home()
        dialog = ExportDialog(root, datetime.now().strftime("take-%Y%m%d-%H%M%S"), self)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            self.export(dialog.request())

    def export(self, request: ExportRequest) -> None:
        if len(self.controller.take) == 0:
            self.show_error("There are no poses to export yet; load a calibration and play or capture first.")
            return
        self.export_root = request.folder
        self._progress = export_progress(self, request.formats)
        self._progress.show()
        self.controller.export(request)
        self.controller.busy_changed.connect(self._close_progress)

    def _close_progress(self, busy: bool) -> None:
        if not busy and self._progress is not None:
            self._progress.close()
            self._progress = None
            self.controller.busy_changed.disconnect(self._close_progress)

    def _exported(self, paths: dict) -> None:
        files = ", ".join(Path(p).name for p in paths.values())
        self.show_info(f"Exported {files} into {Path(next(iter(paths.values()))).parent}.")

    # --- timers ---------------------------------------------------------------------------------
    def update_display(self) -> None:
        """Show the newest frames and pose (UI thread; reads latest-only slots, never waits)."""
        t0 = clock()
        frames, pose = self.controller.poll()
        drawn = 0
        for name, (frame, t_available) in frames.items():
            tile = self.grid.tiles.get(name)
            if tile is None or self._shown.get(name) is frame:
                continue
            tile.set_image(frame.image, t_available)
            self._shown[name] = frame
            drawn += 1
        if drawn and not self.grid.tiles_sized:
            self.grid.refresh_layout()
        if pose is not None:
            self._pose_shown = pose
            self.poses_displayed += 1
            for name, tile in self.grid.tiles.items():
                tile.set_overlay(overlay_for(pose, name))
            if pose.joints3d.size:
                self.view3d.set_pose(pose.joints3d, joint_confidence(pose.confidences), pose.joint_names)
            if self.controller.seekable:
                snap = self.controller.runner.player.state()
                self.playback.show_position(pose.index, len(self.controller.runner.media), snap.playing)
        if drawn:
            self.displayed += drawn
            self.display_times = self.display_times[-299:] + [clock() - t0]

    def update_metrics(self) -> None:
        c = self.controller
        snap = c.sample_metrics()
        if snap is None:
            self.rates.setText("")
            return
        self.metrics.refresh()
        for name, tile in self.grid.tiles.items():
            tile.set_fps(snap.camera_fps.get(name, float("nan")))
        pose_rate = c.history.last("pose:poses/s")
        latency = snap.stages.get("latency", float("nan")) * 1e3
        self.rates.setText(f"poses {pose_rate:.1f}/s · latency {latency:.0f} ms · skew {snap.skew * 1e3:.1f} ms")
        if snap.last_error and snap.last_error != self.last_error:
            self.show_error(f"The pose pipeline skipped frames: {snap.last_error}")
        if c.seekable:
            self.playback.show_position(snap.position, snap.length, snap.playing)
        if c.recording and snap.recorder is not None:
            r = snap.recorder
            elapsed = clock() - self._record_started
            self.panel.record_elapsed.setText(
                f"{format_duration(elapsed)} · {sum(r.written.values())} frames · {format_bytes(r.bytes)}"
                + (f" · {sum(r.dropped.values())} dropped" if sum(r.dropped.values()) else ""))
            if r.error:
                self.show_error(r.error)
        root = (snap.recording_dir.parent if snap.recording_dir else self.record_root)
        if root is not None and root.exists():
            self.panel.disk_free.setText(f"{format_bytes(shutil.disk_usage(root).free)} free on {root}")
        if c.runner is not None and c.runner.finished and not c.busy:
            self.show_info("The sources have ended.")
        self._update_controls()
