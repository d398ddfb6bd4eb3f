"""The main window's actions, menus, docks and remembered layout (QSettings): the parts of
`MainWindow` that say what is where, apart from what it does (app/gui/window.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from app.gui.dialogs import SHORTCUTS_HELP
from app.gui.overlays import error_colours
from app.gui.scene3d import PRESET_VIEWS
from calibration.errors import TriangulumError


class WindowLayout:
    """Mixed into MainWindow (a QMainWindow): builds its actions and menus, saves and
    restores its geometry, dock layout and choices, and reports and grabs what it shows."""

    # --- construction ------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QtWidgets.QWidget, area) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut: str | None = None, checkable: bool = False) -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        if shortcut:
            action.setShortcut(QtGui.QKeySequence(shortcut))
            action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.act_webcam = a("Add &webcam…", self.ask_webcam)
        self.act_videos = a("Add &video files…", self.ask_videos, "Ctrl+O")
        self.act_session = a("Open recorded &session…", self.ask_session)
        self.act_sample = a("Open the built-in &sample", self.open_sample)
        self.act_clear = a("Remove all sources", self.clear_sources)
        self.act_calibration = a("&Load calibration…", self.ask_calibration, "Ctrl+L")
        self.act_export = a("&Export take…", self.ask_export, "Ctrl+E")
        self.act_quit = a("&Quit", self.close, "Ctrl+Q")
        self.act_start = a("&Start", self.toggle_start, "F5")
        self.act_play = a("&Play / pause", self.play_pause, "Space")
        self.act_step_fwd = a("Step &forward", lambda: self.controller.step(1), "Right")
        self.act_step_back = a("Step &back", lambda: self.controller.step(-1), "Left")
        self.act_record = a("&Record", self.toggle_record, "R")
        self.act_presets = {
            name: a(f"{name.capitalize()} view", lambda _=False, n=name: self.view3d.set_preset(n), str(i + 1))
            for i, name in enumerate(PRESET_VIEWS)
        }
        self.act_trail = a("Motion &trail", self.view3d.set_trail_enabled, "T", checkable=True)
        self.act_fullscreen = a("&Full screen", self.toggle_fullscreen, "F11")
        self.act_reset_layout = a("Reset window layout", self.reset_layout)
        self.act_shortcuts = a("&Keyboard shortcuts", self.show_shortcuts)
        self.act_about = a("&About Triangulum", self.show_about)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        from app.gui.free_dialog import open_free_dialog
        from app.gui.wizard import open_wizard

        self.act_calibrate = self._action("&Calibrate cameras…", lambda: open_wizard(self))
        self.act_free = self._action("&No calibration: estimate the cameras from the person…",
                                     lambda: open_free_dialog(self))
        for act in (self.act_webcam, self.act_videos, self.act_session, self.act_sample, self.act_clear, None,
                    self.act_calibration, self.act_calibrate, self.act_free, None, self.act_export, None, self.act_quit):
            file.addSeparator() if act is None else file.addAction(act)
        capture = bar.addMenu("&Capture")
        for act in (self.act_start, self.act_play, self.act_step_back, self.act_step_fwd, None, self.act_record):
            capture.addSeparator() if act is None else capture.addAction(act)
        view = bar.addMenu("&View")
        for act in self.act_presets.values():
            view.addAction(act)
        view.addAction(self.act_trail)
        view.addSeparator()
        for dock in (self.dock_session, self.dock3d, self.dock_metrics):
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        view.addAction(self.act_fullscreen)
        view.addAction(self.act_reset_layout)
        from app.gui.adapt_dialog import ask_backbone, open_adapt_dialog, use_backbone

        tools = bar.addMenu("&Tools")
        self.act_adapt = self._action("&Adapt to this studio…", lambda: open_adapt_dialog(self))
        self.act_backbone = self._action("Use an adapted 2D model…", lambda: ask_backbone(self))
        self.act_shipped = self._action("Use the shipped 2D model", lambda: use_backbone(self, None))
        for act in (self.act_adapt, self.act_backbone, self.act_shipped):
            tools.addAction(act)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.act_shortcuts)
        help_menu.addAction(self.act_sample)
        help_menu.addAction(self.act_about)

    # --- settings -------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 900)
        state = s.value("window/state")
        if isinstance(state, QtCore.QByteArray) and not state.isEmpty():
            self.restoreState(state)
        else:
            self.resizeDocks([self.dock_session, self.dock3d], [260, 480], QtCore.Qt.Orientation.Horizontal)
        self.panel.choose_method(str(s.value("pipeline/method", "algebraic")))
        self.panel.choose_smoothing(str(s.value("pipeline/smoothing", "none")))
        self.panel.choose_precision(str(s.value("pipeline/precision", "float")))
        self.controller.choice.backbone = str(s.value("pipeline/backbone", "")) or None
        self.playback.every_frame.setChecked(s.value("playback/every_frame", True, type=bool))
        speed = float(s.value("playback/speed", 1.0))
        index = self.playback.speed.findData(speed)
        if index >= 0:
            self.playback.speed.setCurrentIndex(index)
        self.view3d.set_trail_enabled(s.value("view/trail", False, type=bool))
        preset = str(s.value("view/preset", "perspective"))
        if preset in PRESET_VIEWS:
            self.view3d.set_preset(preset)
        root = s.value("paths/record_root", "")
        self.record_root = Path(root) if root else None
        self._pipeline_choice_changed()
        self.playback.loop.setChecked(s.value("playback/loop", False, type=bool))
        self.controller.set_every_frame(self.playback.every_frame.isChecked())
        self.controller.set_loop(self.playback.loop.isChecked())

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("pipeline/method", self.controller.choice.method)
        s.setValue("pipeline/smoothing", self.controller.choice.smoothing)
        s.setValue("pipeline/precision", self.controller.choice.precision)
        s.setValue("pipeline/backbone", self.controller.choice.backbone or "")
        s.setValue("playback/every_frame", self.playback.every_frame.isChecked())
        s.setValue("playback/speed", self.playback.speed_value)
        s.setValue("playback/loop", self.playback.loop.isChecked())
        s.setValue("view/trail", self.view3d.trail_enabled)
        s.setValue("view/preset", self.view3d.preset)
        s.setValue("paths/record_root", str(self.record_root) if self.record_root else "")
        s.sync()

    def reset_layout(self) -> None:
        for dock, area in ((self.dock_session, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea),
                           (self.dock3d, QtCore.Qt.DockWidgetArea.RightDockWidgetArea),
                           (self.dock_metrics, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)):
            dock.setFloating(False)
            self.addDockWidget(area, dock)
            dock.show()

    # --- view ----------------------------------------------------------------------------------------
    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def show_shortcuts(self) -> None:
        QtWidgets.QMessageBox.information(self, "Keyboard shortcuts", SHORTCUTS_HELP)

    def show_about(self) -> None:
        QtWidgets.QMessageBox.about(
            self, "About Triangulum",
            "<b>Triangulum</b><br>Markerless multi-camera 3D human pose capture: BlazePose in every view, "
            "confidence-weighted triangulation, live 3D skeleton, recording and export (TRC, BVH, C3D, CSV).")

    def grab_png(self, path: Path) -> Path:
        """Save the window as drawn now (the 3D scene included) as a PNG."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        image = self.grab().toImage()
        if self.view3d.scene_widget is not None and self.dock3d.isVisible():
            # The 3D scene is a native window of its own, which QWidget.grab does not see.
            scene = self.view3d.grab_scene()
            container = self.view3d.scene_widget
            painter = QtGui.QPainter(image)
            painter.drawImage(QtCore.QRect(container.mapTo(self, QtCore.QPoint(0, 0)), container.size()), scene)
            painter.end()
        if not image.save(str(path)):
            raise TriangulumError(f"cannot write the screenshot {path}; check the folder exists and is writable.")
        return path

    def layout_report(self) -> dict:
        """Where things are drawn, in window pixels (as in `grab_png`): the 3D scene's rectangle,
        each tile's video rectangle and the centre and RGB colour of each reprojected joint it
        draws. Lets a test check a screenshot against what the window meant to show."""

        def rect(widget: QtWidgets.QWidget) -> list[int]:
            p = widget.mapTo(self, QtCore.QPoint(0, 0))
            return [p.x(), p.y(), widget.width(), widget.height()]

        def to_window(tile, x: float, y: float) -> list[float]:
            scene = tile.viewbox.mapViewToScene(QtCore.QPointF(float(x), float(y)))
            p = tile.view.mapTo(self, tile.view.mapFromScene(scene))
            return [p.x(), p.y()]

        tiles = {}
        for name, tile in self.grid.tiles.items():
            if not tile.isVisible():
                continue
            entry = {"view": rect(tile.view), "frames_shown": tile.frames_shown, "image": None, "markers": []}
            if tile.image_shape is not None:
                h, w = tile.image_shape
                entry["image"] = to_window(tile, 0, 0) + to_window(tile, w, h)
            overlay = tile.overlay
            if overlay is not None:
                shown = np.isfinite(overlay.reprojected).all(axis=1)
                for (x, y), colour in zip(overlay.reprojected[shown], error_colours(overlay.error[shown]), strict=True):
                    entry["markers"].append(to_window(tile, x, y) + [int(v) for v in colour[:3]])
            tiles[name] = entry
        gl_shown = self.view3d.scene_widget is not None and self.dock3d.isVisible()
        return {
            "size": [self.width(), self.height()],
            "opengl": self.view3d.gl is not None,
            "view3d": rect(self.view3d.scene_widget) if gl_shown else None,
            "poses_displayed": self.poses_displayed,
            "joints_in_3d": 0 if self.view3d.joints is None else int(np.isfinite(self.view3d.joints).all(axis=1).sum()),
            "tiles": tiles,
        }

