"""Wizard page 4: the world frame: the board lying on the floor (Z up) or one camera's frame.

Each choice re-expresses the solution and redraws the rig on a worker thread (a tenth of a
second of work, kept off the UI thread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PyQt6 import QtWidgets

from app.gui.wizard.page import WizardPage
from app.gui.wizard.state import WizardState
from app.gui.wizard.widgets import ImageView, fill_table, table
from calibration.report import draw_rig
from calibration.rig import Rig

RIG_SIZE = (900, 700)


@dataclass
class WorldView:
    """The rig in one world frame: drawing (H, W, 3) BGR, camera centres (C, 3) m."""

    spec: str
    rig: Rig
    image: np.ndarray
    centres: np.ndarray


def draw_world(state: WizardState, spec: str) -> WorldView:
    posed = state.posed(spec)
    _, _, world = posed.tracks()
    centres = np.stack([c.center for c in posed.rig.cameras])
    return WorldView(spec, posed.rig, draw_rig(posed.rig, world, RIG_SIZE), centres)


class WorldPage(WizardPage):
    """Choose where the world's origin and axes are; the rig is redrawn in that frame."""

    def __init__(self, state: WizardState) -> None:
        super().__init__(state, "World frame",
                         "Put the board flat on the floor in one instant of the recording to get a Z-up world with "
                         "its origin at the board's corner; or keep one camera's frame (x right, y down, z forward).")
        self._key: tuple | None = None
        self.from_board = QtWidgets.QRadioButton("The board lies on the floor at instant")
        self.from_camera = QtWidgets.QRadioButton("The frame of camera")
        self.instant = QtWidgets.QComboBox()
        self.camera = QtWidgets.QComboBox()
        self.from_board.setChecked(True)
        for w in (self.from_board, self.from_camera):
            w.toggled.connect(lambda on: on and self.apply())
        self.instant.currentIndexChanged.connect(lambda _: self.from_board.isChecked() and self.apply())
        self.camera.currentIndexChanged.connect(lambda _: self.from_camera.isChecked() and self.apply())
        choice = QtWidgets.QGroupBox("Origin and axes")
        cf = QtWidgets.QGridLayout(choice)
        cf.addWidget(self.from_board, 0, 0)
        cf.addWidget(self.instant, 0, 1)
        cf.addWidget(self.from_camera, 1, 0)
        cf.addWidget(self.camera, 1, 1)
        self.view = ImageView("the rig is drawn here")
        self.view.setObjectName("wizard-rig-view")
        self.centres = table(["camera", "x m", "y m", "z m"])
        self.centres.setMinimumHeight(130)
        self.note = QtWidgets.QLabel("")
        self.note.setWordWrap(True)
        self.shown: WorldView | None = None
        self.job.done.connect(self._show)

        right = QtWidgets.QVBoxLayout()
        right.addWidget(choice)
        right.addWidget(QtWidgets.QLabel("Camera centres in this world"))
        right.addWidget(self.centres, 1)
        right.addWidget(self.note)
        self.arrange(right, 460, (self.view, 1))

    def initializePage(self) -> None:
        result = self.state.extrinsics
        key = (id(result),)
        if key == self._key:
            return
        self._key = key
        for w in (self.instant, self.camera, self.from_board, self.from_camera):
            w.blockSignals(True)
        self.instant.clear()
        for k in sorted(result.board_poses):
            self.instant.addItem(f"{k}", f"board:{k}")
        self.camera.clear()
        for n in result.rig.names:
            self.camera.addItem(n, f"camera:{n}")
        self.choose(self.state.world)
        for w in (self.instant, self.camera, self.from_board, self.from_camera):
            w.blockSignals(False)
        self.apply()

    def choose(self, spec: str) -> None:
        """Select a world frame written as for `--world`: camera:NAME, board:INSTANT or board:first."""
        kind, _, arg = spec.partition(":")
        if kind == "board":
            self.from_board.setChecked(True)
            self.instant.setCurrentIndex(0 if arg in ("", "first") else max(0, self.instant.findData(spec)))
        else:
            self.from_camera.setChecked(True)
            self.camera.setCurrentIndex(max(0, self.camera.findData(spec)))
        self.apply()

    def spec(self) -> str:
        if self.from_board.isChecked():
            # The first instant is written as the command line would: board:first.
            return "board:first" if self.instant.currentIndex() <= 0 else str(self.instant.currentData())
        return str(self.camera.currentData())

    def apply(self) -> None:
        """Use the chosen frame; the drawing follows when the worker has made it."""
        if self.state.extrinsics is None:
            return
        spec = self.spec()
        self.state.world = spec
        self.clear_error()
        state = self.state
        self.job.start(lambda ctx: draw_world(state, spec))

    def _show(self, shown: WorldView) -> None:
        self.shown = shown
        spec, names, centres = shown.spec, shown.rig.names, shown.centres
        self.view.set_image(shown.image)
        fill_table(self.centres, [[n, *(f"{v:+.3f}" for v in c)] for n, c in zip(names, centres, strict=True)])
        if spec.startswith("board"):
            below = [n for n, c in zip(names, centres, strict=True) if c[2] < 0]
            self.note.setText(f"Z is up from the floor. Cameras {below} are below the floor: was the board lying face up?"
                              if below else "Z is up from the floor; every camera is above it.")
        else:
            self.note.setText(f"World = {spec.partition(':')[2]}'s frame: x right, y down, z forward.")
