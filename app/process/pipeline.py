"""The per-frame reconstruction: one FrameSet in, people out. Live capture and offline
processing run this same object.

    pipeline = build_frame_pipeline(rig, online_config("algebraic", "one-euro"), "onnxruntime")
    pose = pipeline.process(frameset)      # PoseFrame of the main performer (PoseWorker protocol)
    pipeline.last                          # FrameResult: every person's 2D and association

`build_frame_pipeline` is the one place a FramePipeline gets its 2D models: `triangulum
capture`, the GUI and `triangulum process` all build theirs with it; `online_config` turns
the choices a live run offers (triangulation method, causal filter) into a PipelineConfig.

Stages (seconds in `timings`): "decode" is filled by whoever read the images; "pose2d"
(per-view multi-person BlazePose), "associate" (cross-view association and 3D tracking), then for the PoseFrame "handedness" (online left/right check), "triangulate"
and "filter" (One Euro, if configured). Offline processing (`app.process.take`) keeps
`last` of every frame and replaces the last three stages with whole-take passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from app.capture.frames import REDUCTIONS, Frame, FrameSet, PoseFrame, clock
from app.process.association import AssociationConfig, FrameAssociation, PersonTracker, Track3D
from app.process.handedness import HandednessConfig, OnlineHandedness, apply_flips
from app.process.reconstruct import TriangulationConfig, triangulate_joints
from calibration.errors import TriangulumError
from calibration.jpeg import jpeg_size
from calibration.rig import Rig
from engines.blazepose.pipeline import BlazePoseEstimator
from engines.skeleton import BLAZEPOSE33, Skeleton
from engines.temporal import OneEuroConfig, OneEuroFilter
from engines.tracker import PeopleTracker, TrackerConfig, ViewPeople


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the per-frame pipeline does. person: a track ID to follow as the main
    performer instead of the automatic choice."""

    triangulation: TriangulationConfig = field(default_factory=TriangulationConfig)
    tracking: TrackerConfig = field(default_factory=TrackerConfig)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    handedness: HandednessConfig = field(default_factory=HandednessConfig)
    one_euro: OneEuroConfig | None = None
    person: int | None = None
    # Compressed frames (MJPEG cameras, replayed sessions) decoded for pose at the largest
    # JPEG reduction that keeps the short side at this many px (None: full size). Measured on
    # the studio take (1088x1920 -> 1/2): a quarter less CPU, 2D 2.8 px and 3D 5.8 mm median
    # from the full-size result (benchmarks/pose_decode.py).
    pose_min_side: int | None = None


@dataclass
class FrameResult:
    """What one frame set gave. views: (C) ViewPeople in rig order (empty where a camera had
    no frame); association: the people across views; timings: seconds per stage."""

    index: int
    t: float
    views: list[ViewPeople]
    association: FrameAssociation
    timings: dict[str, float]


REDUCED_MIN_SIDE = 480  # px: `--pose-decode reduced` keeps at least this short side


def pose_image(frame: Frame, min_side: int | None) -> tuple[np.ndarray, float]:
    """The frame's pixels for pose -> (image, its size as a fraction of the full size).

    A compressed frame is decoded at the largest JPEG reduction (1, 2, 4, 8) that keeps its
    short side at `min_side` px or more (480: a 1088 x 1920 frame at 1/2, a 720p webcam in
    full). The landmark crops are 256 px, so a person filling a 1/2-size frame is still cropped
    from more pixels than the network sees. Raw frames, or min_side None: the full image.
    A frame with its decoder's planes gives them (the networks crop from them directly)."""
    if frame.planes is not None:
        return frame.planes, 1.0
    size = jpeg_size(frame.encoded) if min_side is not None and frame.encoded is not None else None
    if size is None:
        return frame.image, 1.0
    reduce = max([r for r in REDUCTIONS if min(size) / r >= min_side] or [1])
    image = frame.pixels(reduce)
    # JPEG reductions round sizes up: the exact scale is the decoded width's share.
    return image, 1.0 if reduce == 1 else image.shape[1] / size[0]


def performer_score(track: Track3D, frames: int) -> float:
    """How much a track looks like the performer: views seeing them per frame of the take so
    far, plus up to one view's worth for moving (hip extent over the take, 1 m = full)."""
    return track.view_frames / max(frames, 1) + min(track.extent, 1.0)


def person_arrays(views: list[ViewPeople], members: np.ndarray, joints: int) -> tuple[np.ndarray, np.ndarray]:
    """One person's 2D in every view: members (C,) -> keypoints (C, J, 2) NaN, confidence (C, J)."""
    kp = np.full((len(views), joints, 2), np.nan)
    cf = np.zeros((len(views), joints))
    for v, i in enumerate(members):
        if i >= 0:
            kp[v], cf[v] = views[v].keypoints[i], views[v].confidence[i]
    return kp, cf


class FramePipeline:
    """Per-frame multi-person reconstruction (see the module docstring)."""

    def __init__(self, rig: Rig, estimator, config: PipelineConfig | None = None,
                 skeleton: Skeleton = BLAZEPOSE33) -> None:
        """estimator: the 2D model (engines.blazepose), or None when the 2D comes from files
        (`observe_views` only)."""
        self.rig = rig
        self.config = config or PipelineConfig()
        self.skeleton = skeleton
        self.people2d = PeopleTracker(estimator, self.config.tracking) if estimator is not None else None
        self.people3d = PersonTracker(rig, skeleton, self.config.association)
        self.frames = 0
        self.main: int | None = None
        self.last: FrameResult | None = None
        self._handedness: dict[int, OnlineHandedness] = {}
        self._smoothers: dict[int, OneEuroFilter] = {}

    def use_rig(self, rig: Rig) -> None:
        """Reconstruct with `rig` from now on (the same cameras fitted to their sources' sizes:
        LiveCapture calls this once the sources are open); forgets the 3D tracks."""
        if rig.names != self.rig.names:
            raise TriangulumError(f"use_rig: cameras {rig.names} differ from the pipeline's {self.rig.names}.")
        self.rig = rig
        self.people3d = PersonTracker(rig, self.skeleton, self.config.association)
        self.reset()

    def reset(self) -> None:
        if self.people2d is not None:
            self.people2d.reset()
        self.people3d.reset()
        self.frames, self.main, self.last = 0, None, None
        self._handedness.clear()
        self._smoothers.clear()

    def observe(self, frameset: FrameSet) -> FrameResult:
        """2D people in every view and their association into 3D people."""
        views, seconds = self.observe2d(frameset)
        return self.observe_views(frameset.index, frameset.t, views, seconds)

    def observe2d(self, frameset: FrameSet) -> tuple[list[ViewPeople], float]:
        """The first stage: 2D people in every view (rig order) and the seconds it took. It
        depends only on the 2D tracks of the sets before, so a worker may run it on the next
        set while `process3d` finishes this one (`split`)."""
        t0 = clock()
        by_camera = {f.camera: f for f in frameset.frames}
        unknown = [c for c in by_camera if c not in self.rig.names]
        if unknown:
            raise TriangulumError(f"camera(s) {unknown} are not in the calibration (it has {self.rig.names}); "
                                  "name the sources after the calibrated cameras.")
        decoded = [pose_image(by_camera[c], self.config.pose_min_side) if c in by_camera else (None, 1.0)
                   for c in self.rig.names]
        views = self.people2d([im for im, _ in decoded], [s for _, s in decoded])
        return views, clock() - t0

    def observe_views(self, index: int, t: float, views: list[ViewPeople], pose2d_s: float = 0.0) -> FrameResult:
        """Association into 3D people of 2D people already found: views (C,) in rig order
        (from the 2D model, or read from files: app.process.keypoints)."""
        t1 = clock()
        association = self.people3d.update(views, t)
        t2 = clock()
        self.frames += 1
        self.last = FrameResult(index, t, views, association, {"pose2d": pose2d_s, "associate": t2 - t1})
        return self.last

    def choose_main(self, association: FrameAssociation) -> int | None:
        """The main performer now: the user's choice, else the best-scoring person in view,
        changed only when another scores a whole view more (so it does not flicker)."""
        if self.config.person is not None:
            return self.config.person
        tracks = self.people3d.tracks
        here = [int(i) for i in association.track_ids if int(i) in tracks]
        if not here:
            return self.main
        best = max(here, key=lambda i: performer_score(tracks[i], self.frames))
        if self.main not in here or (
            performer_score(tracks[best], self.frames) > performer_score(tracks[self.main], self.frames) + 1.0
        ):
            self.main = best
        return self.main

    def person_pose(self, result: FrameResult, track_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Online 3D of one person in this frame -> joints (J, 3), keypoints (C, J, 2) with
        left/right fixed, confidence (C, J), timings."""
        J = self.skeleton.num_joints
        k = result.association.person(track_id)
        if k is None:
            return (np.full((J, 3), np.nan), np.full((len(self.rig), J, 2), np.nan),
                    np.zeros((len(self.rig), J)), {})
        t0 = clock()
        kp, cf = person_arrays(result.views, result.association.members[k], J)
        if track_id not in self._handedness:
            self._handedness[track_id] = OnlineHandedness(self.rig, self.skeleton, self.config.handedness)
        fixer = self._handedness[track_id]
        flips = fixer(kp, cf)
        kp, cf = apply_flips(kp[:, None], cf[:, None], {p: f[None] for p, f in flips.items()}, self.skeleton)
        kp, cf = kp[:, 0], cf[:, 0]
        t1 = clock()
        joints, _ = triangulate_joints(self.rig, kp, cf, self.config.triangulation)
        t2 = clock()
        if self.config.one_euro is not None:
            if track_id not in self._smoothers:
                self._smoothers[track_id] = OneEuroFilter(self.config.one_euro)
            smoother = self._smoothers[track_id]
            joints = smoother(joints, result.t)
        t3 = clock()
        return joints, kp, cf, {"handedness": t1 - t0, "triangulate": t2 - t1, "filter": t3 - t2}

    def process(self, frameset: FrameSet) -> PoseFrame:
        """The PoseWorker protocol: the main performer's PoseFrame for one set."""
        return self.process3d(frameset, self.observe2d(frameset))

    def split(self):
        """The two stages of `process` for a pipelining worker: observe2d(frameset) -> x, then
        process3d(frameset, x) -> PoseFrame, each called in set order by one thread."""
        return self.observe2d, self.process3d

    def process3d(self, frameset: FrameSet, found: tuple[list[ViewPeople], float]) -> PoseFrame:
        """The second stage: association, left/right, triangulation and filter of one set's 2D
        (`observe2d`'s result) -> the main performer's PoseFrame."""
        result = self.observe_views(frameset.index, frameset.t, *found)
        # Per-person online state lives only as long as the person's track.
        for states in (self._handedness, self._smoothers):
            for gone in [k for k in states if k not in self.people3d.tracks]:
                del states[gone]
        main = self.choose_main(result.association)
        J = self.skeleton.num_joints
        if main is None:
            joints, kp, cf, timings = (np.full((J, 3), np.nan), np.full((len(self.rig), J, 2), np.nan),
                                       np.zeros((len(self.rig), J)), {})
        else:
            joints, kp, cf, timings = self.person_pose(result, main)
        return PoseFrame(
            index=frameset.index,
            t_capture=frameset.t,
            cameras=tuple(self.rig.names),
            joints3d=joints,
            keypoints2d=kp,
            confidences=cf,
            reprojections=self.rig.project(joints),
            timings={**result.timings, **timings},
            joint_names=self.skeleton.joints,
        )


ONLINE_FILTERS = ("none", "one-euro")


LIVE_FINISHED_TRACKS = 256


POSE_DECODES = ("full", "reduced")


def online_config(method: str = "algebraic", smoothing: str = "none", pose_decode: str = "full",
                  weights: str | None = None) -> PipelineConfig:
    """The per-frame configuration of a live run: triangulation `method` (one of
    app.process.reconstruct.METHODS), `smoothing` (one of ONLINE_FILTERS; live poses can
    only be filtered causally, so One Euro is the one filter offered) and `pose_decode`
    ("full", or "reduced": compressed frames decoded at 1/2 to 1/8 size for pose); weights:
    the learned head's checkpoint (None: the shipped one)."""
    if smoothing not in ONLINE_FILTERS:
        raise TriangulumError(f"unknown filter '{smoothing}'; choose one of {', '.join(ONLINE_FILTERS)}.")
    if pose_decode not in POSE_DECODES:
        raise TriangulumError(f"unknown pose decode '{pose_decode}'; choose one of {', '.join(POSE_DECODES)}.")
    return PipelineConfig(triangulation=TriangulationConfig(method=method, weights=weights),
                          association=AssociationConfig(keep_finished=LIVE_FINISHED_TRACKS),
                          one_euro=OneEuroConfig() if smoothing == "one-euro" else None,
                          pose_min_side=REDUCED_MIN_SIDE if pose_decode == "reduced" else None)


PRECISIONS = ("float", "int8")


def landmark_graph(precision: str):
    """The landmark network's ONNX file for `precision` (None: the float export). int8 is
    calibrated on the built-in sample's first 60 frames (made once, ~20 s, then cached)."""
    if precision == "float":
        return None
    if precision != "int8":
        raise TriangulumError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    from app.sample import sample_videos
    from engines.blazepose.quantize import ensure_quantized

    return ensure_quantized(sample_videos())


def build_frame_pipeline(rig: Rig, config: PipelineConfig | None = None, backend: str = "onnxruntime",
                         threads: int | None = None, precision: str = "float",
                         backbone: str | Path | None = None) -> FramePipeline:
    """A FramePipeline for `rig` with BlazePose on `backend` ("onnxruntime", "torch",
    "tensorrt") using `threads` CPU threads (None: the runtime's choice); precision "int8"
    runs the quantised landmark network (ONNX Runtime only); backbone: an adapted landmark
    network (`triangulum adapt`'s MODEL_DIR or file; engines.blazepose.backbone). Loads the 2D
    models, which takes a moment."""
    from engines.blazepose.backbone import resolve_backbone

    kwargs = {"threads": threads} if threads else {}
    if backbone is not None:
        if precision != "float":
            raise TriangulumError("an adapted backbone runs in float; int8 is made from the shipped network "
                                  "(drop --precision int8 or --backbone).")
        kwargs["backbone"] = resolve_backbone(backbone)
    if precision != "float":
        if backend != "onnxruntime":
            raise TriangulumError(f"precision {precision} runs on ONNX Runtime; use --backend onnxruntime.")
        kwargs["landmark_path"] = landmark_graph(precision)
    return FramePipeline(rig, BlazePoseEstimator(backend, **kwargs), config)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch threads while running the pipeline (None: leave them): its geometry is many tiny
    tensor operations, for which thread hand-offs cost more than they save (10x on a busy
    two-core machine)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n or old)
    try:
        yield
    finally:
        torch.set_num_threads(old)
