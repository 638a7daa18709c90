"""Runs in Blender: install a platform zip of the add-on and animate audio inside Blender.

    python addon_inprocess_session.py -- ADDON.zip AUDIO TRANSCRIPT FLAMESYNC_EXE OUT.json

torch (and librosa) are made unimportable before anything else runs, and the test starts Blender
with no ``flamesync`` on PATH. Then:

1. the preferences' backend menu: its default, and each entry (the built-in network, the
   flamesync command, one registered by another add-on) can be chosen;
2. the built-in backend animates AUDIO onto a mesh with the 52 ARKit shape keys;
3. the flamesync command backend (FLAMESYNC_EXE, the real program) animates AUDIO with TRANSCRIPT
   onto a second such mesh;
4. the built-in backend stops when cancelled, and refuses a transcript with a clear message;
5. the UI's background job;
6. the head rotation of the built-in take keyed on a rig's head bone, and not with Mouth only or
   Head 0.

Each take's F-curve keys go to OUT.json for the test to compare with ``flamesync animate``.
"""

import importlib.abc
import json
import os
import shutil
import subprocess
import sys


class _Block(importlib.abc.MetaPathFinder):
    """Make these modules unimportable, as on a Blender without them."""

    names = ("torch", "librosa")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"{name} is blocked in this test")
        return None


sys.meta_path.insert(0, _Block())

import bpy  # noqa: E402

args = sys.argv[sys.argv.index("--") + 1:]
zip_path, audio_path, transcript_path, exe, out_path = args
result = {"flamesync_on_path": shutil.which("flamesync")}

# Blender's own extension validator on the zip (what "blender --command extension validate" runs).
validator = os.path.join(bpy.utils.system_resource("SCRIPTS"), "addons_core", "bl_pkg", "cli", "blender_ext.py")
proc = subprocess.run([sys.executable, validator, "validate", zip_path], capture_output=True, text=True)
result["validate"] = [proc.returncode, (proc.stdout + proc.stderr).strip()]

bpy.ops.wm.read_factory_settings(use_empty=True)
result["install"] = list(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))
module = "bl_ext.user_default.flamesync"
import addon_utils  # noqa: E402

result["enabled"] = bool(addon_utils.check(module)[1])
addon = sys.modules[module]
prefs = bpy.context.preferences.addons[module].preferences
scene = bpy.context.scene
scene.render.fps = 24  # the take's own rate (30) differs from the scene's
settings = scene.flamesync

# 1: the preferences' menu
menu = {"default": prefs.backend, "chosen": {}}
addon.inference.register_backend("other", lambda audio, **kw: None, label="Another add-on's backend")
for name in ("cli", "other", "builtin"):
    try:
        prefs.backend = name
        menu["chosen"][name] = prefs.backend
    except (TypeError, ValueError) as exc:  # not among the menu's items
        menu["chosen"][name] = f"error: {exc}"
menu["labels"] = [item[1] for item in addon.inference.backend_items(prefs, bpy.context)]
# The job's progress bar (panel and status bar) uses UILayout.progress, which headless Blender
# cannot draw: at least it must exist in this Blender.
result["ui_progress"] = "progress" in bpy.types.UILayout.bl_rna.functions
result["menu"] = menu


def arkit_mesh(name):
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=3)
    obj = bpy.context.active_object
    obj.name = name
    obj.shape_key_add(name="Basis")
    for i, ch in enumerate(addon.namemap.ARKIT_52):
        obj.shape_key_add(name=ch, from_mix=False).data[i].co.z += 0.05
    return obj


def keys_of(obj):
    ad = obj.data.shape_keys.animation_data
    action = ad.action
    fcurves = addon.keying.channelbag_fcurves(obj.data.shape_keys, action)
    out = {}
    for fc in fcurves:
        name = fc.data_path.split('"')[1]
        co = [0.0] * (2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", co)
        out[name] = [co[0::2], co[1::2]]
    return {"action": action.name, "keys": out}


def run(label):
    try:
        return list(bpy.ops.flamesync.animate_audio())
    except RuntimeError as exc:  # an operator that reports an error raises in scripts
        return ["CANCELLED", str(exc)]


settings.audio_path = audio_path
settings.fps = 30.0
settings.frame_start = 1
settings.target = "ACTIVE"

# 2: built-in network
prefs.backend = "builtin"
builtin_mesh = arkit_mesh("Builtin")
result["builtin_run"] = run("builtin")
result["builtin"] = keys_of(builtin_mesh)

# 3: transcript through the flamesync command
prefs.backend = "cli"
prefs.flamesync_path = exe
settings.transcript_path = transcript_path
cli_mesh = arkit_mesh("Transcript")
result["cli_run"] = run("cli")
result["cli"] = keys_of(cli_mesh)

# 4: cancel and transcript refusal of the built-in backend
prefs.backend = "builtin"
arkit_mesh("Refused")
result["builtin_transcript_run"] = run("builtin+transcript")
try:
    addon.engine.builtin_backend(audio_path, fps=30.0, out_path=out_path + ".cancelled.npz",
                                 cancelled=lambda: True)
    result["cancel"] = "finished"
except addon.inference.InferenceError as exc:
    result["cancel"] = f"{exc.__class__.__name__}: {exc}"

# 5: the job the UI runs (a worker thread polled by a timer; headless Blender has no window for the
# modal operator itself), and the panel and status bar drawn with a recording layout while it runs.
class Recorder:
    def __init__(self, calls):
        self.calls = calls

    def __getattr__(self, name):
        def call(*a, **k):
            self.calls.append((name, k.get("text")))
            return Recorder(self.calls)
        return call


job = addon._Job(fn=addon.engine.builtin_backend, audio=audio_path, kw={"fps": 30.0},
                 tmp=os.path.dirname(out_path))
fractions = []
job.thread.start()
while job.thread.is_alive():
    fractions.append(job.fraction)
    job.thread.join(0.005)
fractions.append(job.fraction)
addon.JOB = job
calls = []
addon.draw_status(type("StatusBar", (), {"layout": Recorder(calls)})(), bpy.context)
addon.FLAMESYNC_PT_panel.draw(type("Panel", (), {"layout": Recorder(calls)})(), bpy.context)
addon.JOB = None
result["job"] = {"error": job.error, "fractions": fractions, "wrote": os.path.isfile(job.out),
                 "drawn": [c for c in calls if c[0] in ("progress", "operator")]}


# 6: head motion from the built-in network's take: keyed on the head bone of a rig (Auto), not
# keyed with Mouth only or a Head strength of 0.
def rigged(name):
    obj = arkit_mesh(name)
    arm = bpy.data.objects.new(name + "_rig", bpy.data.armatures.new(name + "_rig"))
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bone = arm.data.edit_bones.new("DEF-head")
    bone.head, bone.tail, bone.roll = (0, 0, 1), (0, -0.3, 1.4), 0.4
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.parent = arm
    obj.modifiers.new("rig", "ARMATURE").object = arm
    bpy.context.view_layer.objects.active = obj
    return obj, arm


def head_keys(arm):
    ad = arm.animation_data
    if ad is None or ad.action is None:
        return None
    fcurves = addon.keying.channelbag_fcurves(arm, ad.action)
    out = []
    for fc in fcurves:
        co = [0.0] * (2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", co)
        out.append({"path": fc.data_path, "index": fc.array_index, "frames": co[0::2], "values": co[1::2]})
    return out


settings.transcript_path = ""
heads = {}
for label, change in (("on", {}), ("mouth_only", {"mouth_only": True}), ("head0", {"head": 0.0})):
    for k, v in change.items():
        setattr(settings, k, v)
    _obj, arm = rigged("Head_" + label)
    heads[label] = {"run": run(label), "keys": head_keys(arm),
                    "rest": [list(r) for r in arm.data.bones["DEF-head"].matrix_local.to_3x3()]}
    settings.mouth_only, settings.head = False, 1.0
result["heads"] = heads
result["torch_loaded"] = "torch" in sys.modules
with open(out_path, "w") as fh:
    json.dump(result, fh)
print("addon in-process session done")
