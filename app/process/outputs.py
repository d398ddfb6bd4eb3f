"""Files of a processed take, all in one output folder.

    poses3d.npz          every reconstructed person (arrays below), the cameras, joints, times
    person<ID>.trc/.bvh/.c3d/.csv/.json   each person's joints through app.export
    report.json, *.png   the quality report (app.process.report)
    overlay_<cam>.mp4    per camera: detections, reprojected 3D, IDs (app.process.overlay)

poses3d.npz keys (F frames, J joints, C cameras; person P's arrays prefixed ``person<P>_``):

    cameras (C,), joint_names (J,), times (F,) s, fps (), frame_index (F, C) video frames,
    person_ids (N,), main_person () (-1: nobody), metadata () JSON text (config, filters,
    inputs, warnings)
    person<P>_joints (F, J, 3) m, final (filtered); person<P>_joints_raw (F, J, 3) m, before
    filtering; person<P>_confidence (F, J); person<P>_views_used (F, J, C) bool;
    person<P>_keypoints2d (C, F, J, 2) px, the 2D used (left/right corrected);
    person<P>_confidence2d (C, F, J); person<P>_reprojected (C, F, J, 2) px;
    person<P>_reprojection_error (C, F, J) px; person<P>_flipped (F, C, G) bool, views whose
    left/right labels of group g were swapped, person<P>_flip_groups (G,) the group names
    (joint pairs such as "knee"); person<P>_seen (F,) bool.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from app.export import FORMATS, export_all
from app.process.take import TakeResult
from engines.temporal import describe as describe_filter

NPZ = "poses3d.npz"


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def metadata(result: TakeResult) -> dict[str, Any]:
    """What produced the files: inputs, warnings, every parameter, the filters applied."""
    cfg = result.config
    filters = []
    if cfg.temporal.gap_fill is not None:
        filters.append(describe_filter(cfg.temporal.gap_fill))
    if cfg.temporal.one_euro is not None:
        filters.append(describe_filter(cfg.temporal.one_euro))
    elif cfg.temporal.butterworth is not None:
        filters.append(describe_filter(cfg.temporal.butterworth))
    take = result.take
    return {
        "source": take.source,
        "calibration": str(take.calibration) if take.calibration else None,
        "videos": {v.camera: str(v.path) for v in take.videos},
        "fps": take.fps,
        "frames": len(result.frames),
        "skeleton": result.skeleton.name,
        "units": "metres, world frame of the calibration",
        "warnings": list(take.warnings),
        "filters": filters,
        "config": _jsonable(cfg),
        "method": cfg.pipeline.triangulation.method,
        "people": [p.person_id for p in result.people],
        "main_person": result.main,
    }


def write_npz(result: TakeResult, path: Path) -> Path:
    """poses3d.npz (see the module docstring)."""
    take = result.take
    start = result.frames[0].index if result.frames else 0
    arrays: dict[str, np.ndarray] = {
        "cameras": np.array(take.cameras),
        "joint_names": np.array(result.skeleton.joints),
        "times": result.times,
        "fps": np.array(take.fps),
        "frame_index": take.frame_index[start:start + len(result.frames)],
        "person_ids": np.array([p.person_id for p in result.people], np.int64),
        "main_person": np.array(-1 if result.main is None else result.main),
        "metadata": np.array(json.dumps(metadata(result))),
    }
    for p in result.people:
        key = f"person{p.person_id}_"
        flipped = np.stack([p.flips[g] for g in sorted(p.flips)], -1) if p.flips else np.zeros(
            p.seen.shape + (len(take.cameras), 0), bool)
        arrays.update({
            key + "joints": p.final.joints,
            key + "joints_raw": p.raw.joints,
            key + "confidence": p.final.confidence,
            key + "views_used": p.final.views_used,
            key + "keypoints2d": p.keypoints,
            key + "confidence2d": p.confidence,
            key + "reprojected": p.final.reprojected,
            key + "reprojection_error": p.final.errors,
            key + "flipped": flipped,
            key + "flip_groups": np.array(sorted(p.flips)),
            key + "seen": p.seen,
        })
    np.savez_compressed(path, **arrays)
    return path


def write_exports(result: TakeResult, outdir: Path, formats: tuple[str, ...] = FORMATS,
                  trc_names: str = "opensim") -> dict[int, dict[str, Path]]:
    """person<ID>.<format> for every reconstructed person -> {ID: {format: path}}."""
    meta = metadata(result)
    out = {}
    for p in result.people:
        out[p.person_id] = export_all(outdir, p.final.joints, result.skeleton, result.take.fps, formats,
                                      stem=f"person{p.person_id}", metadata={**meta, "person": p.person_id},
                                      trc_names=trc_names, rig=result.take.rig)
    return out
