"""One camera tile: the video with the 2D detections, the reprojected 3D joints coloured by
reprojection error and the person ROI over it, and a header with the camera name and rates."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from app.gui.overlays import TileOverlay, error_colours, segments

_DETECTION_PEN = pg.mkPen((255, 255, 255, 200), width=2)
_ROI_PEN = pg.mkPen((0, 200, 255), width=2, style=QtCore.Qt.PenStyle.DashLine)
_KEYPOINT_BRUSH = pg.mkBrush(255, 255, 255, 230)


class CameraTile(QtWidgets.QFrame):
    """Shows frames of one camera. `set_image` takes (H, W, 3) uint8 BGR frames as the capture
    core delivers them; `set_overlay` a TileOverlay in the same pixel coordinates (or None).

    The BGR -> RGB conversion writes into one of two buffers kept per image size, so a frame
    costs one pass over its pixels; two buffers because Qt may still paint from the previous one.
    Emits `enlarge_requested(name)` on a double click or the header button.
    """

    enlarge_requested = QtCore.pyqtSignal(str)

    def __init__(self, name: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.setObjectName(f"tile-{name}")
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self._buffers: list[np.ndarray] = []
        self._next = 0
        self._shape: tuple[int, int] | None = None
        self.frames_shown = 0
        self.overlay: TileOverlay | None = None
        self._fps = math.nan

        self.header = QtWidgets.QLabel(name)
        self.header.setObjectName("tile-header")
        self.enlarge_button = QtWidgets.QToolButton()
        self.enlarge_button.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_TitleBarMaxButton))
        self.enlarge_button.setToolTip("Enlarge this camera (double-click the video)")
        self.enlarge_button.setAutoRaise(True)
        self.enlarge_button.clicked.connect(lambda: self.enlarge_requested.emit(self.name))

        self.view = pg.GraphicsView()
        self.view.setBackground("k")
        self.viewbox = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setCentralItem(self.viewbox)
        self.image_item = pg.ImageItem()
        self.roi_item = pg.PlotCurveItem(pen=_ROI_PEN)
        self.bones_item = pg.PlotCurveItem(pen=_DETECTION_PEN, connect="pairs")
        self.keypoints_item = pg.ScatterPlotItem(size=6, pen=None, brush=_KEYPOINT_BRUSH, pxMode=True)
        self.reprojection_item = pg.ScatterPlotItem(size=11, symbol="+", pxMode=True)
        for z, item in enumerate((self.image_item, self.roi_item, self.bones_item, self.keypoints_item, self.reprojection_item)):
            item.setZValue(z)
            self.viewbox.addItem(item)
        self.view.scene().sigMouseClicked.connect(self._clicked)

        top = QtWidgets.QHBoxLayout()
        top.setContentsMargins(4, 0, 0, 0)
        top.addWidget(self.header, 1)
        top.addWidget(self.enlarge_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)

    def _clicked(self, event) -> None:
        if event.double():
            self.enlarge_requested.emit(self.name)

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """(H, W) of the frames shown, None before the first."""
        return self._shape

    def displayed_image(self) -> np.ndarray | None:
        """The RGB image (H, W, 3) shown now, None before the first frame."""
        return self.image_item.image

    def set_image(self, bgr: np.ndarray) -> None:
        """Show a (H, W, 3) uint8 BGR frame."""
        shape = bgr.shape[:2]
        if shape != self._shape:
            self._buffers = [np.empty(bgr.shape, np.uint8) for _ in range(2)]
            self._shape = shape
            self.viewbox.setRange(xRange=(0, shape[1]), yRange=(0, shape[0]), padding=0)
        out = self._buffers[self._next]
        self._next ^= 1
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out)
        self.image_item.setImage(out, autoLevels=False, levels=None)
        self.frames_shown += 1

    def set_overlay(self, overlay: TileOverlay | None) -> None:
        """Draw the detections, reprojections and ROI of one view (None clears them)."""
        self.overlay = overlay
        if overlay is None:
            for item in (self.roi_item, self.bones_item):
                item.setData([], [])
            self.keypoints_item.setData([])
            self.reprojection_item.setData([])
            self._update_header()
            return
        lines = segments(overlay.keypoints, overlay.bones)
        self.bones_item.setData(lines[:, 0], lines[:, 1], connect="pairs")
        seen = np.isfinite(overlay.keypoints).all(axis=1)
        self.keypoints_item.setData(pos=overlay.keypoints[seen])
        shown = np.isfinite(overlay.reprojected).all(axis=1)
        colours = error_colours(overlay.error[shown])
        self.reprojection_item.setData(
            pos=overlay.reprojected[shown],
            pen=[pg.mkPen(tuple(c), width=2) for c in colours],
            brush=[pg.mkBrush(tuple(c)) for c in colours],
        )
        if overlay.roi is not None and np.isfinite(overlay.roi).all():
            ring = np.vstack([overlay.roi, overlay.roi[:1]])
            self.roi_item.setData(ring[:, 0], ring[:, 1])
        else:
            self.roi_item.setData([], [])
        self._update_header()

    def set_fps(self, fps: float) -> None:
        self._fps = fps
        self._update_header()

    def _update_header(self) -> None:
        parts = [f"<b>{self.name}</b>"]
        if math.isfinite(self._fps):
            parts.append(f"{self._fps:.1f} fps")
        if self.overlay is not None and math.isfinite(self.overlay.mean_error):
            parts.append(f"reprojection {self.overlay.mean_error:.1f} px")
        self.header.setText(" · ".join(parts))
