"""Runs in Blender: the add-on keys a take's head rotation on a head bone or on the object.

    python addon_head_session.py -- ADDON.zip HEAD.npz FLAT.npz EYES.npz OUT.json

HEAD.npz carries a head rotation, FLAT.npz the same take with the head rotation zero throughout
(what --mouth-only or head strength 0 give). Scenarios, each on fresh objects:

1. a mesh deformed by an armature whose ``head`` bone has a turned, rolled rest orientation
   (Head motion Auto), at scene 24 fps with the take at 30, start frame 5 and an offset;
2. the same with Head motion Off, and with FLAT.npz: nothing keyed on the armature;
3. a plain mesh standing rotated in the scene, Head motion Object;
4. Head motion Bone with a bone the armature lacks: refused; a renamed bone found by its name;
5. a second take on the rig: refused while the armature holds an action, then stashed;
6. EYES.npz (head rotation and gaze) on a rig with eye.L/eye.R under the head bone: both keyed in
   one action; not on a mesh whose eyeLook* have shape keys, nor on Rigify-style aimed eyes.

The F-curves (data path, index, keys), the Blender 5 layered-action layout and the evaluated pose
at a few frames go to OUT.json for the test to compare with flamesync's own head.r* channels.
"""

import json
import math
import sys

import bpy
from mathutils import Euler, Matrix

args = sys.argv[sys.argv.index("--") + 1:]
zip_path, head_path, flat_path, eyes_path, out_path = args
result = {}

bpy.ops.wm.read_factory_settings(use_empty=True)
result["install"] = list(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))
module = "bl_ext.user_default.flamesync"
addon = sys.modules[module]
scene = bpy.context.scene
scene.render.fps = 24  # the take's own rate (30) differs from the scene's
settings = scene.flamesync
settings.target = "ACTIVE"
settings.frame_start = 5
settings.offset_ms = 100.0


def face_mesh(name):
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=1)
    obj = bpy.context.active_object
    obj.name = name
    obj.shape_key_add(name="Basis")
    obj.shape_key_add(name="jawOpen", from_mix=False).data[0].co.z += 0.1
    return obj


def rigged(name, bone="head", eyes=(), eye_shape_key=False, aimed=False):
    """A mesh deformed by (and parented to) an armature with root > neck > ``bone`` (> ``eyes``)."""
    obj = face_mesh(name)
    if eye_shape_key:
        obj.shape_key_add(name="eyeLookOutLeft", from_mix=False).data[1].co.x += 0.1
    arm_data = bpy.data.armatures.new(name + "_rig")
    arm = bpy.data.objects.new(name + "_rig", arm_data)
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    root = arm_data.edit_bones.new("root")
    root.head, root.tail = (0, 0, 0), (0, 0, 0.5)
    neck = arm_data.edit_bones.new("neck")
    neck.head, neck.tail, neck.parent = (0, 0, 0.5), (0, 0.1, 1.0), root
    head = arm_data.edit_bones.new(bone)
    # Not along the world axes: the keys must undo this rest orientation.
    head.head, head.tail, head.parent = (0, 0.1, 1.0), (0.2, -0.1, 1.4), neck
    head.roll = 0.7
    for side, eye_name in zip((1, -1), eyes):
        eye = arm_data.edit_bones.new(eye_name)
        eye.head, eye.tail, eye.parent = (0.03 * side, -0.08, 1.2), (0.03 * side, -0.1, 1.2), head
        eye.roll = -0.3 * side
        if aimed:  # Rigify: the eye bone tracks a target bone in front of the face
            target = arm_data.edit_bones.new(eye_name.replace("ORG-", ""))
            target.head, target.tail, target.parent = (0.03 * side, -0.5, 1.2), (0.03 * side, -0.55, 1.2), head
    bpy.ops.object.mode_set(mode="OBJECT")
    if aimed:
        for eye_name in eyes:
            con = arm.pose.bones[eye_name].constraints.new("DAMPED_TRACK")
            con.target, con.subtarget = arm, eye_name.replace("ORG-", "")
    obj.parent = arm
    mod = obj.modifiers.new("rig", "ARMATURE")
    mod.object = arm
    bpy.context.view_layer.objects.active = obj
    return obj, arm


def run(path, **kw):
    try:
        return list(bpy.ops.flamesync.import_animation(filepath=path, **kw))
    except RuntimeError as exc:  # an operator that reports an error raises in scripts
        return ["CANCELLED", str(exc)]


def curves(id_data):
    ad = id_data.animation_data
    if ad is None or ad.action is None:
        return None
    action = ad.action
    out = {"action": action.name, "curves": []}
    if hasattr(action, "layers"):  # Blender 4.4+: layered actions, keys in the slot's channelbag
        bags = [bag for layer in action.layers for strip in layer.strips for bag in strip.channelbags]
        out["layout"] = {"layers": len(action.layers), "channelbags": len(bags),
                         "slot": ad.action_slot.identifier if ad.action_slot else None,
                         "bag_slot": bags[0].slot.identifier if bags else None}
        fcurves = [fc for bag in bags for fc in bag.fcurves]
    else:
        fcurves = list(action.fcurves)
    for fc in fcurves:
        co = [0.0] * (2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", co)
        out["curves"].append({"path": fc.data_path, "index": fc.array_index, "frames": co[0::2],
                              "values": co[1::2]})
    return out


def matrix(m):
    return [list(r) for r in m]


# Frames on keys of the take (t = (f - 5) / 24 - 0.1 s is a multiple of 1/30; 5 is before the first)
SAMPLE_FRAMES = (5, 9, 21, 29)

# 1: armature with a head bone, Auto
obj, arm = rigged("Rigged")
result["auto_mode"] = settings.head_motion
result["auto_run"] = run(head_path)
pose = {}
for f in SAMPLE_FRAMES:
    scene.frame_set(f)
    # The head's evaluated rotation in armature space, and its rest: keys = R @ rest.
    pose[f] = {"pose": matrix(arm.pose.bones["head"].matrix.to_3x3()),
               "neck": matrix(arm.pose.bones["neck"].matrix.to_3x3())}
result["bone"] = {"curves": curves(arm), "mesh_object": curves(obj), "rest": matrix(arm.data.bones["head"].matrix_local.to_3x3()),
                  "pose": pose, "rotation_mode": arm.pose.bones["head"].rotation_mode,
                  "shape_keys": curves(obj.data.shape_keys)["action"]}

# 2: Off, and a take whose head rotation is zero
obj, arm = rigged("RiggedOff")
settings.head_motion = "OFF"
result["off_run"] = run(head_path)
result["off"] = {"armature": curves(arm), "object": curves(obj), "shape_keys": curves(obj.data.shape_keys) is not None}
settings.head_motion = "AUTO"
obj, arm = rigged("RiggedFlat")
result["flat_run"] = run(flat_path)
result["flat"] = {"armature": curves(arm), "object": curves(obj), "shape_keys": curves(obj.data.shape_keys) is not None}
# a plain mesh under Auto: no rig, not flamesync's head, so its object is left alone
plain = face_mesh("PlainAuto")
result["plain_auto_run"] = run(head_path)
result["plain_auto"] = curves(plain)

# 3: a plain mesh that stands rotated, Object
obj = face_mesh("Standing")
obj.rotation_mode = "XYZ"
obj.rotation_euler = Euler((0.3, -0.2, 1.1), "XYZ")
result["object_base"] = matrix(obj.rotation_euler.to_matrix())
settings.head_motion = "OBJECT"
result["object_run"] = run(head_path)
opose = {}
for f in SAMPLE_FRAMES:
    scene.frame_set(f)
    opose[f] = matrix(obj.matrix_world.to_3x3())
result["object"] = {"curves": curves(obj), "pose": opose, "rotation_mode": obj.rotation_mode}
# a second take keeps the standing rotation as its base, not the first take's last pose
result["object_second_run"] = run(head_path, on_existing="STASH")
scene.frame_set(SAMPLE_FRAMES[1])
result["object_second_pose"] = matrix(obj.matrix_world.to_3x3())
result["object_second_nla"] = [[s.action.name for s in t.strips] for t in obj.animation_data.nla_tracks]

# 4: Bone with a name the armature lacks, then a rig whose head bone has another name
settings.head_motion = "BONE"
settings.head_bone = "Skull"
obj, arm = rigged("RiggedMissing")
result["missing_run"] = run(head_path)
result["missing"] = {"armature": curves(arm), "shape_keys": curves(obj.data.shape_keys) is not None}
settings.head_bone = ""
obj, arm = rigged("Mixamo", bone="mixamorig:Head")
result["mixamo_run"] = run(head_path)
result["mixamo"] = curves(arm)

# 5: the rig already animated: refused from a script, kept in the NLA with STASH
settings.head_motion = "AUTO"
obj, arm = rigged("Animated")
arm.pose.bones["neck"].keyframe_insert("location", frame=1)
body = arm.animation_data.action.name
result["animated_ask"] = run(head_path)
result["animated_ask_action"] = arm.animation_data.action.name
result["animated_stash"] = run(head_path, on_existing="STASH")
result["animated"] = {"body": body, "action": arm.animation_data.action.name,
                      "nla": [[s.action.name for s in t.strips] for t in arm.animation_data.nla_tracks],
                      "muted": [t.mute for t in arm.animation_data.nla_tracks]}
# 6: gaze on eye bones
obj, arm = rigged("Eyes", eyes=("eye.L", "eye.R"))
result["eyes_run"] = run(eyes_path)
epose = {}
for f in SAMPLE_FRAMES:
    scene.frame_set(f)
    epose[f] = {b: matrix(arm.pose.bones[b].matrix.to_3x3()) for b in ("head", "eye.L", "eye.R")}
result["eyes"] = {"curves": curves(arm), "pose": epose,
                  "rest": {b: matrix(arm.data.bones[b].matrix_local.to_3x3()) for b in ("head", "eye.L", "eye.R")}}
obj, arm = rigged("EyesOnShapeKeys", eyes=("eye.L", "eye.R"), eye_shape_key=True)
result["eyes_shape_keys_run"] = run(eyes_path)
result["eyes_shape_keys"] = [(k["path"]) for k in curves(arm)["curves"]]
obj, arm = rigged("EyesAimed", eyes=("ORG-eye.L", "ORG-eye.R"), aimed=True)
result["eyes_aimed_run"] = run(eyes_path)
result["eyes_aimed"] = [(k["path"]) for k in curves(arm)["curves"]]
result["version"] = list(bpy.app.version)
with open(out_path, "w") as fh:
    json.dump(result, fh)
print("addon head session done")
