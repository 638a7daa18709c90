"""Put a flamesync take onto a mesh's shape keys (a new action) and its audio into the sequencer."""

from __future__ import annotations

import bpy
import numpy as np

STASH_TRACK = "flamesync stash"


def channelbag_fcurves(id_data, action):
    """Assign ``action`` to ``id_data`` and return the F-curve collection its keys go into.

    Blender 4.4+ keeps F-curves in a channelbag per action slot (the only way from 5.0 on);
    older versions keep them on the action itself.
    """
    ad = id_data.animation_data or id_data.animation_data_create()
    ad.action = action
    try:
        from bpy_extras.anim_utils import action_ensure_channelbag_for_slot
    except ImportError:
        return action.fcurves
    if ad.action_slot is None:
        ad.action_slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
    return action_ensure_channelbag_for_slot(action, ad.action_slot).fcurves


def existing_action(obj):
    key = obj.data.shape_keys if obj and obj.type == "MESH" else None
    ad = key.animation_data if key else None
    return ad.action if ad else None


def stash_action(key, action, frame):
    """Keep an existing action in a muted NLA track so nothing is lost (undo still restores it)."""
    ad = key.animation_data
    try:
        track = ad.nla_tracks.new()
        track.name = STASH_TRACK
        track.strips.new(action.name, int(frame), action)
        track.mute = True
    except Exception:  # an action the NLA cannot take: at least keep it in the file
        action.use_fake_user = True
    ad.action = None


def key_take(obj, anim, mapping, *, scene, frame_start, take_name, strength=1.0, offset_s=0.0):
    """Key ``anim`` onto ``obj``'s shape keys through ``mapping`` {channel: shape key} in a new action.

    Keys sit at the animation's own times expressed in scene frames (``frame_start + (t +
    offset_s) * scene fps``), so the take stays in sync with its audio at any scene frame rate;
    ``offset_s`` moves the keys against the audio (positive: later). Every weight is multiplied by
    ``strength``. Returns the action.
    """
    key = obj.data.shape_keys
    old = existing_action(obj)
    if old is not None:
        stash_action(key, old, frame_start)
    action = bpy.data.actions.new(take_name)
    fcurves = channelbag_fcurves(key, action)
    scene_fps = scene.render.fps / scene.render.fps_base
    n = anim.n_frames
    frames = (frame_start + (np.arange(n, dtype=np.float64) / anim.fps + offset_s) * scene_fps).astype(np.float32)
    co = np.empty(2 * n, np.float32)
    co[0::2] = frames
    for channel, kname in mapping.items():
        kb = key.key_blocks[kname]
        values = anim.column(channel) * np.float32(strength)
        kb.slider_min = max(-10.0, min(kb.slider_min, float(np.floor(values.min()))))
        kb.slider_max = min(10.0, max(kb.slider_max, float(np.ceil(values.max()))))
        fc = fcurves.new(f'key_blocks["{bpy.utils.escape_identifier(kname)}"].value', index=0)
        fc.keyframe_points.add(n)
        co[1::2] = values
        fc.keyframe_points.foreach_set("co", co)
        fc.keyframe_points.foreach_set("interpolation", np.ones(n, np.int32))  # LINEAR
        fc.update()
    action["flamesync_fps"] = anim.fps
    action["flamesync_frame_start"] = float(frame_start)
    return action


def add_sound(scene, path, *, frame_start, offset_s, name):
    """Add the audio as a sound strip so that ``offset_s`` into it plays on ``frame_start``."""
    ed = scene.sequence_editor or scene.sequence_editor_create()
    strips = ed.strips if hasattr(ed, "strips") else ed.sequences
    all_strips = ed.strips_all if hasattr(ed, "strips_all") else ed.sequences_all
    channel = 1 + max((s.channel for s in all_strips), default=0)
    fps = scene.render.fps / scene.render.fps_base
    start = int(round(frame_start - offset_s * fps))
    strip = strips.new_sound(name, path, channel, start)
    return strip
