"""One camera tile: the video with the 2D detections, the reprojected 3D joints coloured by
reprojection error and the person ROI over it, and a header with the camera name and rates."""

from __future__ import annotations

import math
from collections import deque

import cv2
import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from app.capture.frames import clock
from app.gui.overlays import LEVEL_COLOURS, TileOverlay, error_levels, segments

_DETECTION_PEN = pg.mkPen((255, 255, 255, 200), width=2)
_ROI_PEN = pg.mkPen((0, 200, 255), width=2, style=QtCore.Qt.PenStyle.DashLine)
_KEYPOINT_BRUSH = pg.mkBrush(255, 255, 255, 230)


class TimedImageItem(pg.ImageItem):
    """An ImageItem that notes when each new image is first painted, and how long after its
    source time (the moment the frame or pose reached the GUI): the latency the GUI adds."""

    def __init__(self) -> None:
        super().__init__()
        self.t_source: float | None = None
        self.painted = 0
        self.latencies: deque[float] = deque(maxlen=1000)

    def paint(self, painter, *args) -> None:
        super().paint(painter, *args)
        if self.t_source is not None:
            self.latencies.append(clock() - self.t_source)
            self.t_source = None
            self.painted += 1


def display_size(image: tuple[int, int], view: tuple[int, int]) -> tuple[int, int]:
    """(width, height) to draw an image of (H, W) px into a view of (width, height) device px:
    the aspect-preserving fit, never larger than the image itself."""
    h, w = image
    scale = min(1.0, view[0] / w, view[1] / h) if min(view) > 0 else 1.0
    return max(1, round(w * scale)), max(1, round(h * scale))


class CameraTile(QtWidgets.QFrame):
    """Shows frames of one camera. `set_image` takes (H, W, 3) uint8 BGR frames as the capture
    core delivers them; `set_overlay` a TileOverlay in the frame's pixel coordinates (or None).

    A frame larger than the tile is shrunk to the tile's size (bilinear) before the BGR -> RGB
    conversion, into one of two buffers kept per display size (two because Qt may still paint
    from the previous one): a 1080x1920 frame in a 360x640 tile costs a ninth of the pixels to
    convert and paint. The image item is placed over the frame's full pixel extent, so overlays
    stay in frame pixels. Emits `enlarge_requested(name)` on a double click or the header button.
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
        self._last: np.ndarray | None = None  # the frame shown, to redraw it at a new tile size
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
        self.image_item = TimedImageItem()
        self.roi_item = pg.PlotCurveItem(pen=_ROI_PEN)
        self.bones_item = pg.PlotCurveItem(pen=_DETECTION_PEN, connect="pairs")
        self.keypoints_item = pg.ScatterPlotItem(size=6, pen=None, brush=_KEYPOINT_BRUSH, pxMode=True)
        # One item per error class: uniform styles keep pyqtgraph's symbol cache warm.
        self.reprojection_items = [
            pg.ScatterPlotItem(size=11, symbol="+", pxMode=True, pen=pg.mkPen(tuple(c), width=2), brush=pg.mkBrush(tuple(c)))
            for c in LEVEL_COLOURS
        ]
        items = (self.image_item, self.roi_item, self.bones_item, self.keypoints_item, *self.reprojection_items)
        for z, item in enumerate(items):
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
        """The RGB image shown now, (h, w, 3) at the display size; None before the first frame."""
        return self.image_item.image

    def set_image(self, bgr: np.ndarray, t_source: float | None = None) -> None:
        """Show a (H, W, 3) uint8 BGR frame; `t_source`: when it reached the GUI (`clock` s)."""
        shape = bgr.shape[:2]
        if shape != self._shape:
            self._shape = shape
            self.viewbox.setRange(xRange=(0, shape[1]), yRange=(0, shape[0]), padding=0)
        self._last = bgr
        self._render(bgr)
        self.image_item.t_source = clock() if t_source is None else t_source
        self.frames_shown += 1

    def _target_size(self) -> tuple[int, int]:
        ratio = self.view.devicePixelRatioF()
        return display_size(self._shape, (int(self.view.width() * ratio), int(self.view.height() * ratio)))

    def _render(self, bgr: np.ndarray) -> None:
        size = self._target_size()
        if not self._buffers or self._buffers[0].shape[1::-1] != size:
            self._buffers = [np.empty((size[1], size[0], 3), np.uint8) for _ in range(2)]
        out = self._buffers[self._next]
        self._next ^= 1
        small = bgr if size == bgr.shape[1::-1] else cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
        cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=out)
        self.image_item.setImage(out, autoLevels=False, levels=None)
        self.image_item.setRect(QtCore.QRectF(0, 0, bgr.shape[1], bgr.shape[0]))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._last is not None and self._buffers and self._buffers[0].shape[1::-1] != self._target_size():
            self._render(self._last)

    def set_overlay(self, overlay: TileOverlay | None) -> None:
        """Draw the detections, reprojections and ROI of one view (None clears them)."""
        self.overlay = overlay
        if overlay is None:
            for item in (self.roi_item, self.bones_item):
                item.setData([], [])
            self.keypoints_item.setData([])
            for item in self.reprojection_items:
                item.setData([])
            self._update_header()
            return
        lines = segments(overlay.keypoints, overlay.bones)
        self.bones_item.setData(lines[:, 0], lines[:, 1], connect="pairs")
        seen = np.isfinite(overlay.keypoints).all(axis=1)
        self.keypoints_item.setData(pos=overlay.keypoints[seen])
        shown = np.isfinite(overlay.reprojected).all(axis=1)
        levels = error_levels(overlay.error)
        for level, item in enumerate(self.reprojection_items):
            item.setData(pos=overlay.reprojected[shown & (levels == level)])
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
