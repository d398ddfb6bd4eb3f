"""The grid of camera tiles; one tile can be enlarged to fill the grid."""

from __future__ import annotations

import math

from PyQt6 import QtCore, QtWidgets

from app.gui.tile import CameraTile


def grid_shape(count: int, area: tuple[float, float], aspect: float) -> tuple[int, int]:
    """(rows, columns) that show `count` tiles of width/height `aspect` largest in `area` (w, h) px."""
    if count <= 0:
        return 0, 0
    best, best_size = (1, count), -1.0
    for cols in range(1, count + 1):
        rows = math.ceil(count / cols)
        width = min(area[0] / cols, area[1] / rows * aspect)
        if width > best_size + 1e-9:
            best, best_size = (rows, cols), width
    return best


class TileGrid(QtWidgets.QWidget):
    """Tiles in the order of `set_cameras`, laid out to make each video as large as possible."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles: dict[str, CameraTile] = {}
        self.enlarged: str | None = None
        self._layout = QtWidgets.QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._placeholder = QtWidgets.QLabel(
            "No cameras yet.\nAdd a webcam, video files or a recorded session (File ▸ Add sources…),\n"
            "or open the built-in sample (Help ▸ Open sample)."
        )
        self._placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._layout.addWidget(self._placeholder, 0, 0)
        self._shape = (0, 0)
        self._sized = False

    def set_cameras(self, names: list[str]) -> None:
        """Replace the tiles with one per camera name."""
        for tile in self.tiles.values():
            self._layout.removeWidget(tile)
            tile.deleteLater()
        self.tiles = {}
        self.enlarged = None
        for name in names:
            tile = CameraTile(name, self)
            tile.enlarge_requested.connect(self.toggle_enlarged)
            self.tiles[name] = tile
        self._placeholder.setVisible(not names)
        self._shape = (0, 0)
        self._sized = False
        self._relayout()

    def toggle_enlarged(self, name: str) -> None:
        """Show only this tile, or all tiles again if it is already enlarged."""
        self.enlarged = None if self.enlarged == name or name not in self.tiles else name
        for other, tile in self.tiles.items():
            tile.setVisible(self.enlarged in (None, other))
        self._shape = (0, 0)
        self._relayout()

    @property
    def tiles_sized(self) -> bool:
        """Whether the layout already uses the cameras' frame size (known from the first frame)."""
        return self._sized

    def _aspect(self) -> float:
        for tile in self.tiles.values():
            if tile.image_shape:
                h, w = tile.image_shape
                self._sized = True
                return w / h
        return 16 / 9

    def _relayout(self) -> None:
        shown = [n for n in self.tiles if self.enlarged in (None, n)]
        shape = grid_shape(len(shown), (max(self.width(), 1), max(self.height(), 1)), self._aspect())
        if shape == self._shape:
            return
        self._shape = shape
        for tile in self.tiles.values():
            self._layout.removeWidget(tile)
        for r in range(self._layout.rowCount()):
            self._layout.setRowStretch(r, 0)
        for c in range(self._layout.columnCount()):
            self._layout.setColumnStretch(c, 0)
        rows, cols = shape
        for k, name in enumerate(shown):
            self._layout.addWidget(self.tiles[name], k // cols, k % cols)
        for r in range(rows):
            self._layout.setRowStretch(r, 1)
        for c in range(cols):
            self._layout.setColumnStretch(c, 1)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._relayout()

    def refresh_layout(self) -> None:
        """Re-pick rows and columns (call when the frame size of the cameras becomes known)."""
        self._shape = (0, 0)
        self._relayout()
