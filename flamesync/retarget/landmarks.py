"""Facial landmarks on head meshes: found from geometry, or read from the user's file.

Automatic detection assumes the head's canonical frame (y up, face looking along +z, metres or
any unit), which both the default head and FLAME use. It works from anatomy that survives
re-meshing, so the default head and a FLAME head get the same landmarks by the same rules:

* the symmetry plane ``x = x0`` (centre of the main component's bounding box);
* the eyes: eyeball meshes (small, nearly spherical components), else eye-shaped holes; the
  eye corners are the lid-margin points nearest to / farthest from the symmetry plane;
* the mid-sagittal profile (the mesh cut by the symmetry plane, frontmost point per height):
  nose tip (most forward point below the eyes), nasion and subnasale (deepest points above /
  below it), upper and lower lip (the first two forward bumps below the nose), chin (most
  forward point below the mentolabial fold);
* mouth corners: the ends of a mouth hole (FLAME), or of the line where the ``upper_lip`` and
  ``lower_lip`` parts meet (the default head); optional when neither exists.

A landmark is an :class:`Anchor`: fixed weights over vertices plus an offset, so that its
position stays a linear function of the vertices (the registration constrains it that way).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import geometry as geo

REQUIRED = ("eye_left", "eye_right", "nose_tip", "upper_lip", "lower_lip", "chin")
OPTIONAL = (
    "eye_left_inner", "eye_left_outer", "eye_right_inner", "eye_right_outer",
    "nasion", "subnasale", "mouth_left", "mouth_right",
)
LANDMARK_NAMES = REQUIRED + OPTIONAL

HINT = ("supply them with --landmarks FILE (JSON {name: vertex index or [x, y, z]}; names: "
        + ", ".join(LANDMARK_NAMES) + ")")


class LandmarkError(InputError):
    """Landmarks could not be found on a mesh."""


@dataclass(frozen=True)
class Anchor:
    """A point tied to a mesh: ``sum(weights * vertices[indices]) + offset``."""

    indices: np.ndarray
    weights: np.ndarray
    offset: np.ndarray

    @classmethod
    def vertex(cls, i: int) -> "Anchor":
        return cls(np.array([int(i)]), np.array([1.0]), np.zeros(3))

    def position(self, vertices: np.ndarray) -> np.ndarray:
        return self.weights @ np.asarray(vertices, np.float64)[self.indices] + self.offset


def positions(anchors: dict[str, Anchor], vertices: np.ndarray) -> dict[str, np.ndarray]:
    return {k: a.position(vertices) for k, a in anchors.items()}


# --------------------------------------------------------------------------- detection
def detect_landmarks(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    parts: dict[str, np.ndarray] | None = None,
    name: str = "mesh",
) -> dict[str, Anchor]:
    """Find facial landmarks on a head mesh in the canonical frame.

    Parameters
    ----------
    vertices : (V, 3)
        y up, face looking along +z.
    faces : (F, 3) int
    parts : dict, optional
        Named vertex sets; ``upper_lip`` / ``lower_lip`` locate the mouth corners of a closed mouth.
    name : str
        For error messages.

    Returns
    -------
    dict of landmark name to :class:`Anchor`: all of :data:`REQUIRED`, and those of
    :data:`OPTIONAL` that the geometry shows.

    Raises
    ------
    LandmarkError
        No face found (no eyes, no nose/lip profile), with a one-line reason.
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        raise LandmarkError(f"{name} has no triangles")
    comps = geo.connected_components(f, len(v))
    main = comps[0]
    lo, hi = v[main].min(0), v[main].max(0)
    width = float(hi[0] - lo[0])
    if width <= 0:
        raise LandmarkError(f"{name} is flat; no face to find")
    x0 = 0.5 * float(lo[0] + hi[0])
    main_set = np.zeros(len(v), bool)
    main_set[main] = True
    main_faces = f[main_set[f[:, 0]]]

    out: dict[str, Anchor] = {}
    eyes = _find_eyes(v, f, main_faces, comps, x0, width)
    if eyes is None:
        raise LandmarkError(
            f"could not find facial landmarks on {name}: no pair of eyes (eyeball meshes or eye "
            f"holes) either side of the mid-plane; is it a head with y up and the face along +z? {HINT}"
        )
    out.update(eyes)
    eye_y, eye_z = 0.5 * (out["eye_left"].position(v) + out["eye_right"].position(v))[1:]
    out.update(_profile_landmarks(v, main_faces, x0, width, eye_y, eye_z, name))
    mouth = _mouth_corners(v, f, main_faces, x0, width, out, parts)
    out.update(mouth)
    return out


def _sphere_fit(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares sphere: centre, radius and relative RMS deviation of the radii."""
    a = np.c_[2 * points, np.ones(len(points))]
    b = (points ** 2).sum(1)
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    c = sol[:3]
    r2 = sol[3] + c @ c
    if r2 <= 0:
        return c, 0.0, np.inf
    r = np.sqrt(r2)
    dev = np.sqrt(np.mean((np.linalg.norm(points - c, axis=1) - r) ** 2)) / r
    return c, float(r), float(dev)


def _find_eyes(v, f, main_faces, comps, x0, width):
    """Eye centres and corners from eyeball components, else from eye holes in the skin."""
    spheres = []
    for comp in comps[1:]:
        if len(comp) < 12:
            continue
        c, r, dev = _sphere_fit(v[comp])
        if dev < 0.12 and 0.03 * width < r < 0.15 * width and abs(c[0] - x0) > 0.08 * width:
            spheres.append((c, r, comp))
    pair = _symmetric_pair([(c, r, comp) for c, r, comp in spheres], x0, width)
    if pair is not None:
        out = {}
        for side, (c, r, comp) in zip(("left", "right"), pair):
            w = np.full(len(comp), 1.0 / len(comp))
            out[f"eye_{side}"] = Anchor(comp, w, c - w @ v[comp])
        out.update(_lid_corners(v, main_faces, pair, x0))
        return out
    holes = []
    for loop in geo.boundary_loops(main_faces):
        if len(loop) < 6:
            continue
        p = v[loop]
        c = p.mean(0)
        span = p.max(0) - p.min(0)
        if 0.08 * width < span[0] < 0.35 * width and span[0] > span[1] and abs(c[0] - x0) > 0.08 * width:
            holes.append((c, 0.5 * span[0], loop))
    pair = _symmetric_pair(holes, x0, width)
    if pair is None:
        return None
    out = {}
    for side, (c, _, loop) in zip(("left", "right"), pair):
        w = np.full(len(loop), 1.0 / len(loop))
        out[f"eye_{side}"] = Anchor(loop, w, np.zeros(3))
        d = np.abs(v[loop, 0] - x0)
        out[f"eye_{side}_inner"] = Anchor.vertex(loop[np.argmin(d)])
        out[f"eye_{side}_outer"] = Anchor.vertex(loop[np.argmax(d)])
    return out


def _symmetric_pair(cands, x0, width):
    """The best-mirrored pair (left = +x side first), or None."""
    best, best_cost = None, np.inf
    for i, (ci, ri, _) in enumerate(cands):
        for j, (cj, rj, _) in enumerate(cands):
            if not (ci[0] > x0 > cj[0]):
                continue
            mirror = np.array([2 * x0 - cj[0], cj[1], cj[2]])
            cost = np.linalg.norm(ci - mirror) + abs(ri - rj)
            if cost < 0.06 * width and cost < best_cost:
                best, best_cost = (cands[i], cands[j]), cost
    return best


def _lid_corners(v, main_faces, pair, x0):
    """Eye corners: lid-margin skin points nearest to / farthest from the mid-plane."""
    out = {}
    skin = np.unique(main_faces)
    for side, (c, r, _) in zip(("left", "right"), pair):
        p = v[skin]
        d = np.linalg.norm(p - c, axis=1)
        # Lid margins lie just outside the eyeball, in front of its centre.
        margin = skin[(d < 1.3 * r) & (p[:, 2] > c[2])]
        if len(margin) < 4:
            continue
        dx = np.abs(v[margin, 0] - x0)
        out[f"eye_{side}_inner"] = Anchor.vertex(margin[np.argmin(dx)])
        out[f"eye_{side}_outer"] = Anchor.vertex(margin[np.argmax(dx)])
    return out


def midplane_section(v: np.ndarray, faces: np.ndarray, x0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mesh cut by the plane ``x = x0``, as line segments.

    Returns
    -------
    ends : (S, 2, 3)
        Segment end points.
    edges : (S, 2, 2) int
        The mesh edge each end point lies on.
    t : (S, 2)
        Position of each end along its edge (0 at the edge's first vertex).
    """
    f = np.asarray(faces, np.int64)
    e = np.stack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], axis=1)  # (F, 3, 2)
    s = v[..., 0][e] - x0  # (F, 3, 2) signed distances of edge ends
    # Half-open test so a vertex lying on the plane is counted once per face.
    cross = (s[..., 0] < 0) != (s[..., 1] < 0)
    two = cross.sum(1) == 2
    e, s, cross = e[two], s[two], cross[two]
    order = np.argsort(~cross, axis=1, kind="stable")[:, :2]  # the two crossing edges
    rows = np.arange(len(e))[:, None]
    e = e[rows, order]
    s = s[rows, order]
    t = s[..., 0] / (s[..., 0] - s[..., 1])
    ends = v[e[..., 0]] * (1 - t)[..., None] + v[e[..., 1]] * t[..., None]
    return ends, e, t


def _profile_landmarks(v, main_faces, x0, width, eye_y, eye_z, name):
    from scipy.ndimage import gaussian_filter1d

    ends, edges, t = midplane_section(v, main_faces, x0)
    fail = (f"could not find facial landmarks on {name}: no nose and lips along the mid-plane "
            f"profile; is it a head with y up and the face along +z? {HINT}")
    if len(ends) < 20:
        raise LandmarkError(fail)
    step = 0.004 * width
    nb = int(np.ceil(0.9 * width / step))
    yc = eye_y - (np.arange(nb) + 0.5) * step  # bin 0 at eye height, going down
    y0, y1 = ends[:, 0, 1], ends[:, 1, 1]
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.clip((yc[:, None] - y0) / (y1 - y0), 0, 1)  # (nb, S)
    z = ends[None, :, 0, 2] * (1 - u) + ends[None, :, 1, 2] * u
    inside = (yc[:, None] >= lo) & (yc[:, None] <= hi)
    # Only the face side of the cut: the back of the head would fill bins the face leaves empty.
    inside &= z > eye_z - 0.15 * width
    z = np.where(inside, z, -np.inf)
    seg = np.argmax(z, axis=1)
    zmax = z[np.arange(nb), seg]
    have = np.isfinite(zmax)
    if have.sum() < 20:
        raise LandmarkError(fail)
    idx = np.arange(nb)
    zs = gaussian_filter1d(np.interp(idx, idx[have], zmax[have]), 1.0)

    def anchor(b):
        if not have[b]:
            b = idx[have][np.argmin(np.abs(idx[have] - b))]
        k, w = seg[b], u[b, seg[b]]
        (a0, a1), (b0, b1) = edges[k]
        ta, tb = t[k]
        return Anchor(np.array([a0, a1, b0, b1]),
                      np.array([(1 - w) * (1 - ta), (1 - w) * ta, w * (1 - tb), w * tb]), np.zeros(3))

    bin_of = lambda dy: int(round(dy / step))  # noqa: E731  (a distance below the eyes, in bins)
    nose_win = slice(bin_of(0.1 * width), bin_of(0.45 * width))
    nose = nose_win.start + int(np.argmax(zs[nose_win]))
    prominence = 0.003 * width
    peaks = find_peaks(zs, prominence=prominence)
    below = peaks[(peaks > nose + bin_of(0.04 * width)) & (peaks < nose + bin_of(0.3 * width))]
    if len(below) < 2 or zs[nose] - zs[nose:below[0]].min() < 0.02 * width:
        raise LandmarkError(fail)
    upper, lower = int(below[0]), int(below[1])
    out = {
        "nose_tip": anchor(nose),
        "upper_lip": anchor(upper),
        "lower_lip": anchor(lower),
        "subnasale": anchor(nose + int(np.argmin(zs[nose:upper]))),
    }
    top = bin_of(0.05 * width)
    if nose > top + 2:
        # The nasion sits between the eyes: search only near eye height, above the nose bridge.
        out["nasion"] = anchor(int(np.argmin(zs[:bin_of(0.1 * width)])))
    fold_win = slice(lower + 1, min(nb, lower + bin_of(0.12 * width)))
    if fold_win.stop - fold_win.start < 3:
        raise LandmarkError(fail)
    fold = fold_win.start + int(np.argmin(zs[fold_win]))
    chin_win = slice(fold + 1, min(nb, fold + bin_of(0.2 * width)))
    if chin_win.stop - chin_win.start < 3:
        raise LandmarkError(fail)
    out["chin"] = anchor(chin_win.start + int(np.argmax(zs[chin_win])))
    return out


def find_peaks(values: np.ndarray, *, prominence: float) -> np.ndarray:
    """Indices of local maxima that rise at least ``prominence`` above the deeper of the two
    valleys separating them from higher ground (or the ends) on either side.

    Parameters
    ----------
    values : (N,)

    Returns
    -------
    (P,) int, increasing
    """
    z = np.asarray(values, np.float64)
    out = []
    for i in range(1, len(z) - 1):
        if not (z[i] > z[i - 1] and z[i] >= z[i + 1]):
            continue
        left = z[:i][::-1]
        higher = np.nonzero(left > z[i])[0]
        lmin = left[: higher[0]].min() if higher.size else left.min()
        right = z[i + 1:]
        higher = np.nonzero(right > z[i])[0]
        rmin = right[: higher[0]].min() if higher.size else right.min()
        if z[i] - max(lmin, rmin) >= prominence:
            out.append(i)
    return np.array(out, np.int64)


def _mouth_corners(v, f, main_faces, x0, width, found, parts):
    up = found["upper_lip"].position(v)
    lo = found["lower_lip"].position(v)
    centre = 0.5 * (up + lo)
    for loop in geo.boundary_loops(main_faces):
        p = v[loop]
        if len(loop) < 6 or np.linalg.norm(p.mean(0)[[0, 1]] - centre[[0, 1]]) > 0.05 * width:
            continue
        if not (p[:, 0].min() < x0 < p[:, 0].max()):
            continue
        return {"mouth_left": Anchor.vertex(loop[np.argmax(p[:, 0])]),
                "mouth_right": Anchor.vertex(loop[np.argmin(p[:, 0])])}
    if parts and "upper_lip" in parts and "lower_lip" in parts:
        from scipy.spatial import cKDTree

        upper, lower = np.asarray(parts["upper_lip"]), np.asarray(parts["lower_lip"])
        # The lips meet along the mouth line; its ends are the corners.
        d, _ = cKDTree(v[lower]).query(v[upper])
        line = upper[(d < 0.015 * width) & (np.abs(v[upper, 1] - centre[1]) < 0.05 * width)]
        if len(line) >= 2:
            return {"mouth_left": Anchor.vertex(line[np.argmax(v[line, 0])]),
                    "mouth_right": Anchor.vertex(line[np.argmin(v[line, 0])])}
    return {}


# --------------------------------------------------------------------------- user files
def read_landmark_file(path: str | Path, vertices: np.ndarray) -> dict[str, np.ndarray]:
    """Landmark positions from a JSON or CSV file of ``name -> vertex index or x, y, z``.

    JSON: ``{"nose_tip": 3526, "chin": [0.0, -0.09, 0.05], ...}``. CSV: rows ``name,index`` or
    ``name,x,y,z`` (a header row is allowed). Names are those of :data:`LANDMARK_NAMES`.

    Returns
    -------
    dict of name to (3,) position.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"landmark file not found: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    entries: dict[str, object] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object of landmark name -> vertex index or [x, y, z]")
        entries = data
    else:
        for row in csv.reader(text.splitlines()):
            row = [c.strip() for c in row if c.strip()]
            if not row or row[0].startswith("#") or row[0].lower() in ("name", "landmark"):
                continue
            entries[row[0]] = row[1] if len(row) == 2 else row[1:]
    v = np.asarray(vertices, np.float64)
    out = {}
    for key, val in entries.items():
        if key not in LANDMARK_NAMES:
            raise InputError(f"{path}: unknown landmark {key!r}; known: {', '.join(LANDMARK_NAMES)}")
        try:
            if isinstance(val, (list, tuple)):
                p = np.array([float(x) for x in val])
                if p.shape != (3,) or not np.isfinite(p).all():
                    raise ValueError
                out[key] = p
            else:
                i = int(val)
        except (TypeError, ValueError):
            raise InputError(f"{path}: landmark {key!r} must be a vertex index or [x, y, z], got {val!r}") from None
        if key not in out:
            if not 0 <= i < len(v):
                raise InputError(f"{path}: landmark {key!r} names vertex {i}, but the mesh has {len(v)}")
            out[key] = v[i]
    if len(out) < 4:
        raise InputError(f"{path}: give at least 4 landmarks (more is better), got {len(out)}")
    return out
