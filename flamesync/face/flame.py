"""FLAME: a user-supplied FLAME head model (FLAME 2020 / 2023 ``.pkl``, or our ``.npz``).

flamesync cannot ship FLAME (its licence requires registering at https://flame.is.tue.mpg.de);
users point flamesync at their own file. The ``.pkl`` files were written by Python 2 with
chumpy and scipy objects inside; they are read with :mod:`flamesync.face.safe_pickle`, which
never runs code from the file. ``flamesync flame convert`` writes an ``.npz`` that numpy reads
without any pickle at all.

File layout (FLAME 2020, also FLAME 2023)::

    v_template    (V, 3)        chumpy Ch       neutral mesh, metres, y up, looking along +z
    shapedirs     (V, 3, 400)   chumpy Ch       300 identity then 100 expression components
    posedirs      (V, 3, 36)    ndarray         pose correctives, input pose_features (R - I)
    J_regressor   (5, V)        scipy csc       joints from the shaped mesh
    weights       (V, 5)        ndarray         skinning weights
    kintree_table (2, 5)        ndarray         row 0 parent id (root: -1 / 2**32-1), row 1 id
    f             (F, 3)        ndarray         triangles

Joints: 0 global (root, at the neck base), 1 neck, 2 jaw, 3 left eye, 4 right eye.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, ModelFileError
from . import lbs
from .base import FaceModel
from .safe_pickle import CompressedSparse, load_pickle

__all__ = ["FlameModel", "load_flame", "save_flame_npz", "FLAME_JOINTS", "NPZ_FORMAT"]

FLAME_JOINTS: tuple[str, ...] = ("global", "neck", "jaw", "eye_left", "eye_right")
# FLAME releases put 300 identity components before the expression ones.
FLAME_N_SHAPE = 300
NPZ_FORMAT = "flamesync-flame-1"
_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
_MASKS_NAME = "FLAME_masks.pkl"
_PART_PREFIX = "part_"  # vertex masks stored in a converted .npz


def _tensor(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


@dataclass(eq=False)
class FlameModel(FaceModel):
    """A FLAME head: identity + expression blendshapes, pose correctives and a 5-joint skeleton.

    Build with :func:`load_flame`. The arrays keep the file's values (usually float64); the
    forward pass runs in float32 torch tensors built from them.

    Attributes
    ----------
    v_template : (V, 3) float
    shapedirs : (V, 3, n_shape + n_expr) float
        Identity components first, then expression components.
    posedirs : (V, 3, 9 * (J - 1)) float
    J_regressor : (J, V) float
    lbs_weights : (V, J) float
    kintree_table : (2, J) int64
    f : (F, 3) int32
    n_shape, n_expr : int
    parts : dict of str to (N,) int arrays
        Vertex regions, from ``FLAME_masks.pkl`` when one was given or found next to the model.
    source : str
        Where the model was loaded from.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    lbs_weights: np.ndarray
    kintree_table: np.ndarray
    f: np.ndarray
    n_shape: int
    n_expr: int
    parts: dict = field(default_factory=dict)
    source: str = ""
    name: str = "flame"

    def __post_init__(self) -> None:
        _validate(self)
        self.channels = tuple(f"exp{i:03d}" for i in range(self.n_expr))
        self.template = np.ascontiguousarray(self.v_template, np.float32)
        self.faces = np.ascontiguousarray(self.f, np.int32)
        self.parents = torch.from_numpy(parents_from_kintree(self.kintree_table))
        self._t = {
            "v_template": _tensor(self.v_template),
            "shapedirs": _tensor(self.shapedirs),
            "posedirs": _tensor(self.posedirs),
            "J_regressor": _tensor(self.J_regressor),
            "weights": _tensor(self.lbs_weights),
        }

    def __repr__(self) -> str:
        return (f"FlameModel({self.n_vertices} vertices, {self.n_shape} identity + {self.n_expr} "
                f"expression components, source={self.source!r})")

    @property
    def n_joints(self) -> int:
        return int(self.kintree_table.shape[1])

    def to(self, device=None, dtype: torch.dtype | None = None) -> "FlameModel":
        """Move the forward pass's tensors to ``device`` and/or ``dtype`` (in place; returns self)."""
        self._t = {k: v.to(device=device, dtype=dtype) for k, v in self._t.items()}
        self.parents = self.parents.to(device=device)
        return self

    @property
    def lip_vertices(self) -> np.ndarray:
        if "lips" in self.parts:
            return self.parts["lips"]
        if "upper_lip" in self.parts and "lower_lip" in self.parts:
            return super().lip_vertices
        raise InputError(
            "lip vertices of this FLAME model are unknown: put FLAME's FLAME_masks.pkl next to the "
            "model file (or pass masks= to load_flame)"
        )

    # ------------------------------------------------------------------ forward passes
    def animate(self, animation, *, batch_size: int = 256) -> np.ndarray:
        """Vertices for every frame (T, V, 3), float32, as :meth:`FaceModel.animate`, with the
        eye pose from ``eyeLeft.r*``/``eyeRight.r*`` when the animation carries them."""
        left, right = animation.rotation("eyeLeft"), animation.rotation("eyeRight")
        if left is None and right is None:
            return super().animate(animation, batch_size=batch_size)
        from ..channels import JAW_ROTATION_IMPLIED

        w = animation.weights(self.channels)
        jaw = None if animation.meta.get("jaw_rotation") == JAW_ROTATION_IMPLIED else animation.jaw
        head = animation.head
        out = np.empty((animation.n_frames, self.n_vertices, 3), np.float32)

        def part(x, s, e):
            return None if x is None else torch.from_numpy(np.ascontiguousarray(x[s:e], np.float32))

        with torch.no_grad():
            for s in range(0, animation.n_frames, batch_size):
                e = s + batch_size
                v = self.forward_full(expression=part(w, s, e), jaw_pose=part(jaw, s, e), global_pose=part(head, s, e),
                                      eye_left_pose=part(left, s, e), eye_right_pose=part(right, s, e))
                out[s:e] = v.detach().cpu().numpy().reshape(-1, self.n_vertices, 3)
        return out

    def forward(self, weights, *, jaw=None, head=None):
        """FaceModel interface: ``weights`` are the expression coefficients, ``jaw`` the jaw
        joint's rotation and ``head`` the global rotation (about the root joint)."""
        return self.forward_full(expression=weights, jaw_pose=jaw, global_pose=head)

    def forward_full(
        self,
        *,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        global_pose: torch.Tensor | None = None,
        neck_pose: torch.Tensor | None = None,
        jaw_pose: torch.Tensor | None = None,
        eye_left_pose: torch.Tensor | None = None,
        eye_right_pose: torch.Tensor | None = None,
        translation: torch.Tensor | None = None,
        batch_size: int | None = None,
        return_joints: bool = False,
    ):
        """Vertices for a batch of FLAME parameters (differentiable).

        Parameters
        ----------
        shape : (B, S) with S <= n_shape, optional
            Identity coefficients; missing trailing components are zero.
        expression : (B, E) with E <= n_expr, optional
        global_pose, neck_pose, jaw_pose, eye_left_pose, eye_right_pose : (B, 3), optional
            Axis-angle rotations in radians of joints 0-4.
        translation : (B, 3), optional
            Added to every vertex (and joint), metres.
        batch_size : int, optional
            Needed only when every parameter is None.
        return_joints : bool
            Also return the posed joints.

        Returns
        -------
        vertices : (B, V, 3)
        joints : (B, J, 3), only when ``return_joints``
        """
        t = self._t
        dtype, device = t["v_template"].dtype, t["v_template"].device
        poses = (global_pose, neck_pose, jaw_pose, eye_left_pose, eye_right_pose)
        given = [x for x in (shape, expression, translation, *poses) if x is not None]
        sizes = {int(x.shape[0]) for x in given if x.ndim >= 1}
        if len(sizes) > 1:
            raise InputError(f"FLAME parameters disagree on the batch size: {sorted(sizes)}")
        batch = sizes.pop() if sizes else batch_size
        if batch is None:
            raise InputError("give at least one FLAME parameter or batch_size")

        def coeffs(x, n, what):
            if x is None:
                return torch.zeros(batch, n, dtype=dtype, device=device)
            if x.ndim != 2 or x.shape[1] > n:
                raise InputError(f"{what} must have shape (B, <= {n}), got {tuple(x.shape)}")
            x = x.to(dtype=dtype, device=device)
            return torch.nn.functional.pad(x, (0, n - x.shape[1]))

        def rotation(x, what):
            if x is None:
                return torch.zeros(batch, 3, dtype=dtype, device=device)
            if tuple(x.shape) != (batch, 3):
                raise InputError(f"{what} must have shape (B, 3), got {tuple(x.shape)}")
            return x.to(dtype=dtype, device=device)

        betas = torch.cat([coeffs(shape, self.n_shape, "shape"),
                           coeffs(expression, self.n_expr, "expression")], dim=1)
        names = ("global_pose", "neck_pose", "jaw_pose", "eye_left_pose", "eye_right_pose")
        pose = torch.stack([rotation(x, n) for x, n in zip(poses, names)], dim=1)  # (B, 5, 3)
        verts, joints = lbs.lbs(betas, pose, t["v_template"], t["shapedirs"], t["posedirs"],
                                t["J_regressor"], self.parents, t["weights"])
        if translation is not None:
            offset = rotation(translation, "translation")[:, None]
            verts, joints = verts + offset, joints + offset
        return (verts, joints) if return_joints else verts

    def arrays(self) -> dict[str, np.ndarray]:
        """The model's arrays under FLAME's key names (what ``.npz`` conversion stores)."""
        return {
            "v_template": self.v_template, "shapedirs": self.shapedirs, "posedirs": self.posedirs,
            "J_regressor": self.J_regressor, "weights": self.lbs_weights,
            "kintree_table": self.kintree_table, "f": self.f,
        }


# ---------------------------------------------------------------------------------- helpers
def parents_from_kintree(kintree_table: np.ndarray) -> np.ndarray:
    """Parent index of each joint from a SMPL/FLAME kinematic tree table.

    Parameters
    ----------
    kintree_table : (2, J) int
        Row 1 holds joint ids, row 0 their parents' ids; the root's parent is -1 or 2**32 - 1.

    Returns
    -------
    (J,) int64, ``-1`` for the root; raises ModelFileError unless each parent precedes its child.
    """
    ids = [int(i) for i in kintree_table[1]]
    column = {joint_id: c for c, joint_id in enumerate(ids)}
    if len(column) != len(ids):
        raise ModelFileError("kintree_table lists a joint id twice")
    parents = np.full(len(ids), -1, np.int64)
    for c in range(1, len(ids)):
        p = column.get(int(kintree_table[0, c]))
        if p is None or p >= c:
            raise ModelFileError("kintree_table is not a tree with parents before children")
        parents[c] = p
    return parents


def _validate(m: FlameModel) -> None:
    def fail(msg):
        raise ModelFileError(f"{m.source or 'FLAME model'}: {msg}")

    for key, arr in m.arrays().items():
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
            fail(f"'{key}' is not a numeric array")
    v = m.v_template
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 4:
        fail(f"v_template has shape {v.shape}, expected (V, 3)")
    n_v = v.shape[0]
    k = m.kintree_table
    if k.ndim != 2 or k.shape[0] != 2 or k.shape[1] < 2:
        fail(f"kintree_table has shape {k.shape}, expected (2, J)")
    n_j = k.shape[1]
    expect = {
        "shapedirs": (n_v, 3, m.n_shape + m.n_expr),
        "posedirs": (n_v, 3, 9 * (n_j - 1)),
        "J_regressor": (n_j, n_v),
        "weights": (n_v, n_j),
    }
    for key, shp in expect.items():
        arr = m.arrays()[key]
        if arr.shape != shp:
            fail(f"'{key}' has shape {arr.shape}, expected {shp}")
    if m.n_shape < 0 or m.n_expr < 1:
        fail(f"needs expression components (n_shape={m.n_shape}, n_expr={m.n_expr})")
    if m.f.ndim != 2 or m.f.shape[1] != 3 or m.f.dtype.kind not in "iu":
        fail(f"'f' has shape {m.f.shape} and dtype {m.f.dtype}, expected (F, 3) integers")
    if m.f.size and (m.f.min() < 0 or m.f.max() >= n_v):
        fail("'f' refers to vertices that do not exist")
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        if not np.isfinite(m.arrays()[key]).all():
            fail(f"'{key}' contains NaN or infinity")
    for name, idx in m.parts.items():
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n_v)):
            fail(f"vertex mask '{name}' does not fit the mesh")
    parents_from_kintree(k)


def _split(n_components: int, n_shape: int | None, source: str) -> tuple[int, int]:
    """Where identity ends and expression starts along shapedirs' last axis."""
    if n_shape is None:
        if n_components > FLAME_N_SHAPE:
            n_shape = FLAME_N_SHAPE
        elif n_components % 4 == 0:
            # Reduced models that keep FLAME's 3:1 identity:expression ratio (300:100).
            n_shape = 3 * n_components // 4
        else:
            raise ModelFileError(
                f"{source}: cannot tell identity from expression in {n_components} shape components; "
                "pass n_shape"
            )
    if not 0 <= n_shape < n_components:
        raise ModelFileError(f"{source}: n_shape={n_shape} leaves no expression components of {n_components}")
    return n_shape, n_components - n_shape


# Upper bounds on a FLAME-like model's sizes, checked on the shapes a file declares before any array
# is built from them (FLAME itself: 5023 vertices, 5 joints, 400 components, 9976 triangles).
_MAX_VERTICES = 1_000_000
_MAX_JOINTS = 256
_MAX_COMPONENTS = 10_000


def _check_declared_shapes(shapes: dict[str, tuple], source: str) -> None:
    """Check the shapes a file declares for each member against the model's own sizes, before
    anything is allocated: a sparse matrix or a lazily read member declaring a huge or empty
    shape is refused here instead of being expanded."""
    def fail(msg):
        raise ModelFileError(f"{source}: {msg}")

    def dims(key, ndim):
        shp = tuple(int(x) for x in shapes[key])
        if len(shp) != ndim:
            fail(f"'{key}' has shape {shp}, expected {ndim} dimensions")
        return shp

    n_v, three = dims("v_template", 2)
    if three != 3 or not 4 <= n_v <= _MAX_VERTICES:
        fail(f"'v_template' has shape {(n_v, three)}, expected (V, 3) with 4 <= V <= {_MAX_VERTICES}")
    two, n_j = dims("kintree_table", 2)
    if two != 2 or not 2 <= n_j <= _MAX_JOINTS:
        fail(f"'kintree_table' has shape {(two, n_j)}, expected (2, J) with 2 <= J <= {_MAX_JOINTS}")
    sd = dims("shapedirs", 3)
    if sd[:2] != (n_v, 3) or not 2 <= sd[2] <= _MAX_COMPONENTS:
        fail(f"'shapedirs' has shape {sd}, expected ({n_v}, 3, K) with 2 <= K <= {_MAX_COMPONENTS}")
    pd = tuple(int(x) for x in shapes["posedirs"])
    n_p = 9 * (n_j - 1)
    if pd not in ((n_v, 3, n_p), (3 * n_v, n_p)):
        fail(f"'posedirs' has shape {pd}, expected {(n_v, 3, n_p)}")
    for key, want in (("J_regressor", (n_j, n_v)), ("weights", (n_v, n_j))):
        got = tuple(int(x) for x in shapes[key])
        if got != want:
            fail(f"'{key}' has shape {got}, expected {want}")
    f = dims("f", 2)
    if f[1] != 3 or not 1 <= f[0] <= 4 * _MAX_VERTICES:
        fail(f"'f' has shape {f}, expected (F, 3) with F >= 1")


def _declared_shape(value, key: str, source: str) -> tuple:
    if isinstance(value, (CompressedSparse, np.ndarray)):
        return tuple(value.shape)
    raise ModelFileError(f"{source}: '{key}' is a {type(value).__name__}, not an array")


def _as_array(value, key: str, source: str) -> np.ndarray:
    if isinstance(value, CompressedSparse):
        return value.toarray()
    if isinstance(value, np.ndarray):
        return value
    raise ModelFileError(f"{source}: '{key}' is a {type(value).__name__}, not an array")


def _load_masks(path: Path, n_vertices: int) -> dict[str, np.ndarray]:
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a dict of vertex index arrays")
    parts = {}
    for name, idx in data.items():
        idx = np.asarray(_as_array(idx, str(name), str(path)))
        if idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise ModelFileError(f"{path}: mask '{name}' is not a list of vertex indices")
        if idx.size and idx.max() >= n_vertices:
            raise ModelFileError(f"{path}: mask '{name}' does not fit a model with {n_vertices} vertices")
        parts[str(name)] = idx.astype(np.int64)
    return parts


def load_flame(
    path: str | os.PathLike, *, n_shape: int | None = None, masks: str | os.PathLike | None = None
) -> FlameModel:
    """Load a FLAME model from a FLAME ``.pkl`` or a ``.npz`` written by :func:`save_flame_npz`.

    Parameters
    ----------
    path : path-like
        ``generic_model.pkl`` (FLAME 2020), ``flame2023.pkl`` or a converted ``.npz``.
    n_shape : int, optional
        Number of identity components at the start of ``shapedirs``. Default: from the ``.npz``;
        for a ``.pkl`` 300 (FLAME's layout), or three quarters of a smaller ``shapedirs``.
    masks : path-like, optional
        FLAME's ``FLAME_masks.pkl`` (vertex regions such as ``lips``). By default one lying
        next to the model file is used.

    Raises
    ------
    ModelFileError
        Missing, unreadable or malformed file (one-line message).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ModelFileError(f"FLAME model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        data = load_pickle(path)
        if not isinstance(data, dict):
            raise ModelFileError(f"{source}: not a FLAME model (expected a dict, found {type(data).__name__})")
        stored_split = None
    elif suffix == ".npz":
        data, stored_split = _read_npz(path)
    else:
        raise ModelFileError(f"{source}: unknown FLAME file type {suffix!r} (use .pkl or .npz)")
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise ModelFileError(f"{source}: not a FLAME model, missing {', '.join(missing)}")
    if suffix == ".pkl":
        _check_declared_shapes({k: _declared_shape(data[k], k, source) for k in _KEYS}, source)
    arrays = {k: _as_array(data[k], k, source) for k in _KEYS}
    shapedirs = arrays["shapedirs"]
    if shapedirs.ndim != 3:
        raise ModelFileError(f"{source}: 'shapedirs' has shape {shapedirs.shape}, expected (V, 3, K)")
    posedirs = arrays["posedirs"]
    if posedirs.ndim == 2 and posedirs.shape[0] == 3 * shapedirs.shape[0]:
        posedirs = posedirs.reshape(shapedirs.shape[0], 3, -1)  # some conversions flatten (V*3, P)
    if stored_split is not None:
        if n_shape is not None and n_shape != stored_split[0]:
            raise ModelFileError(f"{source}: stores n_shape={stored_split[0]}, asked for {n_shape}")
        n_s, n_e = stored_split
    else:
        n_s, n_e = _split(shapedirs.shape[2], n_shape, source)
    kintree = arrays["kintree_table"]
    if kintree.dtype.kind not in "iu":
        raise ModelFileError(f"{source}: 'kintree_table' is not an integer array")
    # FLAME stores the root's parent as uint32(-1); int64 keeps both spellings distinct from ids.
    kintree = kintree.astype(np.int64)
    faces = arrays["f"]
    if faces.dtype.kind not in "iu":
        raise ModelFileError(f"{source}: 'f' is not an integer array")
    parts = {}
    if suffix == ".npz":
        parts = {k[len(_PART_PREFIX):]: v for k, v in data.items() if k.startswith(_PART_PREFIX)}
        if any(v.dtype.kind not in "iu" for v in parts.values()):
            raise ModelFileError(f"{source}: a stored vertex mask is not an integer array")
    masks_path = Path(masks) if masks is not None else path.with_name(_MASKS_NAME)
    if masks is not None or masks_path.is_file():
        parts.update(_load_masks(masks_path, len(arrays["v_template"])))
    return FlameModel(
        v_template=arrays["v_template"], shapedirs=shapedirs, posedirs=posedirs,
        J_regressor=arrays["J_regressor"], lbs_weights=arrays["weights"], kintree_table=kintree,
        f=faces.astype(np.int32), n_shape=n_s, n_expr=n_e, parts=parts, source=source,
    )


def _npz_shapes(z) -> dict[str, tuple]:
    """Each member's declared shape, read from its .npy header without reading its data."""
    shapes = {}
    zf = z.zip
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        with zf.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, _ = np.lib.format.read_array_header_2_0(fh)
        shapes[info.filename[: -len(".npy")]] = shape
    return shapes


def _read_npz(path: Path) -> tuple[dict, tuple[int, int]]:
    """The members of a converted model: only those a FLAME model has, and only once the shapes
    their headers declare fit each other (a crafted file cannot make this allocate more than the
    model it claims to be)."""
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            shapes = _npz_shapes(z)
            wanted = [k for k in z.files
                      if k in _KEYS or k in ("format", "n_shape", "n_expr") or k.startswith(_PART_PREFIX)]
            for k in ("format", "n_shape", "n_expr"):
                if k in shapes and shapes[k] != ():
                    raise ModelFileError(f"{source}: '{k}' is not a single value")
            if all(k in shapes for k in _KEYS):
                _check_declared_shapes(shapes, source)
                n_v = int(shapes["v_template"][0])
                for k in wanted:
                    if k.startswith(_PART_PREFIX) and (len(shapes[k]) != 1 or shapes[k][0] > n_v):
                        raise ModelFileError(f"{source}: vertex mask '{k[len(_PART_PREFIX):]}' does not fit the mesh")
            data = {k: z[k] for k in wanted}
    except ModelFileError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz ({exc})".replace("\n", " ")) from None
    except Exception as exc:  # zipfile.BadZipFile and friends: still the file's fault
        raise ModelFileError(f"{path}: not a readable .npz ({exc.__class__.__name__}: {exc})") from None
    fmt = str(data.get("format", ""))
    if fmt != NPZ_FORMAT:
        raise ModelFileError(
            f"{path}: not a flamesync FLAME conversion (format {fmt or 'missing'!r}); "
            "make one with 'flamesync flame convert'"
        )
    try:
        split = (int(data["n_shape"]), int(data["n_expr"]))
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{path}: lacks n_shape / n_expr") from None
    return data, split


def save_flame_npz(model: FlameModel, path: str | os.PathLike) -> Path:
    """Write ``model`` as an ``.npz`` that :func:`load_flame` reads without pickle (atomic)."""
    from ..fileio import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh, **model.arrays(), n_shape=np.int64(model.n_shape), n_expr=np.int64(model.n_expr),
                format=np.array(NPZ_FORMAT),
                **{_PART_PREFIX + k: np.asarray(v, np.int64) for k, v in model.parts.items()},
            )
    return path
