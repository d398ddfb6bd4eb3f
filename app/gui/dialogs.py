"""Dialogs: add a webcam, export the take (with a progress dialog), keyboard shortcuts."""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from app.export import FORMATS, OPTIONAL_FORMATS
from app.export.blend import INSTALL as BLEND_INSTALL
from app.export.blend import available as blend_available
from app.gui.take import ExportRequest
from app.kinematics import check_available as check_kinematics
from calibration.errors import TriangulumError
from engines.temporal import ButterworthConfig, GapFillConfig

RESOLUTIONS = ("camera default", "640x480", "1280x720", "1920x1080", "3840x2160")


def webcam_spec(index: int, resolution: str = "camera default", fps: float | None = None, name: str = "") -> str:
    """The source spec of a webcam, e.g. webcam:0?width=1280&height=720&fps=30."""
    options = []
    if resolution != "camera default":
        width, height = (int(v) for v in resolution.split("x"))
        options += [f"width={width}", f"height={height}"]
    if fps:
        options.append(f"fps={fps:g}")
    if name:
        options.append(f"name={name}")
    return f"webcam:{int(index)}" + ("?" + "&".join(options) if options else "")


class WebcamDialog(QtWidgets.QDialog):
    """Asks for a camera index, resolution and frame rate."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a webcam")
        form = QtWidgets.QFormLayout(self)
        self.index = QtWidgets.QSpinBox()
        self.index.setRange(0, 63)
        self.resolution = QtWidgets.QComboBox()
        self.resolution.addItems(RESOLUTIONS)
        self.fps = QtWidgets.QSpinBox()
        self.fps.setRange(0, 240)
        self.fps.setSpecialValueText("camera default")
        self.name = QtWidgets.QLineEdit()
        self.name.setPlaceholderText("as in the calibration, e.g. cam01")
        form.addRow("Camera index", self.index)
        form.addRow("Resolution", self.resolution)
        form.addRow("Frame rate", self.fps)
        form.addRow("Name", self.name)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def spec(self) -> str:
        return webcam_spec(self.index.value(), self.resolution.currentText(), self.fps.value() or None,
                           self.name.text().strip())


class ExportDialog(QtWidgets.QDialog):
    """Where and how to export the take."""

    def __init__(self, folder: Path, stem: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export the take")
        form = QtWidgets.QFormLayout(self)
        row = QtWidgets.QHBoxLayout()
        self.folder = QtWidgets.QLineEdit(str(folder))
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        self.stem = QtWidgets.QLineEdit(stem)
        form.addRow("File name", self.stem)
        formats = QtWidgets.QHBoxLayout()
        self.formats = {f: QtWidgets.QCheckBox(f.upper()) for f in FORMATS + OPTIONAL_FORMATS}
        for f, box in self.formats.items():
            box.setChecked(f in FORMATS)
            formats.addWidget(box)
        if not blend_available():
            self.formats["blend"].setEnabled(False)
            self.formats["blend"].setToolTip(f"Needs Blender's Python module: {BLEND_INSTALL}")
        form.addRow("Formats", formats)
        self.kinematics = QtWidgets.QCheckBox("Joint angles (OpenSim scaling + inverse kinematics)")
        try:
            check_kinematics()
        except TriangulumError as exc:
            self.kinematics.setEnabled(False)
            self.kinematics.setToolTip(str(exc))
        form.addRow("", self.kinematics)
        self.fill = QtWidgets.QCheckBox("Fill gaps up to 10 frames")
        self.fill.setChecked(True)
        form.addRow("", self.fill)
        self.smooth = QtWidgets.QCheckBox("Low-pass (zero-phase Butterworth)")
        self.cutoff = QtWidgets.QDoubleSpinBox()
        self.cutoff.setRange(0.5, 50.0)
        self.cutoff.setValue(6.0)
        self.cutoff.setSuffix(" Hz")
        smooth = QtWidgets.QHBoxLayout()
        smooth.addWidget(self.smooth)
        smooth.addWidget(self.cutoff)
        form.addRow("", smooth)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export into", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def request(self) -> ExportRequest:
        return ExportRequest(
            folder=Path(self.folder.text()).expanduser(),
            stem=self.stem.text().strip() or "take",
            formats=tuple(f for f, box in self.formats.items() if box.isChecked()),
            fill_gaps=GapFillConfig() if self.fill.isChecked() else None,
            butterworth=ButterworthConfig(cutoff_hz=self.cutoff.value()) if self.smooth.isChecked() else None,
            kinematics=self.kinematics.isChecked(),
        )


def export_progress(parent: QtWidgets.QWidget, formats: tuple[str, ...]) -> QtWidgets.QProgressDialog:
    """A busy progress dialog shown while the export job runs (it cannot be cancelled half-way)."""
    dialog = QtWidgets.QProgressDialog(f"Writing {', '.join(f.upper() for f in formats)}…", None, 0, 0, parent)
    dialog.setWindowTitle("Exporting")
    dialog.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(0)
    return dialog


SHORTCUTS_HELP = """<table>
<tr><td><b>Space</b></td><td>play / pause (start the capture if stopped)</td></tr>
<tr><td><b>R</b></td><td>start / stop recording</td></tr>
<tr><td><b>← / →</b></td><td>step one frame back / forward (paused playback)</td></tr>
<tr><td><b>Ctrl+O</b></td><td>add video files</td></tr>
<tr><td><b>Ctrl+L</b></td><td>load a calibration</td></tr>
<tr><td><b>Ctrl+E</b></td><td>export the take</td></tr>
<tr><td><b>1–4</b></td><td>3D view: perspective, front, side, top</td></tr>
<tr><td><b>T</b></td><td>3D motion trail on / off</td></tr>
<tr><td><b>F11</b></td><td>full screen</td></tr>
</table>"""
