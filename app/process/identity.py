"""Who is who over a whole take: tracks broken by a short loss re-joined, people who left and
came back recognised by body size, and the statistics of the joined people.

    ids = relink(frames, max_gap_s, max_distance, reid_gap_s, reid_size)   # track -> final ID
    people = merged_tracks(tracks, ids)
"""

from __future__ import annotations

import numpy as np

from app.process.association import Track3D
from app.process.cues import cue_distance
from app.process.pipeline import FrameResult

# Segments between the left/right-invariant cue points (association.CUES: nose, shoulders,
# elbows, wrists, hips, knees, ankles) whose lengths vary little with pose: shoulders-hips,
# hips-knees, knees-ankles (midpoints). Their sum is a body's size; arms and neck move too much.
SIZE_SEGMENTS = ((1, 4), (4, 5), (5, 6))


def body_size(cues: np.ndarray) -> np.ndarray:
    """Median lengths (m) of SIZE_SEGMENTS over frames: cues (F, K, 3) -> (S,), NaN unseen."""
    a, b = np.array(SIZE_SEGMENTS).T
    with np.errstate(all="ignore"):
        return np.nanmedian(np.linalg.norm(cues[:, a] - cues[:, b], axis=-1), axis=0)


def size_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Relative difference of two body sizes (S,) over the segments both have, inf if none."""
    ok = np.isfinite(a) & np.isfinite(b)
    return float(abs(np.log(a[ok].sum() / b[ok].sum()))) if ok.any() else np.inf


def relink(frames: list[FrameResult], max_gap_s: float, max_distance: float,
           reid_gap_s: float = 0.0, reid_size: float = 0.03) -> dict[int, int]:
    """Track ID -> final ID: a track that starts within `max_gap_s` after another one ended,
    close to where that one was last seen (median cue distance under `max_distance` m),
    continues it. With `reid_gap_s`, a person who left and came back within that many seconds
    keeps their ID when their body size (`body_size`: segment lengths over the whole track)
    matches that of exactly one person away at the time within `reid_size` (relative), and
    nobody else's nearly as well. Final IDs count from 0 in order of first appearance."""
    first: dict[int, tuple[float, np.ndarray]] = {}
    last: dict[int, tuple[float, np.ndarray]] = {}
    seen: dict[int, list[np.ndarray]] = {}
    for fr in frames:
        a = fr.association
        for k, tid in enumerate(a.track_ids.tolist()):
            first.setdefault(tid, (fr.t, a.cues[k]))
            last[tid] = (fr.t, a.cues[k])
            seen.setdefault(tid, []).append(a.cues[k])
    sizes = {tid: body_size(np.array(c)) for tid, c in seen.items()} if reid_gap_s > 0 else {}
    root: dict[int, int] = {}
    end: dict[int, tuple[float, np.ndarray]] = {}  # chain root -> where its latest track ended
    size: dict[int, np.ndarray] = {}  # chain root -> body size of its longest track
    for tid in sorted(first, key=lambda i: first[i][0]):
        t0, cues0 = first[tid]
        best, best_d = tid, max_distance
        for r, (t_end, cues_end) in end.items():
            if not 0 < t0 - t_end <= max_gap_s:
                continue
            d = cue_distance(cues_end, cues0)
            if d < best_d:
                best, best_d = r, d
        if best == tid and sizes:
            away = [r for r, (t_end, _) in end.items() if max_gap_s < t0 - t_end <= reid_gap_s]
            diffs = sorted((size_difference(sizes[tid], size[r]), r) for r in away)
            if diffs and diffs[0][0] <= reid_size and (len(diffs) == 1 or diffs[1][0] > 2 * diffs[0][0]):
                best = diffs[0][1]
        root[tid] = best
        end[best] = last[tid]
        if sizes and (best not in size or len(seen[tid]) > len(seen.get(best, []))):
            size[best] = sizes[tid]
    order = sorted(set(root.values()), key=lambda r: first[r][0])
    number = {r: n for n, r in enumerate(order)}
    return {tid: number[r] for tid, r in root.items()}


def merged_tracks(tracks: dict[int, Track3D], ids: dict[int, int]) -> dict[int, Track3D]:
    """Statistics of the relinked people: counts summed, hip extents joined."""
    out: dict[int, Track3D] = {}
    for tid, tr in sorted(tracks.items()):
        if tid not in ids:
            continue
        new = ids[tid]
        if new not in out:
            out[new] = Track3D(new, tr.cues.copy(), tr.t_seen, tr.t_first, tr.frames, tr.view_frames,
                               tr.hip_low.copy(), tr.hip_high.copy())
            continue
        m = out[new]
        m.frames += tr.frames
        m.view_frames += tr.view_frames
        m.hip_low, m.hip_high = np.minimum(m.hip_low, tr.hip_low), np.maximum(m.hip_high, tr.hip_high)
        m.t_first, m.t_seen = min(m.t_first, tr.t_first), max(m.t_seen, tr.t_seen)
    return out
