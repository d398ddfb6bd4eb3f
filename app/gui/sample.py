"""The built-in sample (app/sample) as the GUI opens it: source specs and calibration."""

from __future__ import annotations

from pathlib import Path

from app.sample import sample_calibration, sample_videos

__all__ = ["sample_calibration", "sample_sources"]


def sample_sources() -> list[str]:
    """Video source specs of the sample, each camera named after its file (cam01...), as in its rig."""
    return [f"video:{p}?name={Path(p).stem}" for p in sample_videos()]
