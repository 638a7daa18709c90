"""glTF 2.0 (``.glb`` / ``.gltf``): the head with morph targets, a jaw joint and the animation.

Layout of the written asset:

- one mesh, one triangle primitive (POSITION, NORMAL, indices) with one morph target per face
  channel (all of them, names in ``mesh.extras.targetNames``, the convention Blender, three.js and
  Babylon read). Targets store only moved vertices as sparse accessors; an empty target points at a
  shared all-zero accessor, so the 52 ARKit names survive even when the face lacks some shapes.
- a skin with a ``root`` joint at the origin and a ``jaw`` joint at the jaw pivot (plus ``head``
  joints when the face has a head joint), weights from the face model. The jaw is keyed only when
  the animation's jaw rotation is explicit; an implied rotation is already inside ``jawOpen``.
- one animation: morph weights (and jaw/head rotations) sampled once per frame at ``i / fps``,
  interpolated linearly.
- ``asset.extras.flamesync``: frame rate, audio file (copied beside the output as ``<stem>.wav``)
  and the audio time of frame 0, because glTF has no audio of its own.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from .. import numeric
from ..animation import Animation
from .rig import Rig, Take, carry_audio, rig_from_face, take_for

# glTF enums
_FLOAT, _UINT, _USHORT, _UBYTE = 5126, 5125, 5123, 5121
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def write(animation: Animation, path, *, face=None, audio_path=None, fmt=None, dest=None, **_):
    rig = rig_from_face(face)
    take = take_for(animation, rig)
    dest = Path(dest or path)
    extras = {
        "flamesync": {
            "fps": take.fps,
            "n_frames": take.n_frames,
            "audio": None,
            "audio_offset": take.audio_offset,
            "jaw": "animated" if take.jaw is not None else "in_weights",
            "source": animation.meta.get("source"),
        }
    }
    gltf = build_gltf(rig, take, extras=extras)
    # The audio is copied only once the asset is built, so a failed export leaves nothing behind.
    audio = carry_audio(audio_path, dest)
    extras["flamesync"]["audio"] = None if audio is None else audio.name
    save(gltf, path, binary=dest.suffix.lower() == ".glb")


def save(gltf, path, *, binary: bool) -> None:
    """Write a pygltflib document holding its data in the binary blob, as GLB or single-file glTF."""
    if binary:
        gltf.save_binary(str(path))
    else:
        blob = gltf.binary_blob()
        gltf.buffers[0].uri = "data:application/octet-stream;base64," + base64.b64encode(blob).decode("ascii")
        gltf._glb_data = None
        gltf.save_json(str(path))


class _Blob:
    """Accumulates binary data in 4-byte aligned buffer views."""

    def __init__(self, gltf):
        self.gltf = gltf
        self.data = bytearray()

    def view(self, array: np.ndarray, *, target: int | None = None) -> int:
        import pygltflib as g

        while len(self.data) % 4:
            self.data.append(0)
        raw = np.ascontiguousarray(array).tobytes()
        self.gltf.bufferViews.append(g.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw), target=target))
        self.data.extend(raw)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, type_: str, *, target: int | None = None, minmax: bool = False,
                 normalized: bool | None = None) -> int:
        import pygltflib as g

        array = np.asarray(array)
        ctype = {np.dtype("float32"): _FLOAT, np.dtype("uint32"): _UINT, np.dtype("uint16"): _USHORT,
                 np.dtype("uint8"): _UBYTE}[array.dtype]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[type_]
        flat = array.reshape(-1, width)
        acc = g.Accessor(bufferView=self.view(flat, target=target), componentType=ctype, count=len(flat),
                         type=type_, normalized=normalized)
        if minmax:
            acc.min = [float(x) for x in flat.min(axis=0)]
            acc.max = [float(x) for x in flat.max(axis=0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def sparse_vec3(self, values: np.ndarray) -> int:
        """A VEC3 float accessor of ``len(values)`` rows, zero except the non-zero rows given."""
        import pygltflib as g

        values = np.asarray(values, np.float32)
        rows = np.nonzero(np.abs(values).max(axis=1) > 0)[0].astype(np.uint32)
        acc = g.Accessor(componentType=_FLOAT, count=len(values), type="VEC3", byteOffset=None)
        # min/max cover the untouched (zero) rows too.
        acc.min = [float(x) for x in np.minimum(values.min(axis=0), 0)]
        acc.max = [float(x) for x in np.maximum(values.max(axis=0), 0)]
        if len(rows):
            acc.sparse = g.Sparse(
                count=len(rows),
                indices=g.AccessorSparseIndices(bufferView=self.view(rows), componentType=_UINT),
                values=g.AccessorSparseValues(bufferView=self.view(values[rows])),
            )
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, shape (V, 3); vertices on no face get +z.

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    length = np.linalg.norm(n, axis=1)
    bad = length < 1e-12
    n[bad] = (0.0, 0.0, 1.0)
    length[bad] = 1.0
    return (n / length[:, None]).astype(np.float32)


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle (T, 3) to unit quaternions (T, 4) in glTF's (x, y, z, w) order, sign-continuous."""
    q = numeric.rotvec_to_quat(rotvec)[:, [1, 2, 3, 0]]  # (w, x, y, z) -> (x, y, z, w)
    # Keep consecutive keys in the same hemisphere so linear interpolation takes the short way.
    for i in range(1, len(q)):
        if np.dot(q[i], q[i - 1]) < 0:
            q[i] = -q[i]
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def _joints(rig: Rig):
    """Joint nodes (name, parent index or None, local translation) and per-vertex weights (V, J).

    The face applies the jaw first and the head on the result; with both, a vertex's motion is the
    product of the two blends, which four joints (static, jaw, head, head+jaw) reproduce exactly.
    """
    V = rig.n_vertices
    j = np.clip(rig.jaw_weights, 0, 1) if rig.has_jaw else np.zeros(V, np.float32)
    jp = np.asarray(rig.jaw_pivot if rig.has_jaw else np.zeros(3), np.float32)
    if rig.head_pivot is None:
        joints = [("root", None, np.zeros(3)), ("jaw", 0, jp)]
        w = np.stack([1 - j, j], axis=1)
    else:
        h = np.clip(rig.head_weights, 0, 1)
        hp = np.asarray(rig.head_pivot, np.float32)
        joints = [("root", None, np.zeros(3)), ("jaw", 0, jp), ("head", 0, hp), ("head_jaw", 2, jp - hp)]
        w = np.stack([(1 - h) * (1 - j), (1 - h) * j, h * (1 - j), h * j], axis=1)
    return joints, w.astype(np.float32)


def build_gltf(rig: Rig, take: Take, *, extras: dict | None = None):
    """Build the pygltflib document (data in its binary blob) for ``rig`` animated by ``take``."""
    import pygltflib as g

    gltf = g.GLTF2(asset=g.Asset(version="2.0", generator="flamesync", extras=extras or {}))
    gltf.buffers.append(g.Buffer())
    blob = _Blob(gltf)
    K = len(rig.names)

    template = rig.template.astype(np.float32)
    attrs = g.Attributes(
        POSITION=blob.accessor(template, "VEC3", target=_ARRAY_BUFFER, minmax=True),
        NORMAL=blob.accessor(vertex_normals(template, rig.faces), "VEC3", target=_ARRAY_BUFFER),
    )
    skinned = rig.has_jaw or rig.head_pivot is not None
    joints = weights = None
    if skinned:
        joints, weights = _joints(rig)
        J = len(joints)
        # Four influence slots; the unused ones point at distinct joints with zero weight.
        jw = np.zeros((rig.n_vertices, 4), np.float32)
        jw[:, :J] = weights
        jw[:, 0] = 1.0 - jw[:, 1:].sum(axis=1)  # exact normalisation in float32
        ji = np.tile(np.arange(4, dtype=np.uint8), (rig.n_vertices, 1))
        ji[jw == 0] = 0  # the validator wants zero-weight influences to name joint 0
        attrs.JOINTS_0 = blob.accessor(ji, "VEC4", target=_ARRAY_BUFFER)
        attrs.WEIGHTS_0 = blob.accessor(jw, "VEC4", target=_ARRAY_BUFFER)

    nonempty = rig.nonempty()
    zero_target = None
    targets = []
    for k in range(K):
        if nonempty[k]:
            targets.append({"POSITION": blob.sparse_vec3(rig.deltas[k])})
        else:
            if zero_target is None:
                zero_target = blob.sparse_vec3(np.zeros((rig.n_vertices, 3), np.float32))
            targets.append({"POSITION": zero_target})
    prim = g.Primitive(
        attributes=attrs,
        indices=blob.accessor(rig.faces.astype(np.uint32).reshape(-1), "SCALAR", target=_ELEMENT_ARRAY_BUFFER),
        targets=targets,
        mode=4,
    )
    gltf.meshes.append(g.Mesh(name=rig.name, primitives=[prim], weights=[0.0] * K,
                              extras={"targetNames": list(rig.names)}))

    gltf.nodes.append(g.Node(name=rig.name, mesh=0))
    scene_nodes = [0]
    joint_nodes: list[int] = []
    if skinned:
        gltf.nodes[0].skin = 0
        world = []
        for name, parent, t in joints:
            node = g.Node(name=name, translation=[float(x) for x in t])
            gltf.nodes.append(node)
            idx = len(gltf.nodes) - 1
            joint_nodes.append(idx)
            if parent is None:
                scene_nodes.append(idx)
                world.append(np.asarray(t, np.float64))
            else:
                p = joint_nodes[parent]
                gltf.nodes[p].children = (gltf.nodes[p].children or []) + [idx]
                world.append(world[parent] + np.asarray(t, np.float64))
        ibm = np.stack([np.eye(4) for _ in joints])
        for i, wt in enumerate(world):
            ibm[i, :3, 3] = -wt
        # glTF matrices are column-major.
        ibm_cm = np.ascontiguousarray(ibm.transpose(0, 2, 1)).astype(np.float32)
        gltf.skins.append(g.Skin(name="face", joints=joint_nodes, skeleton=joint_nodes[0],
                                 inverseBindMatrices=blob.accessor(ibm_cm, "MAT4")))
    gltf.scenes.append(g.Scene(name="flamesync", nodes=scene_nodes))
    gltf.scene = 0

    # Animation: one key per frame.
    times = (np.arange(take.n_frames, dtype=np.float64) / take.fps).astype(np.float32)
    t_acc = blob.accessor(times, "SCALAR", minmax=True)
    samplers = [g.AnimationSampler(input=t_acc, output=blob.accessor(take.weights.astype(np.float32).reshape(-1), "SCALAR"),
                                   interpolation="LINEAR")]
    channels = [g.AnimationChannel(sampler=0, target=g.AnimationChannelTarget(node=0, path="weights"))]
    rotations = []
    if skinned and take.jaw is not None:
        rotations += [(joint_nodes[1], take.jaw)] + ([(joint_nodes[3], take.jaw)] if len(joint_nodes) == 4 else [])
    if skinned and take.head is not None and len(joint_nodes) == 4:
        rotations.append((joint_nodes[2], take.head))
    for node, rotvec in rotations:
        samplers.append(g.AnimationSampler(input=t_acc, output=blob.accessor(rotvec_to_quat(rotvec), "VEC4"),
                                           interpolation="LINEAR"))
        channels.append(g.AnimationChannel(sampler=len(samplers) - 1,
                                           target=g.AnimationChannelTarget(node=node, path="rotation")))
    gltf.animations.append(g.Animation(name="speech", samplers=samplers, channels=channels))

    gltf.buffers[0].byteLength = len(blob.data)
    gltf.set_binary_blob(bytes(blob.data))
    return gltf


def read_weights(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read back the morph-weight animation of a file written here.

    Returns
    -------
    times : (T,) float32
    weights : (T, K) float32
    names : list of K target names
    """
    import pygltflib as g

    gltf = g.GLTF2.load(str(path))
    blob = _blob_of(gltf, Path(path))
    mesh = gltf.meshes[0]
    names = list(mesh.extras["targetNames"])
    anim = gltf.animations[0]
    ch = next(c for c in anim.channels if c.target.path == "weights")
    sampler = anim.samplers[ch.sampler]
    times = _read_accessor(gltf, blob, sampler.input).reshape(-1)
    weights = _read_accessor(gltf, blob, sampler.output).reshape(len(times), len(names))
    return times, weights, names


def _blob_of(gltf, path: Path) -> bytes:
    blob = gltf.binary_blob()
    if blob is None:
        uri = gltf.buffers[0].uri
        blob = base64.b64decode(uri.split(",", 1)[1])
    return blob


def _read_accessor(gltf, blob: bytes, index: int) -> np.ndarray:
    acc = gltf.accessors[index]
    dtype = {_FLOAT: "<f4", _UINT: "<u4", _USHORT: "<u2", _UBYTE: "u1"}[acc.componentType]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    if acc.bufferView is None:
        out = np.zeros((acc.count, width), dtype)
    else:
        bv = gltf.bufferViews[acc.bufferView]
        start = (bv.byteOffset or 0) + (acc.byteOffset or 0)
        out = np.frombuffer(blob, dtype, count=acc.count * width, offset=start).reshape(acc.count, width).copy()
    if acc.sparse is not None:
        sp = acc.sparse
        ibv = gltf.bufferViews[sp.indices.bufferView]
        idt = {_UINT: "<u4", _USHORT: "<u2", _UBYTE: "u1"}[sp.indices.componentType]
        idx = np.frombuffer(blob, idt, count=sp.count, offset=ibv.byteOffset or 0)
        vbv = gltf.bufferViews[sp.values.bufferView]
        out[idx] = np.frombuffer(blob, dtype, count=sp.count * width, offset=vbv.byteOffset or 0).reshape(sp.count, width)
    return out

