"""The quality report of a processed take: report.json plus PNG charts.

Per person: reprojection error (pixels, against the 2D each view gave for the 12 limb joints,
after left/right correction, over every view that saw the joint) as mean / median / p95 /
share above 20 px, per camera and per joint; bone-length stability of the 8 limb bones
(coefficient of variation over the take); wrist and ankle jitter (mean acceleration, m/s^2);
views used per joint; left/right corrections per camera. For the run: per-stage timings.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from app.process import plots
from app.process.outputs import metadata
from app.process.take import PersonTake, TakeResult
from engines.skeleton import LIMB_BONES, LIMB_JOINTS, Skeleton, indices, limb_bone_indices
from training.metrics import bone_length_stats, bone_lengths, jitter, reprojection_stats

ERROR_THRESHOLD_PX = 20.0
JITTER_JOINTS = ("left_wrist", "right_wrist", "left_ankle", "right_ankle")
PER_FRAME_STAGES = ("decode", "pose2d", "associate", "handedness", "triangulate", "filter")


def _f(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def person_quality(person: PersonTake, skeleton: Skeleton, cameras: list[str], fps: float) -> dict[str, Any]:
    """The numbers of one person (see the module docstring)."""
    limbs = indices(skeleton, LIMB_JOINTS)
    final = person.final
    errors = final.errors[:, :, limbs]  # (C, F, 12)
    rep = reprojection_stats(errors, ERROR_THRESHOLD_PX)
    bones = np.array(list(limb_bone_indices(skeleton).values()))
    blen = bone_length_stats(final.joints, bones)
    used = final.views_used[:, limbs]  # (F, 12, C)
    n_used = used.sum(-1)
    triangulated = np.isfinite(final.joints[:, limbs]).all(-1)
    hist = np.bincount(n_used[triangulated].ravel(), minlength=len(cameras) + 1)
    return {
        "id": person.person_id,
        "frames_seen": int(person.seen.sum()),
        "performer_score": round(person.score, 3),
        "reprojection_px": {
            "joints": list(LIMB_JOINTS),
            "mean": _f(rep.mean), "median": _f(rep.median), "p95": _f(rep.p95),
            f"share_above_{ERROR_THRESHOLD_PX:g}px": _f(rep.share_above), "count": rep.count,
            "per_camera": {c: _f(v) for c, v in zip(cameras, rep.per_camera, strict=True)},
            "per_joint": {n: _f(v) for n, v in zip(LIMB_JOINTS, rep.per_joint, strict=True)},
        },
        "bone_length": {
            name: {"mean_m": _f(m), "cv": _f(cv)}
            for name, m, cv in zip(LIMB_BONES, blen.mean, blen.cv, strict=True)
        },
        "bone_length_cv_mean": _f(np.nanmean(blen.cv)),
        "jitter_m_s2": {
            "wrists_ankles": _f(jitter(final.joints[:, indices(skeleton, JITTER_JOINTS)], fps)),
            "before_filtering": _f(jitter(person.raw.joints[:, indices(skeleton, JITTER_JOINTS)], fps)),
        },
        "views_used": {
            "mean_per_limb_joint": _f(n_used[triangulated].mean()) if triangulated.any() else None,
            "per_joint": {n: _f(n_used[:, k][triangulated[:, k]].mean()) if triangulated[:, k].any() else None
                          for k, n in enumerate(LIMB_JOINTS)},
            "per_camera_share": {c: _f(used[..., k][triangulated].mean()) if triangulated.any() else None
                                 for k, c in enumerate(cameras)},
            "histogram": {str(k): int(v) for k, v in enumerate(hist)},
        },
        "limb_joints_triangulated_share": _f(triangulated.mean()),
        "left_right_corrected_frames": {
            c: {"any": int(np.any([flags[:, k] for flags in person.flips.values()], axis=0).sum())
                if person.flips else 0,
                **{g: int(flags[:, k].sum()) for g, flags in sorted(person.flips.items())}}
            for k, c in enumerate(cameras)
        },
    }


def timing_summary(result: TakeResult) -> dict[str, Any]:
    """Seconds per stage and milliseconds per frame set ("decode" is the time spent waiting
    for decoded frames, which are read ahead on another thread)."""
    frames = max(len(result.frames), 1)
    stages = dict(result.timings)
    per_frame = {s: 1000.0 * stages[s] / frames for s in PER_FRAME_STAGES if s in stages}
    wall = stages.get("frames_wall", 0.0) + sum(stages.get(k, 0.0) for k in ("handedness", "triangulate", "filter"))
    return {
        "frames": len(result.frames),
        "stages_s": {k: round(v, 4) for k, v in stages.items()},
        "per_frame_ms": {k: round(v, 2) for k, v in per_frame.items()},
        "per_frame_total_ms": round(sum(per_frame.values()), 2),
        # Wall clock of the per-frame loop (decoding overlaps it on another thread) plus the
        # whole-take passes, per frame set; model loading, export and overlays excluded.
        "per_frame_wall_ms": round(1000.0 * wall / frames, 2),
    }


def nothing_reason(result: TakeResult) -> str | None:
    """Why nobody was reconstructed, in a sentence (None if somebody was)."""
    if result.people:
        return None
    take = result.take
    seen = np.array([[v < len(fr.views) and len(fr.views[v].keypoints) > 0 for v in range(len(take.cameras))]
                     for fr in result.frames], bool).reshape(-1, len(take.cameras))
    per_camera = seen.sum(0)
    frames = len(result.frames)
    if not per_camera.any():
        return (f"BlazePose found nobody in any view in the {frames} frame sets; check that a person is in view "
                "(whole body, not too small) and that the videos are not dark or blank.")
    cams = [c for c, n in zip(take.cameras, per_camera, strict=True) if n]
    detail = ", ".join(f"{c} in {n} frames" for c, n in zip(take.cameras, per_camera, strict=True) if n)
    if len(cams) == 1:
        return (f"a person was detected only by camera {cams[0]} ({detail}); triangulation needs a person seen by "
                "two or more cameras at once.")
    return (f"people were detected ({detail}) but never matched across two cameras: their rays do not meet, so "
            "the calibration may not belong to these videos; check that each video is named after its camera and "
            "the calibration's unit (--calib-units).")


def outcome(result: TakeResult) -> dict[str, Any]:
    """What the run achieved, as the exit code says it (see app.cli)."""
    from app.cli import EXIT_NOTHING_RECONSTRUCTED, EXIT_OK

    reason = nothing_reason(result)
    return {"people_reconstructed": len(result.people),
            "exit_code": EXIT_OK if reason is None else EXIT_NOTHING_RECONSTRUCTED, "reason": reason}


def camera_timing(result: TakeResult) -> dict[str, Any]:
    """Per camera: its frame rate, the frame sets it had a frame for, and whether its 2D was
    interpolated in time to the sets it had none for (a camera slower than the set rate)."""
    take = result.take
    sets = np.array([fr.index for fr in result.frames], np.int64)
    has = take.frame_index[sets] >= 0 if len(sets) else np.zeros((0, len(take.cameras)), bool)
    return {c: {"fps": round(float(take.camera_fps[k]), 3), "frame_sets_with_a_frame": int(has[:, k].sum()),
                "interpolated_2d": c in take.interpolated,
                "frame_sets_interpolated": int((~has[:, k]).sum()) if c in take.interpolated else 0}
            for k, c in enumerate(take.cameras)}


def quality(result: TakeResult) -> dict[str, Any]:
    """report.json's content."""
    with warnings.catch_warnings():
        # Statistics of views or joints with no data are reported as null, not as numpy's warnings.
        warnings.simplefilter("ignore", RuntimeWarning)
        return _quality(result)


def _quality(result: TakeResult) -> dict[str, Any]:
    take = result.take
    return {
        "source": take.source,
        "cameras": take.cameras,
        "frames": len(result.frames),
        "fps": take.fps,
        "camera_timing": camera_timing(result),
        "outcome": outcome(result),
        "method": result.config.pipeline.triangulation.method,
        "main_person": result.main,
        "people_tracked": {str(i): {"frames": t.frames, "mean_views": round(t.view_frames / max(t.frames, 1), 2),
                                    "hip_extent_m": round(t.extent, 3)}
                           for i, t in sorted(result.tracks.items())},
        "people": [person_quality(p, result.skeleton, take.cameras, take.fps) for p in result.people],
        "timings": timing_summary(result),
        "warnings": list(take.warnings),
        "metadata": metadata(result),
    }


def write_plots(result: TakeResult, outdir: Path) -> list[Path]:
    """PNG charts: per person reprojection (camera x joint), bone lengths over time, views
    used over time; for the run, milliseconds per frame and stage."""
    take, sk = result.take, result.skeleton
    limbs = indices(sk, LIMB_JOINTS)
    paths = []
    t = result.times - (result.times[0] if len(result.times) else 0.0)
    short = [n.replace("left_", "L ").replace("right_", "R ") for n in LIMB_JOINTS]
    for p in result.people:
        stem = f"report_person{p.person_id}"
        err = np.nanmean(p.final.errors[:, :, limbs], axis=1)  # (C, 12)
        img = plots.heatmap(err, take.cameras, short, f"Person {p.person_id}: mean reprojection error", "px",
                            vmax=max(2 * ERROR_THRESHOLD_PX, float(np.nanmax(err)) if np.isfinite(err).any() else 1.0))
        paths.append(plots.save(img, outdir / f"{stem}_reprojection.png"))
        bones = limb_bone_indices(sk)
        lengths = bone_lengths(p.final.joints, np.array(list(bones.values()))) * 100.0
        img = plots.line_chart(t, {b: lengths[:, k] for k, b in enumerate(bones)},
                               f"Person {p.person_id}: limb bone lengths", "time (s)", "cm")
        paths.append(plots.save(img, outdir / f"{stem}_bones.png"))
        used = p.final.views_used[:, limbs]  # (F, 12, C)
        ok = np.isfinite(p.final.joints[:, limbs]).all(-1)  # (F, 12)
        n = ok.sum(1)
        mean_views = np.where(n > 0, np.where(ok, used.sum(-1), 0).sum(1) / np.maximum(n, 1), np.nan)
        series = {"views per limb joint": mean_views}
        series.update({f"{c} (share of joints x {len(take.cameras)})": used[..., k].mean(1) * len(take.cameras)
                       for k, c in enumerate(take.cameras)})
        img = plots.line_chart(t, series, f"Person {p.person_id}: views used", "time (s)", "views")
        paths.append(plots.save(img, outdir / f"{stem}_views.png"))
    timing = timing_summary(result)["per_frame_ms"]
    img = plots.bar_chart(list(timing), np.array(list(timing.values())), "Time per frame set by stage", "ms")
    paths.append(plots.save(img, outdir / "report_timings.png"))
    return paths


def write_report(result: TakeResult, outdir: Path, kinematics: dict | None = None) -> tuple[Path, list[Path]]:
    """report.json and the PNG charts -> (json path, png paths). kinematics: person ID ->
    app.kinematics.KinematicsResult, reported (and its joint-angle plot listed) when given."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pngs = write_plots(result, outdir)
    data = quality(result)
    data["plots"] = [p.name for p in pngs]
    if kinematics:
        data["kinematics"] = {str(pid): k.summary() for pid, k in kinematics.items()}
        data["plots"] += [str(k.plot.relative_to(outdir)) for k in kinematics.values()]
    path = outdir / "report.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path, pngs
