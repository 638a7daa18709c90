"""Reading target head meshes and writing retargeted heads (GLB with morph targets, NPZ, OBJ).

The GLB writer here is deliberately small (one mesh, 52 morph targets, no animation); the lead
may replace it with the project's glTF exporter once that lands.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError, require
from ..fileio import atomic_path

NPZ_FORMAT = "flamesync-blendshapes-1"


def load_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of a mesh file (OBJ, PLY, STL, GLB...).

    Vertex order is kept as in the file (nothing merged), so user landmark indices stay valid.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"mesh file not found: {path}")
    trimesh = require("trimesh", feature="reading head meshes", install="pip install trimesh")
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise InputError(f"{path}: not a readable mesh ({exc.__class__.__name__}: {exc})".replace("\n", " ")) from None
    v = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), np.float64)
    f = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), np.int64)
    if len(v) < 4 or len(f) == 0:
        raise InputError(f"{path}: no triangles found")
    return v, f


def save_npz(face, path: str | Path) -> Path:
    """A BlendshapeFace as ``.npz``: template, faces, deltas, names, jaw/head joints, parts."""
    path = Path(path)
    extra = {}
    if face.head_pivot is not None:
        extra = {"head_pivot": face.head_pivot, "head_weights": face.head_weights}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, format=np.array(NPZ_FORMAT), template=face.template, faces=face.faces, deltas=face.deltas,
                names=np.array(face.channels), jaw_pivot=face.jaw_pivot, jaw_weights=face.jaw_weights,
                meta=np.array(json.dumps(face.meta, default=float)),
                **{f"part_{k}": np.asarray(v, np.int64) for k, v in face.parts.items()}, **extra,
            )
    return path


def load_npz(path: str | Path):
    """Read a :func:`save_npz` file back as a BlendshapeFace."""
    from ..face.base import BlendshapeFace

    path = Path(path)
    if not path.is_file():
        raise InputError(f"retargeted head file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z.get("format", "")) != NPZ_FORMAT:
                raise InputError(f"{path}: not a flamesync blendshape head")
            d = {k: z[k] for k in z.files}
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not readable ({exc.__class__.__name__})") from None
    return BlendshapeFace(
        name=path.stem, channels=tuple(str(n) for n in d["names"]), template=d["template"], faces=d["faces"],
        deltas=d["deltas"], jaw_pivot=d["jaw_pivot"], jaw_weights=d["jaw_weights"],
        parts={k[5:]: v for k, v in d.items() if k.startswith("part_")},
        head_pivot=d.get("head_pivot"), head_weights=d.get("head_weights"),
        meta=json.loads(str(d["meta"])),
    )


def save_obj(face, path: str | Path) -> Path:
    """The neutral mesh as OBJ, plus ``<stem>.deltas.npz`` beside it (see :func:`save_npz`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"# flamesync retargeted head; 52 ARKit offsets in {path.stem}.deltas.npz\n")
            np.savetxt(fh, face.template, fmt="v %.6f %.6f %.6f")
            np.savetxt(fh, np.asarray(face.faces) + 1, fmt="f %d %d %d")
    save_npz(face, path.with_name(path.stem + ".deltas.npz"))
    return path


def save_glb(face, path: str | Path) -> Path:
    """The neutral mesh with one glTF morph target per channel (named in ``extras.targetNames``)."""
    pygltflib = require("pygltflib", feature="GLB output", install="pip install pygltflib")
    path = Path(path)
    pos = np.ascontiguousarray(face.template, np.float32)
    idx = np.ascontiguousarray(face.faces, np.uint32).reshape(-1)
    chunks, views, accessors = [], [], []

    def add(arr: np.ndarray, target: int | None, acc: dict) -> int:
        offset = sum(len(c) for c in chunks)
        data = arr.tobytes()
        chunks.append(data + b"\0" * (-len(data) % 4))
        views.append(pygltflib.BufferView(buffer=0, byteOffset=offset, byteLength=len(data), target=target))
        accessors.append(pygltflib.Accessor(bufferView=len(views) - 1, **acc))
        return len(accessors) - 1

    def vec3(a):
        return {"componentType": pygltflib.FLOAT, "count": len(a), "type": pygltflib.VEC3,
                "min": a.min(0).tolist(), "max": a.max(0).tolist()}

    i_pos = add(pos, pygltflib.ARRAY_BUFFER, vec3(pos))
    i_idx = add(idx, pygltflib.ELEMENT_ARRAY_BUFFER,
                {"componentType": pygltflib.UNSIGNED_INT, "count": len(idx), "type": pygltflib.SCALAR})
    targets = []
    for d in np.asarray(face.deltas, np.float32):
        d = np.ascontiguousarray(d)
        targets.append({"POSITION": add(d, pygltflib.ARRAY_BUFFER, vec3(d))})
    prim = pygltflib.Primitive(attributes=pygltflib.Attributes(POSITION=i_pos), indices=i_idx, targets=targets)
    mesh = pygltflib.Mesh(primitives=[prim], weights=[0.0] * len(targets),
                          extras={"targetNames": list(face.channels)})
    blob = b"".join(chunks)
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(generator="flamesync retarget", version="2.0"),
        scene=0, scenes=[pygltflib.Scene(nodes=[0])], nodes=[pygltflib.Node(mesh=0, name=face.name)],
        meshes=[mesh], buffers=[pygltflib.Buffer(byteLength=len(blob))], bufferViews=views, accessors=accessors,
    )
    gltf.set_binary_blob(blob)
    with atomic_path(path) as tmp:
        gltf.save_binary(str(tmp))
    return path


WRITERS = {".glb": save_glb, ".npz": save_npz, ".obj": save_obj}


def save_face(face, path: str | Path) -> Path:
    """Write by suffix: ``.glb`` (morph targets), ``.npz`` or ``.obj`` (+ ``.deltas.npz``)."""
    path = Path(path)
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise InputError(f"retargeted heads are written as {', '.join(WRITERS)}; got {path.name!r}")
    return writer(face, path)

