"""The main window offscreen, driven like a user would, with the real pipeline on the sample
recording: add sources, load the calibration, play, pause, seek, step, record, export; errors
appear in the window as sentences; settings survive a restart."""

from __future__ import annotations

import os
from pathlib import Path

from shared_data import TEST_DATA

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import cv2
import numpy as np
import pytest
from PyQt6 import QtCore, QtWidgets
from PyQt6.QtTest import QTest

from app.export.trc import marker_names, read_trc
from app.gui.platform import configure_pyqtgraph
from app.gui.take import ExportRequest
from app.gui.window import MainWindow
from calibration.takes import open_session
from engines.skeleton import BLAZEPOSE33

DATA = TEST_DATA / "pose2sim-demo-single"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared data (pose2sim-demo-single) is absent")
pytestmark = pytest.mark.gui
SOURCES = [f"video:{DATA / 'videos' / f'cam0{i}.mp4'}?name=cam0{i}" for i in range(1, 5)]


@pytest.fixture
def make_window(qtbot, tmp_path):
    configure_pyqtgraph()
    made = []

    def make() -> MainWindow:
        settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
        window = MainWindow(settings=settings, use_opengl=False)
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        window.close()


def _video_frame(camera: str, k: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(DATA / "videos" / f"{camera}.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, k)
    ok, image = cap.read()
    cap.release()
    assert ok
    return image


def _pose_index(window: MainWindow) -> int:
    return -1 if window._pose_shown is None else window._pose_shown.index


@needs_data
@pytest.mark.slow
def test_the_volumetric_head_plays_live_on_the_sample(make_window, qtbot):
    w = make_window()
    w.load_calibration(DATA / "calibration" / "Calib.qca.txt")
    w.add_sources(SOURCES)
    w.panel.choose_method("volumetric")
    assert w.controller.choice.method == "volumetric"
    w.panel.start_button.click()
    qtbot.waitUntil(lambda: w.poses_displayed >= 3, timeout=90_000)
    assert w.view3d.joints is not None and np.isfinite(w.view3d.joints).all(axis=1).sum() >= 20
    overlay = w.grid.tiles["cam02"].overlay
    assert overlay is not None and np.isfinite(overlay.reprojected).all(axis=1).sum() >= 20
    w.act_play.trigger()


@needs_data
@pytest.mark.slow
def test_play_pause_seek_record_export_on_the_sample(make_window, qtbot, tmp_path):
    w = make_window()
    c = w.controller
    w.load_calibration(DATA / "calibration" / "Calib.qca.txt")
    assert "cam01, cam02, cam03, cam04" in w.panel.calibration_label.text()
    w.add_sources(SOURCES)
    assert w.panel.source_list.count() == 4 and w.panel.start_button.isEnabled()

    # play: poses arrive, tiles show video with overlays, the 3D view has the skeleton
    w.panel.start_button.click()
    qtbot.waitUntil(lambda: w.poses_displayed >= 3, timeout=90_000)
    assert c.running and c.seekable and list(w.grid.tiles) == ["cam01", "cam02", "cam03", "cam04"]
    tile = w.grid.tiles["cam02"]
    assert tile.frames_shown >= 3 and tile.overlay is not None
    assert np.isfinite(tile.overlay.reprojected).all(axis=1).sum() >= 20
    assert w.view3d.joints is not None and np.isfinite(w.view3d.joints).all(axis=1).sum() >= 20

    # pause: the position stops moving
    w.act_play.trigger()
    qtbot.waitUntil(lambda: not c.runner.player.state().playing, timeout=5_000)
    qtbot.wait(1500)
    held = c.runner.player.state().position
    qtbot.wait(1500)
    assert c.runner.player.state().position == held

    # seek with the scrub bar: frame 80 of every camera is shown with its own pose
    w.playback.seek_requested.emit(80)
    qtbot.waitUntil(lambda: _pose_index(w) == 80, timeout=30_000)
    for name, t in w.grid.tiles.items():
        shown = t.displayed_image()
        frame = cv2.resize(_video_frame(name, 80), shown.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(shown, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    qtbot.waitUntil(lambda: w.playback.slider.value() == 80, timeout=5_000)

    # step forward and back with the keyboard actions
    w.act_step_fwd.trigger()
    qtbot.waitUntil(lambda: _pose_index(w) == 81, timeout=30_000)
    w.act_step_back.trigger()
    qtbot.waitUntil(lambda: _pose_index(w) == 80, timeout=30_000)

    # record while playing from frame 80
    take_dir = tmp_path / "takes" / "take1"
    w.toggle_record(take_dir)
    qtbot.waitUntil(lambda: c.recording, timeout=10_000)
    w.play_pause()
    qtbot.waitUntil(lambda: _pose_index(w) >= 84, timeout=60_000)
    w.update_metrics()
    assert "frames" in w.panel.record_elapsed.text() and "free" in w.panel.disk_free.text()
    w.act_record.trigger()
    qtbot.waitUntil(lambda: not c.recording and not c.busy, timeout=30_000)
    session = open_session(take_dir)
    assert session.status == "complete" and (take_dir / "calibration.toml").is_file()
    assert [t.name for t in session.tracks] == ["cam01", "cam02", "cam03", "cam04"]
    assert min(t.frames for t in session.tracks) >= 4
    np.testing.assert_allclose(np.diff(session.tracks[0].times), 1 / 60, atol=1e-5)  # media timing kept

    # metrics over time
    w.update_metrics()
    assert c.history.names("fps:") and c.history.names("latency:")
    assert c.history.last("latency:pose2d") > 0
    assert {"fps:cam01", "latency:latency"} <= set(w.metrics.curves)

    # export the take: every frame processed so far, at the media's frame rate
    w.play_pause()
    qtbot.waitUntil(lambda: not c.runner.player.state().playing, timeout=5_000)
    assert len(c.take) >= 6
    joints = c.take.joints()
    out = tmp_path / "export"
    w.export(ExportRequest(out, "take", fill_gaps=None))
    qtbot.waitUntil(lambda: not c.busy, timeout=60_000)
    assert w.last_error == "", w.last_error
    assert w._progress is None  # the progress dialog closed when the export finished
    for ext in ("trc", "bvh", "c3d", "csv", "json"):
        assert (out / f"take.{ext}").is_file(), ext
    trc = read_trc(out / "take.trc")
    assert trc.rate == 60.0 and len(trc.points) == len(joints)
    columns = [trc.names.index(n) for n in marker_names(BLAZEPOSE33)]
    np.testing.assert_allclose(trc.world[:, columns], joints, atol=1e-5)
    assert "Exported" in w.status.text()

    # stop
    w.panel.start_button.click()
    qtbot.waitUntil(lambda: not c.running and not c.busy, timeout=30_000)
    assert w.panel.start_button.text() == "Start"

    # play the recording back: a session source, with the calibration saved in it
    w.clear_sources()
    c.set_calibration(None)
    w.open_session(take_dir)
    assert w.panel.source_list.item(0).text() == "session: take1"
    shown = w.poses_displayed
    w.toggle_start()
    qtbot.waitUntil(lambda: w.poses_displayed >= shown + 2, timeout=60_000)
    assert c.rig is not None and c.rig.names == ["cam01", "cam02", "cam03", "cam04"]
    assert len(c.runner.media) == session.tracks[0].frames and w.playback.slider.maximum() == len(c.runner.media) - 1
    assert w.grid.tiles["cam03"].overlay is not None
    w.toggle_start()
    qtbot.waitUntil(lambda: not c.running and not c.busy, timeout=30_000)


@needs_data
def test_user_errors_appear_as_sentences_in_the_window(make_window, qtbot, tmp_path):
    w = make_window()
    bad = tmp_path / "rig.toml"
    bad.write_text("[cam01]\nname = 'cam01'\nsize = [10, 10]\n")
    w.load_calibration(bad)
    assert w.banner.isVisible() and w.last_error and "Traceback" not in w.last_error
    assert w.controller.rig is None

    w.add_sources(["camera:0"])
    assert "KIND:TARGET" in w.last_error and w.controller.sources == []

    w.play_pause()  # nothing to play yet
    assert "Add a source" in w.last_error

    w.load_calibration(DATA / "calibration" / "Calib.qca.txt")
    w.add_sources([f"video:{DATA / 'videos' / 'cam01.mp4'}?name=left", f"video:{DATA / 'videos' / 'cam02.mp4'}"])
    w.toggle_start()
    qtbot.waitUntil(lambda: not w.controller.busy, timeout=30_000)
    assert not w.controller.running
    assert "not in the calibration" in w.last_error and "left" in w.last_error
    assert w.last_error.endswith(".") and "\n" not in w.last_error

    w.toggle_record(tmp_path / "never")
    assert "Start the capture" in w.last_error and not (tmp_path / "never").exists()


def test_settings_and_layout_are_remembered(make_window):
    w = make_window()
    w.panel.choose_method("robust")
    w.panel.choose_smoothing("one-euro")
    w.panel.choose_precision("int8")
    w.view3d.set_trail_enabled(True)
    w.view3d.set_preset("top")
    w.dock_metrics.show()
    w.resize(1234, 777)
    w.close()
    again = make_window()
    assert again.controller.choice.method == "robust" and again.controller.choice.smoothing == "one-euro"
    assert again.controller.choice.precision == "int8" and again.panel.precision.currentData() == "int8"
    assert again.view3d.trail_enabled and again.view3d.preset == "top" and again.act_trail.isChecked()
    # The offscreen screen is small, so Qt fits the restored width to it; the height survives.
    assert again.size() != QtCore.QSize(1500, 900) and abs(again.height() - 777) <= 5
    assert again.dock_metrics.isVisible()


def test_shortcuts_and_menus(make_window, qtbot):
    w = make_window()
    keys = {a.text().replace("&", ""): a.shortcut().toString() for a in w.actions() if not a.shortcut().isEmpty()}
    assert keys["Play / pause"] == "Space" and keys["Record"] == "R"
    assert keys["Step forward"] == "Right" and keys["Step back"] == "Left"
    titles = [a.text().replace("&", "") for a in w.menuBar().actions()]
    assert titles == ["File", "Capture", "View", "Tools", "Help"]
    # the keys reach the actions, even with a button focused (Space must not press it)
    hits = []
    for action, name in ((w.act_record, "R"), (w.act_play, "Space"), (w.act_step_fwd, "Right"), (w.act_step_back, "Left")):
        action.triggered.connect(lambda _=False, n=name: hits.append(n))
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5_000)
    w.panel.record_button.setFocus()
    for key in (QtCore.Qt.Key.Key_R, QtCore.Qt.Key.Key_Space, QtCore.Qt.Key.Key_Right, QtCore.Qt.Key.Key_Left):
        QTest.keyClick(w.panel.record_button, key)
    assert hits == ["R", "Space", "Right", "Left"]
    assert "Add a source" in w.last_error  # Space with nothing to play says what to do


def test_live_cameras_preview_record_and_stop(make_window, qtbot, tmp_path):
    """Live sources (the capture core's synthetic test cameras) run through LiveCapture."""
    w = make_window()
    w.add_sources(["test:left?fps=20&width=320&height=240", "test:right?fps=20&width=320&height=240"])
    w.toggle_start()
    qtbot.waitUntil(lambda: w.controller.running and len(w.grid.tiles) == 2
                    and all(t.frames_shown >= 5 for t in w.grid.tiles.values()), timeout=30_000)
    assert not w.controller.seekable and not w.playback.slider.isEnabled()
    assert w.grid.tiles["left"].image_shape == (240, 320)
    w.toggle_record(tmp_path / "live")
    qtbot.waitUntil(lambda: w.controller.recording and not w.controller.busy, timeout=30_000)
    qtbot.wait(2000)
    w.update_metrics()
    assert 12 < w.controller.history.last("fps:left") < 28
    w.toggle_record()
    qtbot.waitUntil(lambda: not w.controller.recording and not w.controller.busy, timeout=30_000)
    session = open_session(tmp_path / "live")
    assert {t.name for t in session.tracks} == {"left", "right"} and min(t.frames for t in session.tracks) >= 10
    assert w.controller.running  # the capture goes on after the recording
    w.toggle_start()
    qtbot.waitUntil(lambda: not w.controller.running and not w.controller.busy, timeout=30_000)


def test_a_millimetre_calibration_loads_in_metres_and_says_so(make_window, tmp_path):
    from test_units import write_in_units

    from app.sample import sample_calibration
    from calibration.formats.detect import convert

    w = make_window()
    said: list[str] = []
    w.controller.info.connect(said.append)
    w.load_calibration(write_in_units(tmp_path / "rig_mm.toml", 1000.0))
    assert w.last_error in (None, "") and w.controller.rig is not None
    np.testing.assert_allclose(w.controller.rig["cam03"].t, convert(sample_calibration())["cam03"].t)
    assert any("fits millimetres; converted to metres" in s for s in said)


@needs_data
@pytest.mark.slow
def test_adapt_to_this_studio_from_the_tools_menu(make_window, qtbot, tmp_path):
    """Tools > Adapt to this studio on the loaded recordings: progress, the before/after report,
    and "Use this 2D model" makes the adapted network the one the next capture runs."""
    from app.gui.adapt_dialog import open_adapt_dialog
    from training.adapt import AdaptConfig

    w = make_window()
    assert open_adapt_dialog(w) is None and "Load the recordings" in w.last_error
    w.controller.add_sources(SOURCES)
    w.controller.load_calibration(DATA / "calibration" / "Calib.qca.txt")
    dialog = open_adapt_dialog(w)
    assert dialog.stop.value() == 60, "by default the first 60 % adapt and the rest is checked"
    dialog.stop.setValue(6)
    dialog.folder.setText(str(tmp_path / "model"))
    dialog.config = AdaptConfig(epochs=1, batch=4, generic=0, augment=False, holdout=0.34)
    dialog.run()
    assert not dialog.run_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.job.thread.is_alive(), timeout=600_000)
    dialog.poll()
    report = dialog.report.toPlainText()
    assert dialog.stage.text() == "done", report
    assert "Held-out agreement" in report and "Frames 6-99 (never trained on)" in report
    if os.environ.get("TRIANGULUM_SCREENSHOTS"):
        dialog.grab().save(str(Path(os.environ["TRIANGULUM_SCREENSHOTS"]) / "adapt_dialog.png"))
    qtbot.mouseClick(dialog.use_button, QtCore.Qt.MouseButton.LeftButton)
    assert w.controller.choice.backbone == str(tmp_path / "model")
    assert "2D model:" in w.status.text()


def test_no_calibration_estimates_the_cameras_from_the_person(make_window, qtbot, tmp_path):
    """The loaded videos without a calibration: "None: estimate from the person" runs the
    calibration-free steps on a worker thread, shows each stage, and "Use these cameras" loads
    the estimated rig, so the take plays with 3D poses."""
    from app.gui.free_dialog import open_free_dialog

    w = make_window()
    assert open_free_dialog(w) is None and "two or more videos" in w.last_error
    w.controller.add_sources(SOURCES)
    assert w.controller.rig is None
    qtbot.mouseClick(w.panel.estimate_calibration, QtCore.Qt.MouseButton.LeftButton)
    dialog = w.findChild(QtWidgets.QDialog)
    assert dialog is not None and dialog.windowTitle().startswith("No calibration")
    dialog.folder.setText(str(tmp_path / "free"))
    dialog.height_box.setValue(1.7)
    dialog.max_frames = 50  # the first half of the take: enough for the cameras, half the time
    dialog.run()
    qtbot.waitUntil(lambda: not dialog.job.thread.is_alive(), timeout=600_000)
    dialog.poll()
    report = dialog.report.toPlainText()
    assert dialog.use_button.isEnabled(), report
    assert "1 initialisation" in report and "3 bundle adjustment" in report and "focal lengths" in report
    if os.environ.get("TRIANGULUM_SCREENSHOTS"):
        dialog.grab().save(str(Path(os.environ["TRIANGULUM_SCREENSHOTS"]) / "free_dialog.png"))
    qtbot.mouseClick(dialog.use_button, QtCore.Qt.MouseButton.LeftButton)
    assert w.controller.rig is not None and w.controller.rig.names == ["cam01", "cam02", "cam03", "cam04"]
    assert (tmp_path / "free" / "calibration.toml").is_file()
