"""A humanoid character rig driven by a take: what BVH and .blend exports animate.

The rig is the standard humanoid chain that retargeting tools and Blender's mirror tools
know, named as Mixamo names it (``LeftUpLeg`` <-> ``RightUpLeg``: Blender flips Left/Right)::

    Hips -> Spine -> Spine1 -> Neck -> Head
                     Spine1 -> LeftShoulder -> LeftArm -> LeftForeArm -> LeftHand   (and Right)
    Hips -> LeftUpLeg -> LeftLeg -> LeftFoot -> LeftToeBase                          (and Right)

Where each joint sits, from the take's joints (any skeleton with hips, shoulders, knees,
ankles, elbows and wrists; feet, hands and head use what the skeleton has):
  Hips the hip midpoint; Spine and Spine1 a third and two thirds of the way to the shoulder
  midpoint, where Neck and both clavicles (LeftShoulder) start; Head halfway from there to
  the head centre (the ears' midpoint, else the nose); the head's end a little above the
  centre (or the head top). Arms and legs sit on the joints of the same name; LeftToeBase on
  the ball of the foot (three quarters of the way from heel to toe tip) and its end on the toe
  tip (a skeleton without foot points gets a foot of typical size, flat, facing where the
  hips face); the hand's end between the index and pinky knuckles.

Bone lengths are the take's median lengths, the same on both sides (the mean of the left and
right medians): the person is symmetric, and Blender's mirror tools need a symmetric rig.
The rest pose is a T-pose (facing +Z, the person's left +X, Y up) standing with its lowest
point on the floor.

Rotations come from positions. Each joint aims its bone exactly at its child; its twist about
the bone comes from a second point when that point is off the bone's line (the hip line for
the pelvis, the shoulder line for the chest, the ears for neck and head, the wrist for the
upper arm (the elbow's bend), the palm for forearm and hand, the ankle for the thigh (the knee's
bend), the foot for the shank) and is otherwise held from the last frame that had it. With
rigid lengths the joints land where the take has them up to each chain's length mismatch.

Feet on the floor: `app.export.floor.plant_feet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.errors import TriangulumError
from engines.skeleton import Skeleton

# Rest directions: Y up, the person facing +Z, their left +X.
_X, _Y, _Z = np.eye(3)
_DOWN_FORWARD = np.array([0.0, -0.45, 1.0]) / np.linalg.norm([0.0, -0.45, 1.0])


@dataclass(frozen=True)
class RigJoint:
    """name; parent index (-1 root); at: the take point it sits on; aim: the point its bone
    points at (its child's point or its end); twist: the point that fixes the roll about the
    bone (None: no roll of its own); rest_twist: where that point lies, off the bone, in the
    rest pose (a unit vector perpendicular to the bone); rest: unit direction of the bone from
    this joint to `aim` in the rest pose."""

    name: str
    parent: int
    at: str
    aim: str
    rest: np.ndarray
    twist: str | None = None
    rest_twist: np.ndarray | None = None


# Rig joint -> the take joint it sits on, where the take has that joint itself (the others sit
# on points made from several: the spine, neck, head, clavicles, ball of the foot). The toe's
# End Site sits on the foot index (BlazePose) or big toe.
SITS_ON = {f"{s}{rig}": f"{s.lower()}_{joint}" for rig, joint in (
    ("Arm", "shoulder"), ("ForeArm", "elbow"), ("Hand", "wrist"), ("UpLeg", "hip"), ("Leg", "knee"),
    ("Foot", "ankle")) for s in ("Left", "Right")}

_SHARED = {"neck"}  # points both sides use as they are (the clavicles start where the neck does)


def _side(s: str, spec: list[tuple]) -> list[tuple]:
    """One side's joints: names and "*" parents get the side, points its prefix, rest
    directions their mirror."""
    sign = 1.0 if s == "Left" else -1.0

    def point(p: str) -> str:
        return p if p in _SHARED else f"{s[0].lower()}_{p}"

    out = []
    for name, parent, at, aim, rest, twist, rest_twist in spec:
        rest = np.array([sign * rest[0], rest[1], rest[2]])
        out.append((s + name, parent.replace("*", s), point(at), point(aim), rest,
                    point(twist) if twist else None, rest_twist))
    return out


def _spec() -> list[tuple]:
    trunk = [
        ("Hips", "", "pelvis", "spine", _Y, "hip_line", _X),
        ("Spine", "Hips", "spine", "chest", _Y, "mid_line", _X),
        ("Spine1", "Spine", "chest", "neck", _Y, "shoulder_line", _X),
        ("Neck", "Spine1", "neck", "head", _Y, "ear_line", _X),
        ("Head", "Neck", "head", "head_end", _Y, "ear_line", _X),
    ]
    arm = [
        ("Shoulder", "Spine1", "neck", "shoulder", _X, None, None),
        ("Arm", "*Shoulder", "shoulder", "elbow", _X, "wrist", _Z),
        ("ForeArm", "*Arm", "elbow", "wrist", _X, "palm", _Z),
        ("Hand", "*ForeArm", "wrist", "hand_end", _X, "palm", _Z),
    ]
    leg = [
        ("UpLeg", "Hips", "hip", "knee", -_Y, "ankle", -_Z),
        ("Leg", "*UpLeg", "knee", "ankle", -_Y, "ball", _Z),
        ("Foot", "*Leg", "ankle", "ball", _DOWN_FORWARD, None, None),
        ("ToeBase", "*Foot", "ball", "toe", _Z, None, None),
    ]
    out = list(trunk)
    for s in ("Left", "Right"):
        out += _side(s, arm)
    for s in ("Left", "Right"):
        out += _side(s, leg)
    return out


def rig_points(joints: np.ndarray, skeleton: Skeleton) -> dict[str, np.ndarray]:
    """The rig's points from a take: joints (F, J, 3) world metres -> name -> (F, 3), NaN where
    the take lacks what the point is made of."""
    def get(name: str) -> np.ndarray | None:  # None: the skeleton or the take lacks it
        j = skeleton.index.get(name)
        if j is None or j >= skeleton.num_joints or not np.isfinite(joints[:, j]).all(-1).any():
            return None
        return joints[:, j]

    def mean(*names: str) -> np.ndarray | None:
        parts = [get(n) for n in names]
        return None if any(p is None for p in parts) else np.mean(parts, axis=0)

    need = ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "left_knee", "right_knee",
            "left_ankle", "right_ankle", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
    lacking = [n for n in need if n not in skeleton.index]
    if lacking:
        raise TriangulumError(f"Cannot build a character rig from the {skeleton.name} skeleton: it has no "
                              f"{', '.join(lacking)}.")
    unseen = [n for n in need if get(n) is None]
    if unseen:
        raise TriangulumError(f"Cannot build a character rig: the take never has the {', '.join(unseen)}.")
    pelvis, thorax = mean("left_hip", "right_hip"), mean("left_shoulder", "right_shoulder")
    p = {"pelvis": pelvis, "spine": pelvis + (thorax - pelvis) / 3, "chest": pelvis + 2 * (thorax - pelvis) / 3,
         "neck": thorax, "hip_line": get("left_hip") - get("right_hip") + pelvis,
         "shoulder_line": get("left_shoulder") - get("right_shoulder") + thorax}
    p["mid_line"] = (p["hip_line"] - pelvis + p["shoulder_line"] - thorax) / 2 + p["spine"]
    centre = next((c for c in (mean("left_ear", "right_ear"), get("nose"), get("neck_nose")) if c is not None), None)
    if centre is None:
        centre = thorax + (thorax - pelvis) * 0.45
    p["head"] = thorax + 0.5 * (centre - thorax)
    top = get("head_top")
    p["head_end"] = top if top is not None else centre + 0.8 * (centre - p["head"])
    ears = get("left_ear"), get("right_ear")
    p["ear_line"] = (ears[0] - ears[1] + p["head"]) if ears[0] is not None and ears[1] is not None else \
        p["shoulder_line"] - thorax + p["head"]
    for s, k in (("left", "l"), ("right", "r")):
        for part in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
            p[f"{k}_{part}"] = get(f"{s}_{part}")
        wrist, elbow = p[f"{k}_wrist"], p[f"{k}_elbow"]
        knuckles = mean(f"{s}_index", f"{s}_pinky")
        p[f"{k}_hand_end"] = knuckles if knuckles is not None else wrist + 0.4 * (wrist - elbow)
        index, pinky = get(f"{s}_index"), get(f"{s}_pinky")
        p[f"{k}_palm"] = index - pinky + wrist if index is not None and pinky is not None else np.full_like(wrist, np.nan)
        heel = get(f"{s}_heel")
        toe = next((t for t in (get(f"{s}_foot_index"), get(f"{s}_big_toe")) if t is not None), None)
        if heel is not None and toe is not None:
            p[f"{k}_ball"], p[f"{k}_toe"] = heel + 0.75 * (toe - heel), toe
        else:  # no foot points: a foot of typical size flat on the ground, facing where the hips face
            ankle = p[f"{k}_ankle"]
            left = get("left_hip") - get("right_hip")
            forward = np.cross(left, p["spine"] - pelvis)
            forward[:, 2] = 0.0
            forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
            foot = 0.55 * np.nanmedian(np.linalg.norm(ankle - p[f"{k}_knee"], axis=-1))
            down = np.array([0.0, 0.0, 0.25 * foot])
            p[f"{k}_ball"] = ankle + 0.75 * foot * forward - down
            p[f"{k}_toe"] = ankle + foot * forward - down
    return p


@dataclass(frozen=True)
class Rig:
    """joints in depth-first order; offsets (N, 3): rest offset of each joint from its parent
    (the root's: its rest position), metres, Y-up; ends (N, 3): End Site offsets of the leaf
    joints (NaN elsewhere)."""

    joints: tuple[RigJoint, ...]
    offsets: np.ndarray
    ends: np.ndarray

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def children(self, i: int) -> list[int]:
        return [k for k, j in enumerate(self.joints) if j.parent == i]


def build_rig(points: dict[str, np.ndarray]) -> Rig:
    """The rig for a take's points (Y-up: `rig_points` then world_to_yup): symmetric median
    lengths, a T-pose rest standing with its lowest point on the floor. Joints whose points the
    take never has are left out with everything below them."""
    have = {k for k, v in points.items() if np.isfinite(v).all(-1).any()}
    kept: list[tuple] = []
    for s in _spec():
        if s[2] in have and s[3] in have and (not s[1] or any(k[0] == s[1] for k in kept)):
            kept.append(s)

    def median_length(a: str, b: str) -> float:
        return float(np.nanmedian(np.linalg.norm(points[b] - points[a], axis=-1)))

    length = {s[0]: median_length(s[2], s[3]) for s in kept}  # each joint's bone, to its aim
    for name in list(length):  # the person is symmetric
        twin = "Right" + name[4:]
        if name.startswith("Left") and twin in length:
            length[name] = length[twin] = (length[name] + length[twin]) / 2
    hip_offsets = _hip_offsets(points)
    index = {s[0]: i for i, s in enumerate(kept)}
    joints, offsets, ends = [], [], []
    for name, parent, at, aim, rest, twist, rest_twist in kept:
        if twist is not None and twist not in have:
            twist, rest_twist = None, None
        joints.append(RigJoint(name, index[parent] if parent else -1, at, aim, rest, twist, rest_twist))
        if not parent:
            offsets.append(np.zeros(3))
        elif name.endswith("UpLeg"):  # the hip joints sit either side of the pelvis
            offsets.append(hip_offsets[0 if name.startswith("Left") else 1])
        else:  # every other joint sits where its parent's bone ends
            offsets.append(length[parent] * kept[index[parent]][4])
        leaf = not any(s[1] == name for s in kept)
        ends.append(length[name] * rest if leaf else np.full(3, np.nan))
    rig = Rig(tuple(joints), np.array(offsets), np.array(ends))
    pos = rest_positions(rig)
    leaf = np.isfinite(rig.ends).all(-1)
    lowest = min(pos[:, 1].min(), (pos[leaf] + rig.ends[leaf])[:, 1].min())
    rig.offsets[0] = np.array([0.0, -lowest, 0.0])  # standing on the floor
    return rig


def _hip_offsets(points: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rest offsets of the left and right hip joints from the pelvis: where the take has them
    in the pelvis's own frame (the one the solver gives the Hips: the bone up the spine, the
    hip line fixing the roll), median over frames, made mirror-symmetric. The spine is not
    quite square to the hip line, and a rig that assumed it would misplace both hips."""
    pelvis = points["pelvis"]
    frame, ok = _frame(points["spine"] - pelvis, points["hip_line"] - pelvis, 0.15)
    ok &= np.isfinite(frame).all(axis=(1, 2))
    if not ok.any():
        raise TriangulumError("Cannot build a character rig: the hips and shoulders are never seen together.")
    local = [np.median(np.einsum("fji,fj->fi", frame[ok], points[k][ok] - pelvis[ok]), axis=0)
             for k in ("l_hip", "r_hip")]
    along, lateral, front = (local[0] + local[1] * np.array([1, -1, 1])) / 2  # mirror-averaged
    rest, _ = _frame(_Y[None], _X[None], 0.0)
    return rest[0] @ np.array([along, lateral, front]), rest[0] @ np.array([along, -lateral, front])


def rest_positions(rig: Rig) -> np.ndarray:
    """(N, 3) joint positions of the rest pose."""
    pos = np.zeros((len(rig.joints), 3))
    for i, j in enumerate(rig.joints):
        pos[i] = rig.offsets[i] + (pos[j.parent] if j.parent >= 0 else 0.0)
    return pos


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations turning directions a onto b: (F, 3) x2 -> (F, 3, 3)."""
    a, b = _unit(a), _unit(b)
    v = np.cross(a, b)
    c = np.einsum("fi,fi->f", a, b)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    k = k - k.transpose(0, 2, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.eye(3) + k + (k @ k) / (1.0 + c)[:, None, None]
    flip = c < -1 + 1e-12
    if flip.any():  # opposite directions: a half turn about an axis perpendicular to a
        helper = np.where(np.abs(a[flip, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
        u = _unit(np.cross(a[flip], helper))
        r[flip] = 2 * np.einsum("fi,fj->fij", u, u) - np.eye(3)
    return r


def _frame(p: np.ndarray, s: np.ndarray, min_sin: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames with columns (p, s off p, p x s): (F, 3) x2 -> (F, 3, 3), ok (F,) where s is at
    least `min_sin` (sine of the angle) off p's line."""
    e1 = _unit(p)
    s_perp = s - np.einsum("fi,fi->f", s, e1)[:, None] * e1
    norm = np.linalg.norm(s_perp, axis=-1)
    ok = norm > min_sin * np.linalg.norm(s, axis=-1)
    e2 = s_perp / np.where(ok, norm, 1.0)[:, None]
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1), ok


def _hold(values: np.ndarray, ok: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Entries where not ok replaced by the last ok one (the first ok one before any)."""
    if not ok.any():
        return np.broadcast_to(default, values.shape).copy()
    idx = np.maximum.accumulate(np.where(ok, np.arange(len(ok)), -1))
    idx[idx < 0] = int(np.argmax(ok))
    return values[idx]


def solve_rotations(rig: Rig, points: dict[str, np.ndarray], min_sin: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations (F, N, 3, 3) and root positions (F, 3) that pose `rig` like `points`
    (name -> (F, 3), Y-up)."""
    frames = len(next(iter(points.values())))
    eye = np.broadcast_to(np.eye(3), (frames, 3, 3))
    glob = np.zeros((frames, len(rig.joints), 3, 3))
    local = np.zeros_like(glob)
    for n, j in enumerate(rig.joints):
        g_parent = glob[:, j.parent] if j.parent >= 0 else eye
        found = np.full((frames, 3, 3), np.nan)
        p_obs = points[j.aim] - points[j.at]
        ok_p = np.isfinite(p_obs).all(-1) & (np.linalg.norm(np.nan_to_num(p_obs), axis=-1) > 1e-9)
        p_obs = np.where(ok_p[:, None], p_obs, 1.0)
        ref = g_parent
        if j.twist is not None:
            s_obs = points[j.twist] - points[j.at]
            ok_s = ok_p & np.isfinite(s_obs).all(-1)
            f_obs, ok_f = _frame(p_obs, np.where(ok_s[:, None], s_obs, 1.0), min_sin)
            f_rest, _ = _frame(j.rest[None], j.rest_twist[None], 0.0)
            ok_s &= ok_f
            full = f_obs @ f_rest[0].T
            found[ok_s] = g_parent[ok_s].transpose(0, 2, 1) @ full[ok_s]
            ref = g_parent @ _hold(found, ok_s, np.eye(3))  # the last twist seen
            ok_p &= ~ok_s
        swung = _swing(ref @ j.rest, p_obs) @ ref
        found[ok_p] = g_parent[ok_p].transpose(0, 2, 1) @ swung[ok_p]
        have = ~np.isnan(found).any(axis=(1, 2))
        local[:, n] = _hold(found, have, np.eye(3))
        glob[:, n] = g_parent @ local[:, n]
    root = points[rig.joints[0].at]
    return local, _hold(root, np.isfinite(root).all(-1), np.zeros(3))


def forward(rig: Rig, local: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions (F, N, 3) and End Site positions (F, N, 3) (NaN for non-leaves)."""
    F, N = local.shape[:2]
    glob = np.zeros((F, N, 3, 3))
    pos = np.zeros((F, N, 3))
    for i, j in enumerate(rig.joints):
        if j.parent < 0:
            glob[:, i], pos[:, i] = local[:, i], root
        else:
            glob[:, i] = glob[:, j.parent] @ local[:, i]
            pos[:, i] = pos[:, j.parent] + glob[:, j.parent] @ rig.offsets[i]
    ends = pos + np.einsum("fnij,nj->fni", glob, np.nan_to_num(rig.ends))
    ends[:, ~np.isfinite(rig.ends).all(-1)] = np.nan
    return pos, ends
