"""Small widgets the wizard's pages share: an image view, the pair-coverage matrix, a message bar."""

from __future__ import annotations

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

# Pair matrix cell colours: no shared views, fewer than the minimum, enough; the diagonal.
NONE_COLOUR = QtGui.QColor(200, 60, 60)
FEW_COLOUR = QtGui.QColor(230, 160, 40)
ENOUGH_COLOUR = QtGui.QColor(70, 160, 80)
DIAGONAL_COLOUR = QtGui.QColor(90, 90, 90)


def to_qimage(image: np.ndarray) -> QtGui.QImage:
    """A BGR (H, W, 3) or gray (H, W) uint8 image as a QImage (a copy)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    if image.ndim == 2:
        return QtGui.QImage(image.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()
    return QtGui.QImage(image.data, w, h, 3 * w, QtGui.QImage.Format.Format_BGR888).copy()


class ImageView(QtWidgets.QLabel):
    """Shows one image scaled to fit, aspect kept; `image` is the last array given."""

    def __init__(self, placeholder: str = "", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(placeholder, parent)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Ignored)
        self.setStyleSheet("background: #202020; color: #bbbbbb;")
        self.image: np.ndarray | None = None
        self._pixmap: QtGui.QPixmap | None = None
        self.updates = 0

    def set_image(self, image: np.ndarray | None) -> None:
        self.image = image
        self._pixmap = None if image is None else QtGui.QPixmap.fromImage(to_qimage(image))
        self.updates += 1
        self._rescale()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is None:
            self.setPixmap(QtGui.QPixmap())
            return
        self.setPixmap(self._pixmap.scaled(self.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                                           QtCore.Qt.TransformationMode.SmoothTransformation))


class MessageBar(QtWidgets.QLabel):
    """A strip that shows an error as a sentence (red) or a note (neutral); hidden when empty."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setContentsMargins(8, 4, 8, 4)
        self.is_error = False
        self.hide()

    def show_error(self, text: str) -> None:
        self.is_error = True
        self.setStyleSheet("background: #7a1f1f; color: white;")
        self.setText(text)
        self.setVisible(bool(text))

    def show_note(self, text: str) -> None:
        self.is_error = False
        self.setStyleSheet("background: #2d4a66; color: white;")
        self.setText(text)
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.is_error = False
        self.setText("")
        self.hide()


class PairMatrix(QtWidgets.QTableWidget):
    """Instants at which both cameras saw the board, one cell per camera pair.

    Off the diagonal: red = none, orange = fewer than `min_shared` (not linked directly),
    green = enough; the diagonal is each camera's own count. `counts` is the (C, C) array shown.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.counts = np.zeros((0, 0), np.int64)
        self.names: list[str] = []

    def set_counts(self, counts: np.ndarray, names: list[str], min_shared: int) -> None:
        counts = np.asarray(counts, np.int64)
        if names != self.names:
            self.names = list(names)
            self.setRowCount(len(names))
            self.setColumnCount(len(names))
            self.setHorizontalHeaderLabels(names)
            self.setVerticalHeaderLabels(names)
        self.counts = counts
        for i in range(len(names)):
            for j in range(len(names)):
                item = self.item(i, j)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
                    self.setItem(i, j, item)
                k = int(counts[i, j])
                item.setText(str(k))
                colour = (DIAGONAL_COLOUR if i == j else NONE_COLOUR if k == 0
                          else FEW_COLOUR if k < min_shared else ENOUGH_COLOUR)
                item.setBackground(colour)
                item.setForeground(QtGui.QColor("white"))
                item.setToolTip(f"{names[i]}: board seen in {k} instants" if i == j
                                else f"{names[i]} and {names[j]} both saw the board at {k} instants")

    def shown(self) -> np.ndarray:
        """The numbers the cells display now. -> (C, C) int"""
        n = self.rowCount()
        return np.array([[int(self.item(i, j).text()) for j in range(n)] for i in range(n)], np.int64).reshape(n, n)


def table(headers: list[str]) -> QtWidgets.QTableWidget:
    """A read-only table with these column headers, rows filled by `fill_table`."""
    t = QtWidgets.QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    t.verticalHeader().hide()
    t.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
    return t


def fill_table(t: QtWidgets.QTableWidget, rows: list[list[str]]) -> None:
    t.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QtWidgets.QTableWidgetItem(text)
            item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            t.setItem(r, c, item)


def cell_texts(t: QtWidgets.QTableWidget) -> list[list[str]]:
    """Every cell's text, row by row (tests read the tables with it)."""
    return [[t.item(r, c).text() if t.item(r, c) else "" for c in range(t.columnCount())] for r in range(t.rowCount())]
