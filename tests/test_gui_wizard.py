"""The calibration wizard offscreen, driven like a user would, on the real recordings: the
caliscope session through extrinsics, world frame and save must give the rig `triangulum calib
extrinsics` writes; the intrinsics page on the Pose2Sim checkerboard photos must give what
`calibrate_intrinsics` gives; errors appear on the page as sentences."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json

import numpy as np
import pytest
from calib_support import (
    CALISCOPE,
    CALISCOPE_BOARD,
    CALISCOPE_REF,
    INTRINSIC_PHOTOS,
    POSE2SIM_BOARD,
    QCA,
    needs_caliscope,
    needs_pose2sim,
)
from PyQt6 import QtCore, QtWidgets

from app.cli import main
from app.gui.wizard import CalibrationWizard
from app.gui.wizard.extrinsics_page import CameraPreview, PairCounts
from app.gui.wizard.intrinsics_page import FramePreview
from app.gui.wizard.widgets import cell_texts
from app.gui.wizard.wizard import EXTRINSICS, INTRINSICS, REVIEW, WORLD
from calibration.boards import board_from_dict, save_board
from calibration.extrinsics import shared_views
from calibration.formats import convert
from calibration.frames import FrameSource
from calibration.intrinsics import calibrate_intrinsics, detect_views
from calibration.rig_io import load_rig

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def headless(tmp_path_factory):
    """`triangulum calib extrinsics` on the caliscope session (every 2nd instant, board on the floor)."""
    if not CALISCOPE_REF.is_file():
        pytest.skip("shared data (caliscope-charuco-4cam) not present")
    out = tmp_path_factory.mktemp("headless") / "rig.toml"
    rc = main(["calib", "extrinsics", "--board", str(CALISCOPE_BOARD), "--intrinsics", str(CALISCOPE_REF),
               "--source", str(CALISCOPE / "extrinsic"), "--step", "2", "--world", "board:first", "-o", str(out)])
    assert rc == 0
    return out


@pytest.fixture
def make_wizard(qtbot, tmp_path):
    made = []

    def make() -> CalibrationWizard:
        settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
        wizard = CalibrationWizard(settings=settings)
        qtbot.addWidget(wizard)
        wizard.show()
        made.append(wizard)
        return wizard

    yield make
    for wizard in made:
        wizard.stop_jobs(wait=30)
        wizard.close()


def _wait_page(qtbot, page) -> None:
    qtbot.waitUntil(lambda: page.isComplete() or (bool(page.last_error) and not page.job.running), timeout=90_000)
    assert page.last_error == "", page.last_error


def _wait_shown(qtbot, page, spec: str) -> None:
    qtbot.waitUntil(lambda: page.shown is not None and page.shown.spec == spec and not page.job.running, timeout=30_000)


def _save(qtbot, page, path):
    qtbot.waitUntil(lambda: page.review is not None or bool(page.last_error), timeout=30_000)
    page.save(path)
    qtbot.waitUntil(lambda: bool(page.saved) or bool(page.last_error), timeout=30_000)
    assert page.last_error == "", page.last_error
    return page.saved


@needs_caliscope
def test_caliscope_session_through_extrinsics_world_and_save_matches_the_command(make_wizard, qtbot, tmp_path, headless):
    w = make_wizard()
    cams = w.cameras
    assert not cams.isComplete()
    cams.add_sources([str(CALISCOPE / "extrinsic")])
    cams.set_board(CALISCOPE_BOARD)
    cams.set_intrinsics(CALISCOPE_REF)
    cams.step.setValue(2)
    assert cell_texts(cams.table) and [r[0] for r in cell_texts(cams.table)] == ["cam_0", "cam_1", "cam_2", "cam_3"]
    assert cams.inverted.isChecked() and "DICT_4X4_1000" in cams.board_label.text()
    assert "used for cam_0, cam_1, cam_2, cam_3" in cams.intrinsics_label.text()
    assert cams.isComplete()

    # the intrinsics page is skipped: the file gives every camera
    events = []
    w.extrinsics.job.event.connect(events.append)
    w.next()
    assert w.currentId() == EXTRINSICS
    page = w.extrinsics
    _wait_page(qtbot, page)
    result = w.state.extrinsics
    names = result.rig.names

    # live: previews of every camera and growing pair counts, the last of them those of all detections
    counts = [e.counts for e in events if isinstance(e, PairCounts)]
    assert {e.camera for e in events if isinstance(e, CameraPreview)} == set(names)
    assert len(counts) >= 2 and counts[0].sum() <= counts[-1].sum()
    np.testing.assert_array_equal(counts[-1], shared_views(page.posed.detections, names))
    assert all(v.image is not None for v in page.thumbs.values())
    # after solving, the matrix shows the solver's counts (instants with a trusted pose in both cameras)
    np.testing.assert_array_equal(page.matrix.shown(), result.shared)
    assert (result.shared <= counts[-1]).all() and result.shared[0, 1] > 0
    assert page.advice.text() == "Every pair shares enough views."
    rows = cell_texts(page.per_camera)
    assert [r[0] for r in rows] == names
    for r, rms in zip(rows, result.per_camera_rms().values(), strict=True):
        assert float(r[2]) == pytest.approx(rms, abs=1e-3)

    # world frame: the board on the floor at the first instant, as --world board:first
    w.next()
    assert w.currentId() == WORLD and w.world.spec() == "board:first"
    _wait_shown(qtbot, w.world, "board:first")
    assert w.world.view.image is not None and "above" in w.world.note.text()
    w.world.choose("camera:cam_1")
    _wait_shown(qtbot, w.world, "camera:cam_1")
    centre = [float(v) for v in cell_texts(w.world.centres)[1][1:]]
    assert np.allclose(centre, 0.0, atol=1e-6)  # cam_1 sits at the origin of its own frame
    w.world.choose("board:first")
    assert w.state.world == "board:first"

    # review and save: the same files as the command
    w.next()
    assert w.currentId() == REVIEW
    files = _save(qtbot, w.review, tmp_path / "wizard" / "rig.toml")
    assert len(cell_texts(w.review.per_camera)) == 4 and len(cell_texts(w.review.pairs)) == 6
    assert w.review.view.image is not None
    out = files[0]
    assert [f.name for f in files] == ["rig.toml", "rig.report.json", "rig.report.png"]
    mine, theirs = load_rig(out), load_rig(headless)
    assert mine.names == theirs.names and mine.metadata == theirs.metadata
    assert mine.metadata["world"].startswith("z-up") and mine.metadata["adjusted"]
    for a, b in zip(mine.cameras, theirs.cameras, strict=True):
        # The same steps on the same detections: equal up to threading noise in OpenCV's solvers.
        for x, y in ((a.K, b.K), (a.dist, b.dist), (a.R, b.R), (a.t, b.t), (a.rmse, b.rmse)):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
    ours = json.loads((tmp_path / "wizard" / "rig.report.json").read_text())
    report = json.loads(headless.with_name("rig.report.json").read_text())
    assert ours["shared"] == report["shared"]
    for name, figures in report["per_camera"].items():
        assert ours["per_camera"][name] == pytest.approx(figures, rel=1e-9)
    assert [(p["a"], p["b"], p["shared_views"]) for p in ours["pairs"]] == [(p["a"], p["b"], p["shared_views"]) for p in report["pairs"]]
    assert [p["rms"] for p in ours["pairs"]] == pytest.approx([p["rms"] for p in report["pairs"]], rel=1e-9)

    with qtbot.waitSignal(w.load_requested, timeout=5_000) as loaded:
        w.review.load_button.click()
    assert loaded.args == [out]


@needs_pose2sim
def test_intrinsics_page_on_the_checkerboard_photos(make_wizard, qtbot, tmp_path):
    board_file = tmp_path / "checkerboard.toml"
    board = board_from_dict(POSE2SIM_BOARD)
    save_board(board, board_file)
    photos = INTRINSIC_PHOTOS / "int_cam01_img"
    w = make_wizard()
    w.cameras.add_sources([f"images:{photos}"])
    w.cameras.rename(0, "cam01")
    w.cameras.set_board(board_file)
    assert "calibrates lenses only" in w.cameras.board_label.text()
    events = []
    w.intrinsics.job.event.connect(events.append)
    w.next()
    assert w.currentId() == INTRINSICS
    page = w.intrinsics
    _wait_page(qtbot, page)

    # live: the frames were shown with the corners over the coverage, the counts growing
    previews = [e for e in events if isinstance(e, FramePreview)]
    assert previews and previews[-1].frames_read == 7 and previews[-1].found == 7
    assert page.previews_shown >= 1 and page.view.image is not None

    # the result is what calibrate_intrinsics gives on detect_views' detections
    views = detect_views(FrameSource("cam01", "images", str(photos)), board)
    assert sorted(w.state.views["cam01"].detections) == sorted(views.detections)
    expected = calibrate_intrinsics(views, board)
    r = w.state.intrinsics["cam01"]
    np.testing.assert_allclose(r.camera.K, expected.camera.K, rtol=1e-7)  # OpenCV's solver threads add ~1e-9 noise
    assert r.camera.K[0, 0] == pytest.approx(convert(QCA)["cam01"].K[0, 0], rel=0.02)
    assert f"RMS {r.rms:.3f} px over 7 views" in page.rms.text()
    params = {row[0]: row for row in cell_texts(page.params)}
    assert float(params["fx"][1]) == pytest.approx(r.camera.K[0, 0], abs=0.01)
    assert float(params["cx"][2]) == pytest.approx(r.uncertainty("cx"), abs=0.01) and float(params["cx"][2]) > 0
    assert "only 7 views" in page.warnings.text()
    shown = page.view.image
    page.undistort.setChecked(True)
    assert page.view.image is not shown and page.view.image.shape[2] == 3

    # other options recalibrate from the same detections
    page.fix_k3.setChecked(True)
    page.run()
    _wait_page(qtbot, page)
    assert w.state.intrinsics["cam01"].camera.dist[4] == 0.0

    # one camera: no extrinsics; the review saves the intrinsics
    w.next()
    assert w.currentId() == REVIEW
    out = tmp_path / "intrinsics.toml"
    assert _save(qtbot, w.review, out) == [out]
    assert "Intrinsics only" in w.review.warnings.text()
    np.testing.assert_allclose(load_rig(out)["cam01"].K, w.state.intrinsics["cam01"].camera.K)


@needs_caliscope
def test_errors_are_sentences_on_the_page(make_wizard, qtbot, tmp_path):
    w = make_wizard()
    cams = w.cameras
    cams.set_board(tmp_path / "missing.toml")
    assert "does not exist" in cams.last_error and not cams.isComplete()
    video = CALISCOPE / "extrinsic"
    cams.add_sources([f"video:{video / 'cam_0.mp4'}", f"video:{video / 'cam_1.mp4'}"])
    cams.add_sources([f"video:{video / 'cam_0.mp4'}"])
    assert "already in the list" in cams.last_error and cams.table.rowCount() == 2
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('kind = "charuco"\ncolumns = 4\nrows = 5\nsquare_size = 0.054\nmarker_size = 0.0405\n'
                     'dictionary = "DICT_5X5_1000"\ninverted = true\n')
    cams.set_board(wrong)
    cams.set_intrinsics(CALISCOPE_REF)
    assert "match none of the sources" not in cams.intrinsics_label.text()
    cams.step.setValue(8)
    w.next()
    page = w.extrinsics
    qtbot.waitUntil(lambda: page.last_error != "" and not page.job.running, timeout=60_000)
    assert "no board detected in any of" in page.last_error and "dictionary" in page.last_error
    assert page.message.isVisible() and page.message.is_error and not page.isComplete()
    assert not w.button(QtWidgets.QWizard.WizardButton.NextButton).isEnabled()


@needs_caliscope
def test_main_window_menu_opens_the_wizard_and_loads_the_saved_rig(qtbot, tmp_path, headless):
    from app.gui.platform import configure_pyqtgraph
    from app.gui.window import MainWindow

    configure_pyqtgraph()
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, use_opengl=False)
    qtbot.addWidget(window)
    window.show()
    file_menu = window.menuBar().actions()[0].menu()
    assert window.act_calibrate in file_menu.actions() and window.act_calibrate.text() == "&Calibrate cameras…"
    window.act_calibrate.trigger()
    wizard = window.findChild(CalibrationWizard)
    assert wizard is not None and wizard.isVisible() and wizard.currentId() == 0
    wizard.load_requested.emit(headless)
    assert window.controller.rig is not None and window.controller.rig.names == ["cam_0", "cam_1", "cam_2", "cam_3"]
    assert window.last_error == ""
    wizard.close()
    window.close()


def test_job_drops_a_cancelled_run_and_reports_failures_as_sentences(qtbot):
    import threading

    from app.gui.wizard.jobs import Job
    from calibration.errors import TriangulumError

    job = Job()
    events, done, failed = [], [], []
    job.event.connect(events.append)
    job.done.connect(done.append)
    job.failed.connect(failed.append)
    gate = threading.Event()

    def endless(ctx):
        while True:
            ctx.emit("old")
            gate.set()
            ctx.check()

    job.start(endless)
    assert gate.wait(10)
    job.start(lambda ctx: (ctx.emit("new"), 42)[1])  # cancels the first run
    qtbot.waitUntil(lambda: done == [42], timeout=10_000)
    qtbot.wait(50)
    assert events == ["new"] and not job.running  # the first run's queued events were dropped
    job.start(lambda ctx: (_ for _ in ()).throw(TriangulumError("camera 'cam_9': the file is missing; give its path.")))
    qtbot.waitUntil(lambda: bool(failed), timeout=10_000)
    assert failed == ["camera 'cam_9': the file is missing; give its path."] and done == [42]
    assert job.wait(5)


@needs_pose2sim
@pytest.mark.slow
def test_posing_the_cameras_from_the_person_without_a_board(make_wizard, qtbot, tmp_path):
    """Cameras page: the studio videos, Qualisys intrinsics, "pose the cameras from the person";
    the person page runs `calib from-person`'s steps (everyone tracked, the same person chosen);
    review and save give a rig within the command's tolerance of the Qualisys calibration."""
    from app.gui.wizard.wizard import PERSON
    from calibration.alignment import compare_rigs

    w = make_wizard()
    cams = w.cameras
    videos = QCA.parents[1] / "videos"
    cams.add_sources([f"video:{videos / n}.mp4" for n in ("cam01", "cam02", "cam03", "cam04")])
    cams.pose_from.setCurrentIndex(cams.pose_from.findData("person"))
    assert cams.isComplete()  # no board needed
    assert not cams.validatePage() and "intrinsics from a file" in cams.last_error
    cams.set_intrinsics(QCA)
    cams.height.setValue(1.70)
    w.next()
    assert w.currentId() == PERSON
    page = w.person
    qtbot.waitUntil(lambda: page.isComplete() or (bool(page.last_error) and not page.job.running), timeout=120_000)
    assert page.last_error == "", page.last_error
    rows = cell_texts(page.per_camera)
    assert [r[0] for r in rows] == ["cam01", "cam02", "cam03", "cam04"] and all(float(r[1]) < 8 for r in rows)
    shares = [float(c.rstrip("%")) for r in cell_texts(page.agreement) for c in r[1:] if c.endswith("%")]
    assert len(shares) == 12 and min(shares) > 15
    qtbot.waitUntil(lambda: w.button(QtWidgets.QWizard.WizardButton.NextButton).isEnabled(), timeout=5_000)
    w.next()
    assert w.currentId() == REVIEW
    files = _save(qtbot, w.review, tmp_path / "person" / "rig.toml")
    assert [f.name for f in files] == ["rig.toml", "rig.report.json", "rig.report.png"]
    cmp = compare_rigs(load_rig(files[0]), convert(QCA))
    assert cmp.max_angle_error() < 5.0 and cmp.max_centre_error() < 0.10, cmp.summary()
    assert load_rig(files[0]).metadata["world"].startswith("z-up")
