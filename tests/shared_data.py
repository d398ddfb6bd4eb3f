"""Where the tests find the real recordings: ../shared/data beside the repository (as CI has
it), else the copy inside the repository, tests/data/real (what a fresh clone has).

The copy holds what the tests read, with the same layout and each folder's LICENSE:
pose2sim-demo-single (the Qualisys calibration, the checkerboard photos re-saved as JPEG
quality 75, Pose2Sim's reference TRC; the videos are the built-in sample's, linked) and
caliscope-charuco-4cam (the board, caliscope's calibration, the timestamps, and the four
videos re-encoded with H.264 CRF 26) and mocap-cmu (two clips, 002_03 and 003_01, with
CMU's terms). tests/test_shared_data.py checks that it matches the
shared originals where both are present. TRIANGULUM_TEST_DATA=repo makes the tests use the
copy even where ../shared is present.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IN_REPO = Path(__file__).resolve().parent / "data" / "real"


def test_data_root() -> Path:
    if os.environ.get("TRIANGULUM_TEST_DATA") == "repo" or not (SHARED / "pose2sim-demo-single").is_dir():
        return IN_REPO
    return SHARED


test_data_root.__test__ = False  # a helper, not a test
TEST_DATA = test_data_root()
