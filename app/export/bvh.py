"""BVH export: a skeleton hierarchy with a fixed rest pose, joint rotations solved per frame.

Conventions of the written file:
- Y up, the cyclic axis change TRC uses: BVH (X, Y, Z) = world (Y, Z, X). Units metres by
  default (Blender's importer reads BVH units as metres at scale 1) or centimetres.
- Rest pose: a T-pose (Y up, facing +Z, the person's left towards +X) with each bone as long
  as the person's median length of that bone over the take. The root (pelvis) has OFFSET 0
  and six channels, so its position channels are its absolute position.
- Rotations: three Euler channels per joint, "Zrotation Xrotation Yrotation" (default) or
  "Xrotation Yrotation Zrotation"; the local matrix is the product in channel order.

Solving rotations from positions. A joint with one child gets the smallest rotation (swing)
that turns the child's rest direction onto the observed one, starting from its parent's
orientation (no twist of its own). A joint with several children gets a full rotation from a
two-vector frame: its first child fixes the bone direction exactly and a second child, the one
most nearly perpendicular in the rest pose, fixes the twist about it. Children other than the
first are attached through a zero-length link joint (``<joint>_to_<child>``) with its own swing,
so every bone direction is reproduced exactly even though e.g. the spine does not keep a fixed
angle to the hip line. The one exception is a derived midpoint joint (BlazePose's pelvis and
thorax): both of its sources lie exactly opposite each other, so both attach directly.

Missing data: joints missing in the whole take are left out with everything below them; in a
frame where a joint's target is missing its local rotation (and the root's position) is held
from the nearest frame that had it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from app.export.conventions import check_take, text_rows, world_to_yup
from calibration.errors import TriangulumError
from engines.skeleton import DERIVED, Skeleton, extend, tpose_direction

_UNITS = {"m": 1.0, "cm": 100.0}
_ORDERS = {"ZXY": ("Zrotation", "Xrotation", "Yrotation"), "XYZ": ("Xrotation", "Yrotation", "Zrotation")}
_EPS = 1e-9


@dataclass(frozen=True)
class BvhConfig:
    """units: "m" or "cm"; rotation_order: "ZXY" or "XYZ" (channel order of every joint)."""

    units: str = "m"
    rotation_order: str = "ZXY"


@dataclass(frozen=True)
class BvhNode:
    """One BVH joint. at: tree joint it sits on; offset: (3,) from its parent, metres Y-up;
    primary/secondary: tree joints that orient it (-1 none) with their unit rest directions
    aim/twist (3,); end: (3,) End Site offset or None."""

    name: str
    parent: int
    at: int
    offset: np.ndarray
    primary: int = -1
    secondary: int = -1
    aim: np.ndarray | None = None
    twist: np.ndarray | None = None
    end: np.ndarray | None = None


@dataclass(frozen=True)
class BvhMotion:
    """nodes in file (depth-first) order; local: (F, N, 3, 3) rotations; root: (F, 3) metres."""

    nodes: tuple[BvhNode, ...]
    local: np.ndarray
    root: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _median_lengths(points: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(F, T, 3) tree points -> (T,) median length of the bone ending at each joint (NaN root)."""
    out = np.full(points.shape[1], np.nan)
    for parent, child in skeleton.tree_bones():
        lengths = np.linalg.norm(points[:, child] - points[:, parent], axis=-1)
        if (~np.isnan(lengths)).any():
            out[child] = np.nanmedian(lengths)
    return out


def build_hierarchy(points: np.ndarray, skeleton: Skeleton) -> tuple[BvhNode, ...]:
    """BVH nodes for a take given as tree points (F, T, 3), metres, Y-up; depth-first order."""
    lengths = _median_lengths(points, skeleton)
    names = skeleton.tree_names
    root = skeleton.root
    if np.isnan(points[:, root]).any(axis=-1).all():
        raise TriangulumError(
            f"Cannot write BVH: the root joint {names[root]} is missing in every frame."
        )

    def kept_children(j: int) -> list[int]:
        return [c for c in skeleton.children(j) if np.isfinite(lengths[c]) and lengths[c] > _EPS]

    rest = {c: tpose_direction(names[c]) for c in range(len(names)) if c != root}
    nodes: list[BvhNode] = []

    def add(node: BvhNode) -> int:
        nodes.append(node)
        return len(nodes) - 1

    def visit(j: int, parent: int, offset: np.ndarray) -> None:
        children = kept_children(j)
        direct = children[:1]
        sources = [skeleton.index[s] for s in DERIVED.get(names[j], ())]
        if j >= skeleton.num_joints and len(sources) == 2 and set(sources) <= set(children):
            direct = sources
            rest[sources[1]] = -rest[sources[0]]  # exactly opposite by construction
            lengths[sources[1]] = lengths[sources[0]]
        primary = direct[0] if direct else -1
        others = [c for c in children if c not in direct]
        secondary = -1
        if others:
            dots = [abs(float(rest[c] @ rest[primary])) for c in others]
            if min(dots) < 0.99:
                secondary = others[int(np.argmin(dots))]
        end = None
        if not children:
            own = offset if np.linalg.norm(offset) > _EPS else np.array([0.0, 0.1, 0.0])
            end = 0.25 * own  # cosmetic: gives the leaf bone a visible tail in viewers
        me = add(
            BvhNode(
                names[j], parent, j, offset, primary, secondary,
                aim=rest[primary] if primary >= 0 else None,
                twist=rest[secondary] if secondary >= 0 else None,
                end=end,
            )
        )
        for c in children:
            child_offset = lengths[c] * rest[c]
            if c in direct:
                visit(c, me, child_offset)
            else:
                link = add(BvhNode(f"{names[j]}_to_{names[c]}", me, j, np.zeros(3), c, aim=rest[c]))
                visit(c, link, child_offset)

    visit(root, -1, np.zeros(3))
    return tuple(nodes)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations turning unit vectors a onto the directions of b: (F, 3) x2 -> (F, 3, 3)."""
    a, b = _unit(a), _unit(b)
    v = np.cross(a, b)
    c = np.einsum("fi,fi->f", a, b)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    k = k - k.transpose(0, 2, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.eye(3) + k + (k @ k) / (1.0 + c)[:, None, None]
    flip = c < -1 + 1e-12
    if flip.any():  # opposite vectors: half turn about any axis perpendicular to a
        helper = np.where(np.abs(a[flip, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
        u = _unit(np.cross(a[flip], helper))
        r[flip] = 2 * np.einsum("fi,fj->fij", u, u) - np.eye(3)
    return r


def _frame(p: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal frames (columns p, s-perp, p x s): (F, 3) x2 -> (F, 3, 3), ok (F,)."""
    e1 = _unit(p)
    s_perp = s - np.einsum("fi,fi->f", s, e1)[:, None] * e1
    norm = np.linalg.norm(s_perp, axis=-1)
    ok = norm > 1e-6 * np.linalg.norm(s, axis=-1)
    e2 = s_perp / np.where(ok, norm, 1.0)[:, None]
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1), ok


def _hold(values: np.ndarray, ok: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Replace entries where not ok by the last ok one (the first ok one before any): (F, ...)."""
    if not ok.any():
        return np.broadcast_to(default, values.shape).copy()
    idx = np.where(ok, np.arange(len(ok)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = int(np.argmax(ok))
    return values[idx]


def solve_motion(joints: np.ndarray, skeleton: Skeleton) -> BvhMotion:
    """Hierarchy and per-frame local rotations for a take (F, J, 3) world metres."""
    points = world_to_yup(extend(joints, skeleton))
    nodes = build_hierarchy(points, skeleton)
    frames = len(points)
    eye = np.broadcast_to(np.eye(3), (frames, 3, 3))
    glob = np.zeros((frames, len(nodes), 3, 3))
    local = np.zeros_like(glob)
    for n, node in enumerate(nodes):
        g_parent = glob[:, node.parent] if node.parent >= 0 else eye
        if node.primary < 0:
            local[:, n] = eye
            glob[:, n] = g_parent
            continue
        found = np.full((frames, 3, 3), np.nan)
        p_rest = node.aim
        p_obs = points[:, node.primary] - points[:, node.at]
        ok_p = np.isfinite(p_obs).all(-1) & (np.linalg.norm(p_obs, axis=-1) > _EPS)
        p_obs = np.where(ok_p[:, None], p_obs, 1.0)
        ref = g_parent
        if node.secondary >= 0:
            s_obs = points[:, node.secondary] - points[:, node.at]
            ok_s = ok_p & np.isfinite(s_obs).all(-1)
            f_obs, ok_frame = _frame(p_obs, np.where(ok_s[:, None], s_obs, 1.0))
            f_rest, _ = _frame(p_rest[None], node.twist[None])
            ok_s &= ok_frame
            g_full = f_obs @ f_rest[0].T
            found[ok_s] = g_parent[ok_s].transpose(0, 2, 1) @ g_full[ok_s]
            # without the twist reference, keep the twist of the last frame that had it
            ref = g_parent @ _hold(found, ok_s, np.eye(3))
            ok_p &= ~ok_s
        swung = _swing(ref @ p_rest, p_obs) @ ref
        found[ok_p] = g_parent[ok_p].transpose(0, 2, 1) @ swung[ok_p]
        have = ~np.isnan(found).any(axis=(1, 2))
        local[:, n] = _hold(found, have, np.eye(3))
        glob[:, n] = g_parent @ local[:, n]
    root_pos = points[:, nodes[0].at]
    root_ok = np.isfinite(root_pos).all(-1)
    return BvhMotion(nodes, local, _hold(root_pos, root_ok, np.zeros(3)))


def _euler(local: np.ndarray, order: str) -> np.ndarray:
    """(F, N, 3, 3) rotations -> (F, N, 3) degrees in channel order, unwrapped over frames."""
    flat = local.reshape(-1, 3, 3)
    with warnings.catch_warnings():
        # Near gimbal lock any split of the angles is exact; scipy warns all the same.
        warnings.filterwarnings("ignore", message="Gimbal lock")
        angles = Rotation.from_matrix(flat).as_euler(order, degrees=True)
    return np.unwrap(angles.reshape(local.shape[:2] + (3,)), period=360.0, axis=0)


def _fmt(values) -> str:
    return " ".join(f"{v + 0.0:.6f}" for v in values)  # + 0.0 turns -0.0 into 0.0


def write_bvh(
    path: str | Path,
    joints: np.ndarray,
    skeleton: Skeleton,
    fps: float,
    config: BvhConfig = BvhConfig(),
) -> Path:
    """Write a take (F, J, 3) world metres as BVH. Returns the path."""
    joints = check_take(joints, skeleton, fps)
    if config.units not in _UNITS or config.rotation_order not in _ORDERS:
        raise TriangulumError(
            f"BVH units must be one of {list(_UNITS)} and rotation order one of {list(_ORDERS)}; "
            f"got {config.units!r}, {config.rotation_order!r}."
        )
    scale = _UNITS[config.units]
    channels = " ".join(_ORDERS[config.rotation_order])
    motion = solve_motion(joints, skeleton)
    nodes = motion.nodes
    children: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for i, node in enumerate(nodes):
        if node.parent >= 0:
            children[node.parent].append(i)

    lines = ["HIERARCHY"]

    def emit(i: int, depth: int) -> None:
        pad, node = "\t" * depth, nodes[i]
        if i == 0:
            lines.append(f"ROOT {node.name}")
        else:
            lines.append(f"{pad}JOINT {node.name}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {_fmt(node.offset * scale)}")
        if i == 0:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {channels}")
        else:
            lines.append(f"{pad}\tCHANNELS 3 {channels}")
        for c in children[i]:
            emit(c, depth + 1)
        if node.end is not None:
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{"])
            lines.extend([f"{pad}\t\tOFFSET {_fmt(node.end * scale)}", f"{pad}\t}}"])
        lines.append(pad + "}")

    emit(0, 0)
    angles = _euler(motion.local, config.rotation_order)
    lines += ["MOTION", f"Frames: {len(joints)}", f"Frame Time: {1.0 / fps:.8f}"]
    table = np.concatenate([motion.root * scale, angles.reshape(len(joints), -1)], axis=1)
    lines += text_rows(table + 0.0, " ")  # + 0.0 turns -0.0 into 0.0
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
