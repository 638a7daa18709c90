"""A small synthetic head for fast render tests and benchmarks.

An ellipsoid skull with a mouth slit, a hinged jaw, strip teeth, a high blob tongue and coarse
eyeballs: the same kinds of parts (and crudeness) as the MakeHuman helpers, in a few thousand
vertices, so tests of the renderer do not depend on the default head being built.
"""

from __future__ import annotations

import numpy as np

from ..face.base import BlendshapeFace

CHANNELS = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "tongueOut")
JAW_OPEN_RAD = 0.30
CENTRE = np.array([0.0, -0.03, -0.085])
RADII = np.array([0.075, 0.11, 0.095])
MOUTH_Y = -0.07


def _surface_z(x: float, y: float) -> float:
    u = 1.0 - ((x - CENTRE[0]) / RADII[0]) ** 2 - ((y - CENTRE[1]) / RADII[1]) ** 2
    return float(CENTRE[2] + RADII[2] * np.sqrt(max(u, 0.0)))


def _strip(arch_half: float, front: float, depth: float, y0: float, y1: float, n: int = 14):
    x = np.linspace(-arch_half, arch_half, n)
    z = front - depth * (np.abs(x) / arch_half) ** 2
    top = np.stack([x, np.full(n, y1), z], -1)
    bot = np.stack([x, np.full(n, y0), z], -1)
    v = np.concatenate([top, bot])
    f = []
    for i in range(n - 1):
        f += [(i, n + i, n + i + 1), (i, n + i + 1, i + 1)]
    return v, np.asarray(f)


def _icosphere(centre, radius, subdivisions=1):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(m.vertices) + np.asarray(centre), np.asarray(m.faces)


def synthetic_head(*, n_lat: int = 48, n_lon: int = 64) -> BlendshapeFace:
    """Build the synthetic head (deterministic, ~3k vertices at the default resolution)."""
    # --- skin: a lat/long ellipsoid with poles on +-y; longitude 0 faces +z
    lat = np.linspace(0, np.pi, n_lat + 1)
    lon = np.linspace(-np.pi, np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    unit = np.stack([np.sin(la) * np.sin(lo), np.cos(la), np.sin(la) * np.cos(lo)], -1)
    grid = unit * RADII + CENTRE  # (n_lat + 1, n_lon, 3)
    verts = grid.reshape(-1, 3)
    idx = np.arange(len(verts)).reshape(n_lat + 1, n_lon)
    mouth_ring = int(np.argmin(np.abs(grid[:, 0, 1] - MOUTH_Y)))
    slit = np.abs(lon) < np.deg2rad(24)
    # lower-lip copies of the mouth ring inside the slit, so the jaw can pull them apart
    dup_src = idx[mouth_ring, slit]
    dup = np.arange(len(verts), len(verts) + len(dup_src))
    lower_ring = idx[mouth_ring].copy()
    lower_ring[slit] = dup
    verts = np.concatenate([verts, verts[dup_src]])
    faces = []
    for i in range(n_lat):
        upper = idx[i]
        lower = idx[i + 1]
        if i == mouth_ring:
            upper = lower_ring
        for j in range(n_lon):
            k = (j + 1) % n_lon
            a, b, c, d = upper[j], upper[k], lower[j], lower[k]
            faces += [(a, c, d), (a, d, b)]
    faces = np.asarray(faces)
    faces = faces[[len(set(f)) == 3 for f in faces]]  # drop degenerate pole triangles
    # a neck: an open cylinder under the skull, so the head has a head's proportions in frame
    ang = np.linspace(-np.pi, np.pi, 32, endpoint=False)
    ring = np.stack([0.048 * np.sin(ang), np.zeros_like(ang), -0.095 + 0.048 * np.cos(ang)], -1)
    neck = np.concatenate([ring + [0, -0.09, 0], ring + [0, -0.2, 0]])
    nf = []
    for j in range(32):
        k = (j + 1) % 32
        nf += [(j, 32 + j, 32 + k), (j, 32 + k, k)]
    faces = np.concatenate([faces, np.asarray(nf) + len(verts)])
    verts = np.concatenate([verts, neck])
    skin_n = len(verts)
    upper_lip = np.concatenate([idx[mouth_ring, slit], idx[mouth_ring - 1, slit]])
    lower_lip = np.concatenate([dup, idx[mouth_ring + 1, slit]])

    # --- helpers, deliberately crude like MakeHuman's
    zm = _surface_z(0, MOUTH_Y)
    parts_geo = {
        "upper_teeth": _strip(0.022, zm - 0.006, 0.03, MOUTH_Y - 0.002, MOUTH_Y + 0.008),
        "lower_teeth": _strip(0.020, zm - 0.008, 0.028, MOUTH_Y - 0.011, MOUTH_Y - 0.001),
        "tongue": _icosphere((0.0, MOUTH_Y + 0.002, zm - 0.03), 0.012, 1),
    }
    for side, x in (("eye_left", 0.032), ("eye_right", -0.032)):
        zc = _surface_z(x, 0.0) - 0.012 + 0.004
        parts_geo[side] = _icosphere((x, 0.0, zc), 0.012, 1)
    parts = {"upper_lip": upper_lip, "lower_lip": lower_lip}
    all_v, all_f, base = [verts], [faces], skin_n
    for name, (v, f) in parts_geo.items():
        parts[name] = np.arange(base, base + len(v))
        all_v.append(v)
        all_f.append(f + base)
        base += len(v)
    template = np.concatenate(all_v).astype(np.float32)
    faces = np.concatenate(all_f).astype(np.int32)
    parts["skin"] = np.arange(skin_n)

    # --- jaw: everything below the mouth at the front, fading out towards the back of the head
    y, z = template[:, 1], template[:, 2]
    w = np.clip((MOUTH_Y - y) / 0.012 + 0.5, 0, 1) * np.clip((z + 0.11) / 0.05, 0, 1)
    w[upper_lip] = 0.0
    w[lower_lip] = 1.0
    w[parts["lower_teeth"]] = 1.0
    w[parts["tongue"]] = 0.8
    w[parts["upper_teeth"]] = 0.0
    w[np.concatenate([parts["eye_left"], parts["eye_right"]])] = 0.0
    pivot = np.array([0.0, -0.04, -0.075], np.float32)

    deltas = np.zeros((len(CHANNELS), len(template), 3), np.float32)
    c, s = np.cos(JAW_OPEN_RAD), np.sin(JAW_OPEN_RAD)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    opened = (template - pivot) @ rot.T + pivot
    deltas[0] = w[:, None] * (opened - template)
    deltas[1, lower_lip, 1] = 0.012  # mouthClose: lower lip up against an open jaw
    lips = np.concatenate([upper_lip, lower_lip])
    mid = np.array([0.0, MOUTH_Y, zm])
    deltas[2, lips] = (mid - template[lips]) * np.array([0.35, 0.0, 0.0]) + np.array([0, 0, 0.006])
    deltas[3, lips] = (mid - template[lips]) * np.array([0.55, 0.3, 0.0]) + np.array([0, 0, 0.009])
    deltas[4, parts["tongue"], 2] = 0.03
    return BlendshapeFace(
        name="synthetic",
        channels=CHANNELS,
        template=template,
        faces=faces,
        deltas=deltas,
        jaw_pivot=pivot,
        jaw_weights=w.astype(np.float32),
        parts=parts,
        meta={"jaw_open_rad": JAW_OPEN_RAD},
    )
