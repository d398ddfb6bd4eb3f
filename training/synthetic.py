"""Synthetic multi-view detections from real motion capture: random studios and real rigs.

    gen = SyntheticViews(clips, error_model, seed=0)
    batch = gen.sample(256)    # P (B, 8, 3, 4), x (B, 8, 33, 2), conf (B, 8, 33), truth (B, 33, 3)

A sample is one mocap pose, turned about the vertical and placed in a studio of 2-8 cameras:
either a random rig (cameras on a ring 2.5-6 m from the person at 0.6-2.6 m height, looking
at the person with 0.3 m aim jitter and a little roll, horizontal field of view 45-80 deg,
1920x1080 landscape, 1080x1920 portrait or 1280x720 images) or a real rig given to the
generator (the person then stands where the rig's optical axes meet). The 2D is the projection
(pinhole; the real pipeline undistorts before triangulating, so distortion is left out) with
BlazePose's errors from `training.error_model`; joints outside the image are missing. Views
are padded to MAX_VIEWS with empty views (no joints), so every batch has one shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.camera import Camera
from calibration.rig import Rig
from calibration.units import axes_meeting_point
from training.error_model import ErrorModel, corrupt

MAX_VIEWS = 8
SIZES = ((1920, 1080), (1080, 1920), (1280, 720))


@dataclass
class Batch:
    """P (B, V, 3, 4) undistorted pixel projections; x (B, V, J, 2) px, NaN missing; conf
    (B, V, J); truth (B, J, 3) metres; failed (B, V) views given a whole-view failure;
    views (B,) real views per sample; K (B, V, 3, 3), R (B, V, 3, 3), t (B, V, 3): the
    cameras P is made of (P = K [R | t], pinhole), for heads that need the camera model."""

    P: np.ndarray
    x: np.ndarray
    conf: np.ndarray
    truth: np.ndarray
    failed: np.ndarray
    views: np.ndarray
    K: np.ndarray | None = None
    R: np.ndarray | None = None
    t: np.ndarray | None = None


def look_at(centre: np.ndarray, target: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray]:
    """World->camera R (3, 3), t (3,) of a camera at `centre` looking at `target`, Z up."""
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= max(np.linalg.norm(x), 1e-9)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    c, s = np.cos(roll), np.sin(roll)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ R
    return R, -R @ centre


def random_studio(rng: np.random.Generator, views: int, target: np.ndarray) -> Rig:
    """A random studio of `views` pinhole cameras around `target` (3,): 2.5-6 m away, 0.6-2.6 m
    high, over a quarter to a full circle, 45-80 degree fields of view, common frame sizes."""
    spread = rng.uniform(np.pi / 2, 2 * np.pi)
    angles = rng.uniform(0, spread, views) + rng.uniform(0, 2 * np.pi)
    cameras = []
    for i, a in enumerate(angles):
        r = rng.uniform(2.5, 6.0)
        centre = target + np.array([r * np.cos(a), r * np.sin(a), 0.0])
        centre[2] = rng.uniform(0.6, 2.6)
        R, t = look_at(centre, target + rng.normal(0, 0.3, 3), rng.normal(0, 0.05))
        w, h = SIZES[rng.integers(len(SIZES))]
        f = 0.5 * w / np.tan(0.5 * np.radians(rng.uniform(45, 80)))
        K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
        cameras.append(Camera(f"cam{i + 1:02d}", (w, h), K, R=R, t=t))
    return Rig(cameras)


def random_rig(rng: np.random.Generator, views: int, target: np.ndarray) -> tuple[np.ndarray, ...]:
    """P (views, 3, 4), sizes (views, 2), K, R (views, 3, 3), t (views, 3) of
    `random_studio(rng, views, target)`."""
    rig = random_studio(rng, views, target)
    P = np.stack([c.K @ np.hstack([c.R, c.t[:, None]]) for c in rig.cameras])
    return (P, np.array([c.size for c in rig.cameras], float), *_cameras(rig))


def _cameras(rig: Rig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.stack([getattr(c, k) for c in rig.cameras]) for k in ("K", "R", "t"))


def synthetic_take(rng: np.random.Generator, model: ErrorModel, clip: np.ndarray, rig: Rig,
                   other: np.ndarray | None = None, view_failure: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose-like 2D of a whole clip filmed by `rig`: clip (F, 33, 3) metres in the rig's
    world; other (F, 33, 3): a second person whose 2D a failed view may follow (default the
    clip 2 m away); view_failure: per view and frame (default the model's). -> keypoints (C, F, 33, 2) distorted px, NaN missing or outside the frame;
    confidence (C, F, 33). Errors are drawn independently per frame (real errors are
    correlated in time, so filters help less on real takes than here)."""
    other = clip + np.array([2.0, 0.0, 0.0]) if other is None else other
    clean = np.moveaxis(rig.project(clip), 0, 1)  # (F, C, J, 2)
    far = np.moveaxis(rig.project(other), 0, 1)
    x, conf, _ = corrupt(rng, model, clean, far, view_failure)
    depth = np.stack([(clip @ c.R.T + c.t)[..., 2] for c in rig.cameras], 1)  # (F, C, J)
    sizes = np.array([c.size for c in rig.cameras], float)[None, :, None]
    inside = ((x >= 0) & (x < sizes)).all(-1) & (depth > 0.1)
    x = np.where(inside[..., None], x, np.nan)
    conf = np.where(inside, conf, 0.0)
    return np.moveaxis(x, 1, 0), np.moveaxis(conf, 1, 0)


def rig_arrays(rig: Rig) -> tuple[np.ndarray, ...]:
    """P (C, 3, 4), sizes (C, 2), where the person stands (3,), and K, R (C, 3, 3), t (C, 3)
    for a real rig (P is for undistorted pixels: the synthetic 2D is pinhole)."""
    P = rig.stacked()["P"].numpy()
    sizes = np.array([c.size for c in rig.cameras], float)
    spot = axes_meeting_point(rig)
    if spot is None:
        spot = np.mean([-c.R.T @ c.t for c in rig.cameras], axis=0)
    return (P, sizes, np.array([spot[0], spot[1], 0.0]), *_cameras(rig))


def project(P: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P (B, V, 3, 4), X (B, J, 3) -> px (B, V, J, 2), depth (B, V, J)."""
    Xh = np.concatenate([X, np.ones_like(X[..., :1])], -1)
    uvw = np.einsum("bvik,bjk->bvji", P, Xh)
    return uvw[..., :2] / np.maximum(uvw[..., 2:3], 1e-6), uvw[..., 2]


class SyntheticViews:
    """Samples of `clips` ({name: (F, 33, 3)}) seen by random studios and the given real rigs
    (chosen with probability `real_rig_share`), with `model`'s errors."""

    def __init__(self, clips: dict[str, np.ndarray], model: ErrorModel, seed: int = 0,
                 rigs: list[Rig] | None = None, real_rig_share: float = 0.2,
                 views: tuple[int, int] = (2, MAX_VIEWS)):
        self.poses = np.concatenate(list(clips.values())).astype(np.float64)
        self.model = model
        self.rng = np.random.default_rng(seed)
        self.rigs = [rig_arrays(r) for r in (rigs or [])]
        self.real_rig_share = real_rig_share if self.rigs else 0.0
        self.views = views

    def _place(self, pose: np.ndarray, spot: np.ndarray) -> np.ndarray:
        a = self.rng.uniform(0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        hips = pose[[23, 24]].mean(0) * np.array([1, 1, 0])
        return (pose - hips) @ R.T + spot + np.r_[self.rng.normal(0, 0.4, 2), 0.0]

    def sample(self, batch: int, view_failure: float | None = None, views: tuple[int, int] | None = None,
               forced_failures: tuple[int, int] = (0, 0)) -> Batch:
        """`batch` samples; views: (min, max) cameras of a random rig; forced_failures (lo, hi):
        that many views of each sample get a whole-view failure for sure (test sets)."""
        lo, hi = views or self.views
        J = self.poses.shape[1]
        P = np.zeros((batch, MAX_VIEWS, 3, 4))
        sizes = np.ones((batch, MAX_VIEWS, 2))
        truth = np.zeros((batch, J, 3))
        other = np.zeros((batch, J, 3))
        n_views = np.zeros(batch, int)
        K, R, t = np.zeros((batch, MAX_VIEWS, 3, 3)), np.zeros((batch, MAX_VIEWS, 3, 3)), np.zeros((batch, MAX_VIEWS, 3))
        for b in range(batch):
            if self.rng.random() < self.real_rig_share:
                Pr, sz, spot, Kr, Rr, tr = self.rigs[self.rng.integers(len(self.rigs))]
                C = len(Pr)
            else:
                C = int(self.rng.integers(lo, hi + 1))
                spot = np.zeros(3)
                Pr, sz, Kr, Rr, tr = random_rig(self.rng, C, spot + np.array([0, 0, 1.0]))
            K[b, :C], R[b, :C], t[b, :C] = Kr, Rr, tr
            K[b, C:], R[b, C:], t[b, C:] = Kr[0], Rr[0], tr[0]
            truth[b] = self._place(self.poses[self.rng.integers(len(self.poses))], spot)
            offset = self.rng.normal(0, 1, 2)
            offset *= self.rng.uniform(0.6, 2.0) / max(np.linalg.norm(offset), 1e-9)
            other[b] = self._place(self.poses[self.rng.integers(len(self.poses))], spot) + np.r_[offset, 0]
            P[b, :C], sizes[b, :C], n_views[b] = Pr, sz, C
            P[b, C:] = Pr[0]
        clean, depth = project(P, truth)
        far, _ = project(P, other)
        forced = None
        if forced_failures[1] > 0:
            forced = np.zeros((batch, MAX_VIEWS), bool)
            for b in range(batch):
                k = int(self.rng.integers(forced_failures[0], forced_failures[1] + 1))
                forced[b, self.rng.choice(n_views[b], size=min(k, n_views[b] - 2), replace=False)] = True
        x, conf, failed = corrupt(self.rng, self.model, clean, far, view_failure, forced)
        inside = ((x >= 0) & (x < sizes[:, :, None])).all(-1) & (depth > 0.1)
        real = np.arange(MAX_VIEWS)[None, :, None] < n_views[:, None, None]
        keep = inside & real
        x = np.where(keep[..., None], x, np.nan)
        conf = np.where(keep, conf, 0.0)
        return Batch(P, x, conf, truth, failed & real[..., 0], n_views, K, R, t)
