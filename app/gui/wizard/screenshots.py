"""Pictures of every wizard page on the shared recordings (for the README).

    xvfb-run -a env QT_QPA_PLATFORM=xcb python -m app.gui.wizard.screenshots --data ../shared/data --out docs

Cameras, extrinsics, world frame and review: the caliscope session with caliscope's own
intrinsics; intrinsics: the Pose2Sim checkerboard photos of its four cameras; the person page
(no board): the Pose2Sim studio videos with the Qualisys intrinsics.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PyQt6 import QtWidgets

from app.gui.wizard.wizard import CalibrationWizard
from calibration.boards import Board, save_board
from calibration.errors import TriangulumError


def _wait(app: QtWidgets.QApplication, page, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not page.isComplete():
        if page.last_error and not page.job.running:
            raise TriangulumError(f"the {page.title()} page failed: {page.last_error}")
        if time.monotonic() > end:
            raise TriangulumError(f"the {page.title()} page did not finish in {timeout:.0f} s.")
        app.processEvents()
        time.sleep(0.01)


def _until(app: QtWidgets.QApplication, done, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise TriangulumError(f"the wizard did not finish drawing in {timeout:.0f} s.")
        app.processEvents()
        time.sleep(0.01)


def _grab(app: QtWidgets.QApplication, wizard: CalibrationWizard, path: Path) -> None:
    for _ in range(20):  # let every widget paint its last state
        app.processEvents()
        time.sleep(0.01)
    if not wizard.grab().save(str(path)):
        raise TriangulumError(f"cannot write {path}; check the folder exists and is writable.")
    print(f"wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (caliscope-charuco-4cam, pose2sim-demo-single)")
    parser.add_argument("--out", type=Path, required=True, help="folder for wizard-*.png")
    parser.add_argument("--step", type=int, default=1, help="use every STEP-th instant of the caliscope videos")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    caliscope = args.data / "caliscope-charuco-4cam"
    photos = args.data / "pose2sim-demo-single" / "calibration" / "intrinsics"
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])

    # intrinsics: the Pose2Sim checkerboard (4 x 7 inner corners, 60 mm squares)
    wizard = CalibrationWizard()
    wizard.show()
    board = args.out / "pose2sim-checkerboard.toml"
    save_board(Board("checkerboard", 5, 8, 0.06, name="pose2sim"), board)
    wizard.cameras.add_sources([f"images:{photos / f'int_cam0{i}_img'}" for i in range(1, 5)])
    for i in range(4):
        wizard.cameras.rename(i, f"cam0{i + 1}")
    wizard.cameras.set_board(board)
    wizard.next()
    _wait(app, wizard.intrinsics)
    wizard.intrinsics.cameras.setCurrentRow(0)
    _grab(app, wizard, args.out / "wizard-2-intrinsics.png")
    wizard.stop_jobs(wait=30)
    wizard.close()
    board.unlink()

    # the rest: the caliscope session with its own intrinsics
    wizard = CalibrationWizard()
    wizard.show()
    wizard.cameras.add_sources([str(caliscope / "extrinsic")])
    wizard.cameras.set_board(caliscope / "charuco.toml")
    wizard.cameras.set_intrinsics(caliscope / "reference_camera_array.toml")
    wizard.cameras.step.setValue(args.step)
    _grab(app, wizard, args.out / "wizard-1-cameras.png")
    wizard.next()
    _wait(app, wizard.extrinsics)
    _grab(app, wizard, args.out / "wizard-3-extrinsics.png")
    wizard.next()
    _until(app, lambda: wizard.world.shown is not None and not wizard.world.job.running)
    _grab(app, wizard, args.out / "wizard-4-world.png")
    wizard.next()
    wizard.review.path.setText(str(args.out / "caliscope-rig.toml"))
    _until(app, lambda: wizard.review.review is not None)
    _grab(app, wizard, args.out / "wizard-5-review.png")
    wizard.stop_jobs(wait=30)
    wizard.close()

    # without a board: the studio videos posed from the person, Qualisys intrinsics
    studio = args.data / "pose2sim-demo-single"
    wizard = CalibrationWizard()
    wizard.show()
    wizard.cameras.add_sources([f"video:{studio / 'videos' / f'cam0{i}.mp4'}" for i in range(1, 5)])
    wizard.cameras.set_intrinsics(studio / "calibration" / "Calib.qca.txt")
    wizard.cameras.pose_from.setCurrentIndex(wizard.cameras.pose_from.findData("person"))
    wizard.next()
    _wait(app, wizard.person)
    _grab(app, wizard, args.out / "wizard-3-person.png")
    wizard.stop_jobs(wait=30)
    wizard.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
