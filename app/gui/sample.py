"""The built-in sample (app/sample/: four synchronised videos and their rig calibration)."""

from __future__ import annotations

from pathlib import Path

from calibration.errors import TriangulumError

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"


def _require(paths: list[Path], what: str) -> list[Path]:
    if not paths:
        raise TriangulumError(
            f"the built-in sample has no {what} in {SAMPLE_DIR}; reinstall Triangulum, or open your own "
            "videos (File ▸ Add video files) and calibration (File ▸ Load calibration)."
        )
    return paths


def sample_videos() -> list[Path]:
    """The sample's videos, one per camera, in camera order."""
    return _require(sorted(SAMPLE_DIR.glob("*.mp4")), "videos")


def sample_sources() -> list[str]:
    """Source specs of the sample videos, each named after its file (cam01, ...), as in the rig."""
    return [f"video:{p}?name={p.stem}" for p in sample_videos()]


def sample_calibration() -> Path:
    """The sample's rig calibration (TOML)."""
    return _require(sorted(SAMPLE_DIR.glob("*.toml")), "calibration (a .toml rig)")[0]
