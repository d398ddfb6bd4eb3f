"""The control panels: session (sources, calibration, pipeline, start, record, export), the
playback bar (play/pause, step, scrub, speed) and the error banner."""

from __future__ import annotations

import math
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from app.gui.pipelines import FILTERS, METHOD_LABELS, PRECISION_LABELS

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)


def format_duration(seconds: float) -> str:
    """m:ss.s for a playback position or elapsed recording time."""
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:04.1f}"


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def source_label(spec: str) -> str:
    """A short label for a source spec: kind and file name, without the folder."""
    kind, _, rest = spec.partition(":")
    target, _, query = rest.partition("?")
    name = Path(target).name or target
    return f"{kind}: {name}" + (f"  ({query})" if query else "")


class SessionPanel(QtWidgets.QWidget):
    """Sources, calibration, pipeline choices, start/stop, record and export, top to bottom."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)

        sources = QtWidgets.QGroupBox("Sources")
        s = QtWidgets.QVBoxLayout(sources)
        self.source_list = QtWidgets.QListWidget()
        self.source_list.setObjectName("source-list")
        self.source_list.setMinimumHeight(90)
        s.addWidget(self.source_list)
        row = QtWidgets.QGridLayout()
        self.add_webcam = QtWidgets.QPushButton("Webcam…")
        self.add_videos = QtWidgets.QPushButton("Videos…")
        self.add_session = QtWidgets.QPushButton("Session…")
        self.remove_source = QtWidgets.QPushButton("Remove")
        for i, b in enumerate((self.add_webcam, self.add_videos, self.add_session, self.remove_source)):
            row.addWidget(b, i // 2, i % 2)
        s.addLayout(row)
        layout.addWidget(sources)

        calib = QtWidgets.QGroupBox("Calibration")
        c = QtWidgets.QVBoxLayout(calib)
        self.calibration_label = QtWidgets.QLabel("none: cameras are shown without poses")
        self.calibration_label.setWordWrap(True)
        self.load_calibration = QtWidgets.QPushButton("Load…")
        self.estimate_calibration = QtWidgets.QPushButton("From the person…")
        self.estimate_calibration.setToolTip("No calibration: estimate the cameras from the person in the loaded "
                                             "videos (calibration-free, no board)")
        c.addWidget(self.calibration_label)
        buttons = QtWidgets.QHBoxLayout()  # side by side: the panel keeps its height
        buttons.addWidget(self.load_calibration)
        buttons.addWidget(self.estimate_calibration)
        c.addLayout(buttons)
        layout.addWidget(calib)

        pipeline = QtWidgets.QGroupBox("Pipeline")
        p = QtWidgets.QFormLayout(pipeline)
        self.method = QtWidgets.QComboBox()
        for key, label in METHOD_LABELS.items():
            self.method.addItem(label, key)
        self.smoothing = QtWidgets.QComboBox()
        for key, label in FILTERS.items():
            self.smoothing.addItem(label, key)
        self.precision = QtWidgets.QComboBox()
        for key, label in PRECISION_LABELS.items():
            self.precision.addItem(label, key)
        self.precision.setToolTip("The 2D landmark network's arithmetic. int8 is 10-20 % faster on a "
                                  "CPU and moves the 3D by 9-21 mm on the real takes; float is the default.")
        p.addRow("Triangulation", self.method)
        p.addRow("Filtering", self.smoothing)
        p.addRow("2D model", self.precision)
        layout.addWidget(pipeline)

        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setObjectName("start-button")
        self.start_button.setMinimumHeight(32)
        layout.addWidget(self.start_button)

        record = QtWidgets.QGroupBox("Recording")
        r = QtWidgets.QVBoxLayout(record)
        self.record_button = QtWidgets.QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_folder = QtWidgets.QLabel("")
        self.record_folder.setWordWrap(True)
        self.record_elapsed = QtWidgets.QLabel("not recording")
        self.disk_free = QtWidgets.QLabel("")
        for w in (self.record_button, self.record_folder, self.record_elapsed, self.disk_free):
            r.addWidget(w)
        layout.addWidget(record)

        self.export_button = QtWidgets.QPushButton("Export take…")
        layout.addWidget(self.export_button)
        layout.addStretch(1)

    def choose_method(self, key: str) -> None:
        index = self.method.findData(key)
        if index >= 0:
            self.method.setCurrentIndex(index)

    def choose_precision(self, key: str) -> None:
        index = self.precision.findData(key)
        if index >= 0:
            self.precision.setCurrentIndex(index)

    def choose_smoothing(self, key: str) -> None:
        index = self.smoothing.findData(key)
        if index >= 0:
            self.smoothing.setCurrentIndex(index)


class PlaybackBar(QtWidgets.QWidget):
    """Play/pause, step, a scrub slider over the frame sets, time, speed and every-frame mode."""

    seek_requested = QtCore.pyqtSignal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        style = self.style()
        icon = QtWidgets.QStyle.StandardPixmap
        self._play_icon = style.standardIcon(icon.SP_MediaPlay)
        self._pause_icon = style.standardIcon(icon.SP_MediaPause)
        self.step_back = QtWidgets.QToolButton()
        self.step_back.setIcon(style.standardIcon(icon.SP_MediaSkipBackward))
        self.step_back.setToolTip("Step back one frame (←)")
        self.play_button = QtWidgets.QToolButton()
        self.play_button.setIcon(self._play_icon)
        self.play_button.setToolTip("Play / pause (Space)")
        self.step_forward = QtWidgets.QToolButton()
        self.step_forward.setIcon(style.standardIcon(icon.SP_MediaSkipForward))
        self.step_forward.setToolTip("Step forward one frame (→)")
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setObjectName("scrub")
        self.slider.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # arrows belong to stepping
        self.slider.setEnabled(False)
        self.time_label = QtWidgets.QLabel("–")
        self.time_label.setMinimumWidth(170)
        self.speed = QtWidgets.QComboBox()
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.setToolTip("Playback speed")
        self.every_frame = QtWidgets.QCheckBox("Every frame")
        self.every_frame.setChecked(True)
        self.every_frame.setToolTip("Compute a pose for every frame (slower than real time on a slow machine) "
                                    "instead of skipping frames to keep time")
        self.loop = QtWidgets.QCheckBox("Loop")
        self.loop.setToolTip("Start again from the beginning at the end")
        for w in (self.step_back, self.play_button, self.step_forward):
            w.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            layout.addWidget(w)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.time_label)
        layout.addWidget(self.speed)
        layout.addWidget(self.every_frame)
        layout.addWidget(self.loop)
        self.slider.sliderMoved.connect(self.seek_requested.emit)
        self.slider.sliderPressed.connect(lambda: self.seek_requested.emit(self.slider.value()))
        self._fps = 0.0
        self.playing = False

    def set_media(self, frames: int, fps: float) -> None:
        """Enable scrubbing over `frames` frame sets at `fps` (frames 0 disables the bar)."""
        self._fps = fps
        self.slider.setEnabled(frames > 0)
        self.slider.setRange(0, max(frames - 1, 0))
        for w in (self.step_back, self.play_button, self.step_forward, self.speed, self.every_frame, self.loop):
            w.setEnabled(frames > 0)
        if frames <= 0:
            self.time_label.setText("live")

    def show_position(self, k: int, frames: int, playing: bool) -> None:
        if not self.slider.isSliderDown():
            self.slider.blockSignals(True)
            self.slider.setValue(max(k, 0))
            self.slider.blockSignals(False)
        self.playing = playing
        self.play_button.setIcon(self._pause_icon if playing else self._play_icon)
        if frames > 0 and self._fps > 0:
            self.time_label.setText(
                f"{format_duration(max(k, 0) / self._fps)} / {format_duration(frames / self._fps)}  ·  frame {max(k, 0) + 1}/{frames}"
            )

    @property
    def speed_value(self) -> float:
        return float(self.speed.currentData())


class Banner(QtWidgets.QFrame):
    """A strip at the top of the window that shows the last error as a sentence."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("error-banner")
        self.setStyleSheet("#error-banner { background: #7a1f1f; } QLabel { color: white; }")
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QtWidgets.QToolButton()
        close.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_DialogCloseButton))
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()
