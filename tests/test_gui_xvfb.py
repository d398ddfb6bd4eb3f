"""The demo under a real X server (Xvfb, xcb platform, Mesa OpenGL): play the built-in sample,
save the window, and check the picture: the 3D view shows a skeleton in left/right colours and
every tile shows video with the reprojected joints drawn where the window says it drew them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.xvfb, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def xvfb_display():
    """A private Xvfb server on a display number it picks itself; stopped afterwards."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as f:
            number = f.readline().strip()
        if not number:
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def _near(image: np.ndarray, rgb: tuple[int, int, int], tolerance: float) -> np.ndarray:
    """(H, W) bool: pixels of an RGB image within `tolerance` of a colour."""
    return np.linalg.norm(image.astype(np.float64) - np.array(rgb, np.float64), axis=-1) < tolerance


def test_demo_screenshot_shows_the_skeleton_and_overlays(xvfb_display, tmp_path):
    from engines.skeleton import LEFT, RIGHT, SIDE_COLOURS

    png, layout_file = tmp_path / "demo.png", tmp_path / "layout.json"
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    env.pop("WAYLAND_DISPLAY", None)
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--screenshot", str(png), "--frames", "4",
         "--layout", str(layout_file), "--settings", str(tmp_path / "settings.ini"), "--timeout", "240"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    layout = json.loads(layout_file.read_text())
    image = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
    assert image.shape[1::-1] == tuple(layout["size"])
    assert layout["poses_displayed"] >= 4 and layout["opengl"] and layout["joints_in_3d"] >= 20

    # 3D view: bones and joints in the left (warm) and right (cool) colours
    x, y, w, h = layout["view3d"]
    scene = image[y:y + h, x:x + w]
    left = _near(scene, SIDE_COLOURS[LEFT], 40).sum()
    right = _near(scene, SIDE_COLOURS[RIGHT], 40).sum()
    assert left > 40 and right > 40, (left, right)
    assert scene.std() > 5  # a drawn scene, not a blank surface

    # tiles: video, and each reprojected joint's marker at its place in its colour
    assert sorted(layout["tiles"]) == ["cam01", "cam02", "cam03", "cam04"]
    for name, tile in layout["tiles"].items():
        assert tile["frames_shown"] >= 4, name
        x0, y0, x1, y1 = (int(round(v)) for v in tile["image"])
        video = image[max(y0, 0):y1, max(x0, 0):x1]
        assert video.size and video.std() > 25, name  # real pictures, not a flat fill
        markers = tile["markers"]
        assert len(markers) >= 20, name
        hits = sum(
            _near(image[int(my) - 1:int(my) + 2, int(mx) - 1:int(mx) + 2], (r, g, b), 60).any()
            for mx, my, r, g, b in markers
        )
        assert hits >= 0.5 * len(markers), (name, hits, len(markers))
