"""Joint sets (BlazePose-33, Human3.6M-17, COCO-17), their trees, sides and conversions.

Every joint name is a shared anatomical name (``left_knee``, ``pelvis``...), so a joint of one
set corresponds to the joint of the same name in another. Some names are *derived*: ``pelvis`` is
the hip midpoint and ``thorax`` the shoulder midpoint. Sets that lack them (BlazePose, COCO) get
them as *virtual joints*, appended after the real ones, so each set has a kinematic tree rooted at
the pelvis (needed for BVH and root-relative metrics).

Index spaces: ``points`` of a set are ``(..., J, D)`` with ``J = len(skeleton.joints)``;
``extend(points, skeleton)`` appends the virtual joints giving ``(..., J + V, D)``, the space that
``skeleton.parents`` and ``skeleton.tree_names`` index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

from calibration.errors import TriangulumError

LEFT, RIGHT, CENTRE = "left", "right", "centre"

# RGB 0-255 per body side, for drawing: left warm, right cool, midline grey.
SIDE_COLOURS: dict[str, tuple[int, int, int]] = {
    LEFT: (255, 140, 0),
    RIGHT: (0, 150, 255),
    CENTRE: (200, 200, 200),
}

# A derived joint is the mean of these named joints (each may itself be derived).
DERIVED: dict[str, tuple[str, ...]] = {
    "pelvis": ("left_hip", "right_hip"),
    "thorax": ("left_shoulder", "right_shoulder"),
    # Human3.6M's spine sits about halfway up the trunk; the midpoint is an approximation.
    "spine": ("pelvis", "thorax"),
}

# Human3.6M calls its joint 16 "Neck/Nose"; it marks the nose region, so it converts as the nose.
ALIASES: dict[str, str] = {"neck_nose": "nose"}

LIMB_JOINTS: tuple[str, ...] = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

LIMB_BONES: dict[str, tuple[str, str]] = {
    "left_upper_arm": ("left_shoulder", "left_elbow"),
    "right_upper_arm": ("right_shoulder", "right_elbow"),
    "left_forearm": ("left_elbow", "left_wrist"),
    "right_forearm": ("right_elbow", "right_wrist"),
    "left_thigh": ("left_hip", "left_knee"),
    "right_thigh": ("right_hip", "right_knee"),
    "left_shank": ("left_knee", "left_ankle"),
    "right_shank": ("right_knee", "right_ankle"),
}

@dataclass(frozen=True)
class Skeleton:
    """A named joint set.

    joints: names of the J real joints, in the model's output order.
    bones: (parent, child) pairs over real joints, for drawing (may form cycles).
    virtual: names of the V derived joints (see DERIVED) appended after the real ones.
    parents: (J + V,) tree parent of each joint, -1 for the root; indexes joints + virtual.
    """

    name: str
    joints: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    virtual: tuple[str, ...]
    parents: tuple[int, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = self.joints + self.virtual
        if len(set(names)) != len(names):
            raise ValueError(f"skeleton {self.name}: duplicate joint names")
        if len(self.parents) != len(names):
            raise ValueError(f"skeleton {self.name}: parents must cover joints and virtual joints")
        if [p for p in self.parents].count(-1) != 1:
            raise ValueError(f"skeleton {self.name}: the tree needs exactly one root")
        object.__setattr__(self, "index", {n: i for i, n in enumerate(names)})

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def tree_names(self) -> tuple[str, ...]:
        """Names of the (J + V) tree joints: real joints then virtual ones."""
        return self.joints + self.virtual

    @property
    def root(self) -> int:
        return self.parents.index(-1)

    def children(self, j: int) -> tuple[int, ...]:
        """Tree children of tree joint j, in index order."""
        return tuple(i for i, p in enumerate(self.parents) if p == j)

    def tree_bones(self) -> tuple[tuple[int, int], ...]:
        """(parent, child) pairs of the kinematic tree over the (J + V) tree joints."""
        return tuple((p, i) for i, p in enumerate(self.parents) if p >= 0)


def _skeleton(name, joints, bones, virtual, parent_names) -> Skeleton:
    names = tuple(joints) + tuple(virtual)
    idx = {n: i for i, n in enumerate(names)}
    parents = tuple(-1 if parent_names[n] is None else idx[parent_names[n]] for n in names)
    bone_idx = tuple((idx[a], idx[b]) for a, b in bones)
    return Skeleton(name, tuple(joints), bone_idx, tuple(virtual), parents)


def _limb_parents(prefix_tree: dict[str, str | None]) -> dict[str, str | None]:
    tree = dict(prefix_tree)
    for side in ("left", "right"):
        tree.update({
            f"{side}_hip": "pelvis",
            f"{side}_knee": f"{side}_hip",
            f"{side}_ankle": f"{side}_knee",
            f"{side}_elbow": f"{side}_shoulder",
            f"{side}_wrist": f"{side}_elbow",
        })
    return tree


_BLAZEPOSE_JOINTS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)

# MediaPipe's drawing connections.
_BLAZEPOSE_BONES = (
    ("nose", "left_eye_inner"), ("left_eye_inner", "left_eye"), ("left_eye", "left_eye_outer"),
    ("left_eye_outer", "left_ear"), ("nose", "right_eye_inner"),
    ("right_eye_inner", "right_eye"), ("right_eye", "right_eye_outer"),
    ("right_eye_outer", "right_ear"), ("mouth_left", "mouth_right"),
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"), ("left_wrist", "left_pinky"), ("left_wrist", "left_index"),
    ("left_wrist", "left_thumb"), ("left_pinky", "left_index"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("right_wrist", "right_pinky"), ("right_wrist", "right_index"),
    ("right_wrist", "right_thumb"), ("right_pinky", "right_index"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_heel"),
    ("left_heel", "left_foot_index"), ("left_ankle", "left_foot_index"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("right_ankle", "right_heel"),
    ("right_heel", "right_foot_index"), ("right_ankle", "right_foot_index"),
)


def _blazepose() -> Skeleton:
    tree: dict[str, str | None] = {"pelvis": None, "thorax": "pelvis", "nose": "thorax"}
    for side in ("left", "right"):
        tree.update({
            f"{side}_shoulder": "thorax",
            f"{side}_heel": f"{side}_ankle",
            f"{side}_foot_index": f"{side}_ankle",
            f"{side}_pinky": f"{side}_wrist",
            f"{side}_index": f"{side}_wrist",
            f"{side}_thumb": f"{side}_wrist",
            f"{side}_eye_inner": "nose",
            f"{side}_eye": "nose",
            f"{side}_eye_outer": "nose",
            f"{side}_ear": "nose",
        })
    tree.update({"mouth_left": "nose", "mouth_right": "nose"})
    return _skeleton(
        "blazepose33", _BLAZEPOSE_JOINTS, _BLAZEPOSE_BONES, ("pelvis", "thorax"),
        _limb_parents(tree),
    )


# Order from the Learnable Triangulation reference code (see shared/REFERENCE.md).
_H36M_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
    "spine", "thorax", "head_top", "right_wrist", "right_elbow", "right_shoulder",
    "left_shoulder", "left_elbow", "left_wrist", "neck_nose",
)


def _h36m() -> Skeleton:
    tree: dict[str, str | None] = {
        "pelvis": None, "spine": "pelvis", "thorax": "spine", "neck_nose": "thorax",
        "head_top": "neck_nose", "left_shoulder": "thorax", "right_shoulder": "thorax",
    }
    tree = _limb_parents(tree)
    bones = tuple((tree[n], n) for n in _H36M_JOINTS if tree[n] is not None)
    return _skeleton("h36m17", _H36M_JOINTS, bones, (), tree)


_COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

_COCO_BONES = (
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
    ("right_eye", "right_ear"), ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
)


def _coco() -> Skeleton:
    tree: dict[str, str | None] = {
        "pelvis": None, "thorax": "pelvis", "nose": "thorax",
        "left_shoulder": "thorax", "right_shoulder": "thorax",
        "left_eye": "nose", "right_eye": "nose", "left_ear": "left_eye", "right_ear": "right_eye",
    }
    return _skeleton("coco17", _COCO_JOINTS, _COCO_BONES, ("pelvis", "thorax"), _limb_parents(tree))


BLAZEPOSE33 = _blazepose()
H36M17 = _h36m()
COCO17 = _coco()

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (BLAZEPOSE33, H36M17, COCO17)}


def all_skeletons() -> dict[str, Skeleton]:
    """Ours (SKELETONS) and the other detectors' (engines.detector_skeletons), by name."""
    from engines.detector_skeletons import DETECTOR_SKELETONS

    return {**SKELETONS, **DETECTOR_SKELETONS}


def get_skeleton(name: str) -> Skeleton:
    """The skeleton called `name` (ours or another detector's)."""
    known = all_skeletons()
    try:
        return known[name]
    except KeyError:
        raise TriangulumError(
            f"Unknown skeleton {name!r}; use one of {', '.join(known)}."
        ) from None


def side(name: str) -> str:
    """LEFT, RIGHT or CENTRE for a joint name."""
    if name.startswith("left_") or name.endswith("_left"):
        return LEFT
    if name.startswith("right_") or name.endswith("_right"):
        return RIGHT
    return CENTRE


def joint_colours(skeleton: Skeleton) -> np.ndarray:
    """(J + V, 3) uint8 RGB per tree joint, by body side."""
    return np.array([SIDE_COLOURS[side(n)] for n in skeleton.tree_names], dtype=np.uint8)


def bone_colours(skeleton: Skeleton) -> np.ndarray:
    """(B, 3) uint8 RGB per drawing bone: a bone is left/right if both ends are, else centre."""
    names = skeleton.tree_names
    out = []
    for a, b in skeleton.bones:
        sa, sb = side(names[a]), side(names[b])
        out.append(SIDE_COLOURS[sa if sa == sb else CENTRE])
    return np.array(out, dtype=np.uint8).reshape(-1, 3)


def _mirror_name(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if name.startswith(a + "_"):
            return b + name[len(a):]
        if name.endswith("_" + a):
            return name[: -len(a)] + b
    return name


def left_right_pairs(skeleton: Skeleton) -> tuple[tuple[int, int], ...]:
    """(left, right) index pairs of real joints that mirror each other."""
    idx = skeleton.index
    return tuple(
        (i, idx[_mirror_name(n)])
        for i, n in enumerate(skeleton.joints)
        if side(n) == LEFT and _mirror_name(n) in idx
    )


def flip_permutation(skeleton: Skeleton) -> np.ndarray:
    """(J,) index permutation that swaps left and right joints (an involution)."""
    perm = np.arange(skeleton.num_joints)
    for a, b in left_right_pairs(skeleton):
        perm[a], perm[b] = b, a
    return perm


def flip_left_right(points: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Relabel left as right: (..., J, D) -> (..., J, D). Coordinates are not mirrored."""
    points = np.asarray(points)
    _check_joints(points, skeleton)
    return points[..., flip_permutation(skeleton), :]


def _check_joints(points: np.ndarray, skeleton: Skeleton) -> None:
    if points.ndim < 2 or points.shape[-2] != skeleton.num_joints:
        raise TriangulumError(
            f"Points of shape {points.shape} do not fit skeleton {skeleton.name} with "
            f"{skeleton.num_joints} joints; pass an array shaped (..., {skeleton.num_joints}, D)."
        )


def _resolve(name: str, have: dict[str, int]) -> dict[int, float] | None:
    """Weights over source joints that give joint `name`, or None if it cannot be formed."""
    if name in have:
        return {have[name]: 1.0}
    if name in DERIVED:
        parts = [_resolve(p, have) for p in DERIVED[name]]
        if any(p is None for p in parts):
            return None
        weights: dict[int, float] = {}
        for part in parts:
            for j, w in part.items():
                weights[j] = weights.get(j, 0.0) + w / len(parts)
        return weights
    return None


@cache
def conversion_weights(src_name: str, dst_name: str) -> tuple[dict[int, float] | None, ...]:
    """Per destination joint: weights over source joints, or None without a correspondence."""
    src, dst = get_skeleton(src_name), get_skeleton(dst_name)
    have = {ALIASES.get(n, n): i for i, n in enumerate(src.joints)}
    return tuple(_resolve(ALIASES.get(n, n), have) for n in dst.joints)


def convert(points: np.ndarray, src: Skeleton, dst: Skeleton) -> np.ndarray:
    """Re-express joints of `src` as joints of `dst`: (..., Js, D) -> (..., Jd, D).

    Same-named joints are copied, derived ones (pelvis, thorax, spine) averaged from their parts;
    joints without a correspondence (e.g. Human3.6M head_top from COCO) are NaN, and a derived
    joint is NaN where any of its parts is. Note that the sets place hips differently (Human3.6M
    hip joint centres vs. BlazePose/COCO surface keypoints), so "correspondence" is nominal.
    """
    points = np.asarray(points, dtype=np.float64)
    _check_joints(points, src)
    out = np.full(points.shape[:-2] + (dst.num_joints, points.shape[-1]), np.nan)
    for j, weights in enumerate(conversion_weights(src.name, dst.name)):
        if weights is None:
            continue
        out[..., j, :] = sum(w * points[..., i, :] for i, w in weights.items())
    return out


def extend(points: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Append the virtual joints: (..., J, D) -> (..., J + V, D), NaN where a part is NaN."""
    points = np.asarray(points, dtype=np.float64)
    _check_joints(points, skeleton)
    if not skeleton.virtual:
        return points.copy()
    return np.concatenate([points, named_points(points, skeleton, skeleton.virtual)], axis=-2)


def named_points(points: np.ndarray, skeleton: Skeleton, names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Joints by name, derived ones (pelvis, thorax, spine) averaged from their parts:
    (..., J, D) -> (..., N, D). A name the skeleton cannot form is a TriangulumError."""
    points = np.asarray(points, dtype=np.float64)
    _check_joints(points, skeleton)
    have = {ALIASES.get(n, n): i for i, n in enumerate(skeleton.joints)}
    out = []
    for name in names:
        weights = _resolve(name, have)
        if weights is None:
            raise TriangulumError(f"Skeleton {skeleton.name} has no joint {name!r} and cannot derive it.")
        out.append(sum(w * points[..., i, :] for i, w in weights.items()))
    return np.stack(out, axis=-2)


def indices(skeleton: Skeleton, names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Tree indices of the given joint names (real or virtual)."""
    try:
        return np.array([skeleton.index[n] for n in names], dtype=np.int64)
    except KeyError as exc:
        raise TriangulumError(
            f"Skeleton {skeleton.name} has no joint {exc.args[0]!r}."
        ) from None


def limb_joint_indices(skeleton: Skeleton) -> np.ndarray:
    """(12,) indices of the limb joints (shoulders, elbows, wrists, hips, knees, ankles)."""
    return indices(skeleton, LIMB_JOINTS)


def limb_bone_indices(skeleton: Skeleton) -> dict[str, tuple[int, int]]:
    """Limb bone name -> (proximal, distal) joint indices, e.g. 'left_thigh' -> (hip, knee)."""
    return {
        bone: (skeleton.index[a], skeleton.index[b]) for bone, (a, b) in LIMB_BONES.items()
    }
