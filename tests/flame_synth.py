"""A small synthetic FLAME model in FLAME's exact file layout, for tests.

FLAME itself cannot be redistributed, so the tests build a stand-in with the same keys, dtypes,
axis conventions and skeleton (global, neck, jaw, left eye, right eye) and pickle it the way the
real ``generic_model.pkl`` is pickled: a dict holding chumpy ``Ch`` objects (``v_template``,
``shapedirs``), a scipy CSC ``J_regressor`` and plain numpy arrays, protocol 2.

Two writers:

- ``style="py3"``: Python 3's own pickler with a stand-in class that pickles under the global
  name ``chumpy.ch.Ch`` and scipy's real ``csc_matrix`` (``numpy._core`` / ``scipy.sparse._csc``
  spellings, bytes via ``_codecs.encode``).
- ``style="py2"``: the opcodes Python 2's cPickle wrote for the released files, written by hand
  (``numpy.core.multiarray``, ``scipy.sparse.csc``, ``__builtin__.set``, array data as Python 2
  byte strings that only load with ``encoding="latin1"``).
"""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import scipy.sparse as sp

ROOT_PARENT = 4294967295  # uint32(-1): how FLAME's kintree_table marks the root


def _ramp(t, lo, hi):
    """0 below ``lo``, 1 above ``hi``, linear between (exactly 0/1 outside, unlike a sigmoid)."""
    return np.clip((t - lo) / (hi - lo), 0.0, 1.0)


def _sphere(center, radii, n_rings, n_segments, *, max_polar=np.pi, closed=True):
    """UV sphere (or a cap of it open at the bottom); faces counter-clockwise seen from outside."""
    polar = np.linspace(0, max_polar, n_rings + 2)[1:-1] if closed else np.linspace(0, max_polar, n_rings + 1)[1:]
    az = np.linspace(0, 2 * np.pi, n_segments, endpoint=False)
    p, a = np.meshgrid(polar, az, indexing="ij")
    ring = np.stack([np.sin(p) * np.sin(a), np.cos(p), np.sin(p) * np.cos(a)], -1).reshape(-1, 3)
    verts = [np.array([[0.0, 1.0, 0.0]]), ring]
    if closed:
        verts.append(np.array([[0.0, -1.0, 0.0]]))
    verts = np.concatenate(verts) * radii + center
    faces = []
    idx = lambda r, s: 1 + r * n_segments + (s % n_segments)  # noqa: E731
    for s in range(n_segments):
        faces.append((0, idx(0, s), idx(0, s + 1)))
        for r in range(len(polar) - 1):
            faces.append((idx(r, s), idx(r + 1, s), idx(r + 1, s + 1)))
            faces.append((idx(r, s), idx(r + 1, s + 1), idx(r, s + 1)))
        if closed:
            bottom = len(verts) - 1
            faces.append((idx(len(polar) - 1, s), bottom, idx(len(polar) - 1, s + 1)))
    return verts, np.array(faces, np.int64), len(polar)


def make_synthetic_flame(
    *, n_shape: int = 30, n_expr: int = 10, seed: int = 0, rings: int = 14, segments: int = 24
) -> dict:
    """Arrays of a small FLAME-like model under FLAME's keys and dtypes.

    Returns a dict with ``v_template`` (V, 3) f8, ``shapedirs`` (V, 3, n_shape + n_expr) f8,
    ``posedirs`` (V, 3, 36) f8, ``J_regressor`` scipy CSC (5, V) f8, ``weights`` (V, 5) f8,
    ``kintree_table`` (2, 5) i8, ``f`` (F, 3) u4, ``J`` (5, 3) f8 and the ``bs_style`` /
    ``bs_type`` strings. The head has ``rings * segments + 1`` vertices plus 84 for the eyes:
    about 420 by default; ``rings=70, segments=70`` comes close to FLAME's 5023.
    """
    rng = np.random.default_rng(seed)
    # Head: an ellipsoid cap open at the neck, metres, y up, face towards +z (FLAME's frame).
    head, head_f, n_rings = _sphere(np.array([0.0, 0.02, 0.0]), np.array([0.075, 0.1, 0.09]), rings, segments,
                                    max_polar=0.85 * np.pi, closed=False)
    eye_l, eye_l_f, _ = _sphere(np.array([0.032, 0.035, 0.07]), 0.012, 5, 8)
    eye_r, eye_r_f, _ = _sphere(np.array([-0.032, 0.035, 0.07]), 0.012, 5, 8)
    verts = np.concatenate([head, eye_l, eye_r])
    faces = np.concatenate([head_f, eye_l_f + len(head), eye_r_f + len(head) + len(eye_l)])
    n_v = len(verts)
    is_eye_l = np.zeros(n_v, bool)
    is_eye_l[len(head):len(head) + len(eye_l)] = True
    is_eye_r = np.zeros(n_v, bool)
    is_eye_r[len(head) + len(eye_l):] = True
    is_head = ~(is_eye_l | is_eye_r)

    # Skinning: neck base on the root, lower front (chin, lower lip) on the jaw, rest on the neck.
    y, z = verts[:, 1], verts[:, 2]
    w_global = _ramp(-y, 0.03, 0.05) * is_head
    w_jaw = _ramp(-y, 0.0, 0.02) * _ramp(z, 0.0, 0.03) * (1 - w_global) * is_head
    w_neck = (1 - w_global - w_jaw) * is_head
    weights = np.stack([w_global, w_neck, w_jaw, is_eye_l.astype(float), is_eye_r.astype(float)], 1)

    # Joint regressor: ring centres for the chain, eyeball centres for the eyes; rows sum to 1.
    def ring(r):
        return 1 + r * segments + np.arange(segments)

    rows = [ring(n_rings - 1), ring(n_rings - 1 - rings // 7), ring(n_rings - 1 - 5 * rings // 14),
            np.flatnonzero(is_eye_l), np.flatnonzero(is_eye_r)]
    reg = np.zeros((5, n_v))
    for j, r in enumerate(rows):
        w = rng.uniform(0.5, 1.5, len(r))
        reg[j, r] = w / w.sum()
    J_regressor = sp.csc_matrix(reg)

    # Identity and expression: sums of smooth bumps of a few millimetres, like PCA components.
    def smooth_field(mask):
        field = np.zeros((n_v, 3))
        for _ in range(3):
            c = verts[rng.choice(np.flatnonzero(mask))]
            amp = rng.normal(0, 0.003, 3)
            field += np.exp(-np.sum((verts - c) ** 2, 1) / (2 * 0.03**2))[:, None] * amp
        return field * mask[:, None]

    face_front = is_head & (z > 0)
    shapedirs = np.stack([smooth_field(np.ones(n_v, bool)) for _ in range(n_shape)]
                         + [smooth_field(face_front) for _ in range(n_expr)], -1)
    # Pose correctives of joint j act only where j has skin weight, as in a trained model.
    posedirs = np.zeros((n_v, 3, 36))
    for j in range(1, 5):
        posedirs[:, :, 9 * (j - 1):9 * j] = rng.normal(0, 0.002, (n_v, 3, 9)) * weights[:, j, None, None]

    kintree = np.array([[ROOT_PARENT, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64)
    return {
        "f": faces.astype(np.uint32),
        "J_regressor": J_regressor,
        "kintree_table": kintree,
        "J": reg @ verts,
        "weights": weights,
        "posedirs": posedirs,
        "v_template": verts,
        "shapedirs": shapedirs,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


# ---------------------------------------------------------------------------------- py3 writer
class _Ch:
    """Pickles exactly like a plain ``chumpy.ch.Ch`` holding ``x`` (NEWOBJ + state dict)."""

    def __init__(self, x):
        self.x = np.asarray(x, np.float64)

    def __getstate__(self):
        # chumpy drops its weak-reference caches and pickles the rest of __dict__.
        return {"x": self.x, "_dirty_vars": {"x"}, "_itr": None, "_depends_on_deps": {},
                "_make_dense": False, "_make_sparse": False}


_Ch.__module__ = "chumpy.ch"
_Ch.__qualname__ = _Ch.__name__ = "Ch"


class _Pickler(pickle._Pickler):  # the pure-Python pickler lets us name the stand-in's global
    def save_global(self, obj, name=None):
        if obj is _Ch:
            self.write(pickle.GLOBAL + b"chumpy.ch\nCh\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _with_ch(model):
    """FLAME keeps ``v_template`` and ``shapedirs`` as chumpy arrays; other data passes as is."""
    if not isinstance(model, dict):
        return model
    out = dict(model)
    for key in ("v_template", "shapedirs"):
        if isinstance(out.get(key), np.ndarray):
            out[key] = _Ch(model[key])
    return out


def dumps_py3(model: dict, *, protocol: int = 2) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=protocol).dump(_with_ch(model))
    return buf.getvalue()


# ---------------------------------------------------------------------------------- py2 writer
class _Py2Writer:
    """Emits the protocol-2 opcodes Python 2's cPickle produced for FLAME's objects."""

    def __init__(self) -> None:
        self.out = bytearray(pickle.PROTO + b"\x02")

    def glob(self, module: str, name: str) -> None:
        self.out += pickle.GLOBAL + f"{module}\n{name}\n".encode()

    def py2str(self, data: bytes) -> None:
        if len(data) < 256:
            self.out += pickle.SHORT_BINSTRING + bytes([len(data)]) + data
        else:
            self.out += pickle.BINSTRING + struct.pack("<i", len(data)) + data

    def save(self, obj) -> None:
        w = self.out
        if obj is None:
            w += pickle.NONE
        elif obj is True or obj is False:
            w += pickle.NEWTRUE if obj else pickle.NEWFALSE
        elif isinstance(obj, int):
            w += pickle.BININT1 + bytes([obj]) if 0 <= obj < 256 else pickle.BININT + struct.pack("<i", obj)
        elif isinstance(obj, str):
            self.py2str(obj.encode("ascii"))
        elif isinstance(obj, bytes):
            self.py2str(obj)
        elif isinstance(obj, tuple):
            if len(obj) == 0:
                w += pickle.EMPTY_TUPLE
            elif len(obj) <= 3:
                for v in obj:
                    self.save(v)
                w += (pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3)[len(obj) - 1]
            else:
                w += pickle.MARK
                for v in obj:
                    self.save(v)
                w += pickle.TUPLE
        elif isinstance(obj, list):
            w += pickle.EMPTY_LIST
            if obj:
                w += pickle.MARK
                for v in obj:
                    self.save(v)
                w += pickle.APPENDS
        elif isinstance(obj, set):
            self.glob("__builtin__", "set")
            self.save((sorted(obj),))
            w += pickle.REDUCE
        elif isinstance(obj, dict):
            w += pickle.EMPTY_DICT
            if obj:
                w += pickle.MARK
                for k, v in obj.items():
                    self.save(k)
                    self.save(v)
                w += pickle.SETITEMS
        elif isinstance(obj, np.dtype):
            self.glob("numpy", "dtype")
            self.save((f"{obj.kind}{obj.itemsize}", 0, 1))
            w += pickle.REDUCE
            order = "|" if obj.itemsize == 1 else "<"
            self.save((3, order, None, None, None, -1, -1, 0))
            w += pickle.BUILD
        elif isinstance(obj, np.ndarray):
            self.glob("numpy.core.multiarray", "_reconstruct")
            self.glob("numpy", "ndarray")
            self.save((0,))
            self.save("b")
            w += pickle.TUPLE3 + pickle.REDUCE  # _reconstruct(ndarray, (0,), 'b')
            a = np.ascontiguousarray(obj)
            self.save((1, a.shape, a.dtype.newbyteorder("<"), False, a.astype(a.dtype.newbyteorder("<")).tobytes()))
            w += pickle.BUILD
        elif isinstance(obj, _Ch):
            self.glob("chumpy.ch", "Ch")
            w += pickle.EMPTY_TUPLE + pickle.NEWOBJ
            self.save(obj.__getstate__())
            w += pickle.BUILD
        elif sp.issparse(obj) and obj.format == "csc":
            self.glob("scipy.sparse.csc", "csc_matrix")
            w += pickle.EMPTY_TUPLE + pickle.NEWOBJ
            self.save({"_shape": tuple(int(s) for s in obj.shape), "maxprint": 50,
                       "indices": obj.indices.astype(np.int32), "indptr": obj.indptr.astype(np.int32),
                       "data": obj.data, "format": "csc"})
            w += pickle.BUILD
        else:
            raise TypeError(f"py2 writer cannot write {type(obj).__name__}")


def dumps_py2(model: dict) -> bytes:
    writer = _Py2Writer()
    writer.save(_with_ch(model))
    writer.out += pickle.STOP
    return bytes(writer.out)


def write_flame_pkl(path, model, *, style: str = "py3"):
    """Pickle ``model`` (from :func:`make_synthetic_flame`) to ``path`` like FLAME's own files."""
    data = dumps_py3(model) if style == "py3" else dumps_py2(model)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def dense(model: dict) -> dict:
    """The model's arrays with J_regressor dense (what a loader should return)."""
    out = dict(model)
    out["J_regressor"] = model["J_regressor"].toarray()
    return out
