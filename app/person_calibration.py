"""Calibration from the person in videos, as `triangulum calib from-person --source` and the
wizard's "from the person" step run it: everyone BlazePose tracks in every view, the person who
is geometrically the same across views (calibration.same_person), then
calibration.from_person on that person's joints.

    chosen = choose_person(sources, intrinsics, min_confidence=0.5)
    result = calibrate_from_person(chosen.keypoints, chosen.confidence, intrinsics, person_options(1.75))
"""

from __future__ import annotations

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
    heatmap peaks and the tracker's IDs; tracks seen in fewer than `min_frames` frames are left out."""
    from calibration.same_person import Candidates
    from engines.blazepose.pipeline import BODY_JOINTS, BlazePoseEstimator
    from engines.tracker import PeopleTracker

    tracker = PeopleTracker(BlazePoseEstimator("onnxruntime"))
    iters = [iter_frames(s) for s in sources]
    seen: list[dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]] = [{} for _ in sources]
    f = 0
    while max_frames is None or f < max_frames:
        frames = [next(it, None) for it in iters]
        if any(fr is None for fr in frames):
            break
        for v, people in enumerate(tracker([im for _, im in frames])):
            for k, tid in enumerate(people.track_ids):
                seen[v].setdefault(int(tid), {})[f] = (people.keypoints[k], people.confidence[k])
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
        for i, t in enumerate(ids):
            for fr, (k, c) in tracks[t].items():
                kp[i, fr], cf[i, fr] = k, c
        out.append(Candidates(kp, cf, np.array(ids, np.int64)))
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
