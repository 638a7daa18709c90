"""Put a flamesync take onto a mesh's shape keys and its head rotation onto the object or a head bone
(new actions), and its audio into the sequencer."""

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


def stash_action(id_data, action, frame):
    """Keep an existing action in a muted NLA track so nothing is lost (undo still restores it)."""
    ad = id_data.animation_data
    try:
        track = ad.nla_tracks.new()
        track.name = STASH_TRACK
        track.strips.new(action.name, int(frame), action)
        track.mute = True
    except Exception:  # an action the NLA cannot take: at least keep it in the file
        action.use_fake_user = True
    ad.action = None


def take_frames(anim, *, scene, frame_start, offset_s=0.0):
    """Scene frames (float32) of the take's frames: ``frame_start + (t + offset_s) * scene fps``."""
    scene_fps = scene.render.fps / scene.render.fps_base
    t = np.arange(anim.n_frames, dtype=np.float64) / anim.fps
    return (frame_start + (t + offset_s) * scene_fps).astype(np.float32)


def write_curve(fcurves, data_path, frames, values, index=0):
    """One F-curve with a linear key per frame (bulk insert)."""
    n = len(frames)
    co = np.empty(2 * n, np.float32)
    co[0::2] = frames
    co[1::2] = values
    fc = fcurves.new(data_path, index=index)
    fc.keyframe_points.add(n)
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", np.ones(n, np.int32))  # LINEAR
    fc.update()
    return fc


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
    frames = take_frames(anim, scene=scene, frame_start=frame_start, offset_s=offset_s)
    for channel, kname in mapping.items():
        kb = key.key_blocks[kname]
        values = anim.column(channel) * np.float32(strength)
        kb.slider_min = max(-10.0, min(kb.slider_min, float(np.floor(values.min()))))
        kb.slider_max = min(10.0, max(kb.slider_max, float(np.ceil(values.max()))))
        write_curve(fcurves, f'key_blocks["{bpy.utils.escape_identifier(kname)}"].value', frames, values)
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


# ------------------------------------------------------------------------------------ head motion
HEAD_CHANNELS = ("head.rx", "head.ry", "head.rz")
# Searched in this order on the armature that deforms or parents the mesh: exact names first, then
# the same names ignoring case. ``head`` comes first because it is the control bone of Rigify
# rigs (their DEF-/ORG- bones follow it through constraints) and the joint of flamesync's own
# .glb heads; the neck is the fallback for rigs without a head bone.
HEAD_BONE_NAMES = ("head", "Head", "DEF-head", "ORG-head", "mixamorig:Head", "CC_Base_Head", "J_Bip_C_Head",
                   "Head_M", "Bip01 Head", "Bip01_Head", "neck", "Neck", "DEF-neck", "mixamorig:Neck",
                   "CC_Base_NeckTwist01", "J_Bip_C_Neck", "Neck_M")
# flamesync's frame is y-up with +z out of the face (glTF's); Blender's characters are z-up facing
# -y: (x, y, z) -> (x, -z, y), the map flamesync's FBX/USD/.blend exports use (blender_formats.py).
Y_UP_TO_Z_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)


def find_armature(obj):
    """The armature that deforms ``obj`` (its Armature modifier), else its armature parent."""
    for mod in getattr(obj, "modifiers", ()):
        if mod.type == "ARMATURE" and mod.object is not None and mod.show_viewport:
            return mod.object
    parent = obj.parent
    return parent if parent is not None and parent.type == "ARMATURE" else None


def find_head_bone(arm):
    """The first of :data:`HEAD_BONE_NAMES` among ``arm``'s bones (exact, then ignoring case)."""
    if arm is None:
        return None
    bones = arm.data.bones
    for name in HEAD_BONE_NAMES:
        if name in bones:
            return name
    lower = {b.name.lower(): b.name for b in bones}
    return next((lower[n.lower()] for n in HEAD_BONE_NAMES if n.lower() in lower), None)


def rotvec_to_quat(rv):
    """Axis-angle vectors (T, 3) to unit quaternions (T, 4), w first."""
    rv = np.asarray(rv, np.float64)
    angle = np.linalg.norm(rv, axis=1)
    half = 0.5 * angle
    # sin(a/2)/a tends to 1/2 at 0; the series keeps tiny angles exact.
    k = np.where(angle > 1e-8, np.sin(half) / np.where(angle > 1e-8, angle, 1.0), 0.5 - angle ** 2 / 48.0)
    return np.concatenate([np.cos(half)[:, None], rv * k[:, None]], axis=1)


def quat_multiply(a, b):
    """Hamilton products of (…, 4) quaternions, w first."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def continuous(q):
    """Flip quaternions onto the hemisphere of their predecessor, so linear keys never swing the
    long way round between two frames."""
    q = np.array(q, np.float64)
    if len(q) > 1:
        flips = np.sum(q[1:] * q[:-1], axis=1) < 0
        q[1:] *= np.where(np.cumsum(flips) % 2 == 1, -1.0, 1.0)[:, None]
    return q


def head_quaternions(rotvec, *, strength=1.0, rest=None, base=None):
    """Blender quaternions (T, 4) for flamesync's head rotation vectors (T, 3).

    The rotation is carried into Blender's frame (:data:`Y_UP_TO_Z_UP`) and its angle scaled by
    ``strength``. For a bone, ``rest`` is its rest orientation in armature space (3x3): a pose
    rotation lives in the bone's own axes, so the armature-space rotation R becomes rest^-1 R rest
    (the conjugation flamesync's exported rigs use). For an object, ``base`` (w, x, y, z) is its
    rotation before the take, applied after the head's (the head turns in the object's own axes).
    """
    rv = np.asarray(rotvec, np.float64) @ Y_UP_TO_Z_UP.T * float(strength)
    if rest is not None:
        r = np.asarray(rest, np.float64)
        r = r / np.linalg.norm(r, axis=0, keepdims=True)  # rest matrices may carry no scale, be safe
        rv = rv @ r  # rest^T rv: the same rotation in the bone's axes
    q = rotvec_to_quat(rv)
    if base is not None:
        q = quat_multiply(np.asarray(base, np.float64)[None, :], q)
    return continuous(q)


def head_target(obj, mode, bone_name=""):
    """Where the head rotation goes: ``(mode, id, bone or None, why)`` with mode OFF, OBJECT or BONE.

    ``mode`` AUTO picks BONE when the mesh's armature has a head bone, OBJECT for flamesync's own
    heads without one, else OFF; ``why`` explains an OFF (None when keyed or asked off).
    """
    arm = find_armature(obj)
    if mode == "OFF":
        return "OFF", None, None, None
    if mode in ("AUTO", "BONE"):
        # Auto still finds a head bone when the named one is not in this rig (a name left from
        # another character); Bone insists on the name.
        name = bone_name if bone_name and (mode == "BONE" or (arm is not None and bone_name in arm.data.bones)) \
            else find_head_bone(arm)
        if arm is not None and name and name in arm.data.bones:
            return "BONE", arm, name, None
        if mode == "BONE":
            if arm is None:
                return "OFF", None, None, f"{obj.name} has no armature (modifier or parent) for the head bone"
            if bone_name:
                return "OFF", None, None, f"armature {arm.name} has no bone '{bone_name}'"
            return "OFF", None, None, (f"armature {arm.name} has none of the head bones "
                                       f"({', '.join(HEAD_BONE_NAMES[:4])}, ...); set the bone name")
        if obj.get("flamesync_default_head") or obj.get("flamesync_flame_head"):
            return "OBJECT", obj, None, None
        return "OFF", None, None, None
    return "OBJECT", obj, None, None


# Eye bone pairs (the face's left, right), searched like the head bones.
EYE_BONE_NAMES = (("eye.L", "eye.R"), ("eye_L", "eye_R"), ("DEF-eye.L", "DEF-eye.R"), ("ORG-eye.L", "ORG-eye.R"),
                  ("Eye.L", "Eye.R"), ("Eye_L", "Eye_R"), ("eyeLeft", "eyeRight"), ("LeftEye", "RightEye"),
                  ("mixamorig:LeftEye", "mixamorig:RightEye"), ("CC_Base_L_Eye", "CC_Base_R_Eye"),
                  ("J_Adj_L_FaceEye", "J_Adj_R_FaceEye"), ("eye_left", "eye_right"))
# The gaze weights in the order flamesync.channels.EYE_LOOK_CHANNELS lists them; 1 = 30 degrees
# (flamesync.channels.EYE_LOOK_DEGREES).
EYE_LOOK_CHANNELS = tuple(f"eyeLook{d}{side}" for side in ("Left", "Right") for d in ("Out", "In", "Down", "Up"))
EYE_LOOK_DEGREES = 30.0


AIMING = ("DAMPED_TRACK", "TRACK_TO", "LOCKED_TRACK", "IK", "COPY_ROTATION", "COPY_TRANSFORMS", "CHILD_OF")


def aim_bones(arm):
    """Bones whose rotation would do nothing if keyed: targets other bones aim at (Rigify's eye.L
    and eye.R) and bones turned by constraints (its ORG-/DEF-eye bones)."""
    out = set()
    for pb in arm.pose.bones:
        for con in pb.constraints:
            if con.type in AIMING and con.enabled and con.influence > 0:
                out.add(pb.name)
                if getattr(con, "target", None) == arm:
                    out.add(getattr(con, "subtarget", ""))
    return out


def find_eye_bones(arm):
    """The first (left, right) pair of :data:`EYE_BONE_NAMES` in ``arm`` that keys can turn."""
    if arm is None:
        return None
    bones = arm.data.bones
    lower = {b.name.lower(): b.name for b in bones}
    skip = aim_bones(arm)
    for exact in (True, False):
        for left, right in EYE_BONE_NAMES:
            pair = (left, right) if exact else (lower.get(left.lower()), lower.get(right.lower()))
            if all(n and n in bones and n not in skip for n in pair):
                return pair
    return None


def eye_rotations(look):
    """Axis-angle eye rotations (left, right), (T, 3) each, from the ``eyeLook*`` weights (T, 8).

    The same as flamesync.channels.eye_rotations (the tests compare them): each eye turns by its
    yaw about +y (toward the face's left), then its pitch about +x (down), in flamesync's frame.
    """
    w = np.asarray(look, np.float64)
    full = np.radians(EYE_LOOK_DEGREES)
    out = []
    for yaw, pitch in (((w[:, 0] - w[:, 1]) * full, (w[:, 2] - w[:, 3]) * full),
                       ((w[:, 5] - w[:, 4]) * full, (w[:, 6] - w[:, 7]) * full)):
        zeros = np.zeros_like(yaw)
        q = quat_multiply(rotvec_to_quat(np.stack([zeros, yaw, zeros], 1)),
                          rotvec_to_quat(np.stack([pitch, zeros, zeros], 1)))
        q = q * np.where(q[:, :1] < 0, -1.0, 1.0)  # w >= 0: the short way, as a rotation vector
        sin_half = np.linalg.norm(q[:, 1:], axis=1)
        angle = 2.0 * np.arctan2(sin_half, q[:, 0])
        k = np.where(sin_half > 1e-12, angle / np.where(sin_half > 1e-12, sin_half, 1.0), 2.0)
        out.append(q[:, 1:] * k[:, None])
    return out[0], out[1]


def plan_motion(obj, mode, bone_name="", *, eyes=True, gaze_on_shape_keys=False):
    """What the take's rotations would key: ``({owner: [(path, bone or None, what)]}, why)``.

    ``what`` is "head", "eyeLeft" or "eyeRight". Eyes are keyed on the mesh's armature when asked,
    when it has an eye pair, and when no eyeLook* channel goes to a shape key (``gaze_on_shape_keys``:
    the gaze would show twice).
    """
    kind, owner, bone, why = head_target(obj, mode, bone_name)
    plan = {}
    if kind == "BONE":
        plan[owner] = [(f'pose.bones["{bpy.utils.escape_identifier(bone)}"].rotation_quaternion', bone, "head")]
    elif kind == "OBJECT":
        plan[owner] = [("rotation_quaternion", None, "head")]
    arm = find_armature(obj)
    pair = find_eye_bones(arm) if eyes and not gaze_on_shape_keys else None
    if pair:
        for name, what in zip(pair, ("eyeLeft", "eyeRight")):
            path = f'pose.bones["{bpy.utils.escape_identifier(name)}"].rotation_quaternion'
            plan.setdefault(arm, []).append((path, name, what))
    return plan, why


def key_motion(obj, anim, *, scene, frame_start, take_name, mode="AUTO", bone_name="", eyes=True,
               gaze_on_shape_keys=False, strength=1.0, offset_s=0.0):
    """Key ``anim``'s head rotation (and gaze on eye bones) as :func:`plan_motion` resolves it.

    Same frame times as :func:`key_take`; quaternion keys (rotation mode QUATERNION) in a new
    action per owner (the object, or the armature for bones), named ``<take>_head``; an existing
    action there is kept in a muted NLA track. Rotations are scaled by ``strength``. A rotation
    that is absent from the take or zero throughout (mouth only, head strength 0) is not keyed, nor
    is anything when strength is 0. Returns ``[(action, [what is keyed where])]``.
    """
    plan, _why = plan_motion(obj, mode, bone_name, eyes=eyes, gaze_on_shape_keys=gaze_on_shape_keys)
    if not plan or strength == 0:
        return []
    rot = {}
    if all(c in anim.channels for c in HEAD_CHANNELS):
        rot["head"] = np.stack([anim.column(c) for c in HEAD_CHANNELS], axis=1).astype(np.float64)
    if all(c in anim.channels for c in EYE_LOOK_CHANNELS):
        rot["eyeLeft"], rot["eyeRight"] = eye_rotations(np.stack([anim.column(c) for c in EYE_LOOK_CHANNELS], 1))
    frames = take_frames(anim, scene=scene, frame_start=frame_start, offset_s=offset_s)
    done = []
    for owner, items in plan.items():
        items = [it for it in items if it[2] in rot and np.any(rot[it[2]])]
        if not items:
            continue
        keys = []
        base = None
        for path, bone, what in items:
            if bone is not None:
                rest = np.array(owner.data.bones[bone].matrix_local.to_3x3())
                keys.append((path, head_quaternions(rot[what], strength=strength, rest=rest),
                             f"{what} on bone '{bone}' of {owner.name}"))
            else:
                # The head turns on top of where the object stands; a previous head take on it is
                # not part of that, so its recorded starting rotation is reused.
                prev = owner.animation_data.action if owner.animation_data else None
                stored = prev.get("flamesync_base_rotation") if prev is not None else None
                base = (np.array(stored, np.float64) if stored is not None
                        else np.array(owner.matrix_basis.to_3x3().normalized().to_quaternion()))
                keys.append((path, head_quaternions(rot[what], strength=strength, base=base),
                             f"{what} on object {owner.name}"))
        ad = owner.animation_data
        if ad is not None and ad.action is not None:
            stash_action(owner, ad.action, frame_start)
        for _path, bone, _what in items:
            (owner.pose.bones[bone] if bone is not None else owner).rotation_mode = "QUATERNION"
        action = bpy.data.actions.new(f"{take_name}_head")
        fcurves = channelbag_fcurves(owner, action)
        for path, q, _where in keys:
            for c in range(4):
                write_curve(fcurves, path, frames, q[:, c], index=c)
        action["flamesync_fps"] = anim.fps
        action["flamesync_frame_start"] = float(frame_start)
        if base is not None:
            action["flamesync_base_rotation"] = [float(v) for v in base]
        done.append((action, [where for _p, _q, where in keys]))
    return done
