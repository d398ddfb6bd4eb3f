"""Start the GUI: `run_gui(GuiOptions(...))` from `triangulum gui` and `triangulum demo`.

With `screenshot` set, the window plays until `frames` poses have been shown, saves itself as
a PNG and closes (used by the Xvfb test and for the README picture).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from calibration.errors import TriangulumError

log = logging.getLogger(__name__)


@dataclass
class GuiOptions:
    """demo: play the built-in sample. sources/calibration: open these at start.
    screenshot: save the window here after `frames` poses were shown, then exit; layout: also
    write where the window drew what (JSON, see MainWindow.layout_report); timeout: seconds to
    wait for the frames. settings: an INI file for QSettings instead of the user's."""

    demo: bool = False
    sources: list[str] = field(default_factory=list)
    calibration: Path | None = None
    screenshot: Path | None = None
    layout: Path | None = None
    frames: int = 30
    timeout: float = 300.0
    settings: Path | None = None


def _install_excepthook(window) -> None:
    """An unexpected error in a Qt slot becomes a sentence in the window and a traceback in the log."""
    from app.gui.controller import user_message

    def hook(kind, value, tb) -> None:
        log.error("unexpected error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        window.show_error(user_message(value))

    sys.excepthook = hook


class ScreenshotJob:
    """Waits (on a timer, never blocking) for `frames` poses on screen, then saves and quits."""

    def __init__(self, window, path: Path, frames: int, timeout: float, layout: Path | None = None) -> None:
        from PyQt6 import QtCore

        from app.capture.frames import clock

        self.window, self.path, self.frames, self.layout = window, Path(path), frames, layout
        self.deadline = clock() + timeout
        self.clock = clock
        self.result = 1
        self.settle = 0
        self.timer = QtCore.QTimer(window)
        self.timer.setInterval(50)
        self.timer.timeout.connect(self._check)
        self.timer.start()

    def _check(self) -> None:
        from PyQt6 import QtWidgets

        w = self.window
        done = w.poses_displayed >= self.frames or (w.controller.runner is not None and w.controller.runner.finished
                                                    and w.poses_displayed > 0)
        if done:
            self.settle += 1
            if self.settle < 4:  # let the last frame paint everywhere first
                return
            w.controller.pause()
            w.grab_png(self.path)
            if self.layout is not None:
                Path(self.layout).write_text(json.dumps(w.layout_report(), indent=1), encoding="utf-8")
            print(f"saved {self.path} after {w.poses_displayed} frames", flush=True)
            self.result = 0
        elif self.clock() < self.deadline:
            return
        else:
            print(f"error: only {w.poses_displayed} of {self.frames} frames were shown in time"
                  + (f": {w.last_error}" if w.last_error else ""), file=sys.stderr, flush=True)
        self.timer.stop()
        w.close()
        QtWidgets.QApplication.instance().exit(self.result)


def run_gui(options: GuiOptions) -> int:
    """Open the window; returns the exit code when it closes."""
    from app.gui.platform import display_problem

    problem = display_problem()
    if problem:
        raise TriangulumError(problem)
    from PyQt6 import QtCore, QtWidgets

    from app.gui.pipelines import configure_threads
    from app.gui.platform import configure_pyqtgraph
    from app.gui.window import MainWindow

    configure_pyqtgraph()
    configure_threads()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setOrganizationName("Triangulum")
    app.setApplicationName("Triangulum")
    settings = (QtCore.QSettings(str(options.settings), QtCore.QSettings.Format.IniFormat)
                if options.settings else None)
    window = MainWindow(settings=settings)
    _install_excepthook(window)
    window.show()
    if options.demo:
        window.open_sample()
    else:
        if options.calibration:
            window.load_calibration(Path(options.calibration))
        if options.sources:
            window.add_sources(list(options.sources))
            window.controller.start(play=True)
    job = (ScreenshotJob(window, options.screenshot, options.frames, options.timeout, options.layout)
           if options.screenshot else None)
    code = app.exec()
    return job.result if job is not None else code
