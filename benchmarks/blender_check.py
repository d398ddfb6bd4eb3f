"""Run by tests/test_blender.py in its own process (Blender's module keeps global state):
python benchmarks/blender_check.py TAKE.npz OUT_DIR -> prints one JSON line of measurements
(also run by benchmarks/character_rig.py --blender).

TAKE.npz holds joints (F, 33, 3) world metres, fps, and contacts_left/right (F,) bool.
"""

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np

with contextlib.redirect_stderr(io.StringIO()):  # bpy's NumPy 1.x build warns under NumPy 2
    import bpy

from app.export.blend import write_blend  # noqa: E402
from app.export.bvh import write_bvh  # noqa: E402
from app.export.rig import SITS_ON as ON  # noqa: E402
from app.sample import sample_calibration  # noqa: E402
from calibration.formats import convert  # noqa: E402
from engines.skeleton import BLAZEPOSE33  # noqa: E402


def heads(arm) -> dict[str, np.ndarray]:
    bpy.context.view_layer.update()
    out = {b.name: np.array(arm.matrix_world @ b.head) for b in arm.pose.bones}
    out.update({b.name + ".tail": np.array(arm.matrix_world @ b.tail) for b in arm.pose.bones})
    return out


def main() -> None:
    take, out = Path(sys.argv[1]), Path(sys.argv[2])
    z = np.load(take)
    joints, fps = z["joints"], float(z["fps"])
    contacts = {"Left": z["contacts_left"], "Right": z["contacts_right"]}
    report = {}

    # 1. the BVH with Blender's default import options
    bvh = write_bvh(out / "take.bvh", joints, BLAZEPOSE33, fps)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(bvh))
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    bones = arm.data.bones
    report["parents"] = {b.name: b.parent.name if b.parent else None for b in bones}
    report["lengths"] = {b.name: b.length for b in bones}
    report["flip_names"] = {b.name: bpy.utils.flip_name(b.name) for b in bones}
    report["rest_lowest"] = min(min(b.head_local[2], b.tail_local[2]) for b in bones)
    # default import: Blender (X, Y, Z) = file (X, -Z, Y) = world (Y, -X, Z)
    to_world = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    dists, lowest = [], {"Left": [], "Right": []}
    ix = BLAZEPOSE33.index
    scene = bpy.context.scene
    for f in range(len(joints)):
        scene.frame_set(f + 1)
        h = heads(arm)
        for bone, joint in ON.items():
            dists.append(float(np.linalg.norm(to_world @ h[bone] - joints[f, ix[joint]])))
        for side, s in (("Left", "left"), ("Right", "right")):
            dists.append(float(np.linalg.norm(to_world @ h[f"{side}ToeBase.tail"] - joints[f, ix[f"{s}_foot_index"]])))
            if contacts[side][f]:
                lowest[side].append(min(h[k][2] for k in (f"{side}Foot", f"{side}ToeBase", f"{side}ToeBase.tail")))
    report["joint_distance_median_m"] = float(np.median(dists))
    report["contact_lowest_m"] = {s: [float(v) for v in lowest[s]] for s in lowest}

    # 2. Paste Pose Flipped on a frame: the mirrored pose
    scene.frame_set(41)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="POSE")
    before = heads(arm)
    bpy.ops.pose.select_all(action="SELECT")
    bpy.ops.pose.copy()
    arm.animation_data_clear()  # keep the pasted pose from being overwritten by the action
    bpy.ops.pose.paste(flipped=True)
    after = heads(arm)
    report["flip_error_max_m"] = max(
        float(np.linalg.norm(after[bpy.utils.flip_name(n)] - p * [-1, 1, 1])) for n, p in before.items()
        if not n.endswith(".tail"))
    bpy.ops.object.mode_set(mode="OBJECT")

    # 3. the .blend written by Blender, opened again
    rig = convert(sample_calibration())
    blend = write_blend(out / "take.blend", joints, BLAZEPOSE33, fps, rig=rig, empties=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    report["blend_fps"] = scene.render.fps / scene.render.fps_base
    report["blend_range"] = [scene.frame_start, scene.frame_end]
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    report["blend_action_range"] = list(arm.animation_data.action.frame_range)
    report["blend_cameras"] = sorted(o.name for o in bpy.data.objects if o.type == "CAMERA")
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    errors = []
    for cam in rig.cameras:
        obj = bpy.data.objects[cam.name]
        scene.render.resolution_x, scene.render.resolution_y = cam.size
        for X in joints[::10, ix["left_knee"]]:
            uv = world_to_camera_view(scene, obj, Vector(X.tolist()))
            px = np.array([uv.x * cam.size[0], (1 - uv.y) * cam.size[1]])
            x = cam.K @ (cam.R @ X + cam.t)  # pinhole: Blender has no lens distortion
            errors.append(float(np.linalg.norm(px - x[:2] / x[2])))
    report["camera_projection_error_px"] = max(errors)
    scene.frame_set(51)
    bpy.context.view_layer.update()
    h = heads(arm)  # the .blend is in the world frame itself
    report["blend_knee_distance_m"] = float(np.linalg.norm(h["LeftLeg"] - joints[50, ix["left_knee"]]))
    empty = bpy.data.objects["left_wrist"]
    report["empty_error_m"] = float(np.linalg.norm(np.array(empty.matrix_world.translation) - joints[50, ix["left_wrist"]]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
