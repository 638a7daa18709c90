"""Runs in Blender: import a file, then sample shape-key values and evaluated vertices per frame.

    python sample_import.py -- INPUT OUT.npz FPS N_FRAMES FIRST_FRAME [defaults]

With ``defaults`` the scene starts at 24 fps and the importer runs with its default options (what a
user gets from File > Import); otherwise the scene rate is set to FPS first.

Writes ``names`` (K,), ``values`` (N, K) shape-key values, ``vertices`` (N, V, 3) evaluated world
positions of the mesh, ``frames`` sampled and the scene's ``fps`` after import.
"""

import sys

import bpy
import numpy as np

args = sys.argv[sys.argv.index("--") + 1:]
src, out, fps, n, first = args[0], args[1], float(args[2]), int(args[3]), int(args[4])
defaults = args[5:] == ["defaults"]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
# Set the frame rate before importing: importers convert key times with the scene's rate.
scene.render.fps, scene.render.fps_base = (24, 1.0) if defaults else (int(round(fps)), 1.0)
ext = src.lower().rsplit(".", 1)[-1]
if ext == "fbx":
    bpy.ops.import_scene.fbx(filepath=src)
elif ext in ("usd", "usda", "usdc"):
    bpy.ops.wm.usd_import(filepath=src, set_frame_range=True)
elif ext == "abc":
    bpy.ops.wm.alembic_import(filepath=src, set_frame_range=True)
elif ext == "blend":
    bpy.ops.wm.open_mainfile(filepath=src)
    scene = bpy.context.scene
elif ext in ("glb", "gltf"):
    bpy.ops.import_scene.gltf(filepath=src)
else:
    raise SystemExit(f"unknown {ext}")

ed = scene.sequence_editor
strips = [] if ed is None else [(s.type, float(s.frame_start)) for s in ed.strips_all]
meshes = [o for o in scene.objects if o.type == "MESH"]
# The glTF importer adds display shapes for bones; the face is the mesh with shape keys if any.
meshes = [o for o in meshes if o.data.shape_keys] or meshes
assert len(meshes) == 1, [o.name for o in scene.objects]
obj = meshes[0]
keys = obj.data.shape_keys
names = [kb.name for kb in keys.key_blocks[1:]] if keys else []
values = np.zeros((n, len(names)), np.float32)
verts = None
deps = bpy.context.evaluated_depsgraph_get()
for i in range(n):
    scene.frame_set(first + i)
    for k, name in enumerate(names):
        values[i, k] = keys.key_blocks[name].value
    ev = obj.evaluated_get(deps)
    me = ev.to_mesh()
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    mw = np.array(ev.matrix_world, np.float64)
    co = co @ mw[:3, :3].T + mw[:3, 3]
    ev.to_mesh_clear()
    if verts is None:
        verts = np.zeros((n, len(co), 3), np.float32)
    verts[i] = co
np.savez(out, names=np.array(names), values=values, vertices=verts, frames=np.arange(first, first + n),
         fps=np.float32(scene.render.fps / scene.render.fps_base), frame_start=scene.frame_start,
         frame_end=scene.frame_end, sound_starts=np.array([f for t, f in strips if t == "SOUND"], np.float32))
print("sampled", obj.name, len(names), "keys")
