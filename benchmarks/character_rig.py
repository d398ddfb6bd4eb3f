"""How close the BVH/.blend character rig's joints come to the triangulated ones, per joint,
with the feet put on the floor (default) and without; and how near the floor the feet are in
their contact frames. On the built-in sample (processed here) or a poses3d.npz.

    python benchmarks/character_rig.py [--poses results/poses3d.npz] [--blender] [--json out.json]

--blender (needs bpy) also measures the same in real Blender (benchmarks/blender_check.py):
joint distance after Blender's default BVH import, the lowest foot point in contact frames,
Paste Pose Flipped against the mirrored pose, and the .blend's cameras against the calibration.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.export.bvh import solve_motion  # noqa: E402
from app.export.conventions import world_to_yup  # noqa: E402
from app.export.floor import FloorConfig  # noqa: E402
from app.export.rig import SITS_ON as ON  # noqa: E402
from app.export.rig import forward  # noqa: E402
from engines.skeleton import BLAZEPOSE33  # noqa: E402


def measure(joints: np.ndarray, fps: float, floor: FloorConfig | None) -> dict:
    motion = solve_motion(joints, BLAZEPOSE33, fps, floor)
    pos, ends = forward(motion.rig, motion.local, motion.root)
    name = {n: i for i, n in enumerate(motion.rig.names)}
    take = world_to_yup(joints)
    ix = BLAZEPOSE33.index
    rows = {r: np.linalg.norm(pos[:, name[r]] - take[:, ix[j]], axis=-1) for r, j in ON.items()}
    for side, s in (("Left", "left"), ("Right", "right")):
        rows[f"{side}ToeBase end"] = np.linalg.norm(ends[:, name[f"{side}ToeBase"]] - take[:, ix[f"{s}_foot_index"]], axis=-1)
    out = {"per_joint_cm": {k: 100 * float(np.median(v)) for k, v in rows.items()},
           "all_cm": 100 * float(np.median(np.stack(list(rows.values())))), "contact_lowest_mm": {}}
    for side, contact in motion.contacts.items():
        parts = [name[f"{side}Foot"], name[f"{side}ToeBase"]]
        low = np.minimum(pos[:, parts, 1].min(1), ends[:, name[f"{side}ToeBase"], 1])
        out["contact_lowest_mm"][side] = {"frames": int(contact.sum()), "max_abs": 1000 * float(np.abs(low[contact]).max())}
    return out


def in_blender(joints: np.ndarray, fps: float) -> dict:
    """benchmarks/blender_check.py on this take, in its own process (bpy keeps global state)."""
    motion = solve_motion(joints, BLAZEPOSE33, fps, FloorConfig())
    with tempfile.TemporaryDirectory() as tmp:
        take = Path(tmp) / "take.npz"
        np.savez(take, joints=joints, fps=fps, contacts_left=motion.contacts["Left"],
                 contacts_right=motion.contacts["Right"])
        run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "blender_check.py"), str(take), tmp],
                             capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--poses", type=Path, help="a poses3d.npz (default: process the built-in sample)")
    p.add_argument("--blender", action="store_true", help="also measure in Blender (needs bpy)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        poses = a.poses
        if poses is None:
            subprocess.run([sys.executable, "-m", "app.cli", "process", "--no-overlays", "--formats", "csv", "-o", tmp],
                           check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            poses = Path(tmp) / "poses3d.npz"
        with np.load(poses) as z:
            main_id = int(z["main_person"])
            joints, fps = z[f"person{main_id}_joints"], float(z["fps"])
    report = {"floor": measure(joints, fps, FloorConfig()), "no_floor": measure(joints, fps, None)}
    if a.blender:
        report["blender"] = in_blender(joints, fps)
    print("| rig joint | feet on the floor (cm) | the take's foot heights (cm) |\n|---|---|---|")
    for k in report["floor"]["per_joint_cm"]:
        print(f"| {k} | {report['floor']['per_joint_cm'][k]:.1f} | {report['no_floor']['per_joint_cm'][k]:.1f} |")
    print(f"| **median, all** | **{report['floor']['all_cm']:.1f}** | **{report['no_floor']['all_cm']:.1f}** |")
    for side, c in report["floor"]["contact_lowest_mm"].items():
        print(f"{side} foot: {c['frames']} contact frames, lowest point within {c['max_abs']:.1f} mm of the floor")
    if a.blender:
        b = report["blender"]
        lows = [abs(v) for side in b["contact_lowest_m"].values() for v in side]
        print(f"in Blender: joints {100 * b['joint_distance_median_m']:.1f} cm median from the take; lowest foot "
              f"point within {1000 * max(lows):.1f} mm of the floor in {len(lows)} contact frames; Paste Pose Flipped "
              f"{1000 * b['flip_error_max_m']:.4f} mm from the mirrored pose; cameras {b['camera_projection_error_px']:.3f} px "
              f"from the calibration's pinhole projection; .blend at {b['blend_fps']:g} fps, frames "
              f"{b['blend_range'][0]}-{b['blend_range'][1]}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
