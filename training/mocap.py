"""Real motion capture as BlazePose-33 joints in metres: the CMU clips in ../shared/data/mocap-cmu.

    clips = load_clips(MOCAP_DIR, subjects=TRAIN_SUBJECTS, step=4)   # {clip: (F, 33, 3) m, Z up}

BVH (Character Creator skeleton, centimetres, Y up) is read and run through forward
kinematics (child = parent . Rz . Ry . Rx in the order of each joint's CHANNELS; a joint sits
at its parent's position plus the parent's rotation times its OFFSET; the root at its position
channels added to its OFFSET). The first frame of each clip is the conversion's T-pose and is dropped.

Mapping to BlazePose's 33 landmarks (what the mocap has is joint centres, BlazePose has
surface landmarks; the mapping is nominal and stated here):
  shoulders = Upperarm, elbows = Forearm, wrists = Hand, index/pinky/thumb = Index1/Pinky1/
  Thumb1, hips = Thigh, knees = Calf, ankles = Foot, foot_index = ToeBase, heel = the ankle
  moved 5 cm back along the foot and down to 2 cm above the toe's height; eyes = Eye
  (inner/outer 1.5 cm either side along the eye line), nose = 3 cm in front of the eye
  centre and 3 cm below, ears = 7 cm either side of the head's centre line at eye height and
  6 cm behind the eyes, mouth corners = 2.5 cm either side, 7 cm below the eye centre.
"Front" is the head's forward direction from the eye line and the neck's up direction.

Splits are by subject (no clip of a test subject is ever trained on): TRAIN_SUBJECTS,
VAL_SUBJECTS, TEST_SUBJECTS below.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.errors import TriangulumError
from engines.skeleton import BLAZEPOSE33

MOCAP_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mocap-cmu"
TRAIN_SUBJECTS = ("001", "002", "005", "006")
VAL_SUBJECTS = ("003",)
TEST_SUBJECTS = ("007",)


@dataclass
class Bvh:
    """names (N,), parents (N,) index or -1, offsets (N, 3), channels: per joint a list of
    channel names; motion (F, channels) values; frame_time seconds."""

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[list[str]]
    motion: np.ndarray
    frame_time: float


def read_bvh(path: Path) -> Bvh:
    """Parse a BVH file (hierarchy and motion)."""
    text = Path(path).read_text()
    head, _, motion = text.partition("MOTION")
    if not motion:
        raise TriangulumError(f"{path} has no MOTION section; is it a BVH file?")
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    pending = -1
    end_site = False
    for line in head.splitlines():
        tok = line.split()
        if not tok:
            continue
        if tok[0] in ("ROOT", "JOINT"):
            names.append(tok[1])
            parents.append(stack[-1] if stack else -1)
            offsets.append(np.zeros(3))
            channels.append([])
            pending = len(names) - 1
        elif tok[0] == "End":
            end_site = True
        elif tok[0] == "{":
            stack.append(-2 if end_site else pending)
        elif tok[0] == "}":
            if stack and stack.pop() == -2:
                end_site = False
        elif tok[0] == "OFFSET" and not end_site:
            offsets[stack[-1]] = np.array([float(v) for v in tok[1:4]])
        elif tok[0] == "CHANNELS":
            channels[stack[-1]] = tok[2:]
    lines = motion.strip().splitlines()
    frames = int(re.search(r"Frames:\s*(\d+)", lines[0]).group(1))
    frame_time = float(re.search(r"Frame Time:\s*([\d.eE+-]+)", lines[1]).group(1))
    values = np.array([[float(v) for v in ln.split()] for ln in lines[2:2 + frames]])
    return Bvh(names, np.array(parents), np.stack(offsets), channels, values, frame_time)


def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i = "XYZ".index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    R[..., i, i] = 1
    R[..., j, j], R[..., j, k], R[..., k, j], R[..., k, k] = c, -s, s, c
    return R


def forward_kinematics(bvh: Bvh, frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Global joint positions (F, N, 3) in the file's units and rotations (F, N, 3, 3)."""
    motion = bvh.motion if frames is None else bvh.motion[frames]
    F, N = len(motion), len(bvh.names)
    pos, rot = np.zeros((F, N, 3)), np.zeros((F, N, 3, 3))
    col = 0
    for j in range(N):
        R = np.broadcast_to(np.eye(3), (F, 3, 3)).copy()
        p = None
        for name in bvh.channels[j]:
            v = motion[:, col]
            col += 1
            if name.endswith("position"):
                if p is None:
                    p = np.zeros((F, 3))
                p[:, "XYZ".index(name[0])] = v
            else:
                R = R @ _axis_rotation(name[0], v)
        parent = bvh.parents[j]
        if parent < 0:
            pos[:, j] = bvh.offsets[j] + (p if p is not None else 0.0)
            rot[:, j] = R
        else:
            pos[:, j] = pos[:, parent] + np.einsum("fab,b->fa", rot[:, parent], bvh.offsets[j])
            rot[:, j] = rot[:, parent] @ R
    return pos, rot


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def to_blazepose(bvh: Bvh, pos: np.ndarray) -> np.ndarray:
    """(F, N, 3) cm Y-up joint positions -> (F, 33, 3) BlazePose landmarks, metres, Z up."""
    idx = {n: i for i, n in enumerate(bvh.names)}

    def j(name: str) -> np.ndarray:
        try:
            return pos[:, idx["CC_Base_" + name]] / 100.0
        except KeyError:
            raise TriangulumError(f"the BVH has no joint CC_Base_{name}; expected the CMU Character Creator skeleton.") from None

    out: dict[str, np.ndarray] = {}
    for side, s in (("left", "L"), ("right", "R")):
        out[f"{side}_shoulder"] = j(f"{s}_Upperarm")
        out[f"{side}_elbow"] = j(f"{s}_Forearm")
        out[f"{side}_wrist"] = j(f"{s}_Hand")
        out[f"{side}_index"] = j(f"{s}_Index1")
        out[f"{side}_pinky"] = j(f"{s}_Pinky1")
        out[f"{side}_thumb"] = j(f"{s}_Thumb1")
        out[f"{side}_hip"] = j(f"{s}_Thigh")
        out[f"{side}_knee"] = j(f"{s}_Calf")
        out[f"{side}_ankle"] = j(f"{s}_Foot")
        toe = j(f"{s}_ToeBase")
        out[f"{side}_foot_index"] = toe
        back = _unit((out[f"{side}_ankle"] - toe) * np.array([1, 0, 1]))
        heel = out[f"{side}_ankle"] + 0.05 * back
        heel[..., 1] = toe[..., 1] + 0.02
        out[f"{side}_heel"] = heel
    le, re_ = j("L_Eye"), j("R_Eye")
    centre = (le + re_) / 2
    across = _unit(le - re_)  # towards the left eye
    up = _unit(centre - (j("Spine02")))
    up = _unit(up - (up * across).sum(-1, keepdims=True) * across)
    front = np.cross(across, up)
    # The subject's left is the image's right when they face the camera: front = left x up.
    if np.median((front * (centre - j("Head"))).sum(-1)) < 0:
        front = -front
    out["nose"] = centre + 0.03 * front - 0.03 * up
    for side, sign, eye in (("left", 1, le), ("right", -1, re_)):
        out[f"{side}_eye"] = eye
        out[f"{side}_eye_inner"] = eye - sign * 0.015 * across
        out[f"{side}_eye_outer"] = eye + sign * 0.015 * across
        out[f"{side}_ear"] = centre + sign * 0.07 * across - 0.06 * front
        out[f"mouth_{side}"] = centre + sign * 0.025 * across - 0.07 * up
    pts = np.stack([out[n] for n in BLAZEPOSE33.joints], axis=1)
    return pts[..., [0, 2, 1]] * np.array([1, -1, 1])  # Y up -> Z up (x, -z, y): right-handed


def clip_subject(name: str) -> str:
    return name.split("_")[0]


def load_clips(directory: Path = MOCAP_DIR, subjects: tuple[str, ...] | None = None, step: int = 4,
               cache: Path | None = None) -> dict[str, np.ndarray]:
    """Clips of the given subjects as {clip: (F, 33, 3) metres, Z up}, every `step`-th frame
    (60 fps / 4 = 15 fps: neighbouring poses differ enough to count). Cached as .npz."""
    folder = Path(directory) / "bvh"
    files = sorted(folder.glob("*.bvh"))
    if not files:
        raise TriangulumError(f"no motion capture found in {folder}; point --mocap at the mocap-cmu folder "
                              "of ../shared/data.")
    if subjects is not None:
        files = [f for f in files if clip_subject(f.stem) in subjects]
    key = hashlib.sha1(("|".join(f.name for f in files) + f"{step}v1").encode()).hexdigest()[:12]
    cache = cache or Path.home() / ".cache" / "triangulum"
    path = cache / f"mocap-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    clips = {}
    for f in files:
        bvh = read_bvh(f)
        frames = np.arange(1, len(bvh.motion), step)  # frame 0 is the T-pose
        pos, _ = forward_kinematics(bvh, frames)
        clips[f.stem] = to_blazepose(bvh, pos).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **clips)
    return clips
