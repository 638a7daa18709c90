"""Runs in Blender: install + enable the add-on zip and drive its operators headless.

    python addon_session.py -- ADDON.zip ANIM.npz FLAMESYNC_EXE OUT.json FAKE_ANIMATE_EXE AUDIO

Scenario 1 creates the default head by asking flamesync and imports the take onto it. Scenario 2
imports the take onto a sphere whose shape keys use other naming schemes (and lack some). Then the
import is repeated to check existing animation is kept, not overwritten. Everything sampled goes to
OUT.json for the test to compare with the animation file.
"""

import json
import sys

import bpy

args = sys.argv[sys.argv.index("--") + 1:]
zip_path, anim_path, exe, out_path, fake_exe, audio_path = args
result = {"reports": []}

bpy.ops.wm.read_factory_settings(use_empty=True)
repo = bpy.context.preferences.extensions.repos.get("user_default")
result["install"] = list(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))
module = "bl_ext.user_default.flamesync"
import addon_utils  # noqa: E402

result["enabled"] = bool(addon_utils.check(module)[1])
prefs = bpy.context.preferences.addons[module].preferences
prefs.flamesync_path = exe
scene = bpy.context.scene
scene.render.fps = 30
settings = scene.flamesync


def sample(obj, names, n, first):
    keys = obj.data.shape_keys
    rows = []
    for i in range(n):
        scene.frame_set(first + i)
        rows.append([keys.key_blocks[k].value for k in names])
    return rows


def strips():
    ed = scene.sequence_editor
    if ed is None:
        return []
    coll = ed.strips_all if hasattr(ed, "strips_all") else ed.sequences_all
    return [{"name": s.name, "type": s.type, "frame_start": s.frame_start, "channel": s.channel} for s in coll]


# 1: default head made by flamesync, import onto it
r = bpy.ops.flamesync.create_head(kind="DEFAULT")
result["create_head"] = list(r)
settings.target = "DEFAULT"
settings.frame_start = 1
r = bpy.ops.flamesync.import_animation(filepath=anim_path)
result["import_default"] = list(r)
head = next(o for o in scene.objects if o.get("flamesync_default_head"))
head_keys = [kb.name for kb in head.data.shape_keys.key_blocks[1:]]
result["default"] = {"keys": head_keys, "action": head.data.shape_keys.animation_data.action.name}
# The .glb's rig came in as an armature deforming the head: Auto keys its head bone.
rig = head.find_armature()
result["default_rig"] = {"armature": rig.name if rig else None,
                         "action": rig.animation_data.action.name if rig and rig.animation_data and rig.animation_data.action else None}

# 2: a mesh with other naming schemes
bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=2)
sphere = bpy.context.active_object
renamed = {"jawOpen": "JawOpen", "mouthFunnel": "Face.mouthFunnel", "mouthSmileLeft": "mouthSmile_L",
           "eyeBlinkRight": "A08_Eye_Blink_Right", "tongueOut": "blendShape1.tongueOut"}
sphere.shape_key_add(name="Basis")
for i, name in enumerate(renamed.values()):
    kb = sphere.shape_key_add(name=name, from_mix=False)
    kb.data[i].co.z += 0.1
settings.target = "ACTIVE"
settings.frame_start = 11
r = bpy.ops.flamesync.import_animation(filepath=anim_path)
result["import_renamed"] = list(r)
result["renamed"] = {"map": renamed, "action": sphere.data.shape_keys.animation_data.action.name}

# 3: a second take on the same mesh: refused from a script unless told to keep the old one
first_action = sphere.data.shape_keys.animation_data.action.name
try:
    result["second_ask"] = list(bpy.ops.flamesync.import_animation(filepath=anim_path))
except RuntimeError as exc:  # operators reporting an error raise in scripts
    result["second_ask"] = ["CANCELLED", str(exc)]
result["after_ask_action"] = sphere.data.shape_keys.animation_data.action.name
r = bpy.ops.flamesync.import_animation(filepath=anim_path, on_existing="STASH")
result["second_stash"] = list(r)
ad = sphere.data.shape_keys.animation_data
result["after_stash"] = {
    "action": ad.action.name, "first_action": first_action,
    "nla": [[s.action.name for s in t.strips] for t in ad.nla_tracks], "nla_muted": [t.mute for t in ad.nla_tracks],
}

# 4: animate audio through the (stand-in) flamesync command onto a fresh ARKit-named mesh
bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=1)
plain = bpy.context.active_object
plain.shape_key_add(name="Basis")
for name in ("jawOpen", "mouthFunnel"):
    plain.shape_key_add(name=name, from_mix=False).data[0].co.x += 0.1
prefs.flamesync_path = fake_exe
settings.audio_path = audio_path
settings.frame_start = 1
try:
    result["animate"] = list(bpy.ops.flamesync.animate_audio())
except RuntimeError as exc:
    result["animate"] = ["CANCELLED", str(exc)]
ad = plain.data.shape_keys.animation_data
result["animate_action"] = ad.action.name if ad and ad.action else None

# samples (after everything, so stashing cannot have disturbed the default head)
n = int(json.loads(open(out_path + ".n").read()))
result["default"]["values"] = sample(head, head_keys, n, 1)
if rig is not None:
    # The head bone's turn in world space: posed world matrix times the rest one's inverse.
    bone_rest = (rig.matrix_world @ rig.data.bones["head"].matrix_local).to_3x3()
    turns = []
    for i in range(n):
        scene.frame_set(1 + i)
        posed = (rig.matrix_world @ rig.pose.bones["head"].matrix).to_3x3()
        turns.append([list(r) for r in posed @ bone_rest.inverted()])
    result["default_rig"]["turns"] = turns
result["renamed"]["values"] = sample(sphere, list(renamed.values()), n, 11)
result["strips"] = strips()
result["scene_range"] = [scene.frame_start, scene.frame_end]
with open(out_path, "w") as fh:
    json.dump(result, fh)
print("addon session done")
