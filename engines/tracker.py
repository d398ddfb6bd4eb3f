"""Every person in every view, tracked per view: BlazePose landmarks for each of them.

    tracker = PeopleTracker(BlazePoseEstimator("onnxruntime"))   # the one multi-person tracker
    views = tracker(images)              # one synchronised frame (BGR) -> [ViewPeople] per view

Per view the tracker follows each person through the ROI their landmarks give for the next
frame (as MediaPipe follows one person) and runs the detector only every `detect_every`
frames (views take turns, so no frame pays for all of them), or in the frame after a view lost
someone, to pick up people who walked in. All tracked crops of all views then go through the
landmark network as one batch, so the cost of a frame is one landmark crop per person seen
plus an occasional detector pass.

Images are BGR as cameras and decoders deliver them: only the small network inputs are turned
into RGB, which saves converting every full frame. Detection, crops and decoding are the
estimator's (`BlazePoseEstimator.detect` / `estimate`); this module holds only the policy of
who is tracked. The ROI snapping keeps the two runtimes on the same crops (`snap_roi`).
Pose2D of each track keeps the backbone's heatmaps and features for the learned heads.

Two tracks that converge onto the same body are merged (the older one stays), and a
detection is only a new person when no track already covers it. Per-view track IDs are not
identities: which track is which person across views is decided by `association`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engines.blazepose.detection import Detection
from engines.blazepose.pipeline import (
    BODY_JOINTS,
    HIP_CENTRE,
    SCALE_POINT,
    BlazePoseEstimator,
    Pose2D,
)
from engines.blazepose.roi import Roi, roi_from_points


@dataclass(frozen=True)
class TrackerConfig:
    """Per-view multi-person tracking.

    detect_every: frames between detector passes while every view has someone tracked.
    max_people: most people tracked per view (the best-scoring are kept).
    min_pose_score: a track whose pose flag falls under this is dropped.
    cover_radius: a detection whose hip centre lies within this fraction of a track's ROI
    size from the track's hip centre is that track's person, not a new one.
    duplicate_distance: two tracks whose body keypoints are on average closer than this
    fraction of the ROI size are one person.
    """

    detect_every: int = 20
    max_people: int = 4

    min_pose_score: float = 0.5
    cover_radius: float = 0.3
    duplicate_distance: float = 0.08


@dataclass
class ViewPeople:
    """People found in one view at one frame; P people, J = 33 BlazePose body joints.

    keypoints (P, J, 2) image pixels; confidence (P, J) heatmap peak in [0, 1];
    track_ids (P,) per-view track IDs; scores (P,) pose flags; rois (P,) the crops the
    landmarks came from (empty when the 2D was read from files), which adaptation cuts again;
    world (P, J, 3) BlazePose's single-view metric 3D pose (hip-centred, camera axes; None when
    the 2D was read from files), which calibration-free capture starts from.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    track_ids: np.ndarray
    scores: np.ndarray
    rois: tuple[Roi, ...] = ()
    world: np.ndarray | None = None

    @staticmethod
    def empty(joints: int = BODY_JOINTS) -> ViewPeople:
        return ViewPeople(np.zeros((0, joints, 2)), np.zeros((0, joints)),
                          np.zeros(0, np.int64), np.zeros(0))

    def __len__(self) -> int:
        return len(self.track_ids)

    @property
    def boxes(self) -> np.ndarray:
        """(P, 4) x_min, y_min, x_max, y_max around each person's keypoints."""
        if not len(self):
            return np.zeros((0, 4))
        return np.concatenate([np.nanmin(self.keypoints, 1), np.nanmax(self.keypoints, 1)], axis=1)


@dataclass
class _Track:
    track_id: int
    roi: Roi
    age: int = 0
    pose: Pose2D | None = None


@dataclass
class _ViewState:
    tracks: list[_Track] = field(default_factory=list)
    lost: bool = True  # re-detect in the next frame


def _covered(det: Detection, tracks: list[_Track], radius: float) -> bool:
    for t in tracks:
        centre = t.pose.keypoints[HIP_CENTRE] if t.pose is not None else t.roi.centre
        if np.linalg.norm(det.keypoints[0] - centre) < radius * t.roi.size:
            return True
    return False


def _duplicates(tracks: list[_Track], distance: float) -> set[int]:
    """Indices of tracks that repeat an older track's person."""
    drop: set[int] = set()
    order = sorted(range(len(tracks)), key=lambda i: -tracks[i].age)
    for a_pos, a in enumerate(order):
        if a in drop:
            continue
        for b in order[a_pos + 1:]:
            if b in drop:
                continue
            pa, pb = tracks[a].pose, tracks[b].pose
            d = np.linalg.norm(pa.keypoints[:BODY_JOINTS] - pb.keypoints[:BODY_JOINTS], axis=-1).mean()
            if d < distance * max(tracks[a].roi.size, tracks[b].roi.size):
                drop.add(b)
    return drop


class PeopleTracker:
    """Multi-person BlazePose per view (see the module docstring). Views are indexed by
    position; call `reset()` when the set of views changes."""

    def __init__(self, estimator: BlazePoseEstimator, config: TrackerConfig | None = None):
        self.estimator = estimator
        self.config = config or TrackerConfig()
        self.reset()

    def reset(self) -> None:
        self._views: list[_ViewState] = []
        self._frame = 0
        self._next_id = 0

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def __call__(self, images: list[np.ndarray | None], scales: list[float] | None = None) -> list[ViewPeople]:
        """BGR uint8 images, one per view (None: the view has no frame now; its tracks wait)
        -> ViewPeople per view, in full-size pixels. scales: per view, the image's size as a
        fraction of the camera's full size (a JPEG decoded at 1/2: 0.5; default all 1)."""
        cfg = self.config
        scales = [1.0] * len(images) if scales is None else list(scales)
        while len(self._views) < len(images):
            self._views.append(_ViewState())
        period = max(cfg.detect_every, 1)
        present = [v for v, im in enumerate(images) if im is not None]
        detect = [v for v in present
                  if (self._frame + v * period // len(images)) % period == 0
                  or self._views[v].lost or not self._views[v].tracks]
        if detect:
            found = self.estimator.detect([images[v] for v in detect], bgr=True, scales=[scales[v] for v in detect])
            for v, people in zip(detect, found, strict=True):
                state = self._views[v]
                for det in people:
                    if len(state.tracks) >= cfg.max_people:
                        break
                    if not _covered(det, state.tracks, cfg.cover_radius):
                        roi = snap_roi(roi_from_points(det.keypoints[0], det.keypoints[1]))
                        state.tracks.append(_Track(self._new_id(), roi))
                state.lost = False
        owners = [(v, t) for v in present for t in self._views[v].tracks]
        poses = self.estimator.estimate([images[v] for v, _ in owners], [t.roi for _, t in owners],
                                        bgr=True, scales=[scales[v] for v, _ in owners])
        for (_, track), pose in zip(owners, poses, strict=True):
            track.pose = pose if pose.pose_score >= cfg.min_pose_score else None
        out = []
        for v, state in enumerate(self._views[:len(images)]):
            if images[v] is None:
                out.append(ViewPeople.empty())
                continue
            before = len(state.tracks)
            state.tracks = [t for t in state.tracks if t.pose is not None]
            state.lost = len(state.tracks) < before
            drop = _duplicates(state.tracks, cfg.duplicate_distance)
            state.tracks = [t for i, t in enumerate(state.tracks) if i not in drop]
            state.tracks.sort(key=lambda t: -t.pose.pose_score)
            del state.tracks[cfg.max_people:]
            for t in state.tracks:
                t.age += 1
                # MediaPipe's rule: the next crop comes from landmarks 33 (hips) -> 34 (scale),
                # on the crop grid (snap_roi).
                t.roi = snap_roi(roi_from_points(t.pose.keypoints[HIP_CENTRE], t.pose.keypoints[SCALE_POINT]))
            out.append(_view_people(state.tracks))
        self._frame += 1
        return out


ROI_SIZE_STEP = 1.01  # crop sizes on a 1 % geometric grid
ROI_CENTRE_STEP = 0.005  # crop centres on a grid of 0.5 % of the crop size
ROI_ANGLE_STEP = np.radians(0.5)


def snap_roi(roi: Roi) -> Roi:
    """The crop on a fixed grid of sizes, centres and angles (steps above), finer than the
    landmarks' own noise. A track's crop comes from its own landmarks of the frame before,
    and that loop amplifies any numeric difference: between ONNX Runtime and PyTorch, 0.01 px
    on the first frame grew to 2-5 px within five frames and 200 px at worst over a take.
    On the grid, two runs whose landmarks differ by a hundredth of a pixel crop exactly the
    same pixels (they differ only where a value falls on a cell border), so the difference is
    not fed back. Measured on both real takes: 0.00 px between the runtimes over the take,
    and reprojection p95 and bone-length CV within the run-to-run spread of before."""
    size = float(ROI_SIZE_STEP ** np.round(np.log(roi.size) / np.log(ROI_SIZE_STEP)))
    step = ROI_CENTRE_STEP * size
    centre = np.round(np.asarray(roi.centre, np.float64) / step) * step
    return Roi(centre, size, float(np.round(roi.rotation / ROI_ANGLE_STEP) * ROI_ANGLE_STEP))


def _view_people(tracks: list[_Track]) -> ViewPeople:
    if not tracks:
        return ViewPeople.empty()
    return ViewPeople(
        keypoints=np.stack([t.pose.keypoints[:BODY_JOINTS] for t in tracks]).astype(np.float64),
        confidence=np.stack([t.pose.confidence[:BODY_JOINTS] for t in tracks]).astype(np.float64),
        track_ids=np.array([t.track_id for t in tracks], np.int64),
        scores=np.array([t.pose.pose_score for t in tracks], np.float64),
        rois=tuple(t.pose.roi for t in tracks),
        world=np.stack([t.pose.world[:BODY_JOINTS] for t in tracks]).astype(np.float64),
    )
