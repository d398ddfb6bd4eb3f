"""The calibration wizard: cameras → intrinsics → extrinsics → world frame → review and save,
or, without a board, cameras → the person → review and save (`triangulum calib from-person`).

Each page runs its slow work (reading frames, detecting the board, solving) on a worker
thread and shows it as it happens; the steps are the ones `triangulum calib intrinsics`
and `triangulum calib extrinsics` run headless. Pages that do not apply are skipped:
intrinsics when a file gives them for every camera; extrinsics and the world frame for a
single camera or a checkerboard (which calibrates lenses only).
"""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from app.gui.wizard.cameras_page import CamerasPage
from app.gui.wizard.extrinsics_page import ExtrinsicsPage
from app.gui.wizard.intrinsics_page import IntrinsicsPage
from app.gui.wizard.page import WizardPage
from app.gui.wizard.person_page import PersonPage
from app.gui.wizard.review_page import ReviewPage
from app.gui.wizard.state import WizardState
from app.gui.wizard.world_page import WorldPage

CAMERAS, INTRINSICS, EXTRINSICS, WORLD, REVIEW, PERSON = range(6)


class CalibrationWizard(QtWidgets.QWizard):
    """See the module docstring. Emits `load_requested(path)` when the user asks to load the saved rig."""

    load_requested = QtCore.pyqtSignal(Path)

    def __init__(self, parent: QtWidgets.QWidget | None = None, settings: QtCore.QSettings | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("calibration-wizard")
        self.setWindowTitle("Calibrate cameras")
        self.setWizardStyle(QtWidgets.QWizard.WizardStyle.ModernStyle)
        self.setOption(QtWidgets.QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setButtonText(QtWidgets.QWizard.WizardButton.FinishButton, "Close")
        self.state = WizardState()
        self.cameras = CamerasPage(self.state, settings)
        self.intrinsics = IntrinsicsPage(self.state)
        self.extrinsics = ExtrinsicsPage(self.state)
        self.world = WorldPage(self.state)
        self.review = ReviewPage(self.state, settings)
        self.person = PersonPage(self.state)
        for page_id, page in ((CAMERAS, self.cameras), (INTRINSICS, self.intrinsics), (EXTRINSICS, self.extrinsics),
                              (WORLD, self.world), (REVIEW, self.review), (PERSON, self.person)):
            self.setPage(page_id, page)
        self.review.load_requested.connect(self.load_requested)
        self.resize(1280, 820)

    @property
    def pages(self) -> list[WizardPage]:
        return [self.cameras, self.intrinsics, self.extrinsics, self.world, self.review, self.person]

    def nextId(self) -> int:
        s = self.state
        current = self.currentId()
        pose = (PERSON if s.pose_from == "person" else EXTRINSICS) if s.can_pose else REVIEW
        if current == CAMERAS:
            return INTRINSICS if (s.needs_intrinsics and s.pose_from != "person") or not s.sources else pose
        if current == INTRINSICS:
            return pose
        if current == PERSON:
            return REVIEW  # the person's feet give the floor, the height the scale
        if current == EXTRINSICS:
            return WORLD
        if current == WORLD:
            return REVIEW
        return -1

    @property
    def last_error(self) -> str:
        page = self.currentPage()
        return page.last_error if isinstance(page, WizardPage) else ""

    def stop_jobs(self, wait: float = 0.0) -> None:
        """Cancel every page's background work; with `wait`, join the threads (tests, shutdown)."""
        for page in self.pages:
            page.job.cancel()
        for page in self.pages:
            if wait:
                page.job.wait(wait)

    def done(self, result: int) -> None:
        self.stop_jobs()
        super().done(result)


def open_wizard(window: QtWidgets.QWidget) -> CalibrationWizard:
    """Open the wizard over the main window; a saved rig can be loaded into it from the last page."""
    wizard = CalibrationWizard(window, getattr(window, "settings", None))
    wizard.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    load = getattr(window, "load_calibration", None)
    if load is not None:
        wizard.load_requested.connect(load)
    wizard.show()
    return wizard
