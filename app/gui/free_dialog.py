"""File > No calibration: estimate the cameras from the person…: calibration-free capture from the GUI.

The same steps as `triangulum process VIDEOS --calib none` (app.person_calibration
.calibrate_videos_free) on the loaded video files, on a worker thread with a progress bar: the
person's height (scale), then each stage's reprojection error and time, the focal lengths and
any warning. "Use these cameras" loads the written calibration.toml as the GUI's calibration,
so the videos play with 3D poses at once; the file is reusable with `--calib`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from app.capture.spec import parse_spec
from calibration.errors import TriangulumError


def loaded_videos(sources: list[str]) -> list[Path]:
    """The loaded sources' video files (calibration-free needs recordings of one moment)."""
    videos = []
    for text in sources:
        spec = parse_spec(text)
        if spec.kind != "video":
            raise TriangulumError(f"source '{text}' is not a video file; calibration-free estimation works on video "
                                  "files of one moment (File > Add video files).")
        videos.append(Path(spec.target).expanduser())
    if len(videos) < 2:
        raise TriangulumError("load two or more videos of the same moment first (File > Add video files).")
    return videos


class FreeJob:
    """The estimation on a worker thread; the dialog polls `stage`, `done`, `report`, `error`, `path`."""

    def __init__(self, videos: list[Path], out_dir: Path, height: float | None, max_frames: int | None = 300) -> None:
        self.videos, self.out_dir, self.height, self.max_frames = videos, out_dir, height, max_frames
        self.stage, self.done = "starting", 0
        self.report: str | None = None
        self.error: str | None = None
        self.path: Path | None = None
        self.thread = threading.Thread(target=self._run, name="calibration-free", daemon=True)

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done = stage, done

    def _run(self) -> None:
        from app.commands.process import free_summary
        from app.person_calibration import calibrate_videos_free

        try:
            self.path, figures = calibrate_videos_free(self.videos, self.out_dir, self.height, self._progress,
                                                       self.max_frames)
            self.report = free_summary(figures, self.path)
        except TriangulumError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown to the user, never a crash of the window
            self.error = f"the estimation failed: {e}"


class FreeDialog(QtWidgets.QDialog):
    """See the module docstring. `use(path)` is called when the user takes the cameras."""

    def __init__(self, videos: list[Path], out_dir: Path, use, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("No calibration: estimate the cameras from the person")
        self.videos, self.use = videos, use
        self.max_frames: int | None = 300  # the first frames the cameras are estimated from
        self.job: FreeJob | None = None
        form = QtWidgets.QFormLayout()
        form.addRow("Videos", QtWidgets.QLabel(", ".join(p.name for p in videos)))
        self.height_box = QtWidgets.QDoubleSpinBox()
        self.height_box.setRange(0.0, 2.6)
        self.height_box.setDecimals(2)
        self.height_box.setSingleStep(0.01)
        self.height_box.setSpecialValueText("unknown (1.70 m)")
        self.height_box.setToolTip("The person's height sets the scale; 0: an adult average of 1.70 m.")
        form.addRow("Person's height (m)", self.height_box)
        self.folder = QtWidgets.QLineEdit(str(out_dir))
        form.addRow("Save into", self.folder)
        self.stage = QtWidgets.QLabel("Everyone is tracked in every view, the person who is the same in all of them is "
                                      "chosen, and the cameras are estimated from their motion (about a minute).")
        self.stage.setWordWrap(True)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.hide()
        self.report = QtWidgets.QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("Each stage's figures appear here.")
        self.run_button = QtWidgets.QPushButton("Estimate")
        self.run_button.clicked.connect(self.run)
        self.use_button = QtWidgets.QPushButton("Use these cameras")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        close = QtWidgets.QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.run_button, self.use_button, close):
            buttons.addWidget(b)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addWidget(self.report)
        layout.addLayout(buttons)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.poll)
        self.resize(680, 420)

    def run(self) -> None:
        height = self.height_box.value() or None
        self.job = FreeJob(self.videos, Path(self.folder.text()), height, self.max_frames)
        self.run_button.setEnabled(False)
        self.use_button.setEnabled(False)
        self.report.setPlainText("")
        self.bar.show()
        self.job.thread.start()
        self.timer.start()

    def poll(self) -> None:
        job = self.job
        if job is None:
            return
        self.stage.setText(f"{job.stage} ({job.done})" if job.done else job.stage)
        if job.thread.is_alive():
            return
        self.timer.stop()
        self.bar.hide()
        self.run_button.setEnabled(True)
        if job.error:
            self.report.setPlainText(job.error)
            self.stage.setText("The cameras could not be estimated:")
        else:
            self.report.setPlainText(job.report or "")
            self.stage.setText("Done. The estimated calibration is saved; use it, or reuse it later with --calib.")
            self.use_button.setEnabled(True)

    def _use(self) -> None:
        if self.job is not None and self.job.path is not None:
            self.use(self.job.path)
        self.accept()

    def wait(self, timeout: float) -> bool:
        """Block until the job ends (tests); True if it did."""
        if self.job is None:
            return True
        self.job.thread.join(timeout)
        self.poll()
        return not self.job.thread.is_alive()


def open_free_dialog(window) -> FreeDialog | None:
    """The dialog for the MainWindow's loaded videos (a message instead when it cannot run)."""
    c = window.controller
    if c.running:
        window.show_error("Stop the capture or playback first: the estimation uses both cores.")
        return None
    try:
        videos = loaded_videos(c.sources)
    except TriangulumError as e:
        window.show_error(str(e))
        return None
    dialog = FreeDialog(videos, videos[0].parent / "calibration-free", window.load_calibration, window)
    dialog.show()
    return dialog
