"""Procedural geometry for the inside of the mouth and the eyes.

The MakeHuman helper meshes are built for posing, not for close-ups: teeth are flat strips, the
tongue rests high against the palate and each eye has a few dozen vertices. The renderer fits
better parts to them here, in code, so nothing generated has to be stored: tooth rows with gums
along a dental arch fitted to the helper teeth, a tongue lying on the mouth floor, a dark mouth
cavity and UV-sphere eyes coloured with sclera, iris and pupil.

Every function returns plain arrays: vertices ``(N, 3)`` float32 in the face's frame (metres,
y up, +z out of the face), triangles ``(F, 3)`` int32 counter-clockwise seen from outside, and,
where colour matters, linear-RGB vertex colours ``(N, 3)`` float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def srgb_to_linear(rgb) -> np.ndarray:
    """sRGB components in 0..1 (or 0..255 ints) to linear light, shape preserved."""
    c = np.asarray(rgb, np.float64)
    if c.max(initial=0) > 1.0:
        c = c / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


# ---------------------------------------------------------------------------- primitives
def uv_sphere(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit sphere with its poles on +z (front) and -z.

    Parameters
    ----------
    n_lat : int
        Rings from pole to pole (>= 2).
    n_lon : int
        Segments around the z axis (>= 3).

    Returns
    -------
    vertices : (2 + (n_lat - 1) * n_lon, 3) float32
    faces : (F, 3) int32, outward facing
    polar : (N,) float32, angle of each vertex from +z in radians
    """
    theta = np.linspace(0.0, np.pi, n_lat + 1)[1:-1]  # ring angles from +z
    phi = np.linspace(0.0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]]).astype(np.float32)
    polar = np.concatenate([[0.0], t.reshape(-1), [np.pi]]).astype(np.float32)
    faces = []
    top, bottom = 0, len(verts) - 1
    for j in range(n_lon):
        faces.append((top, 1 + j, 1 + (j + 1) % n_lon))
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a = 1 + i * n_lon + j
            b = 1 + i * n_lon + (j + 1) % n_lon
            c = a + n_lon
            d = b + n_lon
            faces += [(a, c, d), (a, d, b)]
    last = 1 + (n_lat - 2) * n_lon
    for j in range(n_lon):
        faces.append((last + j, bottom, last + (j + 1) % n_lon))
    return verts, np.asarray(faces, np.int32), polar


def superquadric(exponent: float, *, n_lat: int = 10, n_lon: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A unit superellipsoid: exponent 1 is a sphere, small exponents approach a rounded cube.

    Returns
    -------
    vertices : (N, 3) float32 within [-1, 1]^3
    faces : (F, 3) int32
    """
    v, f, _ = uv_sphere(n_lat, n_lon)
    shaped = np.sign(v) * np.abs(v) ** exponent
    return shaped.astype(np.float32), f


def merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate meshes ``[(vertices, faces), ...]`` into one."""
    verts, faces, base = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + base)
        base += len(v)
    return np.concatenate(verts).astype(np.float32), np.concatenate(faces).astype(np.int32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals.

    Parameters
    ----------
    vertices : (N, 3)
    faces : (F, 3)

    Returns
    -------
    (N, 3) float32
    """
    v = np.asarray(vertices, np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):  # |cross| is twice the area, so the sum is area weighted
        np.add.at(n, faces[:, k], fn)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return (n / np.maximum(norm, 1e-12)).astype(np.float32)


def vertex_normals_fast(vertices: np.ndarray, faces: np.ndarray, incidence) -> np.ndarray:
    """:func:`vertex_normals` for one mesh through a precomputed sparse vertex-face incidence.

    ``incidence`` is a scipy sparse ``(N, F)`` matrix from :func:`incidence_matrix`; the sparse
    product is several times faster than ``np.add.at`` for per-frame updates.
    """
    v = vertices
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = incidence @ fn
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return n.astype(np.float32, copy=False)


def incidence_matrix(n_vertices: int, faces: np.ndarray):
    """Sparse ``(n_vertices, F)`` matrix with a 1 where a vertex belongs to a face."""
    from scipy.sparse import csr_matrix

    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_vertices, len(faces)))


# ---------------------------------------------------------------------------- dental arch
@dataclass(frozen=True)
class Arch:
    """A dental arch in the horizontal (x, z) plane: ``z = front - depth * (|x| / half_width) ** power``.

    Attributes
    ----------
    half_width : float
        Half the distance between the last molars, metres.
    front : float
        z of the arch's front (at x = 0).
    depth : float
        How far back the arch ends at ``x = +-half_width``.
    power : float
        Shape: 2 is a parabola; larger values give a rounder front with straighter sides.
    """

    half_width: float
    front: float
    depth: float
    power: float = 2.0

    def point(self, x: np.ndarray) -> np.ndarray:
        """(N,) x positions to (N, 2) arch points (x, z)."""
        x = np.asarray(x, np.float64)
        return np.stack([x, self.front - self.depth * (np.abs(x) / self.half_width) ** self.power], -1)

    def sample(self, n: int = 401) -> tuple[np.ndarray, np.ndarray]:
        """Points (n, 2) from -half_width to +half_width and their arc length from the centre."""
        pts = self.point(np.linspace(-self.half_width, self.half_width, n))
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        return pts, s - s[n // 2]

    def at_arclength(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arch points (N, 2) and unit tangents (N, 2) at signed arc lengths from the centre."""
        pts, arc = self.sample()
        s = np.clip(np.asarray(s, np.float64), arc[0], arc[-1])
        p = np.stack([np.interp(s, arc, pts[:, 0]), np.interp(s, arc, pts[:, 1])], -1)
        eps = 1e-4
        q = np.stack([np.interp(s + eps, arc, pts[:, 0]), np.interp(s + eps, arc, pts[:, 1])], -1)
        r = np.stack([np.interp(s - eps, arc, pts[:, 0]), np.interp(s - eps, arc, pts[:, 1])], -1)
        t = q - r
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        return p, t

    @property
    def half_length(self) -> float:
        return float(self.sample()[1][-1])


def fit_arch(points: np.ndarray, *, power: float = 2.0) -> Arch:
    """Fit an :class:`Arch` to helper-teeth vertices.

    Parameters
    ----------
    points : (N, 3)
        Vertices of a tooth row (only x and z are used).
    power : float
        Arch shape exponent.

    Notes
    -----
    The front comes from the points near the midline, the width from the outermost points and
    the depth from a least-squares fit of ``front - z = depth * (|x| / w) ** power``.
    """
    p = np.asarray(points, np.float64)
    x = p[:, 0] - np.median(p[:, 0])
    z = p[:, 2]
    half_width = float(max(np.percentile(np.abs(x), 98), 1e-4))
    mid = np.abs(x) < 0.25 * half_width
    front = float(z[mid].max() if mid.any() else z.max())
    u = (np.abs(x) / half_width) ** power
    depth = float(np.sum(u * (front - z)) / max(np.sum(u * u), 1e-12))
    depth = max(depth, 0.3 * half_width)
    return Arch(half_width=half_width, front=front, depth=depth, power=power)


# Crown proportions of the permanent teeth from the midline backwards, in millimetres
# (mesio-distal width, crown height, labio-lingual thickness); values from standard dental
# anatomy tables, rounded. Only the ratios matter: each row is scaled to its fitted arch.
UPPER_TEETH_MM = (
    (8.5, 10.5, 7.0), (6.5, 9.0, 6.0), (7.5, 10.0, 8.0), (7.0, 8.5, 9.0),
    (6.5, 8.0, 9.0), (10.0, 7.5, 11.0), (9.0, 7.0, 11.0),
)
LOWER_TEETH_MM = (
    (5.0, 9.0, 6.0), (5.5, 9.5, 6.0), (7.0, 11.0, 7.5), (7.0, 8.5, 8.0),
    (7.0, 8.0, 8.0), (11.0, 7.5, 10.5), (10.5, 7.0, 10.0),
)


def tooth_row(
    arch: Arch,
    *,
    edge_y: float,
    upper: bool,
    scale: float,
    table=None,
    n_lat: int = 8,
    n_lon: int = 14,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rounded-box teeth along an arch, front teeth wedge-shaped towards the cutting edge.

    Parameters
    ----------
    arch : Arch
        The arch the outer (labial) faces of the teeth follow.
    edge_y : float
        Height of the biting edge.
    upper : bool
        Upper row (crowns grow upwards from ``edge_y``) or lower row (downwards).
    scale : float
        Metres per table millimetre.
    table : sequence of (width, height, thickness) or None
        Crown sizes per tooth from the midline back; defaults to the upper or lower table.

    Returns
    -------
    vertices : (N, 3) float32
    faces : (F, 3) int32
    tooth_index : (N,) int32, which tooth (0 = central incisor) each vertex belongs to
    shade : (N,) float32, 1 on the open faces of a crown, falling off into the gaps between
        teeth and towards the cutting edge (for colouring)
    """
    table = table or (UPPER_TEETH_MM if upper else LOWER_TEETH_MM)
    unit_v, unit_f = superquadric(0.35, n_lat=n_lat, n_lon=n_lon)
    parts, which, shades = [], [], []
    sign_y = 1.0 if upper else -1.0
    for side in (-1.0, 1.0):
        s = 0.0
        for k, (w, h, t) in enumerate(table):
            w, h, t = w * scale, h * scale, t * scale
            centre_s = side * (s + 0.5 * w)
            s += w
            (p,), (tan,) = arch.at_arclength(np.array([centre_s]))
            outward = np.array([-tan[1], tan[0]])  # (x, z); tangents run towards +x
            # unit box: x along the row, y along the crown, z outward
            u = unit_v.copy()
            along = u[:, 0] * 0.5 * w * 0.94
            y01 = (u[:, 2] + 1.0) * 0.5  # 0 at the cutting edge .. 1 at the gum
            # incisors and canines thin towards the cutting edge; back teeth stay blocky
            taper = 0.45 + 0.55 * y01 if k < 3 else 0.85 + 0.15 * y01
            depth = u[:, 1] * 0.5 * t * taper
            height = y01 * h
            if k == 2:  # canines come to a point
                height = height - (1.0 - np.abs(u[:, 0])) ** 2 * 0.08 * h * (1 - y01)
            centre_xz = p - outward * 0.5 * t  # labial face on the arch
            dir_t = np.array([tan[0], tan[1]])
            x = centre_xz[0] + along * dir_t[0] + depth * outward[0]
            z = centre_xz[1] + along * dir_t[1] + depth * outward[1]
            y = edge_y + sign_y * height
            verts = np.stack([x, y, z], -1)
            faces = unit_f
            if not _is_outward(verts, faces):
                faces = faces[:, ::-1]
            parts.append((verts.astype(np.float32), faces))
            which.append(np.full(len(verts), k, np.int32))
            shades.append(1.0 - 0.35 * np.abs(u[:, 0]) ** 6 - 0.12 * (1.0 - y01) ** 4)
    v, f = merge(parts)
    return v, f, np.concatenate(which), np.concatenate(shades).astype(np.float32)


def _is_outward(verts: np.ndarray, faces: np.ndarray) -> bool:
    """Whether a closed mesh's triangles face outwards (positive signed volume)."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) > 0


def gum_strip(
    arch: Arch,
    *,
    y_edge: float,
    height: float,
    thickness: float,
    upper: bool,
    half_length: float,
    n_along: int = 48,
    n_around: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """A rounded ridge of gum following the arch, covering the roots of a tooth row.

    The ridge's cross-section is a half-ellipse bulging outwards (labially) and inwards, from
    ``y_edge`` (where it meets the crowns) ``height`` towards the root.
    """
    s = np.linspace(-half_length, half_length, n_along)
    p, tan = arch.at_arclength(s)
    outward = np.stack([-tan[:, 1], tan[:, 0]], -1)  # tangents run towards +x
    centre = p - outward * 0.45 * thickness
    ang = np.linspace(0.0, np.pi, n_around)  # around the ridge: inner side .. outer side
    sign_y = 1.0 if upper else -1.0
    r_out = -np.cos(ang) * 0.6 * thickness  # along outward
    r_up = np.sin(ang) * height  # towards the root
    verts = np.empty((n_along, n_around, 3))
    verts[..., 0] = centre[:, None, 0] + r_out[None] * outward[:, None, 0]
    verts[..., 2] = centre[:, None, 1] + r_out[None] * outward[:, None, 1]
    verts[..., 1] = y_edge + sign_y * (0.25 * height + r_up[None] * 0.75)
    faces = []
    for i in range(n_along - 1):
        for j in range(n_around - 1):
            a = i * n_around + j
            b, c, d = a + 1, a + n_around, a + n_around + 1
            faces += [(a, c, d), (a, d, b)]
    v = verts.reshape(-1, 3).astype(np.float32)
    f = np.asarray(faces, np.int32)
    # face the ridge towards the mouth opening: its normals should point to the cutting edge side
    n = vertex_normals(v, f)
    mid = (n_along // 2) * n_around + n_around // 2
    if n[mid, 1] * -sign_y < 0:
        f = f[:, ::-1]
    return v, f


def tongue(
    *,
    tip: np.ndarray,
    width: float,
    length: float,
    thickness: float,
    n_lat: int = 18,
    n_lon: int = 28,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tongue: a flattened, tapered superellipsoid with a shallow groove along its midline.

    Parameters
    ----------
    tip : (3,)
        Front-most point of the tongue.
    width, length, thickness : float
        Overall size in metres (x, z, y).

    Returns
    -------
    vertices : (N, 3) float32
    faces : (F, 3) int32
    shade : (N,) float32 in 0..1, 1 on the upper surface and 0 underneath (for colouring)
    """
    v, f, _ = uv_sphere(n_lat, n_lon)  # poles on +-z: the tip and the root
    v = np.sign(v) * np.abs(v) ** 0.7
    along = (1.0 - v[:, 2]) * 0.5  # 0 at the tip .. 1 at the root
    # narrower tip, broad body; flat underside, domed top with a midline groove
    half_w = 0.5 * width * (0.55 + 0.45 * np.sqrt(np.clip(along * 2.2, 0, 1)))
    x = v[:, 0] * half_w
    top = v[:, 1] > 0
    y = v[:, 1] * 0.5 * thickness * np.where(top, 1.0, 0.6)
    groove = np.exp(-(x / (0.12 * width)) ** 2) * 0.12 * thickness * top * (0.3 + 0.7 * along)
    # the back of the tongue curves down towards the throat, leaving the dark of the mouth above it
    y = y - groove - 0.9 * thickness * np.clip(along - 0.35, 0, None) ** 2 / 0.65 ** 2 * 0.8
    z = -along * length
    verts = np.stack([x, y, z], -1) + np.asarray(tip, np.float64)
    shade = np.clip(0.5 + v[:, 1] * 0.8, 0.0, 1.0)
    verts = verts.astype(np.float32)
    if not _is_outward(verts - verts.mean(0), f):
        f = f[:, ::-1]
    return verts, f, shade.astype(np.float32)


def mouth_cavity(
    *, centre: np.ndarray, radii: np.ndarray, n_lat: int = 16, n_lon: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """An inward-facing ellipsoid: seen from anywhere, only its far wall renders (the back of a mouth)."""
    v, f, _ = uv_sphere(n_lat, n_lon)
    verts = (v * np.asarray(radii, np.float32) + np.asarray(centre, np.float32)).astype(np.float32)
    return verts, f[:, ::-1].copy()


# ---------------------------------------------------------------------------- eyes
IRIS_HALF_ANGLE = np.deg2rad(29.0)  # 11.7 mm iris on a 24 mm eyeball
PUPIL_HALF_ANGLE = np.deg2rad(9.0)


def eyeball(
    *,
    centre: np.ndarray,
    radius: float,
    iris_rgb=(92, 64, 42),
    sclera_rgb=(236, 230, 222),
    n_lat: int = 40,
    n_lon: int = 48,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A UV-sphere eye looking along +z with sclera, a radially streaked iris, limbus and pupil.

    Rings are spaced densely over the front so the iris and pupil edges are crisp circles.

    Returns
    -------
    vertices : (N, 3) float32
    faces : (F, 3) int32
    colors : (N, 3) float32 linear RGB
    """
    # ring angles: dense up to just past the iris, sparse over the back
    front = np.linspace(0, IRIS_HALF_ANGLE * 1.15, int(n_lat * 0.6))
    back = np.linspace(IRIS_HALF_ANGLE * 1.15, np.pi, n_lat - len(front) + 2)[1:]
    theta = np.concatenate([front[1:], back[:-1]])
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    unit = np.concatenate([[[0, 0, 1.0]], ring, [[0, 0, -1.0]]])
    polar = np.concatenate([[0.0], t.reshape(-1), [np.pi]])
    azim = np.concatenate([[0.0], p.reshape(-1), [0.0]])
    n_rings = len(theta)
    faces = [(0, 1 + j, 1 + (j + 1) % n_lon) for j in range(n_lon)]
    for i in range(n_rings - 1):
        for j in range(n_lon):
            a = 1 + i * n_lon + j
            b = 1 + i * n_lon + (j + 1) % n_lon
            faces += [(a, a + n_lon, b + n_lon), (a, b + n_lon, b)]
    last, bottom = 1 + (n_rings - 1) * n_lon, len(unit) - 1
    faces += [(last + j, bottom, last + (j + 1) % n_lon) for j in range(n_lon)]

    rng = np.random.default_rng(seed)
    streak = rng.uniform(0.75, 1.2, n_lon)
    sclera = srgb_to_linear(sclera_rgb)
    iris = srgb_to_linear(iris_rgb)
    pupil = srgb_to_linear((12, 10, 10))
    limbus = srgb_to_linear((40, 30, 24))
    col = np.tile(sclera, (len(unit), 1))
    # sclera: slightly pinker towards the back corners, as real eyes are
    col *= (1.0 - 0.15 * np.clip((polar - 0.9) / 1.2, 0, 1))[:, None] * np.array([1.0, 0.93, 0.92])
    r = polar / IRIS_HALF_ANGLE
    in_iris = r <= 1.0
    k = np.clip(np.round(azim / (2 * np.pi) * n_lon).astype(int) % n_lon, 0, n_lon - 1)
    radial = 0.65 + 0.55 * r  # lighter towards the rim of the iris, darker collarette
    iris_col = iris[None] * (radial * streak[k])[:, None]
    rim = np.clip((r - 0.82) / 0.18, 0, 1)[:, None]
    iris_col = iris_col * (1 - rim) + limbus[None] * rim
    col[in_iris] = iris_col[in_iris]
    col[polar <= PUPIL_HALF_ANGLE] = pupil
    # the cornea bulges over the iris: a slight forward push gives a moving specular highlight
    bulge = 1.0 + 0.06 * np.clip(1 - (polar / (IRIS_HALF_ANGLE * 1.1)) ** 2, 0, 1)
    verts = (unit * (radius * bulge)[:, None] + np.asarray(centre)).astype(np.float32)
    return verts, np.asarray(faces, np.int32), col.astype(np.float32)
