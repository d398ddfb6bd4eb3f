"""Wizard page 5: the quality report, per-camera and per-pair errors; save the rig and report.

Saving writes what `triangulum calib extrinsics` writes: the rig TOML and beside it
rig.report.json and rig.report.png. Without extrinsics (one camera, or a checkerboard) the
rig holds the calibrated intrinsics only. Building the report (two-view triangulations) and
writing the files run on a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtWidgets

from app.gui.wizard.jobs import JobContext
from app.gui.wizard.page import WizardPage
from app.gui.wizard.state import WizardState, quality_report
from app.gui.wizard.widgets import ImageView, fill_table, table
from calibration.report import QualityReport, render_report, save_report
from calibration.rig import Rig
from calibration.rig_io import save_rig


def _f(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if np.isfinite(v) else "–"


@dataclass
class Review:
    """What is saved: the rig, and with posed cameras the report, the world points (N, 3) and
    the report page (H, W, 3) BGR."""

    rig: Rig
    report: QualityReport | None
    world: np.ndarray | None
    image: np.ndarray | None


def build_review(state: WizardState) -> Review:
    if state.pose_from == "person" and state.person is not None:
        from app.person_calibration import person_report

        report, world = person_report(state.person, {"timings_s": dict(state.timings), "made_by": "calibration wizard",
                                                     "people": list(state.person_notes)})
        return Review(state.person.rig, report, world, render_report(report, state.person.rig, world))
    if state.extrinsics is None:
        return Review(state.intrinsics_rig(), None, None, None)
    posed = state.posed()
    report, world = quality_report(posed, state.board, state.timings)
    return Review(posed.rig, report, world, render_report(report, posed.rig, world))


def write_files(ctx: JobContext, review: Review, path: Path) -> list[Path]:
    """The rig TOML, and beside it the report (JSON, PNG) when the cameras are posed."""
    save_rig(review.rig, path)
    files = [path]
    if review.report is not None:
        files += list(save_report(review.report, review.rig, path, review.world))
    return files


class ReviewPage(WizardPage):
    """See the module docstring. `save(path)` writes the files; `load_requested(path)` asks the
    main window to load them."""

    load_requested = QtCore.pyqtSignal(Path)

    def __init__(self, state: WizardState, settings: QtCore.QSettings | None = None) -> None:
        super().__init__(state, "Review and save",
                         "Check the errors before saving: a camera or pair far above the others usually means a "
                         "wrong board size, a moved camera or badly synchronised videos.")
        self.settings = settings
        self.review: Review | None = None
        self.saved: list[Path] = []

        self.view = ImageView("the quality report is drawn here")
        self.view.setObjectName("wizard-report-view")
        self.per_camera = table(["camera", "RMS px", "median px", "p95 px", "points"])
        self.pairs = table(["pair", "shared views", "points", "RMS px"])
        self.warnings = QtWidgets.QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #d08000;")
        self.path = QtWidgets.QLineEdit()
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._ask_path)
        self.save_button = QtWidgets.QPushButton("Save")
        self.save_button.clicked.connect(lambda: self.save(Path(self.path.text()).expanduser()))
        self.load_button = QtWidgets.QPushButton("Load it into the main window and close")
        self.load_button.setEnabled(False)
        self.load_button.clicked.connect(self._load)
        self.saved_label = QtWidgets.QLabel("")
        self.saved_label.setWordWrap(True)
        self.job.done.connect(self._job_done)
        self.job.running_changed.connect(lambda running: self.save_button.setEnabled(not running and self.review is not None))

        save = QtWidgets.QGroupBox("Save")
        sf = QtWidgets.QGridLayout(save)
        sf.addWidget(self.path, 0, 0)
        sf.addWidget(browse, 0, 1)
        sf.addWidget(self.save_button, 1, 0, 1, 2)
        sf.addWidget(self.saved_label, 2, 0, 1, 2)
        sf.addWidget(self.load_button, 3, 0, 1, 2)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(QtWidgets.QLabel("Per camera (final adjustment)"))
        right.addWidget(self.per_camera, 1)
        right.addWidget(QtWidgets.QLabel("Per pair (each point triangulated from the two cameras alone)"))
        right.addWidget(self.pairs, 1)
        right.addWidget(self.warnings)
        right.addWidget(save)
        self.arrange(right, 520, (self.view, 1))

    def initializePage(self) -> None:
        state = self.state
        self.clear_error()
        self.review, self.saved = None, []
        self.saved_label.setText("building the report…")
        self.load_button.setEnabled(False)
        self.save_button.setEnabled(False)
        if not self.path.text():
            self.path.setText(str(self._default_path()))
        self.job.start(lambda ctx: build_review(state))

    def _job_done(self, result: object) -> None:
        if isinstance(result, Review):
            self.review = result
            self.saved_label.setText("")
            self.save_button.setEnabled(True)
            self._show()
        else:
            self._saved(result)

    def _default_path(self) -> Path:
        if self.settings is not None and self.settings.value("calibration-wizard/output", ""):
            return Path(str(self.settings.value("calibration-wizard/output"))) / "rig.toml"
        first = Path(self.state.sources[0].path) if self.state.sources else Path.home()
        folder = first.parent if first.exists() else Path.home()
        return folder / "rig.toml"

    def _show(self) -> None:
        r = self.review.report
        if r is None:
            results = self.state.intrinsics
            fill_table(self.per_camera, [[n, _f(results[n].rms) if n in results else "given", "–", "–",
                                          str(len(results[n].used)) + " views" if n in results else "–"]
                                         for n in self.review.rig.names])
            fill_table(self.pairs, [])
            warnings = [f"{n}: {w}" for n, res in results.items() for w in res.warnings]
            self.warnings.setText("Intrinsics only (the cameras are not posed).\n" + "\n".join(f"⚠ {w}" for w in warnings))
            self.view.set_image(None)
            self.view.setText("intrinsics only: no rig to draw")
            return
        fill_table(self.per_camera, [[n, _f(v["rms"]), _f(v["median"]), _f(v["p95"]), str(int(v["count"]))]
                                     for n, v in r.per_camera.items()])
        fill_table(self.pairs, [[f"{p['a']}–{p['b']}", str(p["shared_views"]), str(p["points"]), _f(p["rms"])]
                                for p in r.pairs])
        self.warnings.setText("\n".join(f"⚠ {w}" for w in r.warnings))
        self.view.set_image(self.review.image)

    def save(self, path: Path) -> None:
        """Write the rig TOML (and its report beside it when the cameras are posed); `saved`
        lists the files when the worker is done."""
        if self.review is None:
            self.show_error("There is nothing to save yet; wait for the report, or go back and finish the calibration steps.")
            return
        if path.suffix.lower() != ".toml":
            self.show_error(f"{path.name}: the rig is saved as TOML; give a file name ending in .toml.")
            return
        self.clear_error()
        self.saved = []
        self.saved_label.setText(f"writing {path}…")
        review = self.review
        self.job.start(lambda ctx: write_files(ctx, review, path))

    def _saved(self, files: list[Path]) -> None:
        self.saved = files
        if self.settings is not None and files:
            self.settings.setValue("calibration-wizard/output", str(files[0].parent))
        self.saved_label.setText("Wrote " + ", ".join(str(f) for f in files))
        self.load_button.setEnabled(True)

    def _ask_path(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the calibration", self.path.text(), "Rig (*.toml)")
        if path:
            self.path.setText(path)

    def _load(self) -> None:
        if self.saved:
            self.load_requested.emit(self.saved[0])
            wizard = self.wizard()
            if wizard is not None:
                wizard.accept()
