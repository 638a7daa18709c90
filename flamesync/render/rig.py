"""A face model dressed for the camera: coloured skin and lips, generated teeth, tongue and eyes.

:class:`HeadRig` is built once per face model (numpy only, picklable, so render workers receive
it ready-made) and turns the model's vertices for one frame into positioned render meshes. The
generated parts ride on the model's own helper vertices: each has up to two rigid "bones"
(a rigid fit of a helper part's vertices, rest pose to current frame) blended per vertex, plus,
for the tongue, the residual non-rigid motion of the nearest helper vertices (tongueOut).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import geometry as geo

SKIN_RGB = (222, 170, 142)
LIP_RGB = (172, 84, 86)
BROW_RGB = (70, 50, 38)
TEETH_RGB = (238, 232, 214)
GUM_RGB = (196, 96, 102)
TONGUE_RGB = (196, 92, 96)
CAVITY_RGB = (22, 6, 7)

# pyrender metallic-roughness parameters per material kind
MATERIALS = {
    "skin": {"roughness": 0.62, "metallic": 0.0},
    "teeth": {"roughness": 0.28, "metallic": 0.0},
    "gums": {"roughness": 0.45, "metallic": 0.0},
    "tongue": {"roughness": 0.38, "metallic": 0.0},
    "cavity": {"roughness": 1.0, "metallic": 0.0},
    "eye": {"roughness": 0.06, "metallic": 0.0},
}

REPLACED_PARTS = ("upper_teeth", "lower_teeth", "tongue", "eye_left", "eye_right")


@dataclass
class RenderPart:
    """One mesh of the rig.

    Attributes
    ----------
    name, material : str
    faces : (F, 3) int32, into this part's own vertices
    colors : (N, 3) float32 linear RGB
    model_index : (N,) int or None
        The part's vertices are these model vertices (skin); otherwise they are generated.
    rest : (N, 3) float32 or None
        Generated vertices in the model's rest pose.
    bone_weights : dict of bone name to (N,) float32
        Blend weights of the rigid bones moving a generated part (sum to 1).
    residual_index, residual_weight : (N, k) or None
        Model vertices whose non-rigid motion (after the first bone) a generated vertex follows.
    """

    name: str
    material: str
    faces: np.ndarray
    colors: np.ndarray
    model_index: np.ndarray | None = None
    rest: np.ndarray | None = None
    bone_weights: dict = field(default_factory=dict)
    residual_index: np.ndarray | None = None
    residual_weight: np.ndarray | None = None
    incidence: object = None

    def __post_init__(self):
        n = len(self.colors)
        self.incidence = geo.incidence_matrix(n, self.faces)


def rigid_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation and translation taking ``src`` onto ``dst`` (Kabsch).

    Parameters
    ----------
    src, dst : (N, 3)

    Returns
    -------
    R : (3, 3), t : (3,) with ``dst ~ src @ R.T + t``
    """
    cs, cd = src.mean(0), dst.mean(0)
    h = (src - cs).T @ (dst - cd)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, cd - cs @ r.T


@dataclass
class HeadRig:
    """Render meshes for a face model and how they follow its vertices.

    Use :meth:`from_face` to build one, :meth:`pose` to place it for one frame.
    """

    parts: list
    template: np.ndarray
    bones: dict  # name -> model vertex indices
    landmarks: dict  # name -> (3,) point in the rest pose: head_centre, eyes, mouth
    head_size: float
    mouth_width: float

    # ------------------------------------------------------------------ building
    @classmethod
    def from_face(cls, face, *, generate: bool = True) -> "HeadRig":
        """Dress ``face`` (a :class:`~flamesync.face.FaceModel`) for rendering.

        With ``generate`` (default) the helper teeth, tongue and eyes are replaced by generated
        ones; without it every part is drawn as the model has it, in skin colour.
        """
        template = np.asarray(face.template, np.float32)
        faces = np.asarray(face.faces, np.int32)
        part_idx = {k: np.asarray(v, np.int64) for k, v in face.parts.items()}
        replaced = [p for p in REPLACED_PARTS if generate and len(part_idx.get(p, ())) >= 3]
        hidden = np.zeros(len(template), bool)
        for p in replaced:
            hidden[part_idx[p]] = True
        skin_faces = faces[~hidden[faces].any(1)]
        used = np.unique(skin_faces)
        remap = np.full(len(template), -1, np.int64)
        remap[used] = np.arange(len(used))
        skin_pos = template[used]

        lips = np.concatenate([part_idx.get("upper_lip", []), part_idx.get("lower_lip", [])]).astype(np.int64)
        lo, hi = skin_pos.min(0), skin_pos.max(0)
        head_size = float(hi[1] - lo[1])
        eyes = {s: template[part_idx[s]].mean(0) for s in ("eye_left", "eye_right") if len(part_idx.get(s, ())) >= 3}
        if len(lips):
            mouth = template[lips].mean(0)
            mouth_width = float(np.ptp(template[lips][:, 0]))
        else:  # no lip part: guess from proportions
            mouth = np.array([(lo[0] + hi[0]) / 2, lo[1] + 0.25 * head_size, hi[2]], np.float32)
            mouth_width = 0.2 * float(hi[0] - lo[0])
        eye_mid = np.mean(list(eyes.values()), 0) if eyes else mouth + np.array([0, 0.07, 0])
        landmarks = {
            "head_centre": ((lo + hi) / 2).astype(np.float32),
            "eyes": eye_mid.astype(np.float32),
            "mouth": mouth.astype(np.float32),
            "face_centre": ((eye_mid + mouth) / 2).astype(np.float32),
            "front": np.float32(hi[2]),
        }

        colors = _skin_colors(skin_pos, template, lips, eyes, head_size)
        parts = [RenderPart("skin", "skin", remap[skin_faces].astype(np.int32), colors, model_index=used)]

        bones = {}
        if "upper_teeth" in replaced:
            bones["head"] = part_idx["upper_teeth"]
        else:
            jaw_w = getattr(face, "jaw_weights", None)
            still = used if jaw_w is None else used[np.asarray(jaw_w)[used] < 1e-3]
            bones["head"] = still if len(still) >= 3 else used
        if "lower_teeth" in replaced:
            bones["jaw"] = part_idx["lower_teeth"]
        for s in eyes:
            if s in replaced:
                bones[s] = part_idx[s]
        if generate:
            eye_gap = float(np.linalg.norm(eyes["eye_left"] - eyes["eye_right"])) if len(eyes) == 2 else None
            parts += _mouth_parts(template, part_idx, replaced, landmarks, mouth_width, eye_gap)
            for s, centre in eyes.items():
                if s in replaced:
                    radius = float(np.median(np.linalg.norm(template[part_idx[s]] - centre, axis=1)))
                    v, f, c = geo.eyeball(centre=centre, radius=radius, seed=0)
                    parts.append(RenderPart(s, "eye", f, c, rest=v, bone_weights={s: np.ones(len(v), np.float32)}))
        return cls(parts=parts, template=template, bones=bones, landmarks=landmarks,
                   head_size=head_size, mouth_width=mouth_width)

    # ------------------------------------------------------------------ posing
    def pose(self, vertices: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Place every part for one frame.

        Parameters
        ----------
        vertices : (V, 3)
            The face model's vertices in this frame.

        Returns
        -------
        list of (positions (N, 3) float32, normals (N, 3) float32), one per part in ``parts``
        """
        v = np.asarray(vertices, np.float32)
        fits = {b: rigid_fit(self.template[idx], v[idx]) for b, idx in self.bones.items()}
        out = []
        for part in self.parts:
            if part.model_index is not None:
                pos = v[part.model_index]
            else:
                pos = np.zeros_like(part.rest)
                first = None
                for b, w in part.bone_weights.items():
                    r, t = fits.get(b, fits["head"])
                    first = first or (r, t)
                    pos += w[:, None] * (part.rest @ r.T + t)
                if part.residual_index is not None:
                    r, t = first
                    src = part.residual_index
                    moved = v[src] - (self.template[src] @ r.T + t)  # (N, k, 3)
                    pos += np.einsum("nk,nkc->nc", part.residual_weight, moved)
            pos = np.ascontiguousarray(pos, np.float32)
            out.append((pos, geo.vertex_normals_fast(pos, part.faces, part.incidence)))
        return out


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _skin_colors(pos, template, lips, eyes, head_size) -> np.ndarray:
    """Skin tone with tinted lips, faint cheek warmth and darker brows, linear RGB (N, 3)."""
    from scipy.spatial import cKDTree

    skin = geo.srgb_to_linear(SKIN_RGB)
    col = np.tile(skin, (len(pos), 1))
    scale = head_size / 0.25  # the tints below are tuned on a ~25 cm tall head
    if len(lips):
        d, _ = cKDTree(template[lips]).query(pos)
        w = _smoothstep(1.0 - d / (0.003 * scale))[:, None]
        col = col * (1 - w) + geo.srgb_to_linear(LIP_RGB) * w
    for centre in eyes.values():
        # cheeks: a touch redder below and outside each eye
        cheek = centre + np.array([np.sign(centre[0]) * 0.012, -0.035, 0.02]) * scale
        d = np.linalg.norm((pos - cheek) / np.array([0.022, 0.018, 0.03]) / scale, axis=1)
        w = 0.25 * _smoothstep(1 - d)[:, None]
        col = col * (1 - w) + geo.srgb_to_linear((214, 130, 118)) * w
        # brows: an arched band above each eye on the front of the face
        dx = (pos[:, 0] - centre[0]) / (0.026 * scale)
        arch_y = centre[1] + (0.019 - 0.006 * dx ** 2) * scale
        dy = (pos[:, 1] - arch_y) / (0.0042 * scale)
        front = pos[:, 2] > centre[2]
        w = (0.72 * _smoothstep(1.2 - np.abs(dx)) * _smoothstep(1.4 - np.abs(dy)) * front)[:, None]
        col = col * (1 - w) + geo.srgb_to_linear(BROW_RGB) * w
    return col.astype(np.float32)


def _mouth_parts(template, part_idx, replaced, landmarks, mouth_width, eye_gap) -> list[RenderPart]:
    """Teeth rows with gums, a tongue on the mouth floor and a dark cavity behind them.

    Teeth get life size for the head (from the distance between the eyes, 63 mm on an average
    adult) unless the helper arch is shorter; a longer helper arch (MakeHuman's are generous)
    is filled from the front, where teeth are seen.
    """
    from scipy.spatial import cKDTree

    parts = []
    up = template[part_idx["upper_teeth"]] if "upper_teeth" in replaced else None
    low = template[part_idx["lower_teeth"]] if "lower_teeth" in replaced else None
    has_jaw = low is not None
    teeth_c = geo.srgb_to_linear(TEETH_RGB)
    gum_c = geo.srgb_to_linear(GUM_RGB)

    def one(n, w):
        return np.full(n, w, np.float32)

    arch_u = arch_l = None
    if up is not None:
        arch_u = geo.fit_arch(up, power=2.2)
        scale = arch_u.half_length / sum(w for w, _, _ in geo.UPPER_TEETH_MM) * 0.98
        if eye_gap:
            scale = min(scale, eye_gap / 63.0)
        mid = np.abs(up[:, 0] - np.median(up[:, 0])) < 0.3 * arch_u.half_width
        edge_u = float(up[mid, 1].min()) if mid.any() else float(up[:, 1].min())
        # a millimetre lower than the helper strip: lips parted in speech show the upper incisors
        edge_u -= 1.0 * scale
        v, f, which, shade = geo.tooth_row(arch_u, edge_y=edge_u, upper=True, scale=scale)
        c = _tooth_colors(which, shade)
        parts.append(RenderPart("upper_teeth", "teeth", f, c, rest=v, bone_weights={"head": one(len(v), 1)}))
        gh = 6.0 * scale
        v, f = geo.gum_strip(arch_u, y_edge=edge_u + 7.5 * scale, height=gh, thickness=11.0 * scale, upper=True,
                             half_length=min(arch_u.half_length, 56.0 * scale))
        parts.append(RenderPart("upper_gums", "gums", f, np.tile(gum_c, (len(v), 1)), rest=v,
                                bone_weights={"head": one(len(v), 1)}))
    if low is not None:
        arch_l = geo.fit_arch(low, power=2.2)
        scale_l = arch_l.half_length / sum(w for w, _, _ in geo.LOWER_TEETH_MM) * 0.98
        if eye_gap:
            scale_l = min(scale_l, eye_gap / 63.0)
        if arch_u is not None:
            # lower incisors sit just behind the upper ones
            limit = arch_u.front - 0.75 * geo.UPPER_TEETH_MM[0][2] * scale
            if arch_l.front > limit:
                arch_l = geo.Arch(arch_l.half_width, limit, arch_l.depth, arch_l.power)
        mid = np.abs(low[:, 0] - np.median(low[:, 0])) < 0.3 * arch_l.half_width
        edge_l = float(low[mid, 1].max()) if mid.any() else float(low[:, 1].max())
        v, f, which, shade = geo.tooth_row(arch_l, edge_y=edge_l, upper=False, scale=scale_l)
        parts.append(RenderPart("lower_teeth", "teeth", f, _tooth_colors(which, shade), rest=v,
                                bone_weights={"jaw": one(len(v), 1)}))
        v, f = geo.gum_strip(arch_l, y_edge=edge_l - 7.5 * scale_l, height=6.0 * scale_l,
                             thickness=10.0 * scale_l, upper=False, half_length=min(arch_l.half_length, 54.0 * scale_l))
        parts.append(RenderPart("lower_gums", "gums", f, np.tile(gum_c, (len(v), 1)), rest=v,
                                bone_weights={"jaw": one(len(v), 1)}))
        if "tongue" in replaced:
            thick_inc = geo.LOWER_TEETH_MM[0][2] * scale_l
            # at rest the tongue fills the lower arch, its back a few millimetres under the
            # biting edge and its tip against the lower incisors
            width = 1.15 * arch_l.half_width
            length = 1.0 * arch_l.depth
            thickness = 0.36 * width
            tip = np.array([np.median(low[:, 0]), edge_l - 0.5 * thickness - 3.0 * scale_l,
                            arch_l.front - thick_inc - 1.5 * scale_l])
            v, f, shade = geo.tongue(tip=tip, width=width, length=length, thickness=thickness)
            tc = geo.srgb_to_linear(TONGUE_RGB)
            c = tc[None] * (0.55 + 0.45 * shade[:, None])
            src = template[part_idx["tongue"]]
            k = min(4, len(src))
            d, nn = cKDTree(src).query(v, k=k)
            d, nn = d.reshape(len(v), k), nn.reshape(len(v), k)
            w = 1.0 / np.maximum(d, 1e-4)
            w /= w.sum(1, keepdims=True)
            parts.append(RenderPart("tongue", "tongue", f, c.astype(np.float32), rest=v,
                                    bone_weights={"jaw": one(len(v), 1)},
                                    residual_index=part_idx["tongue"][nn], residual_weight=w.astype(np.float32)))
    # the cavity: behind the teeth if there are teeth, else behind the lips
    if arch_u is not None:
        y_top = edge_u + 14.0 * scale
        y_bot = (edge_l - 14.0 * scale_l) if arch_l is not None else edge_u - 16.0 * scale
        centre = np.array([np.median(up[:, 0]), (y_top + y_bot) / 2, arch_u.front - 0.55 * arch_u.depth])
        radii = np.array([0.95 * arch_u.half_width, 0.5 * (y_top - y_bot), 0.62 * arch_u.depth])
    else:
        m = landmarks["mouth"]
        centre = m - np.array([0, 0, 0.55 * mouth_width])
        radii = np.array([0.45, 0.3, 0.5]) * mouth_width
    v, f = geo.mouth_cavity(centre=centre, radii=radii)
    c = np.tile(geo.srgb_to_linear(CAVITY_RGB), (len(v), 1))
    if has_jaw:
        wj = _smoothstep((centre[1] + 0.3 * radii[1] - v[:, 1]) / (0.6 * radii[1])).astype(np.float32)
        bw = {"head": 1 - wj, "jaw": wj}
    else:
        bw = {"head": one(len(v), 1)}
    parts.append(RenderPart("mouth_cavity", "cavity", f, c, rest=v, bone_weights=bw))
    return parts


def _tooth_colors(which: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """Ivory, darker into the gaps, warmer and darker towards the back (in shadow in real mouths)."""
    base = geo.srgb_to_linear(TEETH_RGB)
    shade = ((1.0 - 0.07 * which) * shade)[:, None]
    warm = np.array([1.0, 0.97, 0.9], np.float32) ** (which[:, None] / 6.0)
    return (base[None] * shade * warm).astype(np.float32)
