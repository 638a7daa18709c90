"""flamesync for Blender: speech audio to ARKit shape-key animation, with the audio in sync.

3D viewport sidebar > flamesync:

- *Target*: the active mesh, the default head (created from a flamesync-exported ``.glb`` or by an
  installed ``flamesync``) or a FLAME head (``flamesync --face flame:PATH``).
- *Animate audio*: runs the configured backend (an installed ``flamesync`` command, path in the
  preferences) on an audio file (+ optional transcript) and keys the result.
- *Import animation*: keys a ready flamesync ``.npz`` (needs neither flamesync nor torch).
- *Name map*: which shape key each channel drives; filled automatically for the usual naming
  schemes, editable; channels without a key are reported.

Every take goes into a new action; an existing action on the shape keys is kept in a muted NLA
track (the operator asks first when run from the UI); one undo removes the take.
"""

from __future__ import annotations

import os
import tempfile

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import animfile, inference, keying, namemap

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
        name="Inference", items=lambda self, ctx: [(k, v[1], "") for k, v in inference.BACKENDS.items()],
        description="How audio becomes animation")

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
    add_audio: BoolProperty(name="Add audio strip", default=True)
    fit_range: BoolProperty(name="Fit scene range", default=True, description="Extend the scene's frame range to the take")
    show_map: BoolProperty(name="Show name map", default=False)
    map_index: IntProperty()


# ------------------------------------------------------------------------------------ helpers
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
    scene = context.scene
    action = keying.key_take(obj, anim, mapping, scene=scene, frame_start=settings.frame_start,
                             take_name=take_name)
    obj["flamesync_last_action"] = action.name
    scene_fps = scene.render.fps / scene.render.fps_base
    last = settings.frame_start + (anim.n_frames - 1) * scene_fps / anim.fps
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
        return obj

    def needs_confirmation(self, obj):
        return self.on_existing == "ASK" and keying.existing_action(obj) is not None

    def invoke(self, context, event):
        obj = target_object(context, context.scene.flamesync)
        if obj is not None and keying.existing_action(obj) is not None and self.on_existing == "ASK":
            self.on_existing = "STASH"
            return context.window_manager.invoke_confirm(
                self, event, title="Shape keys already animated",
                message=f"Keep '{keying.existing_action(obj).name}' in a muted NLA track and key a new take?")
        return self.execute(context)

    def refuse_existing(self, obj):
        self.report({"ERROR"}, f"{obj.name}'s shape keys already have action "
                               f"'{keying.existing_action(obj).name}'; run with on_existing='STASH' to keep it "
                               "in an NLA track and add the take")
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


class FLAMESYNC_OT_animate_audio(_TakeOperator, bpy.types.Operator):
    """Animate the target from the chosen audio with the configured backend (flamesync command)"""

    bl_idname = "flamesync.animate_audio"
    bl_label = "Animate Audio"
    bl_options = {"REGISTER", "UNDO"}

    audio_override: StringProperty(options={"HIDDEN"})

    def execute(self, context):
        settings = context.scene.flamesync
        p = prefs(context)
        audio = bpy.path.abspath(settings.audio_path)
        if not audio or not os.path.isfile(audio):
            self.report({"ERROR"}, "choose an audio file first")
            return {"CANCELLED"}
        obj = self.resolve_target(context)
        if obj is None:
            return {"CANCELLED"}
        if self.needs_confirmation(obj):
            return self.refuse_existing(obj)
        backend_name = (p.backend if p else "") or "cli"
        fn, _label = inference.BACKENDS[backend_name]
        face = None
        if settings.target == "FLAME":
            if not (p and p.flame_model):
                self.report({"ERROR"}, "set the FLAME model file in the add-on preferences")
                return {"CANCELLED"}
            face = "flame:" + bpy.path.abspath(p.flame_model)
        transcript = bpy.path.abspath(settings.transcript_path) if settings.transcript_path else None
        wm = context.window_manager
        wm.progress_begin(0, 100)

        def progress(done, total, task):
            if total:
                wm.progress_update(int(100 * done / total))

        with tempfile.TemporaryDirectory(prefix="flamesync-") as tmp:
            out = os.path.join(tmp, "take.npz")
            try:
                kw = {}
                if backend_name == "cli":
                    kw["exe"] = inference.find_flamesync(p.flamesync_path if p else "")
                fn(audio, transcript=transcript, face=face, out_path=out, progress=progress, **kw)
                anim = animfile.read_animation(out)
            except (inference.InferenceError, animfile.AnimationFileError) as exc:
                self.report({"ERROR"}, f"flamesync: {exc}")
                return {"CANCELLED"}
            finally:
                wm.progress_end()
            self.audio_override = audio
            name = os.path.splitext(os.path.basename(audio))[0]
            return apply_take(self, context, anim, anim_path=out, obj=obj, take_name=f"flamesync_{name}")


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
        col.prop(s, "audio_path")
        col.prop(s, "transcript_path")
        col.prop(s, "target")
        if s.target != "ACTIVE":
            op = col.operator("flamesync.create_head", icon="MESH_MONKEY")
            op.kind = "FLAME" if s.target == "FLAME" else "DEFAULT"
        obj = target_object(context, s)
        col.label(text=f"Target: {obj.name}" if obj else "Target: none", icon="OBJECT_DATA")
        col.prop(s, "frame_start")
        row = col.row()
        row.prop(s, "add_audio")
        row.prop(s, "fit_range")
        col.operator("flamesync.animate_audio", icon="SPEAKER")
        col.operator("flamesync.import_animation", icon="IMPORT")
        box = layout.box()
        box.prop(s, "show_map", icon="TRIA_DOWN" if s.show_map else "TRIA_RIGHT", emboss=False)
        if s.show_map and obj is not None:
            box.operator("flamesync.auto_map", icon="FILE_REFRESH")
            box.template_list("FLAMESYNC_UL_map", "", obj, "flamesync_map", s, "map_index", rows=6)


CLASSES = (
    FLAMESYNC_AddonPreferences, FLAMESYNC_MapEntry, FLAMESYNC_Settings,
    FLAMESYNC_OT_import_animation, FLAMESYNC_OT_animate_audio, FLAMESYNC_OT_create_head,
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


def unregister():
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    del bpy.types.Object.flamesync_map
    del bpy.types.Scene.flamesync
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
