"""GUI widgets alone, offscreen, on real data: tiles showing the sample videos with overlays
from the real pipeline, the 3D view's geometry, the metrics plots, and the small pure parts."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import cv2
import numpy as np
import pytest
from shared_data import TEST_DATA

from app.capture.frames import Frame, FrameSet, clock
from app.gui.dialogs import webcam_spec
from app.gui.history import History, event_rate
from app.gui.overlays import (
    ERROR_LEVELS_PX,
    UNKNOWN_LEVEL,
    error_colours,
    error_levels,
    overlay_for,
    segments,
    skeleton_for,
)
from app.gui.panels import format_duration, source_label
from app.gui.platform import display_problem
from app.gui.scene3d import (
    PRESET_VIEWS,
    Trail,
    frustum_segments,
    joint_confidence,
    joint_sizes,
    scene_extent,
)
from app.gui.take import Take
from app.gui.tiles import grid_shape
from calibration.errors import TriangulumError
from engines.skeleton import BLAZEPOSE33

DATA = TEST_DATA / "pose2sim-demo-single"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared data (pose2sim-demo-single) is absent")
pytestmark = pytest.mark.gui


def _rig():
    from calibration.formats.detect import convert

    return convert(DATA / "calibration" / "Calib.qca.txt")


def _frameset(k: int) -> FrameSet:
    frames = []
    for i in range(1, 5):
        cap = cv2.VideoCapture(str(DATA / "videos" / f"cam0{i}.mp4"))
        cap.set(cv2.CAP_PROP_POS_FRAMES, k)
        ok, image = cap.read()
        cap.release()
        assert ok
        frames.append(Frame(f"cam0{i}", k, clock(), clock(), image))
    return FrameSet(k, tuple(frames), clock())


@pytest.fixture(scope="module")
def real_pose():
    """Frame set 40 of the sample through the real pipeline (BlazePose + triangulation)."""
    if not DATA.is_dir():
        pytest.skip("shared data (pose2sim-demo-single) is absent")
    from app.gui.pipelines import PipelineChoice, build_pipeline

    rig = _rig()
    frameset = _frameset(40)
    pose = build_pipeline(rig, PipelineChoice()).process(frameset)
    pose.frameset = frameset
    return rig, pose


# --- pure parts ------------------------------------------------------------------------------
def test_error_levels_go_green_yellow_red_and_grey_for_missing():
    error = np.array([0.0, 4.9, 5.0, 7.0, 12.0, 19.9, 20.1, 99.0, np.nan])
    levels = error_levels(error)
    np.testing.assert_array_equal(levels, [0, 0, 0, 1, 2, 3, 4, 4, UNKNOWN_LEVEL])
    assert ERROR_LEVELS_PX[0] == 5.0 and ERROR_LEVELS_PX[-1] == 20.0
    c = error_colours(error).astype(int)
    assert c.shape == (9, 3)
    assert c[0][1] > 200 and c[0][0] < 100  # green
    assert c[4][0] > 240 and c[4][1] > 200 and c[4][2] < 50  # yellow
    assert c[6][0] > 240 and c[6][1] < 60  # red
    assert c[8][0] == c[8][1] == c[8][2]  # grey


def test_segments_keep_only_pairs_with_both_ends():
    pts = np.array([[0, 0], [1, 1], [np.nan, 2], [3, 3]], float)
    out = segments(pts, ((0, 1), (1, 2), (3, 0), (2, 3)))
    np.testing.assert_array_equal(out, [[0, 0], [1, 1], [3, 3], [0, 0]])
    assert segments(pts, ()).shape == (0, 2)


def test_grid_shape_makes_portrait_tiles_largest():
    assert grid_shape(4, (1600, 900), 16 / 9) == (2, 2)
    assert grid_shape(4, (1800, 700), 1080 / 1920) == (1, 4)  # portrait videos side by side
    assert grid_shape(1, (100, 100), 1.0) == (1, 1)
    assert grid_shape(0, (100, 100), 1.0) == (0, 0)
    rows, cols = grid_shape(7, (1000, 1000), 1.0)
    assert rows * cols >= 7


def test_display_problem_says_what_to_do_without_a_display():
    message = display_problem({}, "linux")
    assert message and "xvfb-run" in message and "DISPLAY" in message
    assert display_problem({"DISPLAY": ":0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "w"}, "linux") is not None
    assert display_problem({}, "win32") is None


def test_gui_commands_say_so_without_a_display(tmp_path):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    run = subprocess.run([sys.executable, "-m", "app.cli", "demo"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 2, run.stderr
    assert "no display is available" in run.stderr and "Traceback" not in run.stderr


def test_spec_helpers():
    assert webcam_spec(0) == "webcam:0"
    assert webcam_spec(2, "1280x720", 30, "cam01") == "webcam:2?width=1280&height=720&fps=30&name=cam01"
    assert source_label("video:/a/b/cam01.mp4?name=cam01") == "video: cam01.mp4  (name=cam01)"
    assert format_duration(61.25) == "1:01.2"


def test_trail_history_and_segments():
    trail = Trail(joints=(0, 2), length=3)
    for k in range(5):
        pts = np.full((3, 3), float(k))
        pts[2] = np.nan if k == 3 else k
        trail.add(pts)
    assert len(trail) == 3  # bounded
    seg = trail.segments()
    # kept poses 2, 3, 4: joint 0 gives 2 segments, joint 2 none (NaN at pose 3)
    assert seg.shape == (4, 3)
    np.testing.assert_array_equal(seg[:, 0], [2, 3, 3, 4])


def test_joint_confidence_and_sizes():
    conf = np.array([[0.2, np.nan, 1.0], [0.6, np.nan, 0.0]])
    np.testing.assert_allclose(joint_confidence(conf), [0.4, 0.0, 0.5])
    sizes = joint_sizes(np.array([0.0, 1.0, np.nan]))
    assert sizes[0] < sizes[1] and sizes[2] == sizes[0]


def test_event_rate_and_history():
    assert event_rate([0.0, 0.5, 1.0, 1.5, 2.0], now=2.0) == pytest.approx(2.0)
    assert event_rate([0.0], now=1.0) == 0.0
    h = History(length=3)
    for t in range(5):
        h.add("fps:cam", t, t * 10)
    h.add("fps:cam", 9, float("nan"))  # ignored
    t, v = h.series("fps:cam")
    np.testing.assert_array_equal(t, [2, 3, 4])
    assert h.last("fps:cam") == 40 and h.names("fps") == ["fps:cam"]


@needs_data
def test_frustum_corners_project_to_the_image_corners():
    rig = _rig()
    for cam in rig.cameras:
        seg = frustum_segments(cam, depth=0.5)
        assert seg.shape == (16, 3)
        np.testing.assert_allclose(seg[0], cam.center, atol=1e-9)
        corners = seg[1:8:2]  # ends of the four centre-to-corner edges
        w, h = cam.size
        np.testing.assert_allclose(cam.project(corners), [[0, 0], [w, 0], [w, h], [0, h]], atol=1e-3)
        depth = (corners @ cam.R.T + cam.t)[:, 2]
        np.testing.assert_allclose(depth, 0.5, atol=1e-9)
    centre, radius = scene_extent(rig)
    assert centre[2] == 0 and 2.0 < radius < 10.0


def test_take_is_frame_exact_for_media():
    from app.capture.frames import PoseFrame

    take = Take(frame_indexed=True, fps=60.0)
    J = BLAZEPOSE33.num_joints
    for k in (3, 5):
        take.add(PoseFrame(k, k / 60, ("a",), np.full((J, 3), k, float), np.zeros((1, J, 2)), np.ones((1, J)),
                           np.zeros((1, J, 2)), joint_names=BLAZEPOSE33.joints))
    joints = take.joints()
    assert joints.shape == (3, J, 3) and take.fps == 60.0
    assert (joints[0] == 3).all() and np.isnan(joints[1]).all() and (joints[2] == 5).all()
    with pytest.raises(TriangulumError, match="no poses"):
        Take(frame_indexed=False).joints()


# --- widgets -----------------------------------------------------------------------------------
def test_overlay_from_the_real_pipeline(real_pose):
    rig, pose = real_pose
    assert skeleton_for(pose.joint_names) is BLAZEPOSE33
    overlay = overlay_for(pose, "cam02")
    assert overlay is not None and overlay_for(pose, "nope") is None
    c = pose.cameras.index("cam02")
    np.testing.assert_allclose(overlay.reprojected, rig["cam02"].project(pose.joints3d), atol=1e-6)
    seen = np.isfinite(overlay.keypoints).all(axis=1)
    assert seen.sum() >= 20  # a person in full view
    err = np.linalg.norm(pose.reprojections[c] - pose.keypoints2d[c], axis=-1)
    np.testing.assert_allclose(overlay.error[seen], err[seen])
    assert 0.5 < overlay.mean_error < 40.0  # pixels: the views agree with one 3D body
    # the performer's box in this view holds the keypoints the tile draws
    assert overlay.roi.shape == (4, 2) and np.isfinite(overlay.roi).all()
    (x0, y0), (x1, y1) = overlay.roi[0], overlay.roi[2]
    kp = overlay.keypoints[seen]
    inside = (kp[:, 0] >= x0 - 1) & (kp[:, 0] <= x1 + 1) & (kp[:, 1] >= y0 - 1) & (kp[:, 1] <= y1 + 1)
    assert inside.mean() > 0.9


def test_the_int8_choice_reaches_the_2d_model(real_pose):
    """The GUI's precision choice builds the quantised landmark network; its 3D of the same
    frame set stays near the float pipeline's (process_quality --speed-options: 9-21 mm)."""
    from app.gui.pipelines import PRECISION_LABELS, PipelineChoice, build_pipeline

    rig, pose = real_pose
    assert list(PRECISION_LABELS) == ["float", "int8"]
    with pytest.raises(TriangulumError, match="unknown precision"):
        PipelineChoice(precision="fp4").validate()
    int8 = build_pipeline(rig, PipelineChoice(precision="int8"))
    assert "int8" in int8.inner.people2d.estimator.backend.landmark.path.name
    other = int8.process(pose.frameset)
    gap = np.linalg.norm(other.joints3d - pose.joints3d, axis=-1)
    assert np.isfinite(gap).sum() >= 20 and 0 < np.nanmedian(gap) < 0.05


def test_pipeline_choices_cover_every_method():
    from app.gui.pipelines import FILTERS, METHOD_LABELS, PipelineChoice
    from app.process.reconstruct import METHODS

    assert set(METHOD_LABELS) == set(METHODS)
    for method in METHODS:
        PipelineChoice(method=method).validate()
    with pytest.raises(TriangulumError, match="unknown triangulation method"):
        PipelineChoice(method="magic").validate()
    assert "one-euro" in FILTERS


def test_tile_shows_the_frame_and_its_overlay(qtbot, real_pose):
    from app.gui.platform import configure_pyqtgraph
    from app.gui.tile import CameraTile

    configure_pyqtgraph()
    _, pose = real_pose
    tile = CameraTile("cam03")
    qtbot.addWidget(tile)
    tile.resize(300, 500)
    tile.show()
    bgr = pose.frameset["cam03"].image
    tile.set_image(bgr)
    tile.set_image(bgr)  # second buffer
    shown = tile.displayed_image()
    h, w = bgr.shape[:2]
    assert shown.shape[0] < h and abs(shown.shape[1] / shown.shape[0] - w / h) < 0.01  # shrunk to the tile
    expected = cv2.cvtColor(cv2.resize(bgr, shown.shape[1::-1], interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(shown, expected)
    assert tile.image_shape == (h, w) and tile.frames_shown == 2
    rect = tile.image_item.mapRectToView(tile.image_item.boundingRect())
    assert (rect.width(), rect.height()) == pytest.approx((w, h))  # overlays stay in frame pixels
    overlay = overlay_for(pose, "cam03")
    tile.set_overlay(overlay)
    tile.set_fps(59.94)
    drawn = np.isfinite(overlay.reprojected).all(axis=1).sum()
    assert sum(len(item.data) for item in tile.reprojection_items) == drawn
    levels = error_levels(overlay.error)
    for level, item in enumerate(tile.reprojection_items):
        assert len(item.data) == (np.isfinite(overlay.reprojected).all(axis=1) & (levels == level)).sum()
    assert len(tile.keypoints_item.data) == np.isfinite(overlay.keypoints).all(axis=1).sum()
    assert "cam03" in tile.header.text() and "59.9 fps" in tile.header.text() and "px" in tile.header.text()
    image = tile.grab().toImage()
    assert image.width() > 0
    tile.set_overlay(None)
    assert all(len(item.data) == 0 for item in tile.reprojection_items)
    tile.resize(600, 1000)  # a larger tile redraws the frame at the new size
    assert tile.displayed_image().shape[0] > shown.shape[0]


def test_tile_grid_enlarges_one_camera(qtbot):
    from app.gui.tiles import TileGrid

    grid = TileGrid()
    qtbot.addWidget(grid)
    grid.resize(800, 600)
    grid.show()
    grid.set_cameras(["a", "b", "c"])
    assert set(grid.tiles) == {"a", "b", "c"}
    grid.toggle_enlarged("b")
    assert grid.enlarged == "b"
    assert grid.tiles["b"].isVisible() and not grid.tiles["a"].isVisible()
    grid.tiles["b"].enlarge_requested.emit("b")
    assert grid.enlarged is None and grid.tiles["a"].isVisible()


def test_3d_view_without_opengl_keeps_state_and_says_why(qtbot, real_pose):
    from app.gui.view3d import SkeletonView

    rig, pose = real_pose
    view = SkeletonView(use_opengl=False)
    qtbot.addWidget(view)
    assert view.gl is None and "OpenGL" in view.placeholder.text()
    view.set_rig(rig)
    view.set_pose(pose.joints3d, joint_confidence(pose.confidences), pose.joint_names)
    assert view.skeleton is BLAZEPOSE33 and view.poses_shown == 1
    view.set_trail_enabled(True)
    view.set_pose(pose.joints3d, None, pose.joint_names)
    assert len(view.trail) == 2 and view.trail.segments().shape[0] > 0
    for name in PRESET_VIEWS:
        view.set_preset(name)
        assert view.camera_orbit()[:2] == PRESET_VIEWS[name]
    with pytest.raises(ValueError):
        view.set_preset("sideways")
    assert view.grab_scene() is None


def test_metrics_panel_plots_the_history(qtbot):
    from app.gui.metrics_panel import MetricsPanel

    h = History()
    for t in range(10):
        h.add("fps:cam01", 100 + t, 59.0 + t % 2)
        h.add("latency:latency", 100 + t, 120.0)
        h.add("latency:pose2d", 100 + t, 80.0)
        h.add("latency:process", 100 + t, 90.0)  # not a plotted stage
        h.add("pose:poses/s", 100 + t, 2.0)
    panel = MetricsPanel(h)
    qtbot.addWidget(panel)
    panel.refresh()
    assert set(panel.curves) == {"fps:cam01", "latency:latency", "latency:pose2d", "pose:poses/s"}
    x, y = panel.curves["fps:cam01"].getData()
    np.testing.assert_array_equal(x, np.arange(10))
    panel.clear()
    assert panel.curves == {}
