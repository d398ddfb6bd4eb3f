"""The 3D view: skeleton with left/right colours and joints sized by confidence, floor grid,
camera frustums from the calibration, an optional motion trail, orbit/zoom and preset views.

Without OpenGL (the offscreen platform, a remote desktop without GL) the view keeps the same
state and API but shows a sentence instead of the scene.
"""

from __future__ import annotations

import numpy as np
from PyQt6 import QtCore, QtWidgets

from app.gui.overlays import segments, skeleton_for
from app.gui.platform import opengl_available
from app.gui.scene3d import PRESET_VIEWS, Trail, frustum_segments, joint_sizes, scene_extent
from calibration.rig import Rig
from engines.skeleton import Skeleton, bone_colours, joint_colours

TRAIL_JOINTS = ("left_wrist", "right_wrist", "left_ankle", "right_ankle", "nose")
_UNKNOWN_JOINT = (0.8, 0.8, 0.8, 1.0)


def _label_font():
    from PyQt6 import QtGui

    font = QtGui.QFont()
    font.setPointSize(8)
    return font


def _gl_view_window():
    """pyqtgraph's 3D view as a native OpenGL window (QOpenGLWindow), to embed with
    createWindowContainer. A QOpenGLWidget would make Qt composite the whole main window through
    OpenGL on every repaint of any widget, which with a software renderer (Mesa llvmpipe, Xvfb)
    costs more than drawing the video tiles; a window of its own is drawn on its own."""
    from PyQt6 import QtOpenGL
    from pyqtgraph.opengl.GLViewWidget import GLViewMixin

    class GLViewWindow(GLViewMixin, QtOpenGL.QOpenGLWindow):
        # The QWidget methods pyqtgraph's view and items call, in QWindow terms.
        def devicePixelRatioF(self) -> float:
            return self.devicePixelRatio()

        def rect(self) -> QtCore.QRect:
            return QtCore.QRect(0, 0, self.width(), self.height())

    return GLViewWindow()


def _rgba(colours: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """(N, 3) uint8 RGB -> (N, 4) float RGBA in [0, 1] as pyqtgraph.opengl takes colours."""
    c = np.asarray(colours, np.float64).reshape(-1, 3) / 255.0
    return np.concatenate([c, np.full((len(c), 1), alpha)], axis=1)


class SkeletonView(QtWidgets.QWidget):
    """A 3D scene of one person. `set_rig` draws the cameras, `set_pose` the skeleton."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, use_opengl: bool | None = None) -> None:
        super().__init__(parent)
        self.gl_enabled = opengl_available() if use_opengl is None else use_opengl
        self.rig: Rig | None = None
        self.skeleton: Skeleton | None = None
        self.joint_names: tuple[str, ...] = ()
        self.joints: np.ndarray | None = None  # (J, 3) metres, the pose shown
        self.confidence: np.ndarray | None = None  # (J,)
        self.trail: Trail | None = None
        self.trail_enabled = False
        self.preset = "perspective"
        self.poses_shown = 0
        self._focus: np.ndarray | None = None  # where the person stands (x, y, 0), once seen

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        bar = QtWidgets.QHBoxLayout()
        self.preset_buttons: dict[str, QtWidgets.QPushButton] = {}
        for name in PRESET_VIEWS:
            button = QtWidgets.QPushButton(name.capitalize())
            button.setFlat(True)
            button.clicked.connect(lambda _=False, n=name: self.set_preset(n))
            self.preset_buttons[name] = button
            bar.addWidget(button)
        bar.addStretch(1)
        self.trail_box = QtWidgets.QCheckBox("Trail")
        self.trail_box.setToolTip("Trace the recent path of the wrists, ankles and nose")
        self.trail_box.toggled.connect(self.set_trail_enabled)
        bar.addWidget(self.trail_box)
        layout.addLayout(bar)

        if self.gl_enabled:
            self._build_scene()
            self.scene_widget = QtWidgets.QWidget.createWindowContainer(self.gl, self)
            self.scene_widget.setMinimumSize(200, 200)
            layout.addWidget(self.scene_widget, 1)
            self.placeholder = None
        else:
            self.gl = None
            self.scene_widget = None
            self.placeholder = QtWidgets.QLabel(
                "The 3D view needs OpenGL, which this display does not provide; the skeleton is still "
                "computed, shown over the videos, recorded and exported."
            )
            self.placeholder.setWordWrap(True)
            self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(self.placeholder, 1)

    def _build_scene(self) -> None:
        import pyqtgraph.opengl as gl

        self.gl = _gl_view_window()
        self.gl.setBackgroundColor((25, 25, 30))
        self.grid = gl.GLGridItem(color=(255, 255, 255, 60))
        self.gl.addItem(self.grid)
        self.axes = gl.GLAxisItem()
        self.axes.setSize(0.3, 0.3, 0.3)
        self.gl.addItem(self.axes)
        self.frustums = gl.GLLinePlotItem(mode="lines", color=(0.75, 0.75, 0.8, 1.0), width=1.5, antialias=True)
        self.trail_item = gl.GLLinePlotItem(mode="lines", color=(1.0, 0.9, 0.2, 0.7), width=1.5, antialias=True)
        self.bones = gl.GLLinePlotItem(mode="lines", width=4.0, antialias=True)
        self.markers = gl.GLScatterPlotItem(pxMode=True)
        self.markers.setGLOptions("translucent")
        for item in (self.frustums, self.trail_item, self.bones, self.markers):
            self.gl.addItem(item)
        self.labels: list = []
        self._frame_scene()

    # --- data ---------------------------------------------------------------
    def set_rig(self, rig: Rig | None) -> None:
        """Draw the cameras of a calibration (None removes them) and frame the scene on them."""
        self.rig = rig
        if self.gl is None:
            return
        import pyqtgraph.opengl as gl

        for label in self.labels:
            self.gl.removeItem(label)
        self.labels = []
        if rig is None or not len(rig):
            self.frustums.setData(pos=np.zeros((0, 3)))
        else:
            depth = 0.12 * scene_extent(rig)[1]
            self.frustums.setData(pos=np.concatenate([frustum_segments(c, depth) for c in rig.cameras]))
            for cam in rig.cameras:
                label = gl.GLTextItem(pos=cam.center, text=cam.name, color=(200, 200, 210, 255), font=_label_font())
                self.gl.addItem(label)
                self.labels.append(label)
        self._frame_scene()

    def set_pose(self, joints3d: np.ndarray | None, confidence: np.ndarray | None = None,
                 joint_names: tuple[str, ...] = ()) -> None:
        """Show one pose: joints3d (J, 3) metres (NaN = missing), confidence (J,) in [0, 1]."""
        if joints3d is None:
            self.joints = self.confidence = None
            self._focus = None
            self._draw_pose()
            return
        joints3d = np.asarray(joints3d, np.float64)
        if tuple(joint_names) != self.joint_names:
            self.joint_names = tuple(joint_names)
            self.skeleton = skeleton_for(self.joint_names)
            names = self.joint_names
            self.trail = Trail(tuple(names.index(n) for n in TRAIL_JOINTS if n in names))
        self.joints = joints3d
        self.confidence = np.ones(len(joints3d)) if confidence is None else np.asarray(confidence, np.float64)
        if self.trail is not None:
            self.trail.add(joints3d)
        self.poses_shown += 1
        if self._focus is None and np.isfinite(joints3d).all(axis=1).any():
            # Aim at the person the first time one is seen; later the user's view is left alone.
            self._focus = np.append(np.nanmedian(joints3d[:, :2], axis=0), 0.0)
            self._frame_scene()
        self._draw_pose()

    def set_trail_enabled(self, enabled: bool) -> None:
        self.trail_enabled = bool(enabled)
        if self.trail_box.isChecked() != self.trail_enabled:
            self.trail_box.setChecked(self.trail_enabled)
        self._draw_pose()

    def set_preset(self, name: str) -> None:
        """Look from a preset direction: perspective, front (along +Y), side (along -X) or top."""
        if name not in PRESET_VIEWS:
            raise ValueError(f"unknown view {name!r}; use one of {list(PRESET_VIEWS)}")
        self.preset = name
        self._frame_scene()

    def camera_orbit(self) -> tuple[float, float, float]:
        """(elevation, azimuth, distance) of the orbit camera; the preset's when without OpenGL."""
        if self.gl is None:
            elevation, azimuth = PRESET_VIEWS[self.preset]
            return elevation, azimuth, float("nan")
        o = self.gl.opts
        return float(o["elevation"]), float(o["azimuth"]), float(o["distance"])

    # --- drawing ------------------------------------------------------------
    def _frame_scene(self) -> None:
        if self.gl is None:
            return
        from pyqtgraph import Vector

        centre, radius = scene_extent(self.rig, self.joints)
        span = 2 * np.ceil(radius * 1.1)
        self.grid.resetTransform()
        self.grid.setSize(span, span, 1)
        self.grid.setSpacing(0.5, 0.5, 1)
        self.grid.translate(*centre)
        elevation, azimuth = PRESET_VIEWS[self.preset]
        target = centre if self._focus is None else self._focus
        look_at = target + np.array([0.0, 0.0, 0.9])  # about a standing person's waist
        distance = 1.5 * radius if self._focus is None else max(0.9 * radius, 3.0)
        self.gl.setCameraPosition(pos=Vector(*look_at), distance=distance, elevation=elevation, azimuth=azimuth)

    def _draw_pose(self) -> None:
        if self.gl is None:
            return
        if self.joints is None:
            self.bones.setData(pos=np.zeros((0, 3)))
            self.markers.setData(pos=np.zeros((0, 3)))
            self.trail_item.setData(pos=np.zeros((0, 3)))
            return
        J = len(self.joints)
        seen = np.isfinite(self.joints).all(axis=1)
        if self.skeleton is not None:
            lines = segments(self.joints, self.skeleton.bones)
            bone_rgb = bone_colours(self.skeleton)
            finite = np.array([seen[a] and seen[b] for a, b in self.skeleton.bones], bool)
            colours = np.repeat(_rgba(bone_rgb[finite]), 2, axis=0)
            joint_rgba = _rgba(joint_colours(self.skeleton)[:J])
        else:
            lines, colours = np.zeros((0, 3)), np.zeros((0, 4))
            joint_rgba = np.tile(_UNKNOWN_JOINT, (J, 1))
        self.bones.setData(pos=lines, color=colours if len(colours) else (1, 1, 1, 1))
        self.markers.setData(pos=self.joints[seen], color=joint_rgba[seen], size=joint_sizes(self.confidence[seen]))
        trail = self.trail.segments() if (self.trail_enabled and self.trail is not None) else np.zeros((0, 3))
        self.trail_item.setData(pos=trail)

    def grab_scene(self):
        """The rendered scene as a QImage (None without OpenGL)."""
        return None if self.gl is None else self.gl.grabFramebuffer()
