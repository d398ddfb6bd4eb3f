"""Exporters for a captured take: TRC (OpenSim), BVH (Blender), C3D, CSV, and .blend (written by
real Blender where its `bpy` module is installed).

Every writer takes joints ``(F, J, 3)`` in metres in the calibration's Z-up world frame with
NaN for missing joints, the skeleton and the frame rate. ``export_all`` writes several formats
plus a JSON sidecar that records the conventions and any caller metadata (e.g. the filters).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.export.bvh import BvhConfig, write_bvh
from app.export.c3d_io import write_c3d
from app.export.conventions import check_take
from app.export.csv_io import write_csv
from app.export.trc import marker_names, write_trc
from calibration.errors import TriangulumError
from engines.skeleton import Skeleton

FORMATS = ("trc", "bvh", "c3d", "csv")  # the default set
OPTIONAL_FORMATS = ("blend",)  # on request: needs bpy

_CONVENTIONS = {
    "trc": "Y up: (X, Y, Z) = world (Y, Z, X); metres; missing = NaN",
    "bvh": "Y up: (X, Y, Z) = world (Y, Z, X); metres; humanoid rig (Mixamo names), symmetric median bone "
           "lengths, T-pose rest on the floor, root position channels absolute, feet on the floor",
    "blend": "Blender scene in the calibration's world frame (Z up, metres): the BVH rig and action, scene "
             "fps and frame range, the calibrated cameras",
    "c3d": "world axes (Z up); millimetres; missing = residual -1",
    "csv": "world axes (Z up); metres; missing = empty fields; frame 0-based, time = frame / fps",
}


def check_formats(formats: tuple[str, ...] | list[str]) -> None:
    """Our error for an unknown format, or .blend without Blender's module (before any work)."""
    unknown = [f for f in formats if f not in FORMATS + OPTIONAL_FORMATS]
    if unknown:
        raise TriangulumError(
            f"Unknown export format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS + OPTIONAL_FORMATS)}."
        )
    if "blend" in formats:
        from app.export.blend import INSTALL, available

        if not available():
            raise TriangulumError(f"The blend format needs Blender's Python module: {INSTALL}.")


def export_all(
    outdir: str | Path,
    joints: np.ndarray,
    skeleton: Skeleton,
    fps: float,
    formats: tuple[str, ...] | list[str] = FORMATS,
    stem: str = "take",
    metadata: dict | None = None,
    bvh: BvhConfig | None = None,
    trc_names: str = "opensim",
    rig=None,
) -> dict[str, Path]:
    """Write `stem`.<format> for each format and `stem`.json; returns {format: path}.

    joints: (F, J, 3) world metres; metadata: JSON-serialisable extras stored in the sidecar.
    """
    check_formats(formats)
    joints = check_take(joints, skeleton, fps)
    bvh = bvh or BvhConfig()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt in formats:
        target = outdir / f"{stem}.{fmt}"
        if fmt == "trc":
            paths[fmt] = write_trc(target, joints, skeleton, fps, names=trc_names)
        elif fmt == "bvh":
            paths[fmt] = write_bvh(target, joints, skeleton, fps, bvh)
        elif fmt == "blend":
            from app.export.blend import write_blend

            paths[fmt] = write_blend(target, joints, skeleton, fps, rig=rig, bvh=bvh)
        elif fmt == "c3d":
            paths[fmt] = write_c3d(target, joints, skeleton, fps)
        else:
            paths[fmt] = write_csv(target, joints, skeleton, fps)
    sidecar = {
        "skeleton": skeleton.name,
        "joints": list(skeleton.joints),
        "fps": fps,
        "frames": len(joints),
        "world": "calibration world frame, Z up, metres",
        "files": {fmt: {"path": p.name, "convention": _CONVENTIONS[fmt]} for fmt, p in paths.items()},
        "trc_markers": list(marker_names(skeleton, trc_names)) if "trc" in paths else None,
        "bvh": {"units": bvh.units, "rotation_order": bvh.rotation_order} if "bvh" in paths else None,
        "metadata": metadata or {},
    }
    meta_path = outdir / f"{stem}.json"
    try:
        meta_path.write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
    except TypeError as exc:
        raise TriangulumError(f"Export metadata is not JSON-serialisable: {exc}.") from None
    paths["json"] = meta_path
    return paths
