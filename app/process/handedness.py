"""Left/right consistency across views: find views whose left/right labels are swapped, fix them.

A 2D detector decides left from right by appearance; seen from behind, or in a frontal view of
a symmetric pose, it sometimes labels the body mirror-wise in one view, often for a few dozen
frames, often flickering frame to frame, sometimes only for some limbs. The other views then
disagree with it and a plain triangulation averages a left knee with a right knee. Excluding
the view loses it; relabelling it recovers it.

The decision is made per *group* of left/right joint pairs (by default each pair on its own,
e.g. the knees; `grouping="part"` groups face, arms and legs) and per frame, over *flip
assignments*: sets of views whose labels of that group are swapped. Under an assignment the
group is triangulated with the relabelled views and scored by its robust mean reprojection
error in pixels (errors capped at `cap_px`, weighted by the joints' confidences). Relabelling
every view gives the same 3D points with left and right exchanged, so only assignments that
flip at most half of the views are scored and a small `flip_cost_px` per flipped view keeps
the majority's labels; which side is the body's true left is then the majority's call.

Over a whole take the assignments form a chain: `solve_take` finds the cheapest path (Viterbi)
with `switch_cost_px` per view that changes state between frames, so one ambiguous frame does
not flip a view back and forth. Live, `OnlineHandedness` makes the same choice one frame at a
time with the previous frame's assignment as the only memory.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np
import torch

from calibration import triangulation as tri
from calibration.errors import TriangulumError
from calibration.rig import Rig
from engines.skeleton import Skeleton, left_right_pairs

# Joint names without their side, per part.
PARTS: dict[str, tuple[str, ...]] = {
    "face": ("eye_inner", "eye", "eye_outer", "ear", "mouth"),
    "arms": ("shoulder", "elbow", "wrist", "pinky", "index", "thumb"),
    "legs": ("hip", "knee", "ankle", "heel", "foot_index"),
}


@dataclass(frozen=True)
class HandednessConfig:
    """Costs in pixels of mean reprojection error (see the module docstring).

    cap_px: an error above this counts as this much (a wrong joint costs the same however
    wrong). flip_cost_px: prior cost per relabelled view. switch_cost_px: cost per view that
    changes state between consecutive frames. min_confidence: joints under it are ignored.
    grouping: "pair" decides each left/right pair alone, "part" face, arms and legs together.
    """

    cap_px: float = 60.0
    flip_cost_px: float = 0.5
    switch_cost_px: float = 4.0
    min_confidence: float = 0.3
    grouping: str = "pair"

    def __post_init__(self) -> None:
        if self.grouping not in ("pair", "part"):
            raise TriangulumError(f"left/right grouping must be 'pair' or 'part', not '{self.grouping}'.")


def _base(name: str) -> str:
    """Joint name without its side: left_foot_index -> foot_index, mouth_left -> mouth."""
    return re.sub(r"^(left|right)_|_(left|right)$", "", name)


def part_pairs(skeleton: Skeleton) -> dict[str, np.ndarray]:
    """Part name -> (K, 2) (left, right) joint index pairs of that part."""
    pairs = left_right_pairs(skeleton)
    out = {}
    for part, names in PARTS.items():
        chosen = [(a, b) for a, b in pairs if _base(skeleton.joints[a]) in names]
        if chosen:
            out[part] = np.array(chosen, np.int64)
    return out


def groups(skeleton: Skeleton, grouping: str = "pair") -> dict[str, np.ndarray]:
    """Decision groups -> (K, 2) left/right index pairs: one per pair, named by the joint
    without its side ("knee", "foot_index"), or one per part (`part_pairs`)."""
    if grouping == "part":
        return part_pairs(skeleton)
    return {_base(skeleton.joints[a]): np.array([[a, b]], np.int64) for a, b in left_right_pairs(skeleton)}


def assignments(num_views: int) -> np.ndarray:
    """Every set of at most half of the views, as (S, C) bool (row 0 flips nothing).

    With an even number of views, an assignment flipping exactly half appears together with its
    complement: they explain the data equally and the temporal chain chooses.
    """
    rows = [np.zeros(num_views, bool)]
    for k in range(1, num_views // 2 + 1):
        for views in itertools.combinations(range(num_views), k):
            row = np.zeros(num_views, bool)
            row[list(views)] = True
            rows.append(row)
    return np.stack(rows)


def group_costs(rig: Rig, keypoints: np.ndarray, confidence: np.ndarray,
                group_pairs: dict[str, np.ndarray], states: np.ndarray,
                config: HandednessConfig) -> dict[str, np.ndarray]:
    """Robust mean reprojection error (px) of each group under each flip assignment.

    keypoints: (C, F, J, 2) distorted pixels, NaN missing; confidence: (C, F, J);
    group_pairs: name -> (K, 2) left/right joints; states: (S, C) bool ->
    {name: (F, S) px}, NaN where the group cannot be triangulated at all in that frame.
    All groups are triangulated in one batch (each joint on its own, so batching changes
    nothing but the number of calls).
    """
    names = list(group_pairs)
    pairs = np.concatenate([group_pairs[n] for n in names]).reshape(-1, 2)  # (Q, 2)
    owner = np.repeat(np.arange(len(names)), [len(group_pairs[n]) for n in names])
    joints = pairs.reshape(-1)  # left0, right0, left1, right1, ...
    partner = np.arange(len(joints)).reshape(-1, 2)[:, ::-1].reshape(-1)
    und = torch.as_tensor(rig.undistort(keypoints[:, :, joints]))  # (C, F, 2Q, 2)
    conf = torch.as_tensor(np.where(confidence[:, :, joints] >= config.min_confidence,
                                    confidence[:, :, joints], 0.0))
    flip = torch.as_tensor(states)[:, :, None, None]  # (S, C, 1, 1)
    x = torch.where(flip[..., None], und[None, :, :, partner], und[None])  # (S, C, F, 2Q, 2)
    w = torch.where(flip, conf[None, :, :, partner], conf[None])  # (S, C, F, 2Q)
    x = x.permute(0, 2, 3, 1, 4)  # (S, F, 2Q, C, 2)
    w = torch.where(torch.isfinite(x).all(-1), w.permute(0, 2, 3, 1), torch.zeros((), dtype=w.dtype))
    x = torch.nan_to_num(x)
    P = rig.stacked()["P"]
    X = tri.triangulate_dlt(P, x, w)  # (S, F, 2Q, 3)
    err = tri.reprojection_error(P, torch.nan_to_num(X), x).clamp(max=config.cap_px)
    ok = torch.isfinite(X).all(-1, keepdim=True) & (w > 0)
    zero = torch.zeros((), dtype=w.dtype)
    index = torch.as_tensor(np.repeat(owner, 2))
    shape = (*w.shape[:2], len(names))
    num = torch.zeros(shape, dtype=w.dtype).index_add_(-1, index, torch.where(ok, err * w, zero).sum(-1))
    den = torch.zeros(shape, dtype=w.dtype).index_add_(-1, index, torch.where(ok, w, zero).sum(-1))
    cost = torch.where(den > 0, num / den.clamp_min(1e-12), torch.full_like(num, float("nan"))).numpy()
    return {n: cost[:, :, g].T.copy() for g, n in enumerate(names)}  # each (F, S)


def viterbi(costs: np.ndarray, states: np.ndarray, config: HandednessConfig,
            switch_scale: np.ndarray | None = None) -> np.ndarray:
    """Cheapest assignment per frame: costs (F, S) px, states (S, C) -> (F,) state indices.

    Frames where the group is unseen (NaN) cost nothing, so the chain carries the state through.
    switch_scale: (F, C) factor on the switch cost of a view changing state into frame f
    (default 1 everywhere).
    """
    unary = np.nan_to_num(costs, nan=0.0) + config.flip_cost_px * states.sum(1)
    changes = (states[:, None, :] != states[None, :, :]).astype(np.float64)  # (S, S, C)
    switch = config.switch_cost_px * changes.sum(-1)  # (S, S)
    total = unary[0].copy()
    back = np.zeros(costs.shape, np.int64)
    for f in range(1, len(costs)):
        if switch_scale is not None:
            switch = config.switch_cost_px * changes @ switch_scale[f]
        step = total[:, None] + switch  # from s (rows) to s' (columns)
        back[f] = step.argmin(0)
        total = step.min(0) + unary[f]
    path = np.zeros(len(costs), np.int64)
    path[-1] = int(total.argmin())
    for f in range(len(costs) - 1, 0, -1):
        path[f - 1] = back[f, path[f]]
    return path


def solve_take(rig: Rig, keypoints: np.ndarray, confidence: np.ndarray, skeleton: Skeleton,
               config: HandednessConfig | None = None) -> dict[str, np.ndarray]:
    """Which views to relabel, per group and frame, over a whole take.

    keypoints: (C, F, J, 2) pixels of one person; confidence: (C, F, J) ->
    {group: (F, C) bool, True where that view's labels of that group are swapped}.
    """
    config = config or HandednessConfig()
    states = assignments(len(rig))
    costs = group_costs(rig, keypoints, confidence, groups(skeleton, config.grouping), states, config)
    first = {name: states[viterbi(c, states, config)] for name, c in costs.items()}
    if len(first) < 2:
        return first
    # BlazePose mislabels a view's whole body at once more often than one pair. A pair that the
    # views tell apart only weakly (the hips, close together) would keep its labels through a
    # short swap, since two switches cost more than it gains; so a second pass lowers a view's
    # switch cost at a frame by the share of the *other* groups that change state there.
    # Measured on the sample: cam02's hips in frames 72 and 77 and knees in 33 were left
    # crossed by one pass and are uncrossed by two.
    changed = {n: np.vstack([np.zeros((1, f.shape[1]), bool), f[1:] != f[:-1]]) for n, f in first.items()}
    total = np.sum(list(changed.values()), axis=0, dtype=np.float64)  # (F, C)
    others = len(changed) - 1
    return {name: states[viterbi(c, states, config, 1.0 - (total - changed[name]) / others)]
            for name, c in costs.items()}


def apply_flips(keypoints: np.ndarray, confidence: np.ndarray, flips: dict[str, np.ndarray],
                skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Relabel the flagged views: (C, F, J, 2), (C, F, J), {group: (F, C)} -> corrected copies.

    Groups are named as `groups` names them (pair names or part names)."""
    keypoints, confidence = keypoints.copy(), confidence.copy()
    known = {**part_pairs(skeleton), **groups(skeleton)}
    for name, flags in flips.items():
        cams, frames = np.nonzero(flags.T)
        for a, b in known[name]:
            ka, kb = keypoints[cams, frames, a].copy(), keypoints[cams, frames, b].copy()
            keypoints[cams, frames, a], keypoints[cams, frames, b] = kb, ka
            ca, cb = confidence[cams, frames, a].copy(), confidence[cams, frames, b].copy()
            confidence[cams, frames, a], confidence[cams, frames, b] = cb, ca
    return keypoints, confidence


class OnlineHandedness:
    """Frame-by-frame version of `solve_take` for live use (one per tracked person)."""

    def __init__(self, rig: Rig, skeleton: Skeleton, config: HandednessConfig | None = None):
        self.rig = rig
        self.skeleton = skeleton
        self.config = config or HandednessConfig()
        self.states = assignments(len(rig))
        self.groups = groups(skeleton, self.config.grouping)
        self.reset()

    def reset(self) -> None:
        self._previous: dict[str, int] = {}

    def __call__(self, keypoints: np.ndarray, confidence: np.ndarray) -> dict[str, np.ndarray]:
        """One frame: (C, J, 2), (C, J) -> {group: (C,) bool views to relabel}."""
        cfg, out = self.config, {}
        costs = group_costs(self.rig, keypoints[:, None], confidence[:, None], self.groups, self.states, cfg)
        for name, cost in costs.items():
            cost = cost[0]
            unary = np.nan_to_num(cost, nan=0.0) + cfg.flip_cost_px * self.states.sum(1)
            prev = self._previous.get(name)
            if prev is not None:
                unary = unary + cfg.switch_cost_px * (self.states != self.states[prev]).sum(1)
            best = int(unary.argmin())
            self._previous[name] = best
            out[name] = self.states[best]
        return out
