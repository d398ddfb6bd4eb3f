"""Which person is the same in every view: the candidate search before calibrating from a person.

    chosen = same_person(candidates, intrinsics, min_confidence=0.5)
    calibrate_from_person(chosen.keypoints, chosen.confidence, intrinsics, options)

A single-person 2D tracker follows whoever it found first, so with a bystander in the room one
view may follow someone else, and no calibration can then agree (calibrate_from_person refuses:
`check_support`). Here every person tracked in every view is a candidate, and the choice is
geometric, before any camera pose is known: the joints of the same person seen by two cameras
are correspondences of one epipolar geometry (an essential matrix, the intrinsics being
known), so RANSAC keeps most of them (0.8-0.9 of the joints with BlazePose-like noise); the
joints of two different people are not, and it keeps few (0.1-0.2, measured on the studio rig
with a standing and a moving bystander, 2 px noise). Real BlazePose 2D is noisier (left/right
swaps, 5-10 px), so the shares of the right pairs are lower (0.25-0.45 on the studio take at
4 px) and no fixed threshold separates right from wrong; what does is the comparison between
the choices. For every pair of views and every pair of their candidates that share enough
frames, the inlier share is computed once; the assignment of one candidate per view with the
largest sum of shares over its pairs wins, except that among those within 10 % of the best
the one whose person moves the most is taken (a person standing still is a near-degenerate
calibration target). A pair of the chosen views whose share is under half the median of the
chosen pairs' shares disagrees: the choice is then reported as not consistent (and
calibrate_from_person's own support check decides). Afterwards, each view's other tracks that
do not overlap the chosen one in time and agree as well with the chosen people of the other
views are added to it (a performer's track that broke into several after an occlusion).

Pure geometry on arrays, as calibration/from_person.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.errors import TriangulumError
from calibration.from_person import normalised, relative_pose
from calibration.rig import Rig

MAX_ASSIGNMENTS = 200_000  # exhaustive search up to this many combinations, else coordinate ascent


@dataclass
class Candidates:
    """The people tracked in one view: keypoints (K, F, J, 2) px NaN where absent, confidence
    (K, F, J), ids (K,) the tracker's IDs; world (K, F, J, 3) their single-view metric 3D poses
    (optional; calibration-free capture needs them)."""

    keypoints: np.ndarray
    confidence: np.ndarray
    ids: np.ndarray
    world: np.ndarray | None = None


@dataclass
class Chosen:
    """keypoints (C, F, J, 2), confidence (C, F, J): the chosen person in every view;
    tracks: per view the candidate IDs used; agreement: (C, C) inlier share between the chosen
    candidates (NaN: no common frames); consistent: every pair agrees; notes: what was decided;
    world (C, F, J, 3): the chosen person's single-view 3D poses where the candidates had them."""

    keypoints: np.ndarray
    confidence: np.ndarray
    tracks: list[list[int]]
    agreement: np.ndarray
    consistent: bool
    notes: list[str] = field(default_factory=list)
    world: np.ndarray | None = None


def _pair_share(xa: np.ndarray, xb: np.ndarray, ok: np.ndarray, threshold: float, least: int,
                fundamental: bool = False) -> float:
    """Share of RANSAC inliers of one essential matrix (normalised points) over the joints both
    see, or inliers of one fundamental matrix (pixels; threshold in px) over all the take's
    joints (NaN: too few in common)."""
    if ok.sum() < least:
        return np.nan
    if fundamental:
        # A fundamental matrix (7 degrees of freedom) fits a good share of a few points of
        # anyone: count its inliers over the take instead (a person barely in view cannot
        # outscore the one who is).
        F, mask = cv2.findFundamentalMat(xa[ok], xb[ok], cv2.FM_RANSAC, threshold, 0.999, 2000)
        return float(mask.sum() / len(ok)) if F is not None and mask is not None else 0.0
    _, _, mask = relative_pose(xa[ok], xb[ok], threshold)
    return float(mask.mean())


def _motion(keypoints: np.ndarray, valid: np.ndarray) -> float:
    """How much a candidate moves: spread over time of its joints' mean, in its own size."""
    pts = np.where(valid[..., None], keypoints, np.nan)
    centre = np.nanmean(pts, axis=1)  # (F, 2)
    size = np.nanmedian(np.nanmax(pts, 1) - np.nanmin(pts, 1))
    if not np.isfinite(size) or size <= 0:
        return 0.0
    return float(np.nansum(np.nanstd(centre, axis=0)) / size)


def same_person(views: list[Candidates], intrinsics: Rig, min_confidence: float = 0.5, ransac_px: float = 4.0,
                agree: float = 0.5, least: int = 30, intrinsics_known: bool = True) -> Chosen:
    """agree: a chosen pair disagrees under this share of the chosen pairs' median share;
    intrinsics_known: False scores pairs with fundamental matrices on the (undistorted)
    pixels instead of essential matrices: with guessed focal lengths (calibration-free) an
    essential matrix fits the same person poorly and the shares stop telling people apart."""
    # One person per view, the same in all (module docstring). views: per camera of
    # `intrinsics`, in its order, that view's candidates.
    C = len(intrinsics)
    if len(views) != C:
        raise TriangulumError(f"candidates for {len(views)} views, but the intrinsics have {C} cameras.")
    empty = [intrinsics.names[c] for c, v in enumerate(views) if not len(v.ids)]
    if empty:
        raise TriangulumError(f"camera(s) {', '.join(empty)}: nobody was tracked; the person must be visible in every "
                              "camera.")
    F, J = views[0].keypoints.shape[1:3]
    focal = np.mean([[c.K[0, 0], c.K[1, 1]] for c in intrinsics.cameras])
    threshold = ransac_px / focal
    norm, valid = [], []
    if not intrinsics_known:
        threshold = ransac_px
    for c, v in enumerate(views):
        one = intrinsics.subset([intrinsics.names[c]])
        pts = v.keypoints.reshape(1, -1, J, 2)
        pts = normalised(one, pts) if intrinsics_known else one.undistort(pts)
        norm.append(pts[0].reshape(len(v.ids), F * J, 2))
        valid.append(((v.confidence >= min_confidence) & np.isfinite(v.keypoints).all(-1)).reshape(len(v.ids), F * J))
    # Inlier share of every pair of candidates of every pair of views.
    share: dict[tuple[int, int], np.ndarray] = {}
    for a, b in itertools.combinations(range(C), 2):
        s = np.full((len(views[a].ids), len(views[b].ids)), np.nan)
        for i, k in itertools.product(range(s.shape[0]), range(s.shape[1])):
            s[i, k] = _pair_share(norm[a][i], norm[b][k], valid[a][i] & valid[b][k], threshold, least,
                                  not intrinsics_known)
        share[(a, b)] = s
    motion = [np.array([_motion(v.keypoints[i], valid[c][i].reshape(F, J)) for i in range(len(v.ids))])
              for c, v in enumerate(views)]
    best = _best_assignment(share, motion, [len(v.ids) for v in views])
    chosen_kp = np.stack([views[c].keypoints[best[c]] for c in range(C)])
    chosen_cf = np.stack([views[c].confidence[best[c]] for c in range(C)])
    has_world = all(v.world is not None for v in views)
    chosen_w = np.stack([views[c].world[best[c]] for c in range(C)]) if has_world else None
    tracks = [[int(views[c].ids[best[c]])] for c in range(C)]
    agreement = np.full((C, C), np.nan)
    for (a, b), s in share.items():
        agreement[a, b] = agreement[b, a] = s[best[a], best[b]]
    pairs = agreement[np.triu_indices(C, 1)]
    bar = agree * float(np.nanmedian(pairs)) if np.isfinite(pairs).any() else 0.0
    consistent = bool(np.all(np.nan_to_num(agreement, nan=1.0) >= bar))
    notes = []
    multi = [intrinsics.names[c] for c, v in enumerate(views) if len(v.ids) > 1]
    if multi:
        notes.append(f"several people tracked in {', '.join(multi)}; chose in each the one that is geometrically the "
                     f"same person in every view (tracks {', '.join(f'{n}:{t[0]}' for n, t in zip(intrinsics.names, tracks, strict=True))}).")
    # Fragments: other tracks of a view, disjoint in time from what it has, that agree with the others.
    for c, v in enumerate(views):
        for i in range(len(v.ids)):
            if i == best[c]:
                continue
            present = np.isfinite(v.keypoints[i]).all(-1).any(-1)
            have = np.isfinite(chosen_kp[c]).all(-1).any(-1)
            if not present.any() or (present & have).any():
                continue
            votes = [share[(min(c, o), max(c, o))][(i, best[o]) if c < o else (best[o], i)] for o in range(C) if o != c]
            votes = [s for s in votes if np.isfinite(s)]
            if votes and min(votes) >= bar:
                chosen_kp[c, present], chosen_cf[c, present] = v.keypoints[i, present], v.confidence[i, present]
                if chosen_w is not None:
                    chosen_w[c, present] = v.world[i, present]
                tracks[c].append(int(v.ids[i]))
                notes.append(f"{intrinsics.names[c]}: track {int(v.ids[i])} continues the same person.")
    if not consistent:
        bad = [f"{intrinsics.names[a]}-{intrinsics.names[b]} {agreement[a, b]:.0%}"
               for a, b in itertools.combinations(range(C), 2) if agreement[a, b] < bar]
        notes.append("no choice of people agrees in every pair of views (inlier shares " + ", ".join(bad) + "); the "
                     "best one is used and the calibration's own checks decide.")
    return Chosen(chosen_kp, chosen_cf, tracks, agreement, consistent, notes, chosen_w)


def _best_assignment(share: dict[tuple[int, int], np.ndarray], motion: list[np.ndarray],
                     counts: list[int]) -> list[int]:
    """One candidate per view: the largest sum of inlier shares, then (within 10 % of it) the
    most motion."""
    C = len(counts)

    def total(assign) -> float:
        return float(sum(np.nan_to_num(share[(a, b)][assign[a], assign[b]]) for a, b in itertools.combinations(range(C), 2)))

    def moves(assign) -> float:
        return float(sum(motion[c][assign[c]] for c in range(C)))

    if np.prod(counts, dtype=float) <= MAX_ASSIGNMENTS:
        options = list(itertools.product(*(range(n) for n in counts)))
    else:  # coordinate ascent on the total from the most moving people, then its neighbours
        assign = [int(np.argmax(m)) for m in motion]
        for _ in range(10):
            before = list(assign)
            for c in range(C):
                assign[c] = max(range(counts[c]), key=lambda i: total(assign[:c] + [i] + assign[c + 1:]))
            if assign == before:
                break
        options = [tuple(assign)] + [tuple(assign[:c] + [i] + assign[c + 1:]) for c in range(C) for i in range(counts[c])]
    totals = np.array([total(o) for o in options])
    best = options[int(np.argmax(totals))]

    # The motion tie-break chooses between whole hypotheses (another person in every view that
    # has more than one), never a mix: with many views, one view switched to another person
    # costs only a few of many pairs, stays within 10 % of the best total, and would win if
    # that person moved more.
    several = [c for c in range(C) if counts[c] > 1]
    near = [o for o, t in zip(options, totals, strict=True)
            if t >= 0.9 * totals.max() and (o == best or all(o[c] != best[c] for c in several))]
    return list(max(near, key=lambda o: (moves(o), total(o))))
