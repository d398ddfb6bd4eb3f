"""Synthetic multi-person takes from real motion capture: the benchmark of issue 17.

    crowd = crowd_take(np.random.default_rng(0), walks, error_model, CrowdConfig())
    crowd.rig, crowd.truth (N, F, 33, 3), crowd.views[f][c]: ViewPeople, crowd.fps

The public multi-person benchmarks (Shelf, Campus: ../shared/REFERENCE.md) film 3-5 people
with 3-5 calibrated cameras; none can be downloaded here, so this builds their equivalent:

- People: 3-5 walkers, each a chain of real CMU walking clips (`walk_path`), scaled to body
  sizes 0.88-1.08 of the clip's and placed in a square room so that their paths cross. Some
  leave the room for 1-3 s and come back where their walk has taken them (truth NaN meanwhile).
- Cameras: 3-5 around the room on a ring, 2-3 m high, aimed at its middle with jitter, 1920x1080
  or 1280x720, 70-90 degree fields of view, mild radial distortion.
- 2D: each person's projection with BlazePose's fitted errors (`training.error_model.corrupt`:
  per-joint noise, outliers, left/right swaps, misses at the rates measured on the real take;
  whole-view failures at `view_failure`, a view then following the nearest other person).
  Then what crowds do to a 2D detector, at rates stated in CrowdConfig: joints hidden behind
  a nearer person (inside their limbs' and torso's silhouette) are missed, taken from the
  occluder ("limb stealing") or noisier; detections mostly hidden are dropped; an overlapping
  pair yields a mixed detection (one person's legs under the other's torso); false people
  appear in single views for up to half a second; each view lists its people in random order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.camera import Camera
from calibration.rig import Rig
from engines.tracker import ViewPeople
from training.error_model import ErrorModel, corrupt, person_size
from training.synthetic import look_at

HIPS = [23, 24]
LEGS = list(range(23, 33))
FEET = [27, 28, 29, 30, 31, 32]
# Silhouette of a person for occlusion: (joint, joint, radius m) capsules.
OCCLUDERS = (
    (11, 23, 0.13), (12, 24, 0.13), (11, 24, 0.13), (12, 23, 0.13),  # torso
    (11, 13, 0.06), (13, 15, 0.05), (12, 14, 0.06), (14, 16, 0.05),  # arms
    (23, 25, 0.08), (25, 27, 0.06), (24, 26, 0.08), (26, 28, 0.06),  # legs
    (0, 0, 0.11),  # head
)


@dataclass(frozen=True)
class CrowdConfig:
    """One synthetic take. Rates are per person, view and frame unless said otherwise."""

    people: tuple[int, int] = (3, 5)
    cameras: tuple[int, int] = (3, 5)
    seconds: float = 10.0
    fps: float = 30.0
    room: float = 6.0  # side of the square floor the walkers keep to, m
    sizes: tuple[float, float] = (0.88, 1.08)
    leave: float = 0.4  # share of people who leave the room once and come back
    absent_s: tuple[float, float] = (1.0, 3.0)
    view_failure: float = 0.03
    occluded_miss: float = 0.4
    occluded_steal: float = 0.15
    hidden_drop: float = 0.6  # a detection with over 60 % of its joints hidden is dropped
    person_miss: float = 0.03
    mixed: float = 0.1  # per overlapping pair of people in a view
    ghosts: float = 0.02  # per view and frame: a false person starts, lasting 1-15 frames


@dataclass
class CrowdTake:
    """rig; truth (N, F, 33, 3) metres, NaN while a person is out of the room; views[f][c] the
    2D people of frame f in camera c; origin[f][c] (P,) the true person each of those detections
    came from (-1 a false person); fps."""

    rig: Rig
    truth: np.ndarray
    views: list[list[ViewPeople]]
    origin: list[list[np.ndarray]]
    fps: float


def _turn(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def walk_path(rng: np.random.Generator, walks: list[np.ndarray], frames: int, room: float,
              size: float, others: list[np.ndarray] = ()) -> np.ndarray:
    """One walker for `frames` frames: walking clips (F_i, 33, 3) chained end to start, each
    turned so that it ends inside the room and keeps clear of the walkers already placed
    (`others`: their hip paths (frames, 2)), blended over 6 frames at the joins -> (frames, 33, 3).
    Clearance is best effort: people pass each other closely, as in real crowds, but do not
    walk through each other."""
    half = room / 2
    for _ in range(20):
        pos = rng.uniform(-0.7 * half, 0.7 * half, 2)
        if all(np.linalg.norm(o[0] - pos) > 1.0 for o in others):
            break
    out: list[np.ndarray] = []
    total = 0
    while total < frames:
        clip = walks[rng.integers(len(walks))]
        clip = clip[rng.integers(0, max(len(clip) // 3, 1)):].astype(np.float64) * size
        clip[..., 2] -= clip[:, FEET, 2].min()
        hips = clip[:, HIPS].mean(1)
        step = hips[-1, :2] - hips[0, :2]
        base = np.arctan2(step[1], step[0])
        # Of a few random headings, one that ends inside the room with the most clearance.
        headings = rng.uniform(0, 2 * np.pi, 16)
        path = hips[:, :2] - hips[0, :2]
        n = min(len(path), frames - total)
        best, best_score = headings[0], -np.inf
        for h in headings:
            c, s_ = np.cos(h - base), np.sin(h - base)
            route = pos + path[:n] @ np.array([[c, s_], [-s_, c]])
            inside = np.abs(route[-1]).max() <= 0.85 * half
            clear = min([np.linalg.norm(o[total:total + n] - route, axis=-1).min() for o in others] + [3.0])
            score = min(clear, 0.8) + (1.0 if inside else -np.abs(route[-1]).max())
            if score > best_score:
                best, best_score = h, score
        seg = (clip - np.r_[hips[0, :2], 0.0]) @ _turn(best - base).T + np.r_[pos, 0.0]
        if out:
            prev = out[-1][-1]
            n = min(6, len(seg))
            w = (np.arange(1, n + 1) / (n + 1))[:, None, None]
            centre = seg[:n, HIPS].mean(1, keepdims=True)
            rel_prev = prev - prev[HIPS].mean(0)
            seg[:n] = centre + w * (seg[:n] - centre) + (1 - w) * rel_prev
        out.append(seg)
        total += len(seg)
        pos = seg[-1, HIPS, :2].mean(0)
    return np.concatenate(out)[:frames]


def crowd_rig(rng: np.random.Generator, cameras: int, room: float) -> Rig:
    """Cameras on a ring around the room (config in the module docstring)."""
    angles = np.arange(cameras) * 2 * np.pi / cameras + rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.25, cameras)
    rig = []
    for i, a in enumerate(angles):
        r = room / 2 + rng.uniform(1.5, 3.0)
        centre = np.array([r * np.cos(a), r * np.sin(a), rng.uniform(2.0, 3.0)])
        R, t = look_at(centre, np.array([0.0, 0.0, 0.9]) + rng.normal(0, 0.3, 3), rng.normal(0, 0.03))
        w, h = ((1920, 1080), (1280, 720))[rng.integers(2)]
        f = 0.5 * w / np.tan(0.5 * np.radians(rng.uniform(70, 90)))
        K = np.array([[f, 0, w / 2 + rng.normal(0, 5)], [0, f, h / 2 + rng.normal(0, 5)], [0, 0, 1]])
        dist = np.array([rng.uniform(-0.12, 0.02), rng.uniform(-0.02, 0.05), 0, 0, 0])
        rig.append(Camera(f"cam{i + 1:02d}", (w, h), K, dist, R, t))
    return Rig(rig)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points p (..., J, 2) from segments a-b (..., 2) -> (..., J)."""
    ab = (b - a)[..., None, :]
    ap = p - a[..., None, :]
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9), 0, 1)
    return np.linalg.norm(ap - t[..., None] * ab, axis=-1)


def occlusion(clean: np.ndarray, person_depth: np.ndarray, focal: np.ndarray) -> np.ndarray:
    """Which joints are hidden behind a nearer person, and by whom.

    clean (N, C, F, J, 2) px, person_depth (N, C, F) m (of the hips), focal (C,) px ->
    (N, C, F, J) index of the nearest person whose silhouette (OCCLUDERS) covers the joint and
    who is nearer, -1 none."""
    N = clean.shape[0]
    by = np.full(clean.shape[:-1], -1)
    by_depth = np.full(clean.shape[:-1], np.inf)
    for a in range(N):  # a occludes b
        radius_px = focal[:, None] / np.maximum(person_depth[a], 0.1)  # (C, F) px per metre
        cover = np.zeros(clean.shape[1:-1], bool)  # (C, F, J)
        for b in range(N):
            if a == b:
                continue
            cover[:] = False
            for i, j, r in OCCLUDERS:
                d = _segment_distance(clean[b], clean[a][..., i, :], clean[a][..., j, :])
                cover |= d < r * radius_px[..., None]
            nearer = (person_depth[a] < person_depth[b])[..., None] & (person_depth[a][..., None] < by_depth[b])
            hit = cover & nearer
            by[b] = np.where(hit, a, by[b])
            by_depth[b] = np.where(hit, person_depth[a][..., None], by_depth[b])
    return by


def _box(x: np.ndarray) -> np.ndarray:
    """2D boxes (..., J, 2) -> (..., 4) x0 y0 x1 y1, NaN-aware."""
    with np.errstate(invalid="ignore"):
        return np.concatenate([np.nanmin(x, -2), np.nanmax(x, -2)], -1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    area = np.prod(a[..., 2:] - a[..., :2], -1) + np.prod(b[..., 2:] - b[..., :2], -1)
    return np.nan_to_num(inter / np.maximum(area - inter, 1e-9))


def crowd_take(rng: np.random.Generator, walks: list[np.ndarray], model: ErrorModel,
               config: CrowdConfig | None = None) -> CrowdTake:
    """A synthetic multi-person take (module docstring) from walking clips (F_i, 33, 3)."""
    cfg = config or CrowdConfig()
    F = int(round(cfg.seconds * cfg.fps))
    N = int(rng.integers(cfg.people[0], cfg.people[1] + 1))
    C = int(rng.integers(cfg.cameras[0], cfg.cameras[1] + 1))
    paths: list[np.ndarray] = []
    for _ in range(N):
        paths.append(walk_path(rng, walks, F, cfg.room, rng.uniform(*cfg.sizes), [p[:, HIPS, :2].mean(1) for p in paths]))
    truth = np.stack(paths)
    for n in range(N):
        if rng.random() < cfg.leave:
            gone = int(rng.uniform(*cfg.absent_s) * cfg.fps)
            start = int(rng.integers(int(0.15 * F), max(int(0.85 * F) - gone, int(0.15 * F) + 1)))
            truth[n, start:start + gone] = np.nan
    rig = crowd_rig(rng, C, cfg.room)
    J = truth.shape[2]
    clean = np.stack([rig.project(truth[n]) for n in range(N)])  # (N, C, F, J, 2)
    depth = np.stack([np.stack([(truth[n] @ c.R.T + c.t)[..., 2] for c in rig.cameras]) for n in range(N)])
    focal = np.array([c.K[0, 0] for c in rig.cameras])
    x = np.empty_like(clean)
    conf = np.empty(clean.shape[:-1])
    centre = np.nanmean(clean, -2)  # (N, C, F, 2)
    for n in range(N):
        # The person a failed view follows: the nearest other one in the image.
        others = [m for m in range(N) if m != n]
        gap = np.linalg.norm(centre[others] - centre[n], axis=-1)
        nearest = np.array(others)[np.argmin(np.nan_to_num(gap, nan=np.inf), 0)] if others else np.full((C, F), n)
        other = np.take_along_axis(clean, nearest[None, ..., None, None], 0)[0]
        xn, cn, _ = corrupt(rng, model, clean[n].transpose(1, 0, 2, 3), other.transpose(1, 0, 2, 3), cfg.view_failure)
        x[n], conf[n] = xn.transpose(1, 0, 2, 3), cn.transpose(1, 0, 2)
    person_depth = np.nanmean(depth[..., HIPS], -1)  # (N, C, F)
    by = occlusion(clean, person_depth, focal)
    hidden = by >= 0
    u = rng.random(hidden.shape)
    miss = hidden & (u < cfg.occluded_miss)
    steal = hidden & ~miss & (u < cfg.occluded_miss + cfg.occluded_steal)
    noisy = hidden & ~miss & ~steal
    size = np.nan_to_num(person_size(clean), nan=100.0)[..., None, None]  # (N, C, F, 1, 1)
    stolen = np.take_along_axis(x, np.maximum(by, 0)[..., None], 0)  # the occluder's same joint
    x = np.where(steal[..., None], stolen, x)
    x = np.where(noisy[..., None], x + rng.normal(size=x.shape) * 0.03 * size, x)
    conf = np.where(hidden & ~steal, conf * rng.uniform(0.4, 0.9, conf.shape), conf)
    x = np.where(miss[..., None], np.nan, x)
    sizes = np.array([c.size for c in rig.cameras], float)[None, :, None, None]
    inside = ((x >= 0) & (x < sizes)).all(-1) & (depth > 0.1) & np.isfinite(truth).all(-1)[:, None]
    x = np.where(inside[..., None], x, np.nan)
    conf = np.where(inside & np.isfinite(x).all(-1), conf, 0.0)
    present = (inside.sum(-1) >= 5) & ~((hidden.mean(-1) > 0.6) & (rng.random(hidden.shape[:-1]) < cfg.hidden_drop))
    present &= rng.random(present.shape) >= cfg.person_miss
    # Mixed detections: of an overlapping pair, the farther one gets the nearer one's legs.
    boxes = _box(clean)
    for a in range(N):
        for b in range(N):
            if a == b:
                continue
            mix = (_iou(boxes[a], boxes[b]) > 0.3) & (person_depth[a] < person_depth[b]) & (rng.random((C, F)) < cfg.mixed / 2)
            x[b][..., LEGS, :] = np.where(mix[..., None, None], x[a][..., LEGS, :], x[b][..., LEGS, :])
            conf[b][..., LEGS] = np.where(mix[..., None], conf[a][..., LEGS], conf[b][..., LEGS])
    ghost_x, ghost_c = _ghosts(rng, walks, rig, cfg, F, J)
    views, origin = [], []
    for f in range(F):
        vf, of = [], []
        for c in range(C):
            kp = [x[n, c, f] for n in range(N) if present[n, c, f]] + ghost_x[c].get(f, [])
            cf = [conf[n, c, f] for n in range(N) if present[n, c, f]] + ghost_c[c].get(f, [])
            src = [n for n in range(N) if present[n, c, f]] + [-1] * len(ghost_x[c].get(f, []))
            order = rng.permutation(len(kp))
            P = len(kp)
            if P:
                vf.append(ViewPeople(np.stack(kp)[order], np.stack(cf)[order], np.arange(P, dtype=np.int64), np.ones(P)))
            else:
                vf.append(ViewPeople.empty(J))
            of.append(np.array(src, np.int64)[order] if P else np.zeros(0, np.int64))
        views.append(vf)
        origin.append(of)
    return CrowdTake(rig, truth, views, origin, cfg.fps)


def _ghosts(rng: np.random.Generator, walks: list[np.ndarray], rig: Rig, cfg: CrowdConfig, F: int, J: int):
    """False people per view: {frame: [keypoints (J, 2)]}, {frame: [confidence (J,)]}."""
    xs: list[dict[int, list]] = [{} for _ in rig.cameras]
    cs: list[dict[int, list]] = [{} for _ in rig.cameras]
    for c, cam in enumerate(rig.cameras):
        one = rig.subset([cam.name])
        for start in np.flatnonzero(rng.random(F) < cfg.ghosts):
            length = int(rng.integers(1, 16))
            clip = walks[rng.integers(len(walks))]
            k = int(rng.integers(len(clip)))
            pose = clip[k].astype(np.float64)
            pose = (pose - np.r_[pose[HIPS].mean(0)[:2], 0]) @ _turn(rng.uniform(0, 2 * np.pi)).T
            pose += np.r_[rng.uniform(-cfg.room, cfg.room, 2), 0.0]
            px = one.project(pose)[0]
            w, h = cam.size
            if ((px >= 0) & (px < (w, h))).all(-1).sum() < 5:
                continue
            visible = rng.random(J) < rng.uniform(0.4, 1.0)
            for f in range(int(start), min(int(start) + length, F)):
                jitter = rng.normal(size=px.shape) * 0.02 * float(np.nan_to_num(person_size(px), nan=100.0))
                kp = np.where(visible[:, None], px + jitter, np.nan)
                xs[c].setdefault(f, []).append(kp)
                cs[c].setdefault(f, []).append(np.where(visible, rng.uniform(0.3, 0.9, J), 0.0))
    return xs, cs


def load_walks(subjects: tuple[str, ...], step: int = 2, directory: Path | None = None) -> list[np.ndarray]:
    """The walking clips of the given CMU subjects (clips.tsv descriptions with 'walk'), at
    60 / step frames per second."""
    import csv

    from training.mocap import MOCAP_DIR, load_clips

    directory = Path(directory or MOCAP_DIR)
    with open(directory / "clips.tsv") as fh:
        walking = {r["clip"] for r in csv.DictReader(fh, delimiter="\t") if "walk" in r["description"]}
    clips = load_clips(directory, subjects=subjects, step=step)
    return [v for k, v in clips.items() if k in walking]
