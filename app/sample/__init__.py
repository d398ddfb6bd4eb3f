"""The built-in sample take: Pose2Sim's four-camera demo (see NOTICE and LICENSE here).

`triangulum process` with no input processes it.
"""

from __future__ import annotations

from pathlib import Path

from calibration.errors import TriangulumError

SAMPLE_DIR = Path(__file__).resolve().parent
CAMERAS = ("cam01", "cam02", "cam03", "cam04")


def sample_videos() -> list[Path]:
    """The sample's videos, one per camera, in camera order."""
    videos = [SAMPLE_DIR / f"{name}.mp4" for name in CAMERAS]
    missing = [v.name for v in videos if not v.is_file()]
    if missing:
        raise TriangulumError(f"the built-in sample is incomplete ({', '.join(missing)} missing from {SAMPLE_DIR}); "
                              "reinstall triangulum.")
    return videos


def sample_calibration() -> Path:
    """The sample's rig TOML (converted from its Qualisys calibration)."""
    path = SAMPLE_DIR / "calibration.toml"
    if not path.is_file():
        raise TriangulumError(f"the built-in sample has no calibration ({path}); reinstall triangulum.")
    return path
