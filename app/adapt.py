"""`triangulum adapt` and Tools > Adapt to this studio: the take-level side of the self-supervised
fine-tuning whose learning is training/adapt.py.

    crops = collect_take(take, ProcessConfig(start=0, stop=60))      # pseudo-labelled crops of a take
    result = adapt_takes([TakeRange(take, 0, 60)], AdaptConfig(), out_dir)   # the whole command
    rows = compare(take, 60, None, str(out_dir))                     # before/after on frames 60..

A take is processed with the current pipeline (app.process.take); its main performer's 2D and
the crops the tracker cut (ViewPeople.rois) give the pseudo-labels (training.adapt.label_crops);
the frames are decoded again to cut those crops. out_dir then holds landmark.safetensors,
landmark.onnx, metrics.csv, config.toml, adapt.json and NOTICE.md (engines.blazepose.backbone
reads it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from app.capture.frames import Frame
from calibration.errors import TriangulumError
from engines.blazepose.modules import LANDMARK_INPUT
from engines.blazepose.roi import crop
from engines.blazepose.weights import LANDMARK_WEIGHTS
from training.adapt import (
    AdaptConfig,
    AdaptResult,
    Crops,
    adapt,
    export_onnx,
    label_crops,
    write_record,
)


def rgb_crop(frame: Frame, roi) -> np.ndarray:
    """The landmark network's 256 x 256 crop of a frame through `roi`, as RGB uint8 (what
    engines.blazepose.pipeline.landmark_input feeds it, before scaling to [0, 1]); cut from
    the full-size pixels pose uses (`pose_image`: the decoder's planes where the frame has
    them), as the tracker cut it."""
    from app.process.pipeline import pose_image

    return np.ascontiguousarray(crop(pose_image(frame, None)[0], roi, LANDMARK_INPUT)[..., ::-1])


def collect_take(take, process_config, config: AdaptConfig | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Crops:
    """Process `take` over `process_config`'s frames with the current pipeline and return its
    main performer's pseudo-labelled crops (module docstring, steps 1-2)."""
    from app.process.reader import frame_sets
    from app.process.take import process_take

    config = config or AdaptConfig()
    result = process_take(take, process_config, progress=progress)
    if result.main is None:
        raise TriangulumError(f"{take.source}: nobody was reconstructed in frames {process_config.start}.."
                              f"{process_config.stop}; adaptation needs a person seen by two or more cameras.")
    person = result.person(result.main)
    C, F = len(take.rig), len(result.frames)
    rois: list[list] = [[None] * F for _ in range(C)]
    for f, fr in enumerate(result.frames):
        k = fr.association.person(result.main)
        if k is None:
            continue
        for v, i in enumerate(fr.association.members[k]):
            if i >= 0 and fr.views[v].rois:
                rois[v][f] = fr.views[v].rois[i]
    swapped = None
    if not config.label_swapped:  # only then are the joints the repair swapped needed
        from app.process.handedness import apply_flips

        index = np.broadcast_to(np.arange(person.keypoints.shape[2], dtype=np.float64), person.confidence.shape)
        swapped = apply_flips(np.zeros(person.keypoints.shape), index, person.flips, result.skeleton)[1] != index
    targets, weights, usable = label_crops(take.rig, person.keypoints, person.confidence, rois, config, swapped)
    if F > config.max_sets:
        spaced = np.zeros(F, bool)
        spaced[np.unique(np.linspace(0, F - 1, config.max_sets).round().astype(int))] = True
        usable &= spaced[None]
    index = {fr.index: f for f, fr in enumerate(result.frames)}
    images, rows = [], []
    for fs in frame_sets(take, result.frames[0].index, result.frames[-1].index + 1):
        f = index.get(fs.index)
        if f is None:
            continue
        by_camera = {fr.camera: fr for fr in fs.frames}
        for c, name in enumerate(take.rig.names):
            if usable[c, f] and name in by_camera:
                images.append(rgb_crop(by_camera[name], rois[c][f]))
                rows.append((f, c))
    if not rows:
        raise TriangulumError(f"{take.source}: no crop has views that agree on it; check the calibration "
                              "(`triangulum process` reports its reprojection error).")
    f_idx, c_idx = np.array(rows).T
    return Crops(take_label(take), np.stack(images), targets[c_idx, f_idx], weights[c_idx, f_idx],
                 np.array([result.frames[f].index for f in f_idx]), c_idx)


def take_label(take) -> str:
    """A short name of a take for reports: its folder (the one above `videos/`), or "sample"."""
    from app.commands.train import take_name

    kind, _, rest = take.source.partition(" ")
    if kind in ("session", "folder"):
        return take_name(Path(rest))
    if take.source == "built-in sample":
        return "sample"
    return take_name(take.videos[0].path.parent)


GENERIC_FRAMES = (0, 60)  # the built-in sample's frame sets whose crops are generic data


def generic_crops(step: int = 3) -> np.ndarray:
    """Crops of the built-in sample's frame sets 0-59 (every `step`-th; 80 crops) as the shipped
    pipeline cuts them: the generic data kept in the mix, with the shipped network's output as
    target. Only the first 60 % of the sample, so that benchmarks/adapt.py's check of the
    sample's last 40 % is on frames no training step ever saw."""
    from app.process.inputs import open_take
    from app.process.pipeline import build_frame_pipeline
    from app.process.reader import frame_sets
    from app.sample import sample_calibration, sample_videos

    take = open_take(sample_videos(), sample_calibration())
    pipeline = build_frame_pipeline(take.rig, threads=1)
    out = []
    for fs in frame_sets(take, *GENERIC_FRAMES):
        result = pipeline.observe(fs)
        if fs.index % step:
            continue
        by_camera = {fr.camera: fr for fr in fs.frames}
        for v, people in enumerate(result.views):
            for roi in people.rois[:1]:  # the best-scoring person of the view
                out.append(rgb_crop(by_camera[take.rig.names[v]], roi))
    return np.stack(out)


@dataclass
class TakeRange:
    """A take and the frame sets start..stop-1 to adapt on (stop None: to the end)."""

    take: object
    start: int = 0
    stop: int | None = None


def adapt_takes(takes: list[TakeRange], config: AdaptConfig, out_dir: Path, backbone: str | None = None,
                command: str = "", progress: Callable[[str, int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> AdaptResult:
    """The whole of `triangulum adapt`: pseudo-labelled crops of every take (processed with
    `backbone`, None: the shipped network), fine-tuning from that backbone, then out_dir holds
    landmark.safetensors, landmark.onnx, metrics.csv, adapt.json and NOTICE.md.
    progress(stage, done, total): stage "2D <take>", "generic data" or "training"."""
    from app.commands.train import git_commit
    from app.process.take import ProcessConfig
    from engines.blazepose.backbone import resolve_backbone

    started, commit = time.time(), git_commit()
    base = resolve_backbone(backbone)
    crops = []
    for tr in takes:
        name = take_label(tr.take)
        cfg = ProcessConfig(start=tr.start, stop=tr.stop, backbone=backbone)
        crops.append(collect_take(tr.take, cfg, config,
                                  (lambda d, t, n=name: progress(f"2D {n}", d, t)) if progress else None))
        if cancelled is not None and cancelled():
            raise TriangulumError("adaptation cancelled; nothing was written.")
    if progress:
        progress("generic data", 0, 1)
    generic = generic_crops() if config.generic else None
    result = adapt(crops, config, out_dir, generic, base.weights if base else LANDMARK_WEIGHTS,
                   (lambda d, t: progress("training", d, t)) if progress else None, cancelled)
    export_onnx(out_dir)
    record = {
        "kind": "triangulum adapted BlazePose landmark network",
        "command": command, "commit": commit,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)), "seconds": round(time.time() - started, 1),
        "base": str(base.weights) if base else "shipped (engines/blazepose/weights/pose_landmark_full.safetensors)",
        "takes": [{"source": tr.take.source, "frames": [c.frames.min().item(), c.frames.max().item()],
                   "crops": len(c)} for tr, c in zip(takes, crops, strict=True)],
        "holdout": f"last {config.holdout:.0%} of each take's frames (early stopping; never trained on)",
        "generic": (f"built-in sample frames {GENERIC_FRAMES[0]}-{GENERIC_FRAMES[1] - 1}, shipped network's output "
                    "as target") if config.generic else "none",
        "config": asdict(config),
        "holdout_agreement_px_before": result.before, "holdout_agreement_px_after": result.after,
        "best_epoch": result.best_epoch, "steps": result.steps, "train_crops": result.train_crops,
        "holdout_crops": result.holdout_crops,
    }
    write_record(out_dir, record)
    config.save(out_dir / "config.toml", {"data": {"command": command, "takes": [t["source"] for t in record["takes"]],
                                                   "frames": [t["frames"] for t in record["takes"]]}})
    lines = ["# Adapted BlazePose landmark network (triangulum adapt)", "",
             f"- Command: `{command}`" if command else "- Command: (called from Python)",
             f"- Commit: {commit}", f"- Started: {record['started']}, {record['seconds']} s",
             f"- Base weights: {record['base']}",
             "- Data (the user's own takes; self-supervised, no manual labels):",
             *[f"  - {t['source']}: frames {t['frames'][0]}-{t['frames'][1]}, {t['crops']} crops" for t in record["takes"]],
             f"- Held out: {record['holdout']}", f"- Generic data: {record['generic']}",
             f"- Best epoch {result.best_epoch} of {len(result.epochs)}, {result.steps} steps",
             "- Held-out agreement with the multi-view labels (256-crop px, lower is better): "
             + ", ".join(f"{k} {result.before[k]:.2f} -> {result.after[k]:.2f}" for k in result.before)]
    (out_dir / "NOTICE.md").write_text("\n".join(lines) + "\n")
    return result


def compare(take, start: int, stop: int | None, backbone: str) -> dict[str, dict]:
    """The frames start..stop-1 of `take` processed with the shipped and with `backbone` ->
    {"stock": metrics, "adapted": metrics}: reprojection median/p95 px and bone-length CV of
    the main performer (app.process.report), and the result for further checks."""
    from app.process.report import person_quality
    from app.process.take import ProcessConfig, process_take

    out = {}
    for name, b in (("stock", None), ("adapted", backbone)):
        result = process_take(take, ProcessConfig(start=start, stop=stop, backbone=b))
        if result.main is None:
            out[name] = {"result": result}
            continue
        q = person_quality(result.person(result.main), result.skeleton, take.cameras, take.fps)
        out[name] = {"reprojection_median_px": q["reprojection_px"]["median"], "reprojection_p95_px":
                     q["reprojection_px"]["p95"], "bone_cv": q["bone_length_cv_mean"], "result": result}
    return out


def summary(result: AdaptResult) -> list[str]:
    """What a run did, for the command's output and the GUI's report."""
    kept = (f"best epoch {result.best_epoch}" if result.best_epoch else
            "no epoch agreed better than the shipped network on the held-out frames, so its weights are kept")
    return [f"Adapted on {result.train_crops} crops ({result.steps} steps, {kept}, {result.seconds:.0f} s).",
            "Held-out agreement with the other views (px in the 256 crop, lower is better): "
            + ", ".join(f"{k} {result.before[k]:.2f} -> {result.after[k]:.2f}" for k in result.before)]


def check_after(take, stop: int | None, backbone: str) -> str | None:
    """The frames after the adaptation range processed with both networks, as one line
    ("frames A-B (never trained on): ..."); None when the range reached the end of the take or
    nobody was reconstructed."""
    if stop is None or stop >= take.frames:
        return None
    rows = compare(take, stop, None, backbone)
    s, a = rows["stock"], rows["adapted"]
    if "bone_cv" not in s or "bone_cv" not in a:
        return None
    return (f"frames {stop}-{take.frames - 1} (never trained on): reprojection p95 {s['reprojection_p95_px']:.1f} -> "
            f"{a['reprojection_p95_px']:.1f} px, bone-length CV {100 * s['bone_cv']:.1f} -> {100 * a['bone_cv']:.1f} %")
