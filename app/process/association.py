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

Tracks unseen for `max_missing_s` seconds end. IDs are never reused within a take.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from calibration import triangulation as tri
from calibration.rig import Rig
from engines.skeleton import Skeleton
from engines.tracker import ViewPeople

CUES: tuple[tuple[str, ...], ...] = (
    ("nose",),
    ("left_shoulder", "right_shoulder"),
    ("left_elbow", "right_elbow"),
    ("left_wrist", "right_wrist"),
    ("left_hip", "right_hip"),
    ("left_knee", "right_knee"),
    ("left_ankle", "right_ankle"),
)


@dataclass(frozen=True)
class AssociationConfig:
    """Distances in metres (see the module docstring); min_confidence gates the 2D cues."""

    min_confidence: float = 0.3
    pair_distance: float = 0.25
    member_distance: float = 0.15
    track_distance: float = 0.35
    # Two bodies cannot have their cue points this close (median over the cues): such groups
    # are one person.
    duplicate_distance: float = 0.2
    max_missing_s: float = 0.5
    min_cues: int = 3
    # Finished tracks kept for the end-of-take passes; None keeps all (offline). A live
    # run keeps only the newest so that hours of people coming and going stay bounded.
    keep_finished: int | None = None


def cue_points(keypoints: np.ndarray, confidence: np.ndarray, skeleton: Skeleton,
               min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Left/right-invariant cue points of 2D people.

    keypoints: (..., J, 2); confidence: (..., J) -> points (..., K, 2), weights (..., K)
    (0 where a cue's joints are under `min_confidence` or missing); K = len(CUES).
    """
    pts, ws = [], []
    for names in CUES:
        idx = [skeleton.index[n] for n in names]
        pts.append(keypoints[..., idx, :].mean(-2))
        ws.append(confidence[..., idx].min(-1))
    points, weights = np.stack(pts, -2), np.stack(ws, -1)
    ok = (weights >= min_confidence) & np.isfinite(points).all(-1)
    return np.where(ok[..., None], points, np.nan), np.where(ok, weights, 0.0)


@dataclass
class Rays:
    """Back-projected image points of one view: origin (3,) camera centre, directions
    (..., 3) unit vectors in the world, NaN where the point is missing."""

    origin: np.ndarray
    directions: np.ndarray

    def __getitem__(self, i) -> Rays:
        return Rays(self.origin, self.directions[i])


@dataclass
class RigRays:
    """What turning undistorted pixels into rays needs, per camera: K^-1 (C, 3, 3), R (C, 3, 3),
    centres (C, 3); and P (C, 3, 4) for triangulating undistorted pixels."""

    K_inv: np.ndarray
    R: np.ndarray
    centres: np.ndarray
    P: torch.Tensor

    @staticmethod
    def of(rig: Rig) -> RigRays:
        s = rig.stacked()
        return RigRays(np.linalg.inv(s["K"].numpy()), s["R"].numpy(), np.stack([c.center for c in rig.cameras]), s["P"])

    def rays(self, view: int, undistorted: np.ndarray) -> Rays:
        """Rays through undistorted pixels (..., 2) of camera `view`."""
        n = np.concatenate([undistorted, np.ones(undistorted.shape[:-1] + (1,))], -1) @ self.K_inv[view].T
        d = n @ self.R[view]  # R^T n, as row vectors
        return Rays(self.centres[view], d / np.linalg.norm(d, axis=-1, keepdims=True))


def ray_ray_distance(a: Rays, b: Rays) -> np.ndarray:
    """Distance between corresponding lines of two views: (..., 3) directions -> (...,) metres."""
    cross = np.cross(a.directions, b.directions)
    norm = np.linalg.norm(cross, axis=-1)
    base = b.origin - a.origin
    skew = np.abs(cross @ base) / np.maximum(norm, 1e-12)
    # Nearly parallel rays: the distance from one origin to the other line.
    parallel = np.linalg.norm(np.cross(base, a.directions), axis=-1)
    return np.where(norm > 1e-9, skew, parallel)


def point_ray_distance(X: np.ndarray, rays: Rays) -> np.ndarray:
    """Distance of world points X (..., 3) from rays (..., 3) -> (...,) metres."""
    return np.linalg.norm(np.cross(X - rays.origin, rays.directions), axis=-1)


def _weighted_median(values: np.ndarray, weights: np.ndarray, min_count: int) -> float:
    ok = np.isfinite(values) & (weights > 0)
    if ok.sum() < min_count:
        return np.inf
    v, w = values[ok], weights[ok]
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cum, 0.5 * cum[-1])])


@dataclass
class Observed:
    """The cues of every detection of one frame, per view: undistorted pixels (P_c, K, 2),
    weights (P_c, K) and rays (P_c, K)."""

    geometry: RigRays
    points: list[np.ndarray]
    weights: list[np.ndarray]
    rays: list[Rays]

    def count(self, view: int) -> int:
        return len(self.weights[view])


def observe(rig: Rig, geometry: RigRays, views: list[ViewPeople], skeleton: Skeleton,
            config: AssociationConfig) -> Observed:
    """Cue points of every detection, undistorted in one batch, and their rays."""
    C, K = len(rig), len(CUES)
    cues = [cue_points(p.keypoints, p.confidence, skeleton, config.min_confidence) for p in views]
    most = max([len(p) for p, _ in cues] + [1])
    padded = np.full((C, most, K, 2), np.nan)
    for v, (p, _) in enumerate(cues):
        padded[v, :len(p)] = p
    und = rig.undistort(padded)
    points = [und[v, :len(p)] for v, (p, _) in enumerate(cues)]
    return Observed(geometry, points, [w for _, w in cues],
                    [geometry.rays(v, points[v]) for v in range(C)])


def triangulate_cues(obs: Observed, members: np.ndarray) -> np.ndarray:
    """3D cue points of a group of detections: members (C,) index or -1 -> (K, 3), NaN unseen."""
    C, K = len(members), len(CUES)
    x = np.zeros((K, C, 2))
    w = np.zeros((K, C))
    for v, i in enumerate(members):
        if i >= 0:
            x[:, v], w[:, v] = np.nan_to_num(obs.points[v][i]), obs.weights[v][i]
    X = tri.triangulate_dlt(obs.geometry.P, torch.as_tensor(x), torch.as_tensor(w))
    return X.numpy()


def member_distances(obs: Observed, members: np.ndarray, X: np.ndarray, min_cues: int) -> np.ndarray:
    """Median distance (m) of each member's cue rays from 3D cues X (K, 3) -> (C,), inf unseen."""
    out = np.full(len(members), np.inf)
    for v, i in enumerate(members):
        if i >= 0:
            out[v] = _weighted_median(point_ray_distance(X, obs.rays[v][i]), obs.weights[v][i], min_cues)
    return out


def consistent_members(obs: Observed, members: np.ndarray, config: AssociationConfig,
                       prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The largest subset of a group whose members all lie within `member_distance` of its
    triangulation. -> (members (C,), cues (K, 3)); fewer than two members left gives all -1.

    The whole group is tried first (the usual case). Otherwise every pair of members seeds a
    hypothesis (for a track: only those within `track_distance` of its last cues, `prior`),
    the one that most members agree with wins and is refined. Dropping the worst member
    instead goes wrong exactly when it matters: a confident wrong detection (the person
    behind, in line of sight) pulls the joint triangulation towards itself, and the right
    members then look worst."""
    members = members.copy()
    seen = np.flatnonzero(members >= 0)
    if len(seen) < 2:
        return np.full_like(members, -1), np.full((len(CUES), 3), np.nan)
    X = triangulate_cues(obs, members)
    d = member_distances(obs, members, X, config.min_cues)
    if (d[seen] <= config.member_distance).all() and (prior is None or _cue_distance(X, prior) <= config.track_distance):
        return members, X
    best, best_key = None, (0, 0.0)
    for i, a in enumerate(seen):
        for b in seen[i + 1:]:
            pair = np.where(np.isin(np.arange(len(members)), (a, b)), members, -1)
            Xp = triangulate_cues(obs, pair)
            if prior is not None and _cue_distance(Xp, prior) > config.track_distance:
                continue
            dp = member_distances(obs, members, Xp, config.min_cues)
            agree = (members >= 0) & (dp <= config.member_distance)
            key = (int(agree.sum()), -float(dp[agree].sum()))
            if agree.sum() >= 2 and key > best_key:
                best, best_key = np.where(agree, members, -1), key
    if best is None:
        return np.full_like(members, -1), np.full((len(CUES), 3), np.nan)
    members = best
    while (members >= 0).sum() >= 2:  # refine on the agreeing members
        X = triangulate_cues(obs, members)
        d = member_distances(obs, members, X, config.min_cues)
        worst = int(np.argmax(np.where(members >= 0, d, -1.0)))
        if d[worst] <= config.member_distance:
            return members, X
        members[worst] = -1
    return np.full_like(members, -1), np.full((len(CUES), 3), np.nan)


def _cluster_new(obs: Observed, free: list[np.ndarray],
                 config: AssociationConfig) -> list[np.ndarray]:
    """Bottom-up grouping of unclaimed detections; free: per view bool (P_c,) -> groups (C,)."""
    C = len(free)
    edges = []
    for a in range(C):
        for b in range(a + 1, C):
            for i in np.flatnonzero(free[a]):
                ra = obs.rays[a][i]
                for j in np.flatnonzero(free[b]):
                    rb = obs.rays[b][j]
                    w = np.minimum(obs.weights[a][i], obs.weights[b][j])
                    d = _weighted_median(ray_ray_distance(ra, rb), w, config.min_cues)
                    if d <= config.pair_distance:
                        edges.append((d, a, int(i), b, int(j)))
    edges.sort()
    group_of: dict[tuple[int, int], int] = {}
    groups: list[np.ndarray] = []
    for _, a, i, b, j in edges:
        ga, gb = group_of.get((a, i)), group_of.get((b, j))
        if ga is not None and ga == gb:
            continue
        ma = groups[ga] if ga is not None else np.where(np.arange(C) == a, i, -1)
        mb = groups[gb] if gb is not None else np.where(np.arange(C) == b, j, -1)
        if ((ma >= 0) & (mb >= 0)).any():
            continue  # a view cannot see the same person twice
        merged = np.maximum(ma, mb)
        kept, _ = consistent_members(obs, merged, config)
        if not np.array_equal(kept, merged):
            continue
        groups.append(merged)
        new = len(groups) - 1
        for v, k in enumerate(merged):
            if k >= 0:
                group_of[(v, int(k))] = new
        for g in {ga, gb} - {None}:
            groups[g] = np.full(C, -1)  # absorbed
    return [g for g in groups if (g >= 0).sum() >= 2]


def _cue_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Median distance (m) between two sets of 3D cue points (K, 3), inf if none shared."""
    d = np.linalg.norm(a - b, axis=-1)
    return float(np.median(d[np.isfinite(d)])) if np.isfinite(d).any() else np.inf


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
            cost = np.array([[_weighted_median(
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
        for members in _cluster_new(obs, free, cfg):
            members, X = consistent_members(obs, members, cfg)
            if (members >= 0).sum() < 2:
                continue
            # A track whose claimed views did not hold together this frame (a wrong claim
            # pulled the group apart) is still the person found here if they stand where it
            # was: continue it rather than start a second ID for the same person.
            near = [(_cue_distance(tr.cues, X), tr) for tr in unseen]
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
            close = [j for j in range(len(ids)) if j != k and _cue_distance(cues[k], cues[j]) < cfg.duplicate_distance]
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
