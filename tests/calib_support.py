"""Data paths and session-cached board detections shared by the calibration tests.

Import the fixtures into a test module (`from calib_support import caliscope_detections`)
so a test session detects the boards of each recording once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shared_data import TEST_DATA

DATA = TEST_DATA
POSE2SIM = DATA / "pose2sim-demo-single"
QCA = POSE2SIM / "calibration" / "Calib.qca.txt"
INTRINSIC_PHOTOS = POSE2SIM / "calibration" / "intrinsics"
TRC = POSE2SIM / "reference" / "pose2sim_body25b_0-100.trc"
CALISCOPE = DATA / "caliscope-charuco-4cam"
CALISCOPE_REF = CALISCOPE / "reference_camera_array.toml"
CALISCOPE_BOARD = CALISCOPE / "charuco.toml"
KEYPOINTS = Path(__file__).resolve().parent / "data" / "pose2sim_blazepose_2d.npz"

needs_pose2sim = pytest.mark.skipif(not QCA.is_file(), reason="shared data (pose2sim-demo-single) not present")
needs_caliscope = pytest.mark.skipif(not CALISCOPE_REF.is_file(), reason="shared data (caliscope-charuco-4cam) not present")

# The Pose2Sim photos show a checkerboard of 4 x 7 inner corners, 60 mm squares.
POSE2SIM_BOARD = {"kind": "checkerboard", "columns": 5, "rows": 8, "square_size": 0.06}
CAMERAS = ("cam01", "cam02", "cam03", "cam04")


def trc_world() -> np.ndarray:
    """Pose2Sim's 3D joints of the demo in the calibration's Z-up world. -> (100, 21, 3) m"""
    trc = np.loadtxt(TRC, skiprows=5)[:, 2:].reshape(100, 21, 3)
    return trc[..., [2, 0, 1]]  # TRC (X, Y, Z) = world (Y, Z, X)


@pytest.fixture(scope="session")
def pose2sim_photo_views():
    """Checkerboard detections in the Pose2Sim intrinsic photos: {camera: ViewDetections}."""
    from calibration.boards import board_from_dict
    from calibration.frames import FrameSource
    from calibration.intrinsics import detect_views

    board = board_from_dict(POSE2SIM_BOARD)
    out = {}
    for cam in CAMERAS:
        src = FrameSource(cam, "images", str(INTRINSIC_PHOTOS / f"int_{cam}_img"))
        out[cam] = detect_views(src, board)
    return board, out


@pytest.fixture(scope="session")
def caliscope_detections():
    """ChArUco detections of the caliscope session keyed by sync index, every 2nd instant."""
    from calibration.boards import load_board
    from calibration.extrinsics import detect_synchronised
    from calibration.frames import session_sources

    board = load_board(CALISCOPE_BOARD)
    dets, sizes = detect_synchronised(session_sources(CALISCOPE / "extrinsic"), board, step=2)
    return board, dets, sizes
