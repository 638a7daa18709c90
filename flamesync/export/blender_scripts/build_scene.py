"""Runs inside Blender (``python build_scene.py -- SCENE.npz OUTPUT``): build and export a scene.

Reads the intermediate written by :mod:`flamesync.export.blender_bridge` (geometry already in
Blender's z-up frame), builds the mesh with one shape key per channel keyed once per frame in a new
action, an armature with jaw (and head) bones when the animation carries an explicit jaw rotation
(or a head rotation), the audio
as a sound strip, sets the scene frame rate and exports by the output's extension:

- ``.fbx``: shape keys + keyframes (+ jaw bone), y-up, baked once per frame.
- ``.usd/.usda/.usdc``: shape keys + keyframes (USD blend shapes) (+ skeleton).
- ``.abc``: the evaluated mesh per frame (a vertex cache).
- ``.blend``: the scene itself, sound strip included.

Frame ``i`` of the animation sits on scene frame ``FRAME_START + i`` (1 + i; 0 + i for FBX, see
:func:`main`). Only numpy and bpy are used, so this works in any Blender >= 4.2 and in the ``bpy``
module.
"""

import json
import math
import sys

import bpy
import numpy as np

FRAME_START = 1


def scene_fps(fps):
    """Blender's (fps, fps_base) for a frame rate: integer rates exact, NTSC-like ones via fps_base."""
    if abs(fps - round(fps)) < 1e-6:
        return int(round(fps)), 1.0
    whole = int(math.ceil(fps))
    return whole, whole / fps


def channelbag_fcurves(id_data, action):
    """The F-curve collection that keys of ``id_data`` go into, on Blender 4.2 to 5.x."""
    ad = id_data.animation_data or id_data.animation_data_create()
    ad.action = action
    try:
        from bpy_extras import anim_utils

        ensure = anim_utils.action_ensure_channelbag_for_slot
    except (ImportError, AttributeError):
        return action.fcurves  # Blender < 4.4: legacy actions
    if ad.action_slot is None:
        slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
        ad.action_slot = slot
    return ensure(action, ad.action_slot).fcurves


def key_curve(fcurves, data_path, frames, values, index=0, group=None):
    """One F-curve with a linear key per frame (bulk insert)."""
    fc = fcurves.new(data_path, index=index)
    n = len(frames)
    fc.keyframe_points.add(n)
    co = np.empty(2 * n, np.float32)
    co[0::2] = frames
    co[1::2] = values
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", np.ones(n, np.int32))  # LINEAR
    fc.update()
    return fc


def build(data, header):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    T = int(header["n_frames"])
    scene.render.fps, scene.render.fps_base = scene_fps(float(header["fps"]))
    scene.frame_start = FRAME_START
    scene.frame_end = FRAME_START + T - 1

    verts = np.asarray(data["vertices"], np.float64)
    faces = np.asarray(data["faces"], np.int64)
    mesh = bpy.data.meshes.new(header["name"])
    mesh.from_pydata(verts.tolist(), [], faces.tolist())
    mesh.update()
    obj = bpy.data.objects.new(header["name"], mesh)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj

    names = header["names"]
    deltas = np.asarray(data["deltas"], np.float32)
    weights = np.asarray(data["weights"], np.float32)
    frames = FRAME_START + np.arange(T, dtype=np.float32)
    obj.shape_key_add(name="Basis", from_mix=False)
    for k, name in enumerate(names):
        kb = obj.shape_key_add(name=name, from_mix=False)
        kb.data.foreach_set("co", (verts + deltas[k]).astype(np.float32).ravel())
        lo, hi = float(weights[:, k].min()), float(weights[:, k].max())
        kb.slider_min = max(-10.0, min(0.0, math.floor(lo)))
        kb.slider_max = min(10.0, max(1.0, math.ceil(hi)))
    key = mesh.shape_keys
    key.use_relative = True
    action = bpy.data.actions.new(header.get("action") or "flamesync")
    fcurves = channelbag_fcurves(key, action)
    for k, name in enumerate(names):
        key_curve(fcurves, f'key_blocks["{name}"].value', frames, weights[:, k])

    if "jaw_rotation" in data or "head_rotation" in data:
        add_rig(scene, obj, data, frames)
    if header.get("audio"):
        add_sound(scene, header.get("audio_source") or header["audio"], float(header.get("audio_offset", 0.0)),
                  final_path=header["audio"])
    scene.frame_set(FRAME_START)
    return obj


def add_rig(scene, obj, data, frames):
    """Armature reproducing flamesync's jaw-then-head skinning; vertex groups from the face's weights.

    With both joints, a vertex moves by the product of the two blends, which four bones reproduce
    exactly: ``root`` (static), ``jaw``, ``head`` and ``head_jaw`` (child of ``head``).
    """
    from mathutils import Matrix, Vector

    V = len(obj.data.vertices)
    has_jaw = "jaw_rotation" in data
    has_head = "head_rotation" in data
    j = np.clip(np.asarray(data["jaw_weights"], np.float64), 0, 1) if has_jaw else np.zeros(V)
    h = np.clip(np.asarray(data["head_weights"], np.float64), 0, 1) if has_head else np.zeros(V)
    jp = Vector(data["jaw_pivot"].tolist()) if has_jaw else Vector((0, 0, 0))
    hp = Vector(data["head_pivot"].tolist()) if has_head else Vector((0, 0, 0))
    # bone -> (parent, head position, vertex weights, rotation key array or None)
    bones = {"root": (None, Vector((0, 0, 0)), (1 - h) * (1 - j), None)}
    if has_jaw:
        bones["jaw"] = ("root", jp, (1 - h) * j, data["jaw_rotation"])
    if has_head:
        bones["head"] = ("root", hp, h * (1 - j), data["head_rotation"])
    if has_jaw and has_head:
        bones["head_jaw"] = ("head", jp, h * j, data["jaw_rotation"])

    arm_data = bpy.data.armatures.new("rig")
    arm = bpy.data.objects.new("rig", arm_data)
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for name, (parent, pos, _, _) in bones.items():
        eb = arm_data.edit_bones.new(name)
        # Bones point up (+z) with zero roll, so their rest frames are the world's axes.
        eb.head, eb.tail = pos, pos + Vector((0, 0, 0.05))
        if parent:
            eb.parent = arm_data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")

    for name, (_, _, w, _) in bones.items():
        group = obj.vertex_groups.new(name=name)
        for i in np.nonzero(w > 0)[0]:
            group.add([int(i)], float(w[i]), "REPLACE")
    obj.parent = arm
    mod = obj.modifiers.new("rig", "ARMATURE")
    mod.object = arm
    mod.use_vertex_groups = True

    action = bpy.data.actions.new("flamesync_rig")
    fcurves = channelbag_fcurves(arm, action)
    for name, (_, _, _, rot) in bones.items():
        if rot is None:
            continue
        pb = arm.pose.bones[name]
        pb.rotation_mode = "QUATERNION"
        rest = arm_data.bones[name].matrix_local.to_3x3()
        q = np.empty((len(rot), 4), np.float32)
        prev = None
        for i, rv in enumerate(np.asarray(rot, np.float64)):
            angle = float(np.linalg.norm(rv))
            axis = Vector((rv / angle).tolist()) if angle > 1e-12 else Vector((1, 0, 0))
            qi = (rest.inverted() @ Matrix.Rotation(angle, 3, axis) @ rest).to_quaternion()
            if prev is not None and prev.dot(qi) < 0:
                qi.negate()
            q[i] = (qi.w, qi.x, qi.y, qi.z)
            prev = qi
        for c in range(4):
            key_curve(fcurves, f'pose.bones["{name}"].rotation_quaternion', frames, q[:, c], index=c)


def add_sound(scene, path, offset, final_path=None):
    """The audio as a sound strip placed so that ``offset`` seconds into it plays on FRAME_START.

    ``path`` is read now; the scene refers to ``final_path`` (where the file will be once the
    export completes) when given.
    """
    try:
        ed = scene.sequence_editor or scene.sequence_editor_create()
        strips = ed.strips if hasattr(ed, "strips") else ed.sequences
        fps = scene.render.fps / scene.render.fps_base
        start = FRAME_START - int(round(offset * fps))
        strip = strips.new_sound("audio", path, 1, start)
        strip["flamesync_audio_offset"] = offset
        if final_path and final_path != path:
            import os

            strip.sound.filepath = final_path
            # The sound was named after the part file it was read from (a random name).
            strip.sound.name = os.path.basename(final_path)
    except Exception as exc:  # a build without audio support still exports the animation
        print(f"flamesync: could not add the sound strip ({exc})", file=sys.stderr)


def add_frames_per_second(path, fps):
    """Author ``framesPerSecond`` in a ``.usda`` layer's metadata next to ``timeCodesPerSecond``.

    Blender's exporter writes only ``timeCodesPerSecond``; ``framesPerSecond`` is the playback rate
    other USD tools (usdview, DCC importers) read. Text layers only: the bpy module has no USD
    Python API to change a binary (crate) file.
    """
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    head_end = text.find("\n)\n")
    if head_end < 0 or "framesPerSecond" in text[:head_end]:
        return
    line = f"    framesPerSecond = {fps:g}\n"
    at = text.find("    timeCodesPerSecond")
    at = at if 0 <= at < head_end else head_end + 1
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text[:at] + line + text[at:])


# What the writers stamp into files (creation dates) is pinned to this instant, so identical input
# gives identical bytes: SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else 0.
def pinned_time():
    import datetime
    import os

    try:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    except ValueError:
        epoch = 0
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None)


def pin_fbx_time():
    """Make Blender's FBX writer stamp :func:`pinned_time` instead of the current time."""
    import datetime

    try:
        from io_scene_fbx import export_fbx_bin
    except ImportError:
        return

    class _PinnedDateTime(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return pinned_time()

    class _DateTimeModule:
        datetime = _PinnedDateTime

        def __getattr__(self, name):
            return getattr(datetime, name)

    export_fbx_bin.datetime = _DateTimeModule()


def pin_alembic_date(path):
    """Replace the ``_ai_DateWritten`` value Alembic stamps with :func:`pinned_time`, in place.

    The value sits in a metadata string; it is overwritten with one of the same length, so no
    offset in the file moves.
    """
    import re

    with open(path, "rb") as fh:
        raw = fh.read()
    stamp = pinned_time().strftime("%a %b %d %H:%M:%S %Y").encode("ascii")

    def pinned(m):
        value = m.group(2)
        return m.group(1) + stamp[: len(value)].ljust(len(value), b" ")

    fixed = re.sub(rb"(_ai_DateWritten=)([^;\x00]*)", pinned, raw)
    if fixed != raw:
        with open(path, "r+b") as fh:
            fh.write(fixed)


def _blend_blocks(raw):
    """(code, sdna index, data offset, data length) of each block of an uncompressed .blend, and
    the file's pointer size; None for a layout this does not know."""
    import struct

    if raw[:7] != b"BLENDER":
        return None
    if raw[7:9] == b"17" and raw[9:12] == b"-01" and raw[12:13] == b"v":  # Blender >= 5.0 header
        start, fmt, size, order = 17, "<4siQqq", 32, ("code", "sdna", "old", "len", "nr")
    elif raw[7:8] == b"-" and raw[8:9] == b"v":  # 8-byte pointers, little endian (Blender 4.x)
        start, fmt, size, order = 12, "<4siQii", 24, ("code", "len", "old", "sdna", "nr")
    else:
        return None
    blocks, off = [], start
    while off + size <= len(raw):
        fields = dict(zip(order, struct.unpack_from(fmt, raw, off)))
        blocks.append((fields["code"], fields["sdna"], off + size, fields["len"]))
        if fields["code"] == b"ENDB":
            break
        off += size + fields["len"]
    return blocks


def _sdna_offsets(raw, blocks, wanted):
    """(struct index, byte offset, size, struct size) of each (struct, field) in ``wanted``, from
    the file's own SDNA."""
    import re
    import struct

    dna = next((b for b in blocks if b[0] == b"DNA1"), None)
    if dna is None:
        return {}
    d = bytes(raw[dna[2]:dna[2] + dna[3]])
    pos = 8  # "SDNA" "NAME"

    def strings(pos):
        n = struct.unpack_from("<i", d, pos)[0]
        pos += 4
        out = []
        for _ in range(n):
            end = d.index(b"\0", pos)
            out.append(d[pos:end].decode("latin-1"))
            pos = end + 1
        return out, (pos + 3) & ~3

    names, pos = strings(pos)
    types, pos = strings(pos + 4)  # "TYPE"
    pos += 4  # "TLEN"
    tlen = struct.unpack_from(f"<{len(types)}h", d, pos)
    pos = ((pos + 2 * len(types)) + 3) & ~3
    pos += 4  # "STRC"
    n_structs = struct.unpack_from("<i", d, pos)[0]
    pos += 4
    found = {}
    for index in range(n_structs):
        t, n_fields = struct.unpack_from("<hh", d, pos)
        pos += 4
        offset = 0
        for _ in range(n_fields):
            ft, fn = struct.unpack_from("<hh", d, pos)
            pos += 4
            name = names[fn]
            size = 8 if name.startswith(("*", "(*")) else tlen[ft]
            for dim in re.findall(r"\[(\d+)\]", name):
                size *= int(dim)
            bare = re.sub(r"\[.*|^\**", "", name)
            if (types[t], bare) in wanted:
                found[(types[t], bare)] = (index, offset, size, tlen[t])
            offset += size
    return found


def pin_blend(path):
    """Clear or fix what Blender 5.0 writes into a .blend from uninitialised memory or from memory
    addresses, in place: the bytes after the colour-space name in FileGlobal (stack left-overs),
    the mesh's random face-set colour seed, and the order of the two vertices of each screen edge.
    The file must be saved uncompressed; its layout is read from its own SDNA, and a layout this
    does not know is left alone."""
    import struct

    with open(path, "rb") as fh:
        raw = bytearray(fh.read())
    blocks = _blend_blocks(raw)
    if not blocks:
        return
    fields = _sdna_offsets(raw, blocks, {("FileGlobal", "colorspace_scene_linear_name"),
                                         ("Mesh", "face_sets_color_seed"),
                                         ("ScrEdge", "v1"), ("ScrEdge", "v2")})
    edge = fields.get(("ScrEdge", "v1")), fields.get(("ScrEdge", "v2"))
    for code, sdna, start, length in blocks:
        for (struct_name, field), (index, offset, size, struct_size) in fields.items():
            if sdna != index or offset + size > length or struct_name == "ScrEdge":
                continue
            lo, hi = start + offset, start + offset + size
            if field == "colorspace_scene_linear_name":
                end = raw.index(0, lo, hi) + 1 if 0 in raw[lo:hi] else hi
                raw[end:hi] = bytes(hi - end)
            else:
                raw[lo:hi] = bytes(size)
        # Blender keeps a screen edge's vertices sorted by their memory address (and sorts them
        # again when it reads a file), so the pair comes out in either order from run to run. The
        # file stores stable ids in place of addresses: sorting by those gives one order.
        if None not in edge and sdna == edge[0][0] and edge[0][2] == edge[1][2] == 8:
            (_, off1, _, struct_size), (_, off2, _, _) = edge
            for at in range(start, start + length - struct_size + 1, struct_size):
                a = raw[at + off1:at + off1 + 8]
                b = raw[at + off2:at + off2 + 8]
                if struct.unpack("<Q", a)[0] > struct.unpack("<Q", b)[0]:
                    raw[at + off1:at + off1 + 8], raw[at + off2:at + off2 + 8] = b, a
    with open(path, "r+b") as fh:
        fh.write(raw)


def export(path, suffix):
    if suffix == ".fbx":
        pin_fbx_time()
        bpy.ops.export_scene.fbx(
            filepath=path, use_selection=False, object_types={"MESH", "ARMATURE"}, add_leaf_bones=False,
            bake_anim=True, bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
            bake_anim_step=1.0, bake_anim_simplify_factor=0.0, use_armature_deform_only=False,
            axis_forward="-Z", axis_up="Y", apply_unit_scale=True, apply_scale_options="FBX_SCALE_ALL",
        )
    elif suffix in (".usd", ".usda", ".usdc"):
        bpy.ops.wm.usd_export(filepath=path, export_animation=True, export_shapekeys=True,
                              export_armatures=True, selected_objects_only=False)
        if suffix == ".usda":
            scene = bpy.context.scene
            add_frames_per_second(path, scene.render.fps / scene.render.fps_base)
    elif suffix == ".abc":
        scene = bpy.context.scene
        # Evaluate the whole scene once before the exporter steps through it, so that no frame's
        # vertex cache depends on what the dependency graph happened to have evaluated already.
        scene.frame_set(scene.frame_start)  # the exporter's first frame, evaluated from scratch
        bpy.context.view_layer.update()
        bpy.context.evaluated_depsgraph_get()
        bpy.ops.wm.alembic_export(filepath=path, start=scene.frame_start, end=scene.frame_end,
                                  selected=False, flatten=False, export_hair=False, export_particles=False,
                                  # Per-corner normals every frame would be ~6x the positions; readers
                                  # recompute them from the positions.
                                  normals=False, orcos=False, uvs=False, vcolors=False)
        pin_alembic_date(path)
    elif suffix == ".blend":
        # Selection attributes hold nothing for a scene nobody selected in, and Blender 5.0 writes
        # the edge selection from uninitialised memory: drop them.
        for mesh in bpy.data.meshes:
            for name in (".select_vert", ".select_edge", ".select_poly"):
                attr = mesh.attributes.get(name)
                if attr is not None:
                    mesh.attributes.remove(attr)
        # Uncompressed, so that pin_blend can clear the bytes Blender fills at random.
        bpy.ops.wm.save_as_mainfile(filepath=path, compress=False)
        pin_blend(path)
    else:
        raise SystemExit(f"build_scene: cannot export {suffix}")


def main(argv):
    args = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    if len(args) != 3:
        raise SystemExit("usage: build_scene.py -- SCENE.npz OUTPUT SUFFIX")
    src, out, suffix = args
    with np.load(src, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    header = json.loads(str(data.pop("header")))
    global FRAME_START
    if suffix == ".fbx":
        # FBX time 0 is the take's first frame, which importers put on their first frame
        # (Blender's: frame 1 with its default Animation Offset of 1). Keyed from scene frame 1,
        # the exporter wrote it at time 1/fps and a default import started on frame 2.
        FRAME_START = 0
    build(data, header)
    export(out, suffix)
    print("flamesync: exported", out)


if __name__ == "__main__":
    main(sys.argv)
