"""A .blend scene written by real Blender (the `bpy` module from PyPI, optional: `pip install
'triangulum[blender]'`): the character rig of our BVH imported by Blender's own BVH importer,
its action at the take's frame rate with the scene's fps and frame range set, the calibrated
cameras as camera objects, and optionally an empty per triangulated joint.

The scene is in the calibration's world frame (Blender is Z up like it): the BVH is imported
with the axes that undo its Y-up convention, so cameras and empties are placed as they are.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from app.export.bvh import BvhConfig, write_bvh
from app.progress import console_to
from calibration.errors import TriangulumError
from calibration.rig import Rig
from engines.skeleton import Skeleton

# bpy 5.0 declares numpy<2 but runs with numpy 2; --no-deps keeps the numpy OpenCV needs.
INSTALL = "pip install --no-deps bpy zstandard (or pip install 'triangulum[blender]' in an environment with numpy<2)"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("bpy") is not None


def _fps(fps: float) -> tuple[int, float]:
    """Blender's (fps, fps_base) for a rate: 29.97 -> (30000, 1001)."""
    f = Fraction(fps).limit_denominator(1001)
    return f.numerator, float(f.denominator)


def _camera_objects(bpy, rig: Rig) -> list:
    from mathutils import Matrix

    objects = []
    for cam in rig.cameras:
        data = bpy.data.cameras.new(cam.name)
        w, h = cam.size
        data.sensor_fit = "HORIZONTAL"
        data.sensor_width = 36.0
        data.lens = float(cam.K[0, 0]) * 36.0 / w
        # with the sensor fitted to the width, Blender's shift is in units of the width
        data.shift_x = (w / 2 - float(cam.K[0, 2])) / w
        data.shift_y = (float(cam.K[1, 2]) - h / 2) / w
        obj = bpy.data.objects.new(cam.name, data)
        # OpenCV looks along +Z with y down; a Blender camera along -Z with y up
        world = np.eye(4)
        world[:3, :3] = cam.R.T @ np.diag([1.0, -1.0, -1.0])
        world[:3, 3] = -cam.R.T @ cam.t
        obj.matrix_world = Matrix(world.tolist())
        obj["triangulum_size"] = [int(w), int(h)]
        objects.append(obj)
    return objects


def write_blend(
    path: str | Path,
    joints: np.ndarray,
    skeleton: Skeleton,
    fps: float,
    rig: Rig | None = None,
    empties: bool = False,
    bvh: BvhConfig | None = None,
) -> Path:
    """Write a .blend of the take (F, J, 3) world metres. Returns the path."""
    if not available():
        raise TriangulumError(f"Writing .blend files needs Blender's Python module: {INSTALL}.")
    # bpy's NumPy 1.x build warns under NumPy 2, and Blender reports its missing audio device
    with contextlib.redirect_stderr(io.StringIO()), console_to(os.devnull):
        import bpy

    path = Path(path).resolve()
    with tempfile.TemporaryDirectory() as tmp, console_to(os.devnull):
        bvh_path = write_bvh(Path(tmp) / f"{path.stem}.bvh", joints, skeleton, fps, bvh or BvhConfig())
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = _fps(fps)
        # BVH X, Y, Z = world Y, Z, X: file Y is up and file X is Blender's +Y
        bpy.ops.import_anim.bvh(filepath=str(bvh_path), axis_forward="X", axis_up="Y",
                                update_scene_fps=False, update_scene_duration=True, global_scale=1.0)
    armature = next(o for o in scene.objects if o.type == "ARMATURE")
    armature.name = armature.data.name = path.stem
    scene.frame_start, scene.frame_end = 1, len(joints)
    cameras = _camera_objects(bpy, rig) if rig is not None else []
    for obj in cameras:
        scene.collection.objects.link(obj)
    if cameras:
        scene.camera = cameras[0]
        scene.render.resolution_x, scene.render.resolution_y = rig.cameras[0].size
    if empties:
        group = bpy.data.collections.new("joints")
        scene.collection.children.link(group)
        for j, name in enumerate(skeleton.joints):
            empty = bpy.data.objects.new(name, None)
            empty.empty_display_type = "SPHERE"
            empty.empty_display_size = 0.015
            group.objects.link(empty)
            for f, p in enumerate(joints[:, j]):
                if np.isfinite(p).all():
                    empty.location = tuple(float(v) for v in p)
                    empty.keyframe_insert("location", frame=f + 1)
    scene["triangulum_fps"] = float(fps)
    with console_to(os.devnull):
        bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=True)
    return path
