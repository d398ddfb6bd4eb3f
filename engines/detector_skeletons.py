"""Skeletons of other 2D detectors, declared like ours (`engines.skeleton`): OpenPose BODY_25,
BODY_25B and COCO-18, and HALPE-26 (AlphaPose, MMPose/RTMPose, RTMLib). COCO-17 (MMPose's
default body) is ours already (`coco17`).

Joint orders are the detectors' own (OpenPose's output documentation; HALPE's AlphaPose model
zoo; they agree with Pose2Sim's `skeletons.py`). Names are our shared anatomical names, so
association, left/right correction, triangulation, filtering and the exports work on them as
on ours; joints new to us: ``neck`` (OpenPose's Neck, between the shoulders; HALPE's Neck),
``head_top``, ``left_big_toe``, ``left_small_toe``. OpenPose's MidHip and HALPE's Hip are
``pelvis`` (a real joint there, virtual in BlazePose).
"""

from __future__ import annotations

from engines.skeleton import Skeleton, _limb_parents, _skeleton

_COCO_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
_COCO_BODY = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
              "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
_FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")

BODY_25_JOINTS = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", *_FEET,
)
BODY_25B_JOINTS = (*_COCO_FACE, *_COCO_BODY, "neck", "head_top", *_FEET)
COCO_18_JOINTS = BODY_25_JOINTS[:8] + BODY_25_JOINTS[9:15] + ("right_eye", "left_eye", "right_ear", "left_ear")
HALPE_26_JOINTS = (
    *_COCO_FACE, *_COCO_BODY, "head_top", "neck", "pelvis",
    "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel",
)


def _tree(joints: tuple[str, ...]) -> dict[str, str | None]:
    """A tree rooted at the pelvis over whatever joints the set has."""
    have = set(joints) | {"pelvis", "thorax"}
    top = "neck" if "neck" in joints else "thorax"
    tree: dict[str, str | None] = {"pelvis": None, "thorax": "pelvis"}
    if top == "neck":
        tree["neck"] = "thorax"
    for side in ("left", "right"):
        tree[f"{side}_shoulder"] = "thorax"
        tree.update({f"{side}_heel": f"{side}_ankle", f"{side}_big_toe": f"{side}_ankle",
                     f"{side}_small_toe": f"{side}_big_toe", f"{side}_eye": "nose", f"{side}_ear": f"{side}_eye"})
    tree["nose"] = top
    tree["head_top"] = top
    full = _limb_parents(tree)

    def present_parent(j: str) -> str | None:  # skip joints the set lacks (a knee-less set: hip -> ankle)
        p = full[j]
        while p is not None and p not in have:
            p = full[p]
        return p

    return {k: present_parent(k) for k in full if k in have}


def _bones(joints: tuple[str, ...], tree: dict[str, str | None]) -> tuple[tuple[str, str], ...]:
    """Drawing bones: the tree's edges between real joints, plus the shoulder and hip lines."""
    real = set(joints)
    bones = [(p, c) for c, p in tree.items() if p in real and c in real]
    for a, b in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
                 ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip")):
        bones.append((a, b))
    return tuple(bones)


def _declare(name: str, joints: tuple[str, ...]) -> Skeleton:
    virtual = tuple(v for v in ("pelvis", "thorax") if v not in joints)
    tree = _tree(joints)
    return _skeleton(name, joints, _bones(joints, tree), virtual, tree)


BODY25 = _declare("body25", BODY_25_JOINTS)
BODY25B = _declare("body25b", BODY_25B_JOINTS)
COCO18 = _declare("coco18", COCO_18_JOINTS)
HALPE26 = _declare("halpe26", HALPE_26_JOINTS)

DETECTOR_SKELETONS: dict[str, Skeleton] = {s.name: s for s in (BODY25, BODY25B, COCO18, HALPE26)}

# Every joint name a declared skeleton can hold (the trees above know where each one hangs).
KNOWN_JOINTS = frozenset(_tree(tuple(_COCO_FACE + _COCO_BODY + _FEET) + ("neck", "head_top", "pelvis")))


def custom_skeleton(name: str, joints: tuple[str, ...]) -> Skeleton:
    """A skeleton over any of KNOWN_JOINTS in the given order (e.g. a DeepLabCut project's
    body parts once named anatomically); it needs both hips, which root its tree."""
    unknown = [j for j in joints if j not in KNOWN_JOINTS]
    if unknown:
        raise ValueError(f"unknown joint name(s) {unknown}")
    if len(set(joints)) != len(joints):
        raise ValueError("a joint is named twice")
    if "pelvis" not in joints and not {"left_hip", "right_hip"} <= set(joints):
        raise ValueError("the skeleton needs the pelvis or both hips")
    return _declare(name, tuple(joints))
