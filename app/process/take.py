"""Offline processing of a whole take: the live per-frame pipeline, then whole-take passes.

    result = process_take(open_take([]), ProcessConfig())

1. Every frame set goes through `FramePipeline.observe` (per-view 2D of everyone, cross-view
   association, 3D tracks), exactly as in live capture.
2. Tracks broken by a short loss are re-joined (`relink`), so a person keeps one ID; so is a
   person who left and came back within `reid_gap_s`, recognised by body size. IDs are
   renumbered 0, 1, ... by first appearance.
3. People are chosen: `people="1"` keeps the main performer (the person seen by the most views
   over the take, moving most as a tie-break; or the ID given), `"all"` everyone seen by at
   least two views for `min_frames` frames.
4. Per person: left/right labels made consistent across views over the whole take
   (`handedness.solve_take`), triangulation with the chosen method, gap filling and a
   zero-phase Butterworth (or One Euro) filter, reprojection errors against the 2D used.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.capture.frames import clock
from app.process.association import Track3D
from app.process.handedness import HandednessConfig, apply_flips, solve_take
from app.process.identity import merged_tracks, relink
from app.process.inputs import Take
from app.process.pipeline import (
    FramePipeline,
    FrameResult,
    PipelineConfig,
    build_frame_pipeline,
    performer_score,
    torch_threads,
)
from app.process.reader import frame_sets, prefetch
from app.process.reconstruct import Reconstruction, describe, triangulate_joints
from calibration.errors import TriangulumError
from calibration.timing import resample
from engines.runtimes.onnx_runtime import default_threads
from engines.skeleton import BLAZEPOSE33, Skeleton
from engines.temporal import (
    ButterworthConfig,
    GapFillConfig,
    OneEuroConfig,
    butterworth,
    fill_gaps,
    fit_cutoff,
    one_euro,
)
from engines.tracker import ViewPeople

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemporalConfig:
    """Whole-take filtering, each step optional (None): gap filling, then Butterworth or,
    if set instead, One Euro (the live filter, for comparison with live output)."""

    gap_fill: GapFillConfig | None = field(default_factory=GapFillConfig)
    butterworth: ButterworthConfig | None = field(default_factory=ButterworthConfig)
    one_euro: OneEuroConfig | None = None


@dataclass(frozen=True)
class ProcessConfig:
    """An offline run. people: "1" (main performer) or "all"; person: the ID to keep with
    people="1" (as numbered in a previous run's report); start/stop: frame set range;
    backend: BlazePose runtime ("onnxruntime", "torch"); precision: the landmark
    network's, "float" or "int8" (app.process.pipeline.PRECISIONS); backbone: an adapted
    landmark network (`triangulum adapt`'s MODEL_DIR; None: the shipped one); relink_gap_s, relink_distance_m:
    how long and how far apart a lost track may reappear and keep its ID; reid_gap_s, reid_size:
    how long a person may be away and how closely their body size must match to keep their ID
    when they come back elsewhere (`relink`; 0 s: never); min_frames: frames
    a person must be seen in to be reported with people="all"."""

    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    people: str = "1"
    person: int | None = None
    start: int = 0
    stop: int | None = None
    backend: str = "onnxruntime"
    threads: int | None = field(default_factory=default_threads)
    precision: str = "float"
    backbone: str | None = None
    relink_gap_s: float = 1.0
    relink_distance_m: float = 0.5
    reid_gap_s: float = 10.0
    reid_size: float = 0.03
    min_frames: int = 5

    def __post_init__(self) -> None:
        if self.people not in ("1", "all"):
            raise TriangulumError(f"--people must be 1 or all, not '{self.people}'.")


@dataclass
class PersonTake:
    """One person over the processed frames (F) and cameras (C).

    keypoints (C, F, J, 2), confidence (C, F, J): their 2D in every view after left/right
    correction (NaN / 0 where a view did not see them); flips: left/right group (e.g. "knee")
    -> (F, C) bool, views whose labels of that group were swapped; raw: triangulation before filtering; final: after gap filling and
    filtering, with errors against `keypoints`; seen: (F,) frames the person was associated in.
    """

    person_id: int
    keypoints: np.ndarray
    confidence: np.ndarray
    flips: dict[str, np.ndarray]
    raw: Reconstruction
    final: Reconstruction
    seen: np.ndarray
    score: float


@dataclass
class TakeResult:
    """Everything a run produced. frames: per-frame pipeline output (IDs renumbered);
    people: the chosen people; main: the main performer's ID (None if nobody was found);
    ids: track ID -> final ID; timings: seconds per stage over the run; frames_processed."""

    take: Take
    config: ProcessConfig
    frames: list[FrameResult]
    people: list[PersonTake]
    main: int | None
    tracks: dict[int, Track3D]
    timings: dict[str, float]
    skeleton: Skeleton = BLAZEPOSE33

    @property
    def times(self) -> np.ndarray:
        return np.array([f.t for f in self.frames])

    def person(self, person_id: int) -> PersonTake:
        for p in self.people:
            if p.person_id == person_id:
                return p
        raise TriangulumError(f"person {person_id} was not reconstructed (people: {[p.person_id for p in self.people]}).")


def _renumber(frames: list[FrameResult], ids: dict[int, int]) -> None:
    for fr in frames:
        fr.association.track_ids = np.array([ids[int(t)] for t in fr.association.track_ids], np.int64)


def choose_people(tracks: dict[int, Track3D], frames: int, config: ProcessConfig) -> list[int]:
    """Final IDs to reconstruct, the main performer first."""
    if not tracks:
        return []
    ranked = sorted(tracks, key=lambda i: -performer_score(tracks[i], frames))
    if config.people == "1":
        if config.person is not None:
            if config.person not in tracks:
                raise TriangulumError(f"person {config.person} is not in this take (people found: "
                                      f"{sorted(tracks)}); pick an ID from the report or the overlay videos.")
            return [config.person]
        return ranked[:1]
    return [i for i in ranked if tracks[i].frames >= config.min_frames] or ranked[:1]


def gather(frames: list[FrameResult], person_id: int, cameras: int, joints: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One person's 2D over the take -> keypoints (C, F, J, 2), confidence (C, F, J), seen (F,)."""
    F = len(frames)
    kp = np.full((cameras, F, joints, 2), np.nan)
    cf = np.zeros((cameras, F, joints))
    seen = np.zeros(F, bool)
    for f, fr in enumerate(frames):
        k = fr.association.person(person_id)
        if k is None:
            continue
        seen[f] = True
        for v, i in enumerate(fr.association.members[k]):
            if i >= 0:
                kp[v, f] = fr.views[v].keypoints[i]
                cf[v, f] = fr.views[v].confidence[i]
    return kp, cf, seen


def smooth(joints: np.ndarray, times: np.ndarray, fps: float, config: TemporalConfig) -> np.ndarray:
    """Gap filling then Butterworth or One Euro on a (F, J, 3) take, as configured."""
    out = joints
    if config.gap_fill is not None:
        out = fill_gaps(out, config.gap_fill)
    if config.one_euro is not None:
        out = one_euro(out, times, config.one_euro)
    elif config.butterworth is not None and len(out) > 1:
        out = butterworth(out, fps, config.butterworth)
    return out


def interpolate_slower_views(take: Take, sets: list[int], keypoints: np.ndarray,
                             confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A person's 2D in the take's slower cameras brought to every frame-set instant.

    sets: (F,) take frame-set indices; keypoints (C, F, J, 2), confidence (C, F, J) as gathered
    (a slower camera has 2D only in the sets it had a frame for, taken at `take.frame_times`) ->
    the same arrays with those cameras' 2D linearly interpolated in time at `take.times`, across
    at most one of the camera's own frame periods (never across a dropped frame or a loss of the
    person). Cameras at the set rate are returned as they are.
    """
    if not take.interpolated:
        return keypoints, confidence
    kp, cf = keypoints.copy(), confidence.copy()
    sets = np.asarray(sets, np.int64)
    instants = take.times[sets]
    for name in take.interpolated:
        c = take.cameras.index(name)
        when = take.frame_times[sets, c]
        real = np.isfinite(when)
        # An undetected joint has confidence 0 and NaN 2D: keep it missing, not a zero to blend.
        conf = np.where(np.isfinite(kp[c]).all(-1), cf[c], np.nan)
        gap = 1.5 / take.camera_fps[c]
        kp[c] = resample(when[real], kp[c][real], instants, gap)
        cf[c] = np.nan_to_num(resample(when[real], conf[real], instants, gap), nan=0.0)
        cf[c][~np.isfinite(kp[c]).all(-1)] = 0.0
    return kp, cf


def reconstruct_person(take: Take, frames: list[FrameResult], person_id: int, config: ProcessConfig,
                       skeleton: Skeleton, handedness: HandednessConfig,
                       timings: dict[str, float]) -> PersonTake:
    """The whole-take passes for one person (see the module docstring)."""
    rig, J = take.rig, skeleton.num_joints
    kp, cf, seen = gather(frames, person_id, len(rig), J)
    t0 = clock()
    flips = solve_take(rig, kp, cf, skeleton, handedness)
    kp, cf = apply_flips(kp, cf, flips, skeleton)
    kp, cf = interpolate_slower_views(take, [fr.index for fr in frames], kp, cf)
    t1 = clock()
    joints, used = triangulate_joints(rig, kp, cf, config.pipeline.triangulation)
    raw = describe(rig, joints, kp, cf, used)
    t2 = clock()
    times = np.array([fr.t for fr in frames])
    final = describe(rig, smooth(joints, times, take.fps, config.temporal), kp, cf, used)
    t3 = clock()
    for stage, dt in (("handedness", t1 - t0), ("triangulate", t2 - t1), ("filter", t3 - t2)):
        timings[stage] = timings.get(stage, 0.0) + dt
    return PersonTake(person_id, kp, cf, flips, raw, final, seen, 0.0)


def fit_to_take(config: ProcessConfig, take: Take) -> ProcessConfig:
    """The configuration with what depends on the take settled before any work: the
    Butterworth cutoff for its frame rate (the default capped below half the rate, with a note
    in `take.warnings`; a chosen cutoff that cannot work is a TriangulumError)."""
    bw = config.temporal.butterworth
    if bw is None:
        return config
    cutoff, note = fit_cutoff(bw.cutoff_hz, take.fps)
    if note and note not in take.warnings:
        log.warning(note)
        take.warnings.append(note)
    temporal = dataclasses.replace(config.temporal, butterworth=dataclasses.replace(bw, cutoff_hz=cutoff))
    return dataclasses.replace(config, temporal=temporal)


def make_pipeline(take: Take, config: ProcessConfig) -> FramePipeline:
    return build_frame_pipeline(take.rig, config.pipeline, config.backend, config.threads, config.precision,
                                config.backbone)


def frame_range(config: ProcessConfig, take: Take) -> tuple[int, int]:
    """The frame sets start..stop-1 that `config` asks for, within the take."""
    start = max(config.start, 0)
    stop = take.frames if config.stop is None else min(config.stop, take.frames)
    if stop <= start:
        raise TriangulumError(f"no frames to process: the take has {take.frames} frame sets and the range is "
                              f"{start}..{stop}.")
    return start, stop


def process_take(take: Take, config: ProcessConfig | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 pipeline: FramePipeline | None = None) -> TakeResult:
    """Run the per-frame pipeline over the take and the whole-take passes (module docstring).

    progress(done, total) is called after every frame set.
    """
    config = fit_to_take(config or ProcessConfig(), take)
    start, stop = frame_range(config, take)
    with torch_threads(config.threads if config.backend == "torch" else 1):
        t_init = clock()
        pipeline = pipeline or make_pipeline(take, config)
        timings: dict[str, float] = {"load_models": clock() - t_init, "decode": 0.0}
        frames: list[FrameResult] = []
        t_start = t_read = clock()
        cpu_start = time.process_time()
        for fs in prefetch(frame_sets(take, start, stop)):
            # With decoding ahead on another thread this is the time spent waiting for frames.
            timings["decode"] += clock() - t_read
            frames.append(_observed(pipeline.observe(fs), timings, progress, len(frames) + 1, stop - start))
            t_read = clock()
        timings["frames_wall"] = clock() - t_start
        timings["frames_cpu"] = time.process_time() - cpu_start  # every thread of the process
        return whole_take(take, config, pipeline, frames, timings)


def _observed(result: FrameResult, timings: dict[str, float], progress, done: int, total: int) -> FrameResult:
    for stage, dt in result.timings.items():
        timings[stage] = timings.get(stage, 0.0) + dt
    if progress is not None:
        progress(done, total)
    return result


def whole_take(take: Take, config: ProcessConfig, pipeline: FramePipeline, frames: list[FrameResult],
               timings: dict[str, float]) -> TakeResult:
    """The whole-take passes after the per-frame ones: relinking, choosing people, left/right
    repair, triangulation and filtering of each (module docstring)."""
    tracks = pipeline.people3d.all_tracks()
    ids = relink(frames, config.relink_gap_s, config.relink_distance_m, config.reid_gap_s, config.reid_size)
    _renumber(frames, ids)
    people_tracks = merged_tracks(tracks, ids)
    chosen = choose_people(people_tracks, len(frames), config)
    skeleton = pipeline.skeleton
    people = []
    for pid in chosen:
        person = reconstruct_person(take, frames, pid, config, skeleton, config.pipeline.handedness, timings)
        person.score = performer_score(people_tracks[pid], len(frames))
        people.append(person)
    if not people:
        log.warning("no person was seen by two or more cameras at once; nothing to reconstruct.")
    return TakeResult(take, config, frames, people, chosen[0] if chosen else None, people_tracks,
                      timings, skeleton)


def process_views(take: Take, views: list[list[ViewPeople]], skeleton: Skeleton,
                  config: ProcessConfig | None = None,
                  progress: Callable[[int, int], None] | None = None) -> TakeResult:
    """process_take for 2D that is already there (read from files: app.process.keypoints):
    views[k] holds frame set k's ViewPeople in rig order; the 3D keeps `skeleton`."""
    config = fit_to_take(config or ProcessConfig(), take)
    start, stop = frame_range(config, take)  # the keypoints give the take one frame set per views[k]
    pipeline = FramePipeline(take.rig, None, config.pipeline, skeleton)
    timings: dict[str, float] = {"load_models": 0.0, "decode": 0.0}
    frames: list[FrameResult] = []
    t_start, cpu_start = clock(), time.process_time()
    for k in range(start, stop):
        frames.append(_observed(pipeline.observe_views(k, float(take.times[k]), views[k]), timings, progress,
                                len(frames) + 1, stop - start))
    timings["frames_wall"] = clock() - t_start
    timings["frames_cpu"] = time.process_time() - cpu_start
    return whole_take(take, config, pipeline, frames, timings)

