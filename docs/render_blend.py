"""Render a picture of a .blend written by `triangulum process --formats blend` with Blender's
Workbench engine (runs without a display): the posed rig of that frame gets a skin (a tube along
each bone) so the character shows in the render, on the calibration's floor; the view is from
the scene's first calibrated camera (or --camera).

    python docs/render_blend.py sample-results/person0.blend docs/blender-character.png --frame 40
"""

import argparse
import contextlib
import io
import os

from app.progress import console_to

with contextlib.redirect_stderr(io.StringIO()), console_to(os.devnull):
    import bpy


def skin(arm) -> None:
    """A tube figure of the armature's current pose: a cylinder along each bone and a ball on
    each joint, world coordinates."""
    import bmesh
    from mathutils import Matrix, Vector

    bm = bmesh.new()
    for b in arm.pose.bones:
        head, tail = arm.matrix_world @ b.head, arm.matrix_world @ b.tail
        axis = tail - head
        radius = 0.06 if b.name in ("Hips", "Spine", "Spine1") else 0.075 if b.name == "Head" else 0.03
        rot = Vector((0, 0, 1)).rotation_difference(axis.normalized()).to_matrix().to_4x4()
        place = Matrix.Translation((head + tail) / 2) @ rot
        bmesh.ops.create_cone(bm, cap_ends=True, segments=16, radius1=radius, radius2=radius * 0.8,
                              depth=axis.length, matrix=place)
        bmesh.ops.create_uvsphere(bm, u_segments=16, v_segments=8, radius=radius * 1.1,
                                  matrix=Matrix.Translation(head))
    mesh = bpy.data.meshes.new("figure")
    bm.to_mesh(mesh)
    bm.free()
    bpy.context.scene.collection.objects.link(bpy.data.objects.new("figure", mesh))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("blend")
    p.add_argument("png")
    p.add_argument("--frame", type=int, default=40)
    p.add_argument("--camera", default=None, help="camera object to look through (default the scene's)")
    a = p.parse_args()
    with console_to(os.devnull):
        bpy.ops.wm.open_mainfile(filepath=a.blend)
    scene = bpy.context.scene
    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    scene.frame_set(a.frame)
    skin(arm)
    bpy.ops.mesh.primitive_plane_add(size=8.0, location=(0, 0, 0))  # the calibration's floor
    if a.camera:
        scene.camera = bpy.data.objects[a.camera]
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "SINGLE"
    scene.display.shading.show_shadows = True
    scene.render.resolution_percentage = 40
    scene.render.filepath = os.path.abspath(a.png)
    with console_to(os.devnull):
        bpy.ops.render.render(write_still=True)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
