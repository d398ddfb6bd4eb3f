"""Calibration from the person in videos, as `triangulum calib from-person --source` and the
wizard's "from the person" step run it: everyone BlazePose tracks in every view, the person who
is geometrically the same across views (calibration.same_person), then
calibration.from_person on that person's joints.

    chosen = choose_person(sources, intrinsics, min_confidence=0.5)
    result = calibrate_from_person(chosen.keypoints, chosen.confidence, intrinsics, person_options(1.75))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError
from calibration.frames import FrameSource, iter_frames
from calibration.from_person import PersonOptions, PersonResult
from calibration.report import QualityReport, build_report
from calibration.rig import Rig
from calibration.same_person import Chosen, same_person


def person_options(height: float | None, min_confidence: float = 0.5, skeleton: str = "blazepose33",
                   max_frames: int | None = 100) -> PersonOptions:
    """The solver's options for a skeleton: its eyes set the stature, its heels and toes the
    floor, its hips and shoulders the trunk."""
    from engines.skeleton import get_skeleton, indices

    sk = get_skeleton(skeleton)
    return PersonOptions(
        min_confidence=min_confidence, height=height, max_frames=max_frames,
        top=tuple(int(i) for i in indices(sk, ["left_eye", "right_eye"])),
        feet=(tuple(int(i) for i in indices(sk, ["left_heel", "right_heel"])),
              tuple(int(i) for i in indices(sk, ["left_foot_index", "right_foot_index"]))),
        trunk=tuple(int(i) for i in indices(sk, ["left_hip", "right_hip", "left_shoulder", "right_shoulder"])),
    )


def detect_people_2d(sources: list[FrameSource], progress=None, max_frames: int | None = None,
                     min_frames: int = 10) -> list:
    """Everyone BlazePose tracks in each of the synchronised videos (frame i of each = one
    instant), for the candidate search (calibration.same_person): per source a Candidates
    with keypoints (K, F, 33, 2) px (NaN where that track is absent), confidence (K, F, 33)
    heatmap peaks, the tracker's IDs and world (K, F, 33, 3) BlazePose's single-view 3D poses; tracks seen in fewer than `min_frames` frames are left out."""
    from calibration.same_person import Candidates
    from engines.blazepose.pipeline import BODY_JOINTS, BlazePoseEstimator
    from engines.tracker import PeopleTracker

    tracker = PeopleTracker(BlazePoseEstimator("onnxruntime"))
    iters = [iter_frames(s) for s in sources]
    seen: list[dict[int, dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]] = [{} for _ in sources]
    f = 0
    while max_frames is None or f < max_frames:
        frames = [next(it, None) for it in iters]
        if any(fr is None for fr in frames):
            break
        for v, people in enumerate(tracker([im for _, im in frames])):
            for k, tid in enumerate(people.track_ids):
                seen[v].setdefault(int(tid), {})[f] = (people.keypoints[k], people.confidence[k], people.world[k])
        f += 1
        if progress is not None:
            progress("BlazePose (everyone)", f, 0)
    if not f:
        raise TriangulumError("the videos yield no frames; check the --source paths.")
    out = []
    for tracks in seen:
        ids = sorted(t for t, fr in tracks.items() if len(fr) >= min_frames)
        kp = np.full((len(ids), f, BODY_JOINTS, 2), np.nan)
        cf = np.zeros((len(ids), f, BODY_JOINTS))
        wl = np.full((len(ids), f, BODY_JOINTS, 3), np.nan)
        for i, t in enumerate(ids):
            for fr, (k, c, w) in tracks[t].items():
                kp[i, fr], cf[i, fr], wl[i, fr] = k, c, w
        out.append(Candidates(kp, cf, np.array(ids, np.int64), wl))
    return out


def choose_person(sources: list[FrameSource], intrinsics: Rig, min_confidence: float = 0.5, progress=None,
                  max_frames: int | None = None) -> Chosen:
    """Everyone tracked in the videos, then the person who is the same in every view."""
    return same_person(detect_people_2d(sources, progress, max_frames), intrinsics, min_confidence=min_confidence)


def person_report(result: PersonResult, extra: dict) -> tuple[QualityReport, np.ndarray]:
    """The quality report `calib from-person` writes -> (report, world points (N, 3))."""
    tracks, frames, world = result.tracks()
    errors = {n: result.errors[result.obs.camera == c] for c, n in enumerate(result.rig.names)}
    extra = {**extra, "scale": result.scale, "stature_unscaled": result.stature_unscaled}
    return build_report(result.rig, tracks, frames, errors, result.warnings, extra), world


DEFAULT_HEIGHT = 1.70  # m: an adult average (both sexes) when the user gives none; only the scale depends on it


def calibrate_free(sources: list[FrameSource], sizes: list[tuple[int, int]], height: float | None = None,
                   focal_ratio: float | None = None, progress=None, max_frames: int | None = 300,
                   metapose: str | Path | None = None):
    """Calibration-free: the cameras and the person from the videos alone (calibration.uncalibrated).

    Everyone tracked in every view, the person who is the same across views chosen (with the
    guessed intrinsics), the three stages; then left/right swaps repaired with the estimated
    cameras and the stages run again on the repaired 2D (a view that labels the legs the wrong
    way round in a third of the frames costs centimetres otherwise). sizes: (width, height)
    per source; max_frames: the first frames used (the tracker must see them in order);
    metapose: weights of the learned refinement (default the shipped ones).
    -> (FreeResult, Chosen, frames relabelled).
    """
    from app.process.handedness import apply_flips, solve_take
    from calibration.uncalibrated import FOCAL_RATIO, guess_intrinsics, solve_uncalibrated
    from engines.skeleton import BLAZEPOSE33

    guess = guess_intrinsics([s.name for s in sources], sizes, FOCAL_RATIO if focal_ratio is None else focal_ratio)
    chosen = same_person(detect_people_2d(sources, progress, max_frames), guess, intrinsics_known=False)
    options = person_options(height or DEFAULT_HEIGHT, max_frames=100)
    from engines.metapose import load_metapose, refine_take

    net = load_metapose(metapose)

    def refine(rig, points, kp, cf, world):
        return refine_take(net, rig, points, kp, cf, world, options.min_confidence)

    first = solve_uncalibrated(chosen.keypoints, chosen.confidence, chosen.world, guess, options, refine)
    flips = solve_take(first.rig, chosen.keypoints, chosen.confidence, BLAZEPOSE33)
    relabelled = int(np.any([f.any(1) for f in flips.values()], axis=0).sum()) if flips else 0
    if not relabelled:
        return first, chosen, 0
    kp, cf = apply_flips(chosen.keypoints, chosen.confidence, flips, BLAZEPOSE33)
    if progress is not None:
        progress("left/right repaired; adjusting again", 1, 1)
    return solve_uncalibrated(kp, cf, chosen.world, guess, options, refine), chosen, relabelled


def free_videos(inputs: list[Path]) -> list[Path]:
    """The videos of a calibration-free `process`: the files given, or the videos of one folder."""
    from app.process.inputs import folder_videos

    if len(inputs) == 1 and inputs[0].is_dir():
        videos = folder_videos(inputs[0])
    else:
        videos = list(inputs)
    missing = [str(p) for p in videos if not p.is_file()]
    if missing:
        raise TriangulumError(f"{', '.join(missing)} do(es) not exist; give one video per camera.")
    if len(videos) < 2:
        raise TriangulumError(f"calibration-free capture needs two or more videos of the same moment; got {len(videos)}.")
    names = [p.stem for p in videos]
    if len(set(names)) != len(names):
        raise TriangulumError(f"the videos' names {names} repeat; name each video after its camera (cam01.mp4, ...).")
    return videos


def calibrate_videos_free(inputs: list[Path], outdir: Path, height: float | None, progress=None,
                          max_frames: int | None = 300) -> tuple[Path, dict]:
    """`process --calib none`: estimate the rig from the videos, write it as outdir/calibration.toml
    (reusable with --calib) and the stages' figures as outdir/calibration_free.json.
    -> (the rig's path, the figures)."""
    import json

    from calibration.rig_io import save_rig
    from calibration.takes import probe_video

    videos = free_videos(inputs)
    infos = [probe_video(p.stem, p) for p in videos]
    sources = [FrameSource(i.camera, "video", str(i.path)) for i in infos]
    result, chosen, relabelled = calibrate_free(sources, [i.size for i in infos], height, progress=progress,
                                                max_frames=max_frames)
    outdir.mkdir(parents=True, exist_ok=True)
    path = save_rig(result.rig, outdir / "calibration.toml")
    figures = {
        "height_m": height or DEFAULT_HEIGHT, "height_given": height is not None,
        "frames_used": int(len(result.frames)),
        "stages": [{"stage": s.name, "seconds": s.seconds, "median_px": s.median_px, "p95_px": s.p95_px}
                   for s in result.stages],
        "focal_px": {c.name: float(c.K[0, 0]) for c in result.rig.cameras},
        "support": {n: float(s) for n, s in zip(result.rig.names, result.support, strict=True)},
        "left_right_relabelled_frames": relabelled,
        "people": chosen.notes, "warnings": result.warnings,
    }
    (outdir / "calibration_free.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return path, figures
