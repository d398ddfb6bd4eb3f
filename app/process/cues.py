"""The geometry behind cross-view association (app.process.association): left/right-invariant
cue points of 2D people, their rays, ray distances, and grouping detections of several views
into people whose triangulation holds together.

    obs = observe(rig, RigRays.of(rig), views, skeleton, AssociationConfig())
    members, cues3d = consistent_members(obs, members, config, prior=track_cues)
    groups = cluster_new(obs, free, config)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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


def weighted_median(values: np.ndarray, weights: np.ndarray, min_count: int) -> float:
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
            out[v] = weighted_median(point_ray_distance(X, obs.rays[v][i]), obs.weights[v][i], min_cues)
    return out


def holds_together(obs: Observed, members: np.ndarray, config: AssociationConfig,
                   prior: np.ndarray | None = None) -> tuple[bool, np.ndarray]:
    """Whether every member of a group (at least two) lies within `member_distance` of the
    group's triangulation (and, for a track, that lies within `track_distance` of its last
    cues, `prior`) -> (verdict, cues (K, 3))."""
    seen = np.flatnonzero(members >= 0)
    if len(seen) < 2:
        return False, np.full((len(CUES), 3), np.nan)
    X = triangulate_cues(obs, members)
    d = member_distances(obs, members, X, config.min_cues)
    near = prior is None or cue_distance(X, prior) <= config.track_distance
    return bool((d[seen] <= config.member_distance).all() and near), X


def consistent_members(obs: Observed, members: np.ndarray, config: AssociationConfig,
                       prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The largest subset of a group whose members all lie within `member_distance` of its
    triangulation. -> (members (C,), cues (K, 3)); fewer than two members left gives all -1.

    The whole group is tried first (the usual case, `holds_together`). Otherwise every pair of
    members seeds a hypothesis (for a track: only those within `track_distance` of its last
    cues, `prior`), the one that most members agree with wins, and its worst members are
    dropped until the rest hold together. Dropping the worst member of the whole group
    instead goes wrong exactly when it matters: a confident wrong detection (the person
    behind, in line of sight) pulls the joint triangulation towards itself, and the right
    members then look worst."""
    nobody = np.full_like(members, -1), np.full((len(CUES), 3), np.nan)
    whole, X = holds_together(obs, members, config, prior)
    if whole:
        return members.copy(), X
    seen = np.flatnonzero(members >= 0)
    best, best_key = None, (0, 0.0)
    for i, a in enumerate(seen):
        for b in seen[i + 1:]:
            pair = np.where(np.isin(np.arange(len(members)), (a, b)), members, -1)
            Xp = triangulate_cues(obs, pair)
            if prior is not None and cue_distance(Xp, prior) > config.track_distance:
                continue
            dp = member_distances(obs, members, Xp, config.min_cues)
            agree = (members >= 0) & (dp <= config.member_distance)
            key = (int(agree.sum()), -float(dp[agree].sum()))
            if agree.sum() >= 2 and key > best_key:
                best, best_key = np.where(agree, members, -1), key
    if best is None:
        return nobody
    members = best
    while (members >= 0).sum() >= 2:
        X = triangulate_cues(obs, members)
        d = member_distances(obs, members, X, config.min_cues)
        worst = int(np.argmax(np.where(members >= 0, d, -1.0)))
        if d[worst] <= config.member_distance:
            return members, X
        members[worst] = -1
    return nobody


def cluster_new(obs: Observed, free: list[np.ndarray],
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
                    d = weighted_median(ray_ray_distance(ra, rb), w, config.min_cues)
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
        if not holds_together(obs, merged, config)[0]:
            continue
        groups.append(merged)
        new = len(groups) - 1
        for v, k in enumerate(merged):
            if k >= 0:
                group_of[(v, int(k))] = new
        for g in {ga, gb} - {None}:
            groups[g] = np.full(C, -1)  # absorbed
    return [g for g in groups if (g >= 0).sum() >= 2]


def cue_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Median distance (m) between two sets of 3D cue points (K, 3), inf if none shared."""
    d = np.linalg.norm(a - b, axis=-1)
    return float(np.median(d[np.isfinite(d)])) if np.isfinite(d).any() else np.inf
