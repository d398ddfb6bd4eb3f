"""Can a window open here, and can it draw OpenGL? Checked before and after QApplication.

`display_problem` runs before Qt starts, so that `triangulum gui` on a headless machine says
what to do instead of aborting inside Qt's platform plugin.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# Platforms that draw into memory and need no display server.
_HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "vkkhrdisplay", "eglfs", "linuxfb")


def display_problem(env: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """A sentence saying why no window can open here, or None when one can.

    On Linux a window needs an X11 (DISPLAY) or Wayland (WAYLAND_DISPLAY) server unless
    QT_QPA_PLATFORM names a platform that draws without one (offscreen, eglfs, ...).
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    qpa = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    if qpa in _HEADLESS_PLATFORMS:
        return None
    if not platform.startswith("linux"):
        return None
    if qpa in ("xcb", "") and env.get("DISPLAY"):
        return None
    if qpa.startswith("wayland") and env.get("WAYLAND_DISPLAY"):
        return None
    if qpa == "" and env.get("WAYLAND_DISPLAY"):
        return None
    server = "X11 (DISPLAY)" if qpa == "xcb" else "X11 or Wayland (DISPLAY, WAYLAND_DISPLAY)"
    return (
        f"no display is available: {server} is not set, so no window can open; run Triangulum "
        "on a desktop session, over ssh -X, or under a virtual display (xvfb-run -a triangulum demo)."
    )


def opengl_available() -> bool:
    """True when Qt can create and use an OpenGL context (needs a QGuiApplication).

    The offscreen platform cannot; the 3D view then shows a note instead of the scene.
    """
    from PyQt6 import QtGui

    context = QtGui.QOpenGLContext()
    if not context.create():
        return False
    surface = QtGui.QOffscreenSurface()
    surface.create()
    ok = surface.isValid() and context.makeCurrent(surface)
    if ok:
        context.doneCurrent()
    return bool(ok)


def configure_pyqtgraph() -> None:
    """Options every widget here assumes: images indexed [row, column] like numpy/OpenCV."""
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="k", foreground="w")
