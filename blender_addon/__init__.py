"""flamesync for Blender: speech audio to ARKit shape-key animation, with the audio in sync.

3D viewport sidebar > flamesync:

- *Target*: the active mesh, the default head (created from a flamesync-exported ``.glb`` or by an
  installed ``flamesync``) or a FLAME head (``flamesync --face flame:PATH``).
- *Animate audio*: runs the configured backend on an audio file and keys the result: the built-in
  network (flamesync's own code and model, bundled with the platform zips; no other install) or an
  installed ``flamesync`` command (path in the preferences), which also aligns a transcript. Long
  clips run as a background job with a progress bar in the status bar and a cancel button (Esc).
- *Import animation*: keys a ready flamesync ``.npz`` (needs neither flamesync nor torch).
- *Name map*: which shape key each channel drives; filled automatically for the usual naming
  schemes, editable; channels without a key are reported.

The take's head rotation is keyed too (*Head motion*): on the head bone of the armature that
deforms the mesh, or on the object itself (see keying.head_target); the gaze also on eye bones of
a rig without eyeLook* shape keys.

Every take goes into a new action (one on the shape keys, one on the object or armature for the
head); an existing action there is kept in a muted NLA track (the operator asks first when run
from the UI); one undo removes the take.
"""

# No "from __future__ import annotations" here: Blender reads the properties from the class
# annotations, and string annotations are evaluated without this module's globals, so a callable
# like the backend menu's items would fail to find ``inference`` and the menu stay empty.

import os
import shutil
import tempfile
import threading

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import animfile, engine, inference, keying, namemap  # noqa: F401  (engine registers "builtin")

bl_info = {  # legacy add-on loading (Blender < 4.2 or "Install from Disk" of the folder)
    "name": "flamesync",
    "author": "flamesync developers",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D Viewport > Sidebar > flamesync",
    "description": "Speech audio to ARKit shape-key animation, with the audio in sync",
    "category": "Animation",
}

ROTATION_CHANNELS = {"jaw.rx", "jaw.ry", "jaw.rz", "head.rx", "head.ry", "head.rz"}


# ------------------------------------------------------------------------------------ settings
class FLAMESYNC_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    flamesync_path: StringProperty(
        name="flamesync executable", subtype="FILE_PATH",
        description="The installed flamesync command (empty: look for 'flamesync' on PATH)")
    flame_model: StringProperty(
        name="FLAME model", subtype="FILE_PATH",
        description="Your FLAME model file (generic_model.pkl or a flamesync .npz) for FLAME targets")
    backend: EnumProperty(
        name="Inference", items=inference.backend_items,
        default=inference.item_number("builtin" if engine.bundled() else "cli"),
        description="How audio becomes animation: the built-in network, or the flamesync command "
                    "(needed for transcripts and FLAME heads)")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "backend")
        col.prop(self, "flamesync_path")
        col.prop(self, "flame_model")


def prefs(context):
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


class FLAMESYNC_MapEntry(bpy.types.PropertyGroup):
    channel: StringProperty(name="Channel")
    shape_key: StringProperty(name="Shape key", description="Shape key driven by this channel (empty: none)")


class FLAMESYNC_Settings(bpy.types.PropertyGroup):
    audio_path: StringProperty(name="Audio", subtype="FILE_PATH")
    transcript_path: StringProperty(name="Transcript", subtype="FILE_PATH", description="Optional text of the speech")
    target: EnumProperty(name="Target", items=[
        ("ACTIVE", "Active mesh", "The active mesh object with ARKit-style shape keys"),
        ("DEFAULT", "Default head", "flamesync's default head (create it below)"),
        ("FLAME", "FLAME head", "A FLAME head made by flamesync from your FLAME model"),
    ], default="ACTIVE")
    frame_start: IntProperty(name="Start frame", default=1, description="Scene frame of the take's first frame")
    fps: FloatProperty(name="Take fps", default=0.0, min=0.0, max=240.0,
                       description="Frame rate the take is computed at (0: the scene's frame rate)")
    offset_ms: FloatProperty(name="Offset (ms)", default=0.0, min=-1000.0, max=1000.0,
                             description="Move the keys against the audio (positive: later)")
    strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=3.0,
                            description="Multiplies every shape-key weight of the take")
    # The alive face (flamesync.expressive): blinks, gaze, brows, head motion and emotion.
    mouth_only: BoolProperty(name="Mouth only", default=False,
                             description="Speech channels only: no blinks, gaze, brows, head motion or emotion")
    blinks: FloatProperty(name="Blinks", default=1.0, min=0.0, max=2.0, description="Blink strength (0: off)")
    gaze: FloatProperty(name="Gaze", default=1.0, min=0.0, max=2.0, description="Eye saccade strength (0: off)")
    brows: FloatProperty(name="Brows", default=1.0, min=0.0, max=2.0, description="Brow-raise strength (0: off)")
    head: FloatProperty(name="Head", default=1.0, min=0.0, max=2.0,
                        description="Head motion strength (0: off); keyed as set by Head motion")
    head_motion: EnumProperty(name="Head motion", items=[
        ("AUTO", "Auto", "The head bone of the mesh's armature if it has one, else the object for flamesync's "
                         "own heads, else nothing"),
        ("OFF", "Off", "Do not key the head rotation"),
        ("OBJECT", "Object", "Key the target mesh object's rotation (about its origin)"),
        ("BONE", "Bone", "Key a pose bone of the armature that deforms or parents the mesh"),
    ], default="AUTO", description="Where the take's head rotation is keyed")
    head_bone: StringProperty(name="Head bone",
                              description="Pose bone for the head rotation (empty: the first of head, Head, "
                                          "DEF-head, ORG-head, mixamorig:Head, ... neck, Neck found)")
    eye_bones: BoolProperty(name="Eye bones", default=True,
                            description="Key the gaze on the armature's eye bones (eye.L/eye.R, eye_L/eye_R, "
                                        "DEF-eye.L, ...) when no eyeLook* channel has a shape key")
    emotion: EnumProperty(name="Emotion", items=[(e, e.capitalize(), f"{e} expression on brows, eyes, cheeks and mouth corners")
                                                 for e in ("neutral", "happy", "sad", "angry", "surprised", "fearful",
                                                           "disgusted")], default="neutral")
    intensity: FloatProperty(name="Intensity", default=0.6, min=0.0, max=1.0, description="How strongly the emotion shows")
    seed: IntProperty(name="Seed", default=0, min=0, description="Seed of the layers' random choices")
    add_audio: BoolProperty(name="Add audio strip", default=True)
    fit_range: BoolProperty(name="Fit scene range", default=True, description="Extend the scene's frame range to the take")
    show_map: BoolProperty(name="Show name map", default=False)
    map_index: IntProperty()


# ------------------------------------------------------------------------------------ helpers
def layer_settings(settings) -> dict:
    """The panel's alive-face settings as keyword arguments of ``flamesync.animate``."""
    return {"mouth_only": bool(settings.mouth_only), "blinks": float(settings.blinks), "gaze": float(settings.gaze),
            "brows": float(settings.brows), "head": float(settings.head), "emotion": str(settings.emotion),
            "intensity": float(settings.intensity), "seed": int(settings.seed)}


def target_object(context, settings):
    if settings.target == "ACTIVE":
        obj = context.active_object
    else:
        tag = "flamesync_default_head" if settings.target == "DEFAULT" else "flamesync_flame_head"
        obj = next((o for o in context.scene.objects if o.get(tag)), None)
    return obj if obj is not None and obj.type == "MESH" else None


def shape_key_names(obj):
    keys = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    return [kb.name for kb in keys.key_blocks[1:]] if keys else []


def mapping_for(obj, channels):
    """{channel: shape key} from the object's edited name map, else automatic matching."""
    names = set(shape_key_names(obj))
    entries = {e.channel: e.shape_key for e in obj.flamesync_map} if len(obj.flamesync_map) else None
    if entries is None:
        return namemap.auto_map(channels, names)
    out = {}
    auto = namemap.auto_map([c for c in channels if c not in entries], names)
    for ch in channels:
        k = entries.get(ch, auto.get(ch))
        if k and k in names:
            out[ch] = k
    return out


def gaze_on_shape_keys(mapping):
    """Whether the gaze already shows through shape keys (then eye bones stay still)."""
    return any(c in mapping for c in keying.EYE_LOOK_CHANNELS)


def apply_take(op, context, anim, *, anim_path, obj, take_name):
    """Key ``anim`` onto ``obj`` and add its audio; report what could not be mapped."""
    settings = context.scene.flamesync
    channels = [c for c in anim.expression_channels]
    if not shape_key_names(obj):
        op.report({"ERROR"}, f"{obj.name} has no shape keys to animate")
        return {"CANCELLED"}
    mapping = mapping_for(obj, channels)
    if not mapping:
        op.report({"ERROR"}, f"none of the animation's channels match a shape key of {obj.name}; "
                             "edit the name map")
        return {"CANCELLED"}
    kind, _owner, _bone, why = keying.head_target(obj, settings.head_motion, settings.head_bone)
    if kind == "OFF" and why and settings.head_motion == "BONE":
        op.report({"ERROR"}, f"head motion: {why}")
        return {"CANCELLED"}
    scene = context.scene
    action = keying.key_take(obj, anim, mapping, scene=scene, frame_start=settings.frame_start,
                             take_name=take_name, strength=settings.strength, offset_s=settings.offset_ms / 1000.0)
    obj["flamesync_last_action"] = action.name
    motion = keying.key_motion(
        obj, anim, scene=scene, frame_start=settings.frame_start, take_name=take_name, mode=settings.head_motion,
        bone_name=settings.head_bone, eyes=settings.eye_bones, gaze_on_shape_keys=gaze_on_shape_keys(mapping),
        strength=settings.strength, offset_s=settings.offset_ms / 1000.0)
    scene_fps = scene.render.fps / scene.render.fps_base
    last = settings.frame_start + ((anim.n_frames - 1) / anim.fps + settings.offset_ms / 1000.0) * scene_fps
    if settings.fit_range:
        scene.frame_start = min(scene.frame_start, settings.frame_start)
        scene.frame_end = max(scene.frame_end, int(last + 0.999))
    audio = op_audio_path(op, anim, anim_path)
    if settings.add_audio and audio:
        try:
            keying.add_sound(scene, audio, frame_start=settings.frame_start, offset_s=anim.audio_offset,
                             name=take_name)
        except Exception as exc:
            op.report({"WARNING"}, f"audio not added: {exc}")
    missing = [c for c in channels if c not in mapping]
    msg = f"keyed {len(mapping)} shape keys on {obj.name} in action '{action.name}' ({anim.n_frames} frames)"
    for rig_action, where in motion:
        msg += f"; {', '.join(where)} in '{rig_action.name}'"
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        op.report({"WARNING"}, f"{msg}; {len(missing)} channel(s) have no shape key: {shown}")
    else:
        op.report({"INFO"}, msg)
    if anim.meta.get("jaw_rotation") not in (None, "implied") and "jaw.rx" in anim.channels:
        op.report({"WARNING"}, "the take's jaw rotation is explicit; shape keys alone do not rotate a jaw bone")
    return {"FINISHED"}


def op_audio_path(op, anim, anim_path):
    return getattr(op, "audio_override", "") or anim.resolved_audio(anim_path)


class _TakeOperator:
    """Shared parts of the operators that add a take: target check and the overwrite question."""

    on_existing: EnumProperty(name="Existing animation", items=[
        ("ASK", "Ask", "Ask before replacing an existing action (scripts: refuse)"),
        ("STASH", "Keep in NLA", "Move the existing action to a muted NLA track and key a new one"),
    ], default="ASK")

    def resolve_target(self, context):
        obj = target_object(context, context.scene.flamesync)
        if obj is None:
            self.report({"ERROR"}, "no target mesh: select a mesh or create the default head")
            return None
        s = context.scene.flamesync
        kind, _owner, _bone, why = keying.head_target(obj, s.head_motion, s.head_bone)
        if kind == "OFF" and why and s.head_motion == "BONE":  # before minutes of inference, not after
            self.report({"ERROR"}, f"head motion: {why}")
            return None
        return obj

    @staticmethod
    def existing(context, obj):
        """[(what, action)] a take would move to the NLA: the shape keys' and the head target's."""
        found = []
        if keying.existing_action(obj) is not None:
            found.append((f"{obj.name}'s shape keys", keying.existing_action(obj)))
        s = context.scene.flamesync
        gaze = gaze_on_shape_keys(mapping_for(obj, list(keying.EYE_LOOK_CHANNELS)))
        plan, _why = keying.plan_motion(obj, s.head_motion, s.head_bone, eyes=s.eye_bones, gaze_on_shape_keys=gaze)
        for owner in plan:
            ad = owner.animation_data
            if ad is not None and ad.action is not None:
                found.append((owner.name, ad.action))
        return found

    def needs_confirmation(self, obj):
        return self.on_existing == "ASK" and bool(self.existing(bpy.context, obj))

    def invoke(self, context, event):
        obj = target_object(context, context.scene.flamesync)
        found = self.existing(context, obj) if obj is not None else []
        if found and self.on_existing == "ASK":
            self.on_existing = "STASH"
            names = ", ".join(f"'{a.name}'" for _w, a in found)
            return context.window_manager.invoke_confirm(
                self, event, title="Already animated",
                message=f"Keep {names} in a muted NLA track and key a new take?")
        return self.execute(context)

    def refuse_existing(self, obj):
        what, action = self.existing(bpy.context, obj)[0]
        self.report({"ERROR"}, f"{what} already animated by action '{action.name}'; run with "
                               "on_existing='STASH' to keep it in an NLA track and add the take")
        return {"CANCELLED"}


# ------------------------------------------------------------------------------------ operators
class FLAMESYNC_OT_import_animation(_TakeOperator, bpy.types.Operator):
    """Key a flamesync animation file (.npz) onto the target's shape keys, with its audio"""

    bl_idname = "flamesync.import_animation"
    bl_label = "Import flamesync Animation"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    audio_override: StringProperty(name="Audio", subtype="FILE_PATH", description="Use this audio instead")

    def invoke(self, context, event):
        if not self.filepath:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return _TakeOperator.invoke(self, context, event)

    def execute(self, context):
        obj = self.resolve_target(context)
        if obj is None:
            return {"CANCELLED"}
        if self.needs_confirmation(obj):
            return self.refuse_existing(obj)
        try:
            anim = animfile.read_animation(bpy.path.abspath(self.filepath))
        except animfile.AnimationFileError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        name = os.path.splitext(os.path.basename(self.filepath))[0]
        return apply_take(self, context, anim, anim_path=bpy.path.abspath(self.filepath), obj=obj,
                          take_name=f"flamesync_{name}")


class _Job:
    """One animation running in a worker thread (the backend never touches bpy)."""

    def __init__(self, *, fn, audio, kw, tmp):
        self.audio = audio
        self.tmp = tmp
        self.out = os.path.join(tmp, "take.npz")
        self.done, self.total, self.task = 0, 0, ""
        self.cancel = threading.Event()
        self.error = None
        kw = dict(kw, out_path=self.out, progress=self.progress, cancelled=self.cancel.is_set)
        self.thread = threading.Thread(target=self._run, args=(fn, audio, kw), daemon=True)

    def progress(self, done, total, task):
        self.done, self.total, self.task = done or 0, total or 0, task or ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def _run(self, fn, audio, kw):
        try:
            inference.call_backend(fn, audio, **kw)
        except inference.InferenceError as exc:
            self.error = str(exc)
        except Exception as exc:  # a backend bug: still one line for the user
            self.error = f"{exc.__class__.__name__}: {exc}"


JOB = None  # the running _Job (one at a time)


def _redraw_status(context):
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("STATUSBAR", "VIEW_3D"):
                area.tag_redraw()


class FLAMESYNC_OT_animate_audio(_TakeOperator, bpy.types.Operator):
    """Animate the target from the chosen audio with the configured backend (built-in network or flamesync command)"""

    bl_idname = "flamesync.animate_audio"
    bl_label = "Animate Audio"
    bl_options = {"REGISTER", "UNDO"}

    audio_override: StringProperty(options={"HIDDEN"})
    background_job: BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"},
                                 description="Run as a job with progress and cancel (set when started from the UI)")

    _timer = None

    def prepare(self, context):
        """(backend fn, audio, keyword arguments, target) or None after reporting what is wrong."""
        settings = context.scene.flamesync
        p = prefs(context)
        audio = bpy.path.abspath(settings.audio_path)
        if not audio or not os.path.isfile(audio):
            self.report({"ERROR"}, "choose an audio file first")
            return None
        obj = self.resolve_target(context)
        if obj is None:
            return None
        backend_name = (p.backend if p else "") or next(iter(inference.BACKENDS))
        if backend_name not in inference.BACKENDS:
            self.report({"ERROR"}, f"unknown inference backend {backend_name!r}; choose one in the preferences")
            return None
        fn, _label = inference.BACKENDS[backend_name]
        face = None
        if settings.target == "FLAME":
            if not (p and p.flame_model):
                self.report({"ERROR"}, "set the FLAME model file in the add-on preferences")
                return None
            face = "flame:" + bpy.path.abspath(p.flame_model)
        transcript = bpy.path.abspath(settings.transcript_path) if settings.transcript_path else None
        if transcript and not os.path.isfile(transcript):
            self.report({"ERROR"}, f"transcript file not found: {transcript}")
            return None
        scene = context.scene
        fps = settings.fps or scene.render.fps / scene.render.fps_base
        kw = {"transcript": transcript, "face": face, "fps": fps, "layers": layer_settings(settings)}
        if backend_name == "cli":
            kw["exe"] = inference.find_flamesync(p.flamesync_path if p else "")
        return fn, audio, kw, obj

    def invoke(self, context, event):
        self.background_job = True
        return _TakeOperator.invoke(self, context, event)

    def execute(self, context):
        global JOB
        if JOB is not None:
            self.report({"ERROR"}, "flamesync is already animating; wait or cancel it")
            return {"CANCELLED"}
        ready = self.prepare(context)
        if ready is None:
            return {"CANCELLED"}
        fn, audio, kw, obj = ready
        if self.needs_confirmation(obj):
            return self.refuse_existing(obj)
        job = _Job(fn=fn, audio=audio, kw=kw, tmp=tempfile.mkdtemp(prefix="flamesync-"))
        if self.background_job and context.window is not None and not bpy.app.background:
            JOB = job
            job.thread.start()
            wm = context.window_manager
            wm.progress_begin(0, 100)
            self._timer = wm.event_timer_add(0.1, window=context.window)
            wm.modal_handler_add(self)
            return {"RUNNING_MODAL"}
        # From scripts: the same work, waited for here.
        wm = context.window_manager
        wm.progress_begin(0, 100)
        try:
            job.thread.start()
            while job.thread.is_alive():
                job.thread.join(0.1)
                wm.progress_update(int(100 * job.fraction))
        finally:
            wm.progress_end()
        return self.finish(context, job, obj)

    def modal(self, context, event):
        global JOB
        job = JOB
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel.set()
            return {"RUNNING_MODAL"}  # consumed: Esc means "stop flamesync" here, nothing else
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if job.thread.is_alive():
            context.window_manager.progress_update(int(100 * job.fraction))
            context.workspace.status_text_set(
                f"flamesync: animating {os.path.basename(job.audio)} {100 * job.fraction:.0f}%  (Esc: cancel)")
            _redraw_status(context)
            return {"RUNNING_MODAL"}
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)
        JOB = None
        _redraw_status(context)
        obj = self.resolve_target(context)
        if obj is None:
            shutil.rmtree(job.tmp, ignore_errors=True)
            return {"CANCELLED"}
        return self.finish(context, job, obj)

    def finish(self, context, job, obj):
        try:
            if job.cancel.is_set():
                self.report({"WARNING"}, "flamesync: cancelled")
                return {"CANCELLED"}
            if job.error:
                self.report({"ERROR"}, f"flamesync: {job.error}")
                return {"CANCELLED"}
            try:
                anim = animfile.read_animation(job.out)
            except animfile.AnimationFileError as exc:
                self.report({"ERROR"}, f"flamesync: {exc}")
                return {"CANCELLED"}
            self.audio_override = job.audio
            name = os.path.splitext(os.path.basename(job.audio))[0]
            return apply_take(self, context, anim, anim_path=job.out, obj=obj, take_name=f"flamesync_{name}")
        finally:
            shutil.rmtree(job.tmp, ignore_errors=True)


class FLAMESYNC_OT_cancel(bpy.types.Operator):
    """Stop the running flamesync animation job"""

    bl_idname = "flamesync.cancel"
    bl_label = "Cancel flamesync"

    @classmethod
    def poll(cls, context):
        return JOB is not None

    def execute(self, context):
        JOB.cancel.set()
        return {"FINISHED"}


def draw_status(self, context):
    """Status bar: the running job's progress bar and a cancel button."""
    if JOB is None:
        return
    row = self.layout.row(align=True)
    row.progress(factor=JOB.fraction, type="BAR", text=f"flamesync {100 * JOB.fraction:.0f}%")
    row.operator("flamesync.cancel", text="", icon="CANCEL")


class FLAMESYNC_OT_create_head(bpy.types.Operator):
    """Create the default head (or a FLAME head): from a flamesync-exported .glb, or by asking flamesync"""

    bl_idname = "flamesync.create_head"
    bl_label = "Create Head"
    bl_options = {"REGISTER", "UNDO"}

    kind: EnumProperty(items=[("DEFAULT", "Default head", ""), ("FLAME", "FLAME head", "")], default="DEFAULT")
    filepath: StringProperty(subtype="FILE_PATH", description="A flamesync-exported .glb (empty: ask flamesync)")

    def execute(self, context):
        p = prefs(context)
        path = bpy.path.abspath(self.filepath) if self.filepath else ""
        with tempfile.TemporaryDirectory(prefix="flamesync-") as tmp:
            if not path:
                exe = inference.find_flamesync(p.flamesync_path if p else "")
                if not exe:
                    self.report({"ERROR"}, "flamesync not found: set its path in the preferences or pick a .glb")
                    return {"CANCELLED"}
                face = "default"
                if self.kind == "FLAME":
                    if not (p and p.flame_model):
                        self.report({"ERROR"}, "set the FLAME model file in the add-on preferences")
                        return {"CANCELLED"}
                    face = "flame:" + bpy.path.abspath(p.flame_model)
                neutral = os.path.join(tmp, "neutral.npz")
                import numpy as np

                animfile.write_animation(neutral, fps=30.0, channels=namemap.ARKIT_52,
                                         values=np.zeros((1, 52), np.float32))
                path = os.path.join(tmp, "head.glb")
                try:
                    inference.run_flamesync(exe, ["export", neutral, "-o", path, "--face", face])
                except inference.InferenceError as exc:
                    self.report({"ERROR"}, f"flamesync: {exc}")
                    return {"CANCELLED"}
            if not os.path.isfile(path):
                self.report({"ERROR"}, f"file not found: {path}")
                return {"CANCELLED"}
            before = set(bpy.data.objects)
            bpy.ops.import_scene.gltf(filepath=path)
        new = [o for o in bpy.data.objects if o not in before]
        meshes = [o for o in new if o.type == "MESH" and o.data.shape_keys]
        if not meshes:
            self.report({"ERROR"}, "the file has no mesh with shape keys")
            return {"CANCELLED"}
        head = meshes[0]
        # The glTF's own one-frame animation is not a take: drop it so takes start clean.
        for o in new:
            for idb in (o, getattr(o.data, "shape_keys", None)):
                if idb is not None and idb.animation_data:
                    idb.animation_data.action = None
        tag = "flamesync_default_head" if self.kind == "DEFAULT" else "flamesync_flame_head"
        head[tag] = True
        context.view_layer.objects.active = head
        context.scene.flamesync.target = self.kind
        self.report({"INFO"}, f"created {head.name} with {len(head.data.shape_keys.key_blocks) - 1} shape keys")
        return {"FINISHED"}


class FLAMESYNC_OT_auto_map(bpy.types.Operator):
    """Fill the target's name map by matching channel names to its shape keys"""

    bl_idname = "flamesync.auto_map"
    bl_label = "Auto-map Names"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = target_object(context, context.scene.flamesync)
        if obj is None:
            self.report({"ERROR"}, "no target mesh")
            return {"CANCELLED"}
        found = namemap.auto_map(namemap.ARKIT_52, shape_key_names(obj))
        obj.flamesync_map.clear()
        for ch in namemap.ARKIT_52:
            e = obj.flamesync_map.add()
            e.channel, e.shape_key = ch, found.get(ch, "")
        missing = [c for c in namemap.ARKIT_52 if c not in found]
        if missing:
            self.report({"WARNING"}, f"{len(found)} of 52 channels matched; no shape key for: "
                                     + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
        else:
            self.report({"INFO"}, "all 52 channels matched")
        return {"FINISHED"}


# ------------------------------------------------------------------------------------ UI
class FLAMESYNC_UL_map(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.label(text=item.channel)
        keys = data.data.shape_keys if data.type == "MESH" else None
        if keys:
            row.prop_search(item, "shape_key", keys, "key_blocks", text="")
        else:
            row.prop(item, "shape_key", text="")


class FLAMESYNC_PT_panel(bpy.types.Panel):
    bl_label = "flamesync"
    bl_idname = "FLAMESYNC_PT_panel"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "flamesync"

    def draw(self, context):
        s = context.scene.flamesync
        layout = self.layout
        col = layout.column()
        p = prefs(context)
        if p is not None:
            col.prop(p, "backend")
        col.prop(s, "audio_path")
        col.prop(s, "transcript_path")
        if s.transcript_path and p is not None and p.backend != "cli":
            col.label(text="Transcripts need the flamesync command backend", icon="INFO")
        col.prop(s, "target")
        if s.target != "ACTIVE":
            op = col.operator("flamesync.create_head", icon="MESH_MONKEY")
            op.kind = "FLAME" if s.target == "FLAME" else "DEFAULT"
        obj = target_object(context, s)
        col.label(text=f"Target: {obj.name}" if obj else "Target: none", icon="OBJECT_DATA")
        col.prop(s, "frame_start")
        col.prop(s, "fps")
        row = col.row(align=True)
        row.prop(s, "offset_ms")
        row.prop(s, "strength")
        row = col.row()
        row.prop(s, "add_audio")
        row.prop(s, "fit_range")
        box = col.box()
        box.prop(s, "mouth_only")
        sub = box.column(align=True)
        sub.enabled = not s.mouth_only
        row = sub.row(align=True)
        row.prop(s, "blinks")
        row.prop(s, "gaze")
        row = sub.row(align=True)
        row.prop(s, "brows")
        row.prop(s, "head")
        row = sub.row(align=True)
        row.prop(s, "emotion", text="")
        row.prop(s, "intensity")
        sub.prop(s, "seed")
        # Also for imported files, whose head rotation the sliders above did not make.
        row = box.row(align=True)
        row.prop(s, "head_motion")
        if s.head_motion in ("AUTO", "BONE"):
            row.prop(s, "head_bone", text="", icon="BONE_DATA")
        box.prop(s, "eye_bones")
        if JOB is not None:
            row = col.row(align=True)
            row.progress(factor=JOB.fraction, type="BAR", text=f"Animating {100 * JOB.fraction:.0f}%")
            row.operator("flamesync.cancel", text="", icon="CANCEL")
        else:
            col.operator("flamesync.animate_audio", icon="SPEAKER")
        col.operator("flamesync.import_animation", icon="IMPORT")
        box = layout.box()
        box.prop(s, "show_map", icon="TRIA_DOWN" if s.show_map else "TRIA_RIGHT", emboss=False)
        if s.show_map and obj is not None:
            box.operator("flamesync.auto_map", icon="FILE_REFRESH")
            box.template_list("FLAMESYNC_UL_map", "", obj, "flamesync_map", s, "map_index", rows=6)


CLASSES = (
    FLAMESYNC_AddonPreferences, FLAMESYNC_MapEntry, FLAMESYNC_Settings,
    FLAMESYNC_OT_import_animation, FLAMESYNC_OT_animate_audio, FLAMESYNC_OT_cancel, FLAMESYNC_OT_create_head,
    FLAMESYNC_OT_auto_map, FLAMESYNC_UL_map, FLAMESYNC_PT_panel,
)


def menu_import(self, context):
    self.layout.operator(FLAMESYNC_OT_import_animation.bl_idname, text="flamesync Animation (.npz)")


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.flamesync = bpy.props.PointerProperty(type=FLAMESYNC_Settings)
    bpy.types.Object.flamesync_map = CollectionProperty(type=FLAMESYNC_MapEntry)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)
    bpy.types.STATUSBAR_HT_header.append(draw_status)


def unregister():
    if JOB is not None:
        JOB.cancel.set()
    bpy.types.STATUSBAR_HT_header.remove(draw_status)
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    del bpy.types.Object.flamesync_map
    del bpy.types.Scene.flamesync
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
