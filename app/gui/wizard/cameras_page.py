"""Wizard page 1: the cameras' sources, the board, and optionally intrinsics from a file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from app.gui.wizard.page import WizardPage
from app.gui.wizard.state import WizardState, match_intrinsics
from calibration.boards import Board, load_board
from calibration.errors import TriangulumError
from calibration.formats import convert
from calibration.frames import FrameSource, expand_sources
from calibration.rig import Rig

KIND_LABELS = {"video": "video", "images": "image folder", "camera": "webcam"}


class CamerasPage(WizardPage):
    """Sources (video files, image folders, a session folder, webcams), one per camera; the board
    file (ours or caliscope's charuco.toml) with an inverted-print switch; an intrinsics file."""

    def __init__(self, state: WizardState, settings: QtCore.QSettings | None = None) -> None:
        super().__init__(state, "Cameras and board",
                         "One source per camera: video files, a folder of photos, a recorded session folder or a webcam. "
                         "Then the board you filmed (or none: the cameras can be posed from the person), and the cameras' intrinsics "
                         "if you already have them.")
        self.settings = settings
        self.sources: list[FrameSource] = []
        self.board: Board | None = None
        self.given: Rig | None = None

        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setObjectName("wizard-sources")
        self.table.setHorizontalHeaderLabels(["Camera name", "Kind", "Path"])
        self.table.horizontalHeader().setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.itemChanged.connect(self._renamed)
        buttons = QtWidgets.QHBoxLayout()
        self.add_videos_button = QtWidgets.QPushButton("Add videos…")
        self.add_images_button = QtWidgets.QPushButton("Add image folder…")
        self.add_session_button = QtWidgets.QPushButton("Add session folder…")
        self.add_webcam_button = QtWidgets.QPushButton("Add webcam…")
        self.remove_button = QtWidgets.QPushButton("Remove")
        for b in (self.add_videos_button, self.add_images_button, self.add_session_button, self.add_webcam_button,
                  self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.add_videos_button.clicked.connect(self._ask_videos)
        self.add_images_button.clicked.connect(self._ask_images)
        self.add_session_button.clicked.connect(self._ask_session)
        self.add_webcam_button.clicked.connect(self._ask_webcam)
        self.remove_button.clicked.connect(self.remove_selected)
        sources = QtWidgets.QGroupBox("Sources (double-click a name to rename the camera)")
        sv = QtWidgets.QVBoxLayout(sources)
        sv.addWidget(self.table, 1)
        sv.addLayout(buttons)

        self.board_path = QtWidgets.QLineEdit()
        self.board_path.setPlaceholderText("board.toml or caliscope's charuco.toml")
        self.board_path.editingFinished.connect(lambda: self.set_board(self.board_path.text()))
        board_browse = QtWidgets.QPushButton("Browse…")
        board_browse.clicked.connect(self._ask_board)
        self.board_label = QtWidgets.QLabel("no board yet")
        self.board_label.setWordWrap(True)
        self.inverted = QtWidgets.QCheckBox("Printed inverted (white squares and markers on black)")
        self.inverted.toggled.connect(lambda _: self._describe_board())
        board = QtWidgets.QGroupBox("Board")
        bf = QtWidgets.QGridLayout(board)
        bf.addWidget(self.board_path, 0, 0)
        bf.addWidget(board_browse, 0, 1)
        bf.addWidget(self.board_label, 1, 0, 1, 2)
        bf.addWidget(self.inverted, 2, 0, 1, 2)

        self.intrinsics_path = QtWidgets.QLineEdit()
        self.intrinsics_path.setPlaceholderText("optional: a rig file with the cameras' intrinsics (any supported format)")
        self.intrinsics_path.editingFinished.connect(lambda: self.set_intrinsics(self.intrinsics_path.text()))
        intr_browse = QtWidgets.QPushButton("Browse…")
        intr_browse.clicked.connect(self._ask_intrinsics)
        self.intrinsics_label = QtWidgets.QLabel("none: each camera is calibrated on the next page")
        self.intrinsics_label.setWordWrap(True)
        intr = QtWidgets.QGroupBox("Intrinsics (optional)")
        inf = QtWidgets.QGridLayout(intr)
        inf.addWidget(self.intrinsics_path, 0, 0)
        inf.addWidget(intr_browse, 0, 1)
        inf.addWidget(self.intrinsics_label, 1, 0, 1, 2)

        self.step = QtWidgets.QSpinBox()
        self.step.setRange(1, 100)
        self.step.setPrefix("every ")
        self.step.setSuffix(" frame(s)")
        self.webcam_frames = QtWidgets.QSpinBox()
        self.webcam_frames.setRange(10, 100000)
        self.webcam_frames.setValue(300)
        self.webcam_frames.setSuffix(" frames")
        # Posing the cameras: from the board, or from the person walking through (no board;
        # the intrinsics then come from a file, the scale from the person's height).
        self.pose_from = QtWidgets.QComboBox()
        self.pose_from.setObjectName("wizard-pose-from")
        self.pose_from.addItem("the ChArUco board", "board")
        self.pose_from.addItem("the person (no board; intrinsics from a file)", "person")
        self.pose_from.currentIndexChanged.connect(lambda _: self.completeChanged.emit())
        self.height = QtWidgets.QDoubleSpinBox()
        self.height.setRange(0.5, 2.5)
        self.height.setDecimals(2)
        self.height.setSingleStep(0.01)
        self.height.setValue(1.70)
        self.height.setSuffix(" m")
        options = QtWidgets.QGroupBox("Frames, and what poses the cameras")
        of = QtWidgets.QHBoxLayout(options)
        of.addWidget(QtWidgets.QLabel("Use"))
        of.addWidget(self.step)
        of.addSpacing(24)
        of.addWidget(QtWidgets.QLabel("Grab from each webcam"))
        of.addWidget(self.webcam_frames)
        of.addSpacing(24)
        of.addWidget(QtWidgets.QLabel("Pose the cameras from"))
        of.addWidget(self.pose_from)
        of.addWidget(QtWidgets.QLabel("the person's height"))
        of.addWidget(self.height)
        of.addStretch(1)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(sources, 1)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(board, 1)
        row.addWidget(intr, 1)
        layout.addLayout(row)
        layout.addWidget(options)

    # --- sources -------------------------------------------------------------------------
    def add_sources(self, specs: list[str]) -> None:
        """Add sources written as on the command line: video:PATH, images:DIR, camera:N, a
        path, or one session folder (one camera per video in it)."""
        try:
            added = [s for spec in specs for s in expand_sources([spec])]
            taken = {s.name for s in self.sources}
            for s in added:
                if s.name in taken:
                    raise TriangulumError(f"a camera named '{s.name}' is already in the list; rename it first "
                                          "(double-click its name) or remove it.")
                taken.add(s.name)
        except TriangulumError as exc:
            self.show_error(str(exc))
            return
        self.clear_error()
        self.sources += added
        self._fill_table()

    def add_webcam(self, index: int) -> None:
        self.add_sources([f"camera:{int(index)}"])

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        for r in rows:
            del self.sources[r]
        self._fill_table()

    def _fill_table(self) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.sources))
        for r, s in enumerate(self.sources):
            name = QtWidgets.QTableWidgetItem(s.name)
            kind = QtWidgets.QTableWidgetItem(KIND_LABELS[s.kind])
            path = QtWidgets.QTableWidgetItem(f"index {s.path}" if s.kind == "camera" else s.path)
            for item in (kind, path):
                item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(r, 0, name)
            self.table.setItem(r, 1, kind)
            self.table.setItem(r, 2, path)
        self.table.blockSignals(False)
        self.table.resizeColumnToContents(0)
        self._show_intrinsics_match()
        self.completeChanged.emit()

    def rename(self, row: int, name: str) -> None:
        self.table.item(row, 0).setText(name)

    def _renamed(self, item: QtWidgets.QTableWidgetItem) -> None:
        if item.column() != 0:
            return
        name = item.text().strip()
        others = {s.name for i, s in enumerate(self.sources) if i != item.row()}
        if not name or name in others:
            self.show_error(f"camera name '{name}' is {'empty' if not name else 'already taken'}; every camera needs its own name.")
            self.table.blockSignals(True)
            item.setText(self.sources[item.row()].name)
            self.table.blockSignals(False)
            return
        self.clear_error()
        self.sources[item.row()] = dataclasses.replace(self.sources[item.row()], name=name)
        self._show_intrinsics_match()

    # --- board and intrinsics -----------------------------------------------------------------
    def set_board(self, path: str | Path) -> None:
        path = str(path).strip()
        self.board_path.setText(path)
        self.board = None
        if path:
            try:
                self.board = load_board(path)
            except TriangulumError as exc:
                self.board_label.setText("no board")
                self.show_error(str(exc))
                self.completeChanged.emit()
                return
            self.clear_error()
            self.inverted.blockSignals(True)
            self.inverted.setChecked(self.board.inverted)
            self.inverted.blockSignals(False)
        self._describe_board()
        self.completeChanged.emit()

    def chosen_board(self) -> Board | None:
        """The board file's board with the inverted switch applied."""
        return None if self.board is None else dataclasses.replace(self.board, inverted=self.inverted.isChecked())

    def _describe_board(self) -> None:
        board = self.chosen_board()
        if board is None:
            self.board_label.setText("no board yet")
            return
        w, h = board.size_m
        text = f"{board.describe()}; grid {w * 100:.1f} x {h * 100:.1f} cm"
        if board.kind == "checkerboard":
            text += ". A checkerboard calibrates lenses only: posing several cameras needs a ChArUco board."
        self.board_label.setText(text)

    def set_intrinsics(self, path: str | Path | None) -> None:
        path = str(path or "").strip()
        self.intrinsics_path.setText(path)
        self.given = None
        if path:
            try:
                self.given = convert(path)
            except TriangulumError as exc:
                self.intrinsics_label.setText("not loaded")
                self.show_error(str(exc))
                return
            self.clear_error()
        self._show_intrinsics_match()

    def _show_intrinsics_match(self) -> None:
        if self.given is None:
            self.intrinsics_label.setText("none: each camera is calibrated on the next page")
            return
        cams, note = match_intrinsics(self.given, [s.name for s in self.sources])
        text = f"{Path(self.intrinsics_path.text()).name}: cameras {', '.join(self.given.names)}"
        if self.sources:
            text += f"; used for {', '.join(cams) or 'none of the sources'}"
        self.intrinsics_label.setText(text + (f". {note}" if note else ""))

    # --- file dialogs ----------------------------------------------------------------------------
    def _start_dir(self) -> str:
        return str(self.settings.value("calibration-wizard/folder", str(Path.home()))) if self.settings else str(Path.home())

    def _remember(self, path: str) -> None:
        if self.settings is not None:
            self.settings.setValue("calibration-wizard/folder", str(Path(path).parent))

    def _ask_videos(self) -> None:
        files, _ = QtWidgets.QFileDialog.getOpenFileNames(self, "Videos, one per camera", self._start_dir(),
                                                          "Videos (*.mp4 *.avi *.mov *.mkv *.m4v *.webm);;All files (*)")
        if files:
            self._remember(files[0])
            self.add_sources([f"video:{f}" for f in files])

    def _ask_images(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "A folder of one camera's photos", self._start_dir())
        if folder:
            self._remember(folder)
            self.add_sources([f"images:{folder}"])

    def _ask_session(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "A session folder (one video per camera)", self._start_dir())
        if folder:
            self._remember(folder)
            self.add_sources([folder])

    def _ask_webcam(self) -> None:
        index, ok = QtWidgets.QInputDialog.getInt(self, "Add a webcam", "Camera index", 0, 0, 63)
        if ok:
            self.add_webcam(index)

    def _ask_board(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Board file", self._start_dir(), "Board (*.toml);;All files (*)")
        if path:
            self._remember(path)
            self.set_board(path)

    def _ask_intrinsics(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Intrinsics", self._start_dir(), "Calibrations (*.toml *.txt *.qca *.xml *.yml *.yaml);;All files (*)")
        if path:
            self._remember(path)
            self.set_intrinsics(path)

    # --- QWizardPage -----------------------------------------------------------------------------
    def from_person(self) -> bool:
        return self.pose_from.currentData() == "person"

    def isComplete(self) -> bool:
        return bool(self.sources) and (self.board is not None or self.from_person())

    def validatePage(self) -> bool:
        """Hand the choices to the state; later pages start over if anything changed."""
        s = self.state
        board = self.chosen_board()
        names = [src.name for src in self.sources]
        sources = [dataclasses.replace(src, max_frames=self.webcam_frames.value()) for src in self.sources]
        given, note = match_intrinsics(self.given, names) if self.given is not None else ({}, "")
        pose_from, height = self.pose_from.currentData(), round(self.height.value(), 3)
        if pose_from == "person" and [n for n in names if n not in given]:
            missing = [n for n in names if n not in given]
            self.show_error(f"Posing the cameras from the person needs their intrinsics from a file (none for "
                            f"{', '.join(missing)}): give one above, or calibrate the lenses with a board first.")
            return False
        key = (board, [(x.name, x.kind, x.path, x.max_frames) for x in sources], self.step.value(),
               self.intrinsics_path.text(), sorted(given), pose_from, height)
        old = (s.board, [(x.name, x.kind, x.path, x.max_frames) for x in s.sources], s.step, s.given_path, sorted(s.given),
               s.pose_from, s.height)
        if key != old:
            s.pose_from, s.height, s.person, s.person_notes = pose_from, height, None, []
            s.board, s.sources, s.step = board, sources, self.step.value()
            s.given, s.given_path = given, self.intrinsics_path.text()
            s.given_metadata = dict(self.given.metadata) if self.given is not None else {}
            s.intrinsics, s.views, s.extrinsics, s.timings = {}, {}, None, {}
            s.revision += 1
        self.show_note(note)
        return True
