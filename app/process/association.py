"""Which detection in which view is which person: cross-view association and 3D tracking.

Per-view detectors know nothing about each other: with two people in a studio, one view may
follow the performer and another the person standing behind them. This module decides from
multi-view geometry alone which 2D people are the same 3D person, so a person's 2D from a
view is used only if it belongs to that person.

The geometry uses points that do not depend on left/right labels: the nose and the midpoints
of the left/right pairs of shoulders, elbows, wrists, hips, knees and ankles (`CUES`). A view
that swaps the person's left and right (see `handedness`) still places them correctly.

Per frame (`PersonTracker.update`):

1. Tracks first. Each 3D person tracked so far claims, in every view, the detection whose
   back-projected rays pass closest to the person's last 3D cue points (Hungarian matching per
   view, gated at `track_distance` metres).
2. Triangulation consistency. A track's claimed detections are triangulated together; if a
   member lies farther than `member_distance` from the result (median point-to-ray distance
   over the cues), the largest subset that agrees with a two-view hypothesis near the track
   is kept instead (`consistent_members`), so one wrong view cannot stay or push out the
   right ones.
3. New people. Unclaimed detections are linked pairwise across views by ray-to-ray distance
   (`pair_distance`), closest pairs first, a link accepted only if the merged group has at most
   one detection per view and passes the same consistency test. A group within
   `track_distance` of a track that went unseen this frame continues that track (its claims
   failed the consistency test, typically because one view's claim was the person beside
   them); other groups seen by at least two views start new tracks with new IDs.

Tracks unseen for `max_missing_s` seconds end. IDs are never reused within a take. The cue
geometry and the grouping steps live in `app.process.cues`; this module holds the tracker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from app.process.cues import (
    CUES,
    AssociationConfig,
    Observed,
    RigRays,
    cluster_new,
    consistent_members,
    cue_distance,
    observe,
    point_ray_distance,
    weighted_median,
)
from calibration.rig import Rig
from engines.skeleton import Skeleton
from engines.tracker import ViewPeople

__all__ = ["AssociationConfig", "FrameAssociation", "PersonTracker", "Track3D"]

@dataclass
class Track3D:
    """A person followed over time. cues: (K, 3) last known 3D cue points; t_seen, t_first:
    seconds of the last and first frames that saw them; frames, view_frames: frames seen and
    views summed over them; hip_low, hip_high: (3,) bounding box of the hip midpoint so far."""

    track_id: int
    cues: np.ndarray
    t_seen: float
    t_first: float
    frames: int = 0
    view_frames: int = 0
    hip_low: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    hip_high: np.ndarray = field(default_factory=lambda: np.full(3, -np.inf))

    @property
    def extent(self) -> float:
        """Diagonal of the hip midpoint's bounding box, metres: how far the person moved
        (unlike summed steps, it does not grow with frame-to-frame noise)."""
        if not np.isfinite(self.hip_low).all():
            return 0.0
        return float(np.linalg.norm(self.hip_high - self.hip_low))


@dataclass
class FrameAssociation:
    """The people of one frame: track IDs (N,), members (N, C) detection index per view or -1,
    cues (N, K, 3) triangulated cue points."""

    track_ids: np.ndarray
    members: np.ndarray
    cues: np.ndarray

    def person(self, track_id: int) -> int | None:
        hit = np.flatnonzero(self.track_ids == track_id)
        return int(hit[0]) if len(hit) else None


@dataclass
class PersonTracker:
    """Cross-view association with 3D tracks (see the module docstring)."""

    rig: Rig
    skeleton: Skeleton
    config: AssociationConfig = field(default_factory=AssociationConfig)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.geometry = RigRays.of(self.rig)
        self.tracks: dict[int, Track3D] = {}
        self.finished: dict[int, Track3D] = {}
        self._next_id = 0

    def update(self, views: list[ViewPeople], t: float) -> FrameAssociation:
        """Associate one frame's detections (one ViewPeople per rig camera) at time t (s)."""
        cfg, C = self.config, len(self.rig)
        obs = observe(self.rig, self.geometry, views, self.skeleton, cfg)
        free = [np.ones(obs.count(v), bool) for v in range(C)]
        ids, groups, cues = [], [], []
        active = list(self.tracks.values())
        claims = np.full((len(active), C), -1)
        for v in range(C):
            if not active or not obs.count(v):
                continue
            cost = np.array([[weighted_median(
                point_ray_distance(tr.cues, obs.rays[v][i]),
                obs.weights[v][i], cfg.min_cues) for i in range(obs.count(v))] for tr in active])
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] <= cfg.track_distance:
                    claims[r, v] = c
        for k, tr in enumerate(active):
            members, X = consistent_members(obs, claims[k], cfg, tr.cues)
            if (members >= 0).sum() < 2:
                continue
            for v, i in enumerate(members):
                if i >= 0:
                    free[v][i] = False
            ids.append(tr.track_id)
            groups.append(members)
            cues.append(X)
        unseen = [tr for tr in active if tr.track_id not in ids]
        for members in cluster_new(obs, free, cfg):
            members, X = consistent_members(obs, members, cfg)
            if (members >= 0).sum() < 2:
                continue
            # A track whose claimed views did not hold together this frame (a wrong claim
            # pulled the group apart) is still the person found here if they stand where it
            # was: continue it rather than start a second ID for the same person.
            near = [(cue_distance(tr.cues, X), tr) for tr in unseen]
            near = [(d, tr) for d, tr in near if d <= cfg.track_distance]
            if near:
                tr = min(near, key=lambda n: n[0])[1]
                unseen.remove(tr)
                tid = tr.track_id
            else:
                tid = self._next_id
                self._next_id += 1
                self.tracks[tid] = Track3D(tid, X, t, t)
            ids.append(tid)
            groups.append(members)
            cues.append(X)
        ids, groups, cues = self._merge_duplicates(obs, ids, groups, cues)
        for tid, members, X in zip(ids, groups, cues, strict=True):
            self._see(self.tracks[tid], members, X, t)
        for tid in [k for k, tr in self.tracks.items() if t - tr.t_seen > cfg.max_missing_s]:
            self.finished[tid] = self.tracks.pop(tid)
        if cfg.keep_finished is not None:
            while len(self.finished) > cfg.keep_finished:
                del self.finished[min(self.finished, key=lambda k: self.finished[k].t_seen)]
        K = len(CUES)
        return FrameAssociation(
            np.array(ids, np.int64),
            np.array(groups, np.int64).reshape(-1, C),
            np.array(cues, np.float64).reshape(-1, K, 3),
        )

    def _merge_duplicates(self, obs: Observed, ids: list[int], groups: list[np.ndarray],
                          cues: list[np.ndarray]) -> tuple[list[int], list[np.ndarray], list[np.ndarray]]:
        """Groups of this frame closer than `duplicate_distance` are one person split between
        two tracks (some views went to each, e.g. when a wrong claim took a view and the
        leftovers started a track): the older track takes the other's views where it has
        none, and the younger is not seen this frame (if it began this frame, it is gone)."""
        cfg = self.config
        k = 0
        while k < len(ids):
            close = [j for j in range(len(ids)) if j != k and cue_distance(cues[k], cues[j]) < cfg.duplicate_distance]
            if not close:
                k += 1
                continue
            j = close[0]
            old, young = (k, j) if self.tracks[ids[k]].t_first <= self.tracks[ids[j]].t_first else (j, k)
            merged = np.where(groups[old] >= 0, groups[old], groups[young])
            members, X = consistent_members(obs, merged, cfg, cues[old])
            if (members >= 0).sum() >= 2:
                groups[old], cues[old] = members, X
            gone = ids[young]
            if self.tracks[gone].frames == 0:
                del self.tracks[gone]
            for lst in (ids, groups, cues):
                del lst[young]
            k = 0
        return ids, groups, cues

    def _see(self, tr: Track3D, members: np.ndarray, X: np.ndarray, t: float) -> None:
        hips = X[CUES.index(("left_hip", "right_hip"))]
        if np.isfinite(hips).all():
            tr.hip_low = np.minimum(tr.hip_low, hips)
            tr.hip_high = np.maximum(tr.hip_high, hips)
        seen = np.isfinite(X).all(-1)
        tr.cues = np.where(seen[:, None], X, tr.cues)
        tr.t_seen = t
        tr.frames += 1
        tr.view_frames += int((members >= 0).sum())

    def all_tracks(self) -> dict[int, Track3D]:
        """Every track of the take so far, running or finished, by ID."""
        return {**self.finished, **self.tracks}
