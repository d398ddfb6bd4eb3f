"""Tools > Adapt to this studio…: `triangulum adapt` on the loaded recordings, from the GUI.

The dialog takes the loaded video files (one take, with the loaded calibration) or recorded
sessions (one take each), a frame range to adapt on and an output folder, runs
training.adapt.adapt_takes on a worker thread with a progress bar and Cancel, and ends with
the before/after report: the held-out agreement with the other views, and, when the range
leaves frames after it, those frames processed with the shipped and the adapted network.
"Use this 2D model" then makes the adapted network the GUI's backbone (PipelineChoice.backbone).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from app.capture.spec import parse_spec
from calibration.errors import TriangulumError


def take_inputs(sources: list[str]) -> list[list[Path]]:
    """The loaded sources as `process` inputs: all video files as one take, each session as its own."""
    videos, takes = [], []
    for text in sources:
        spec = parse_spec(text)
        if spec.kind == "video":
            videos.append(Path(spec.target).expanduser())
        elif spec.kind == "session":
            takes.append([Path(spec.target).expanduser()])
        else:
            raise TriangulumError(f"source '{text}' is live; adaptation learns from recordings: record a take "
                                  "first, or load video files or a session.")
    return ([videos] if videos else []) + takes


class AdaptJob:
    """The adaptation on a worker thread; the dialog polls `stage`, `done`, `total`, `report`, `error`."""

    def __init__(self, inputs: list[list[Path]], calibration: Path | None, start: int, stop: int | None,
                 out_dir: Path, backbone: str | None, config=None) -> None:
        self.inputs, self.calibration, self.start, self.stop = inputs, calibration, start, stop
        self.out_dir, self.backbone, self.config = out_dir, backbone, config
        self.stage, self.done, self.total = "starting", 0, 1
        self.report: str | None = None
        self.error: str | None = None
        self.cancel = threading.Event()
        self.thread = threading.Thread(target=self._run, name="adapt", daemon=True)

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, max(total, 1)

    def _run(self) -> None:
        from app.adapt import TakeRange, adapt_takes, check_after, summary
        from app.process.inputs import open_take
        from training.adapt import AdaptConfig

        try:
            takes = [TakeRange(open_take(paths, self.calibration), self.start, self.stop) for paths in self.inputs]
            result = adapt_takes(takes, self.config or AdaptConfig(), self.out_dir, self.backbone, "GUI: Tools > Adapt to this studio",
                                 self._progress, self.cancel.is_set)
            lines = summary(result)
            for tr in takes:
                if not self.cancel.is_set() and self.stop is not None and self.stop < tr.take.frames:
                    self._progress(f"checking frames {self.stop}-{tr.take.frames - 1}", 0, 1)
                    line = check_after(tr.take, self.stop, str(self.out_dir))
                    if line:
                        lines.append(line[0].upper() + line[1:])
            lines.append(f"Saved in {self.out_dir}.")
            self.report = "\n".join(lines)
        except TriangulumError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown to the user, never a crash of the window
            self.error = f"adaptation failed: {e}"


class AdaptDialog(QtWidgets.QDialog):
    """See the module docstring. use_backbone(path) is called when the user takes the result."""

    def __init__(self, inputs: list[list[Path]], calibration: Path | None, frames: int, out_dir: Path,
                 use_backbone: Callable[[str], None], backbone: str | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Adapt to this studio")
        self.inputs, self.calibration, self.backbone, self.use_backbone = inputs, calibration, backbone, use_backbone
        self.job: AdaptJob | None = None
        self.config = None  # training.adapt.AdaptConfig (None: its defaults)
        form = QtWidgets.QFormLayout()
        names = "; ".join(", ".join(p.name for p in take) for take in inputs)
        form.addRow("Recordings", QtWidgets.QLabel(names))
        self.start = QtWidgets.QSpinBox()
        self.stop = QtWidgets.QSpinBox()
        for box in (self.start, self.stop):
            box.setRange(0, max(frames, 1))
        self.stop.setValue(max(1, int(round(0.6 * frames))) if frames else 0)
        self.stop.setToolTip("Adapt on frame sets start..stop-1; the frames after stop are checked with both networks.")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.start)
        row.addWidget(QtWidgets.QLabel("to"))
        row.addWidget(self.stop)
        form.addRow("Frames", row)
        self.folder = QtWidgets.QLineEdit(str(out_dir))
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        out = QtWidgets.QHBoxLayout()
        out.addWidget(self.folder)
        out.addWidget(browse)
        form.addRow("Save into", out)
        self.stage = QtWidgets.QLabel("")
        self.bar = QtWidgets.QProgressBar()
        self.report = QtWidgets.QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("The before/after report appears here.")
        self.run_button = QtWidgets.QPushButton("Adapt")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button = QtWidgets.QPushButton("Use this 2D model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.run_button, self.cancel_button, self.use_button):
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
        self.resize(640, 420)

    def _browse(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Save the adapted model into", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def run(self) -> None:
        stop = self.stop.value() or None
        if stop is not None and stop <= self.start.value():
            self.report.setPlainText("The range is empty: make 'to' larger than the start.")
            return
        self.job = AdaptJob(self.inputs, self.calibration, self.start.value(), stop, Path(self.folder.text()),
                            self.backbone, self.config)
        self.run_button.setEnabled(False)
        self.use_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.report.setPlainText("")
        self.job.thread.start()
        self.timer.start()

    def cancel(self) -> None:
        if self.job is not None and self.job.thread.is_alive():
            self.job.cancel.set()
            self.stage.setText("cancelling (the best weights so far are kept)…")
        else:
            self.reject()

    def poll(self) -> None:
        job = self.job
        if job is None:
            return
        self.stage.setText(job.stage)
        self.bar.setMaximum(job.total)
        self.bar.setValue(min(job.done, job.total))
        if job.thread.is_alive():
            return
        self.timer.stop()
        self.run_button.setEnabled(True)
        self.cancel_button.setText("Close")
        if job.error:
            self.report.setPlainText(job.error)
            self.stage.setText("failed")
        else:
            self.report.setPlainText(job.report or "")
            self.stage.setText("done")
            self.bar.setValue(self.bar.maximum())
            self.use_button.setEnabled(True)

    def _use(self) -> None:
        if self.job is not None:
            self.use_backbone(str(self.job.out_dir))
        self.accept()

    def wait(self, timeout: float) -> bool:
        """Block until the job ends (tests); True if it did."""
        if self.job is None:
            return True
        self.job.thread.join(timeout)
        self.poll()
        return not self.job.thread.is_alive()


def open_adapt_dialog(window) -> AdaptDialog | None:
    """Tools > Adapt to this studio… for the MainWindow's loaded recordings (a message instead
    when there is nothing to adapt on)."""
    from app.process.inputs import open_take

    c = window.controller
    if c.running:
        window.show_error("Stop the capture or playback first: adaptation uses both cores.")
        return None
    if not c.sources:
        window.show_error("Load the recordings to adapt on first (File > Add video files or Open recorded session).")
        return None
    try:
        inputs = take_inputs(c.sources)
        frames = open_take(inputs[0], c.rig_path).frames
    except TriangulumError as e:
        window.show_error(str(e))
        return None
    root = inputs[0][0].parent if inputs[0][0].is_file() else inputs[0][0]
    dialog = AdaptDialog(inputs, c.rig_path, frames, root / "adapted-model",
                         lambda path: use_backbone(window, path), c.choice.backbone, window)
    dialog.show()
    return dialog


def use_backbone(window, path: str | None) -> None:
    """Make `path` (an adapted model folder; None: the shipped network) the GUI's 2D model."""
    from engines.blazepose.backbone import resolve_backbone

    try:
        resolve_backbone(path)
    except TriangulumError as e:
        window.show_error(str(e))
        return
    window.controller.choice.backbone = path
    if path:
        window.panel.choose_precision("float")
    window.show_info(f"2D model: {path or 'the shipped BlazePose network'}"
                     + (" (applies the next time the capture starts)." if window.controller.running else "."))


def ask_backbone(window) -> None:
    """Tools > Use an adapted 2D model…: pick a folder written by adaptation."""
    folder = QtWidgets.QFileDialog.getExistingDirectory(window, "Adapted 2D model folder (holds landmark.safetensors)")
    if folder:
        use_backbone(window, folder)
