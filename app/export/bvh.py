"""BVH export: the humanoid character rig of `app.export.rig`, animated by the take.

Conventions of the written file:
- Y up, the cyclic axis change TRC uses: BVH (X, Y, Z) = world (Y, Z, X). Units metres by
  default (Blender's importer reads BVH units as metres at scale 1) or centimetres.
- Hierarchy: Hips -> Spine -> Spine1 -> Neck -> Head; Spine1 -> Left/RightShoulder -> Arm ->
  ForeArm -> Hand; Hips -> Left/RightUpLeg -> Leg -> Foot -> ToeBase (Mixamo's names, which
  Blender's mirror tools and common retargeting tools recognise); no zero-length bones, left
  and right bone lengths equal.
- Rest pose: a T-pose (facing +Z, the person's left towards +X) standing on the floor: the
  root's OFFSET is its rest position above the floor.
- The root's position channels are its absolute position in the take (as Blender's importer
  reads them: it subtracts the rest position itself); every joint has three Euler channels,
  "Zrotation Xrotation Yrotation" (default) or "Xrotation Yrotation Zrotation", the local matrix
  being the product in channel order.
- Feet on the floor: by default each foot is brought onto the calibration's floor (world Z = 0)
  in the frames where it stands (`app.export.floor.plant_feet`); `BvhConfig(floor=False)` keeps
  the take's own foot heights.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from app.export.conventions import check_take, text_rows, world_to_yup
from app.export.floor import FloorConfig, plant_feet
from app.export.rig import Rig, build_rig, rig_points, solve_rotations
from calibration.errors import TriangulumError
from engines.skeleton import Skeleton

_UNITS = {"m": 1.0, "cm": 100.0}
_ORDERS = {"ZXY": ("Zrotation", "Xrotation", "Yrotation"), "XYZ": ("Xrotation", "Yrotation", "Zrotation")}


@dataclass(frozen=True)
class BvhConfig:
    """units: "m" or "cm"; rotation_order: "ZXY" or "XYZ" (channel order of every joint);
    floor: put the feet on the floor where they stand (None: keep the take's heights)."""

    units: str = "m"
    rotation_order: str = "ZXY"
    floor: FloorConfig | None = FloorConfig()


@dataclass(frozen=True)
class BvhMotion:
    """The rig and its motion: local (F, N, 3, 3) rotations, root (F, 3) positions, metres,
    Y-up; contacts: side -> (F,) frames where that foot was put on the floor."""

    rig: Rig
    local: np.ndarray
    root: np.ndarray
    contacts: dict[str, np.ndarray]


def solve_motion(joints: np.ndarray, skeleton: Skeleton, fps: float, floor: FloorConfig | None) -> BvhMotion:
    """The rig and its per-frame rotations for a take (F, J, 3) world metres."""
    points = {k: world_to_yup(v) for k, v in rig_points(joints, skeleton).items()}
    if not np.isfinite(points["pelvis"]).all(-1).any():
        raise TriangulumError("Cannot write BVH: the hips are missing in every frame.")
    rig = build_rig(points)
    contacts: dict[str, np.ndarray] = {}
    if floor is not None:
        points, contacts = plant_feet(rig, points, fps, floor)
    local, root = solve_rotations(rig, points)
    return BvhMotion(rig, local, root, contacts)


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
    motion = solve_motion(joints, skeleton, fps, config.floor)
    rig = motion.rig
    lines = ["HIERARCHY"]

    def emit(i: int, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"ROOT {rig.names[i]}" if i == 0 else f"{pad}JOINT {rig.names[i]}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {_fmt(rig.offsets[i] * scale)}")
        if i == 0:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {channels}")
        else:
            lines.append(f"{pad}\tCHANNELS 3 {channels}")
        for c in rig.children(i):
            emit(c, depth + 1)
        if np.isfinite(rig.ends[i]).all():
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{"])
            lines.extend([f"{pad}\t\tOFFSET {_fmt(rig.ends[i] * scale)}", f"{pad}\t}}"])
        lines.append(pad + "}")

    emit(0, 0)
    angles = _euler(motion.local, config.rotation_order)
    lines += ["MOTION", f"Frames: {len(joints)}", f"Frame Time: {1.0 / fps:.8f}"]
    table = np.concatenate([motion.root * scale, angles.reshape(len(joints), -1)], axis=1)
    lines += text_rows(table + 0.0, " ")  # + 0.0 turns -0.0 into 0.0
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
