"""A restricted unpickler for model files written by other projects (FLAME, its masks).

FLAME's ``generic_model.pkl`` and the FLAME 2023 pickles were written by Python 2 with chumpy
and scipy objects inside. Plain :mod:`pickle` would import chumpy and scipy and run whatever
callables the file names, so a tampered file could run arbitrary code. This module reads such
files without ever calling anything the file chooses:

- Every global the pickle names is looked up in a fixed table of *stand-ins* defined here.
  Anything not in the table (``os.system``, ``builtins.eval``, ``subprocess.Popen``, any other
  chumpy or scipy class, ...) stops loading with :class:`ModelFileError` naming the global.
- The stand-ins only record the state the file carries (shape, dtype string, raw bytes, sparse
  index arrays). No numpy, chumpy or scipy constructor runs while the pickle is being read.
- Afterwards the recorded state is validated and turned into plain numpy arrays
  (:class:`CompressedSparse` for sparse matrices), by code that treats it as data.

Supported: numpy arrays and scalars of numeric dtypes (both ``numpy.core`` and ``numpy._core`` spellings,
protocol 2 ``_reconstruct`` and protocol 5 ``_frombuffer`` reductions), plain ``chumpy.ch.Ch``
arrays, ``scipy.sparse`` CSC/CSR matrices, ``set``/``frozenset``, Python 3's ``_codecs.encode``
and ``bytes()`` spellings of byte strings and ``copy_reg._reconstructor`` (old protocols).
"""

from __future__ import annotations

import io
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError

__all__ = ["CompressedSparse", "load_pickle", "loads_pickle"]


@dataclass(frozen=True)
class CompressedSparse:
    """A CSC or CSR matrix as plain arrays, validated; see :meth:`toarray`.

    Attributes
    ----------
    format : {"csc", "csr"}
    shape : (int, int)
    data : (nnz,) float array
    indices : (nnz,) int array
        Row indices (CSC) or column indices (CSR).
    indptr : (n_major + 1,) int array
        Start of each column (CSC) or row (CSR) in ``data``.
    """

    format: str
    shape: tuple[int, int]
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray

    def toarray(self) -> np.ndarray:
        """The dense matrix, shape ``self.shape``, dtype of ``data``."""
        rows, cols = self.shape
        major = cols if self.format == "csc" else rows
        minor = rows if self.format == "csc" else cols
        counts = np.diff(self.indptr)
        major_idx = np.repeat(np.arange(major), counts)
        out = np.zeros((major, minor), dtype=self.data.dtype)
        # Duplicate entries add up, as in scipy's conversion.
        np.add.at(out, (major_idx, self.indices), self.data)
        return out.T.copy() if self.format == "csc" else out


# ---------------------------------------------------------------------------------- stand-ins
class _Refused(Exception):
    """Internal: a global outside the table, carried to the top as ModelFileError."""


class _Proxy:
    """Base of the stand-ins: records what BUILD hands it and nothing else."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = None

    def __setstate__(self, state) -> None:
        self.state = state


class _NDArrayTag(_Proxy):
    """Stands for the class ``numpy.ndarray`` when a pickle passes it as an argument."""


class _ArrayProxy(_Proxy):
    """A numpy array in waiting: ``(version, shape, dtype, fortran, raw)`` once built."""

    __slots__ = ("direct", "scalar")

    def __init__(self) -> None:
        super().__init__()
        self.direct = None  # (raw, dtype, shape, order) for the protocol-5 and scalar paths
        self.scalar = False


class _DTypeProxy(_Proxy):
    __slots__ = ("spec",)

    def __init__(self, spec, align=False, copy=False) -> None:
        super().__init__()
        self.spec = spec


class _ChProxy(_Proxy):
    """Stands for ``chumpy.ch.Ch``: a plain chumpy array keeps its value in ``state['x']``."""


class _SparseProxy(_Proxy):
    format = ""


class _CSCProxy(_SparseProxy):
    format = "csc"


class _CSRProxy(_SparseProxy):
    format = "csr"


_OBJECT = object()  # what the pickle gets for ``builtins.object`` (only valid as _reconstructor's base)


def _np_reconstruct(subtype, shape, typecode):
    if subtype is not _NDArrayTag:
        raise _Refused("numpy.core.multiarray._reconstruct called with a non-ndarray class")
    return _ArrayProxy()


def _np_frombuffer(buf, dtype, shape, order):
    proxy = _ArrayProxy()
    proxy.direct = (buf, dtype, shape, order)
    return proxy


def _np_scalar(dtype, raw=None):
    proxy = _ArrayProxy()
    proxy.direct = (raw, dtype, (), "C")
    proxy.scalar = True
    return proxy


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # Python 3 writes bytes as _codecs.encode(str, 'latin1') under protocols 0-2.
    if not isinstance(text, str) or str(encoding).lower().replace("-", "") != "latin1":
        raise _Refused("_codecs.encode with anything but a latin1 string")
    return text.encode("latin-1")


def _empty_bytes(*args):
    # Python 3 pickles b"" as bytes() under protocols 0-2; nothing else may reach bytes().
    if args:
        raise _Refused("builtins.bytes with arguments")
    return b""


def _copyreg_reconstructor(cls, base, state):
    if not (isinstance(cls, type) and issubclass(cls, _Proxy)) or base is not _OBJECT or state is not None:
        raise _Refused("copy_reg._reconstructor with a class outside the allowed set")
    return cls()


def _new_proxy(cls):
    """``__new__`` for NEWOBJ: proxies take no constructor arguments from the file."""
    return cls()


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")

_ALLOWED: dict[tuple[str, str], Any] = {}
for _m in _NUMPY_MODULES:
    _ALLOWED[(_m, "_reconstruct")] = _np_reconstruct
    _ALLOWED[(_m, "scalar")] = _np_scalar
for _m in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_m, "_frombuffer")] = _np_frombuffer
_ALLOWED[("numpy", "ndarray")] = _NDArrayTag
_ALLOWED[("numpy", "dtype")] = _DTypeProxy
_ALLOWED[("chumpy.ch", "Ch")] = _ChProxy
_ALLOWED[("chumpy", "Ch")] = _ChProxy
for _m in ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.compressed"):
    _ALLOWED[(_m, "csc_matrix")] = _CSCProxy
    _ALLOWED[(_m, "csc_array")] = _CSCProxy
for _m in ("scipy.sparse.csr", "scipy.sparse._csr"):
    _ALLOWED[(_m, "csr_matrix")] = _CSRProxy
    _ALLOWED[(_m, "csr_array")] = _CSRProxy
for _m in ("builtins", "__builtin__"):
    _ALLOWED[(_m, "set")] = set
    _ALLOWED[(_m, "frozenset")] = frozenset
    _ALLOWED[(_m, "object")] = _OBJECT
    _ALLOWED[(_m, "bytes")] = _empty_bytes
_ALLOWED[("_codecs", "encode")] = _codecs_encode
for _m in ("copyreg", "copy_reg"):
    _ALLOWED[(_m, "_reconstructor")] = _copyreg_reconstructor


class _Global:
    """What the pickle gets for a function of the table: callable, but not changeable.

    BUILD on an object without ``__setstate__`` sets attributes on it; on a plain function that
    would let a file rewrite, say, its ``__defaults__`` in the running process. This wrapper has no
    attributes to set and refuses BUILD, so a file can only ever change the fresh proxies it made.
    """

    __slots__ = ("_fn",)

    def __init__(self, fn) -> None:
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    def __setstate__(self, state) -> None:
        raise _Refused("refused to change an existing object (BUILD on a global): model pickles may "
                       "only set the state of the arrays they create")

    def __setattr__(self, name, value) -> None:
        raise _Refused("refused to change an existing object")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        target = _ALLOWED.get((module, name))
        if target is None:
            hint = ""
            if module.split(".")[0] == "chumpy":
                hint = " (only plain chumpy.ch.Ch arrays are supported, not chumpy expressions)"
            raise _Refused(
                f"refused to load global '{module}.{name}'{hint}: model pickles may only hold arrays, "
                "nothing they name is imported or run"
            )
        if isinstance(target, type) and issubclass(target, _Proxy):
            # NEWOBJ calls cls.__new__(cls, *args); hand it a subclass whose __new__ ignores args.
            return _NEWOBJ_SAFE[target]
        if callable(target) and not isinstance(target, type):
            return _Global(target)
        return target

    def persistent_load(self, pid):
        raise _Refused("refused a persistent reference")


def _make_newobj_safe(cls):
    def __new__(klass, *args, **kwargs):
        return cls()

    return type(cls.__name__, (cls,), {"__new__": __new__, "__slots__": ()})


# NEWOBJ-safe variants: ``cls.__new__(cls)`` returns a fresh instance of the real proxy class.
_NEWOBJ_SAFE = {c: _make_newobj_safe(c) for c in (_NDArrayTag, _DTypeProxy, _ChProxy, _CSCProxy, _CSRProxy)}
_NEWOBJ_SAFE[_DTypeProxy] = _DTypeProxy  # dtype is only ever REDUCEd with its spec; keep its __init__
_NEWOBJ_SAFE[_NDArrayTag] = _NDArrayTag  # only compared by identity in _np_reconstruct


# ---------------------------------------------------------------------------------- resolving
class _Resolver:
    """Turns the stand-ins left by the unpickler into numpy data, validating as it goes."""

    def __init__(self) -> None:
        self.done: dict[int, Any] = {}
        self.active: set[int] = set()

    def __call__(self, obj):
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, bytearray)):
            return obj
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            raise _Refused("the file contains a self-referencing structure")
        self.active.add(key)
        try:
            out = self._convert(obj)
        finally:
            self.active.discard(key)
        self.done[key] = out
        return out

    def _convert(self, obj):
        if isinstance(obj, dict):
            return {self(k): self(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self(v) for v in obj)
        if isinstance(obj, (set, frozenset)):
            return type(obj)(self(v) for v in obj)
        if isinstance(obj, _ArrayProxy):
            return self._array(obj)
        if isinstance(obj, _DTypeProxy):
            return self._dtype(obj)
        if isinstance(obj, _ChProxy):
            return self._ch(obj)
        if isinstance(obj, _SparseProxy):
            return self._sparse(obj)
        raise _Refused(f"unexpected object of type {type(obj).__name__} in the file")

    def _dtype(self, proxy: _DTypeProxy) -> np.dtype:
        spec = proxy.spec
        if isinstance(spec, bytes):
            spec = spec.decode("latin-1")
        if not isinstance(spec, str) or not spec[:1] or spec[0] not in "biuf":
            raise _Refused(f"unsupported array dtype {spec!r} (only numeric dtypes are allowed)")
        try:
            dtype = np.dtype(spec)
        except TypeError:
            raise _Refused(f"invalid array dtype {spec!r}") from None
        state = proxy.state
        if state is not None:
            if not isinstance(state, tuple) or len(state) < 8:
                raise _Refused("malformed dtype state")
            byteorder, subarray, names, fields = state[1:5]
            if subarray is not None or names is not None or fields is not None:
                raise _Refused("structured dtypes are not allowed")
            if isinstance(byteorder, bytes):
                byteorder = byteorder.decode("latin-1")
            if byteorder in ("<", ">"):
                dtype = dtype.newbyteorder(byteorder)
        return dtype

    def _array(self, proxy: _ArrayProxy) -> np.ndarray:
        if proxy.direct is not None:
            raw, dtype, shape, order = proxy.direct
            fortran = order == "F"
        else:
            state = proxy.state
            if not isinstance(state, tuple) or len(state) not in (4, 5):
                raise _Refused("malformed array state")
            if len(state) == 5:
                state = state[1:]
            shape, dtype, fortran, raw = state
        dtype = self(dtype)
        if not isinstance(dtype, np.dtype):
            raise _Refused("array without a numeric dtype")
        if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise _Refused("malformed array shape")
        if isinstance(raw, str):  # Python 2 str read with encoding='latin1'
            raw = raw.encode("latin-1")
        if isinstance(raw, pickle.PickleBuffer):
            raw = bytes(raw.raw())
        if not isinstance(raw, (bytes, bytearray)):
            raise _Refused("array data is not raw bytes")
        count = math.prod(shape)
        if len(raw) != count * dtype.itemsize:
            raise _Refused(f"array data has {len(raw)} bytes, shape {shape} needs {count * dtype.itemsize}")
        flat = np.frombuffer(raw, dtype=dtype, count=count)
        arr = flat.reshape(shape, order="F" if fortran else "C")
        arr = arr.astype(dtype.newbyteorder("="), order="C", copy=True)
        return arr[()] if proxy.scalar else arr

    def _ch(self, proxy: _ChProxy) -> np.ndarray:
        state = proxy.state
        if not isinstance(state, dict) or "x" not in state:
            raise _Refused("chumpy object without an 'x' array (only plain chumpy.ch.Ch is supported)")
        x = self(state["x"])
        if isinstance(x, (int, float)):
            x = np.asarray(x, np.float64)
        if not isinstance(x, np.ndarray):
            raise _Refused("chumpy object whose 'x' is not an array")
        return x

    def _sparse(self, proxy: _SparseProxy) -> CompressedSparse:
        state = proxy.state
        if not isinstance(state, dict):
            raise _Refused(f"malformed {proxy.format} matrix state")
        missing = [k for k in ("data", "indices", "indptr") if k not in state]
        shape = state.get("_shape", state.get("shape"))
        if missing or shape is None:
            raise _Refused(f"{proxy.format} matrix lacks {', '.join(missing or ['_shape'])}")
        data, indices, indptr = (self(state[k]) for k in ("data", "indices", "indptr"))
        shape = self(shape)
        if not (isinstance(shape, tuple) and len(shape) == 2 and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise _Refused(f"{proxy.format} matrix has a malformed shape")
        for name, arr in (("data", data), ("indices", indices), ("indptr", indptr)):
            if not isinstance(arr, np.ndarray) or arr.ndim != 1:
                raise _Refused(f"{proxy.format} matrix '{name}' is not a 1-D array")
        if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
            raise _Refused(f"{proxy.format} matrix index arrays are not integers")
        n_major = shape[1] if proxy.format == "csc" else shape[0]
        n_minor = shape[0] if proxy.format == "csc" else shape[1]
        indices = indices.astype(np.int64)
        indptr = indptr.astype(np.int64)
        if (
            len(indptr) != n_major + 1
            or indptr[0] != 0
            or np.any(np.diff(indptr) < 0)
            or indptr[-1] != len(indices)
            or len(indices) != len(data)
            or (len(indices) and (indices.min() < 0 or indices.max() >= n_minor))
        ):
            raise _Refused(f"{proxy.format} matrix index arrays are inconsistent with its shape {shape}")
        return CompressedSparse(proxy.format, (int(shape[0]), int(shape[1])), data, indices, indptr)


# ---------------------------------------------------------------------------------- entry points
def loads_pickle(data: bytes, *, source: str = "pickle") -> Any:
    """Read pickled model data with the restricted unpickler.

    Parameters
    ----------
    data : bytes
        The pickle.
    source : str
        Name used in error messages (usually the file path).

    Returns
    -------
    The unpickled structure with numpy arrays in place of numpy/chumpy arrays and
    :class:`CompressedSparse` in place of scipy sparse matrices.

    Raises
    ------
    ModelFileError
        On a global outside the allowed set (nothing it names is imported or called), or on a
        truncated / malformed pickle.
    """
    # latin1 lets Python 2 byte strings (array data) through unchanged as 1:1 code points.
    unpickler = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1")
    try:
        raw = unpickler.load()
        return _Resolver()(raw)
    except _Refused as exc:
        raise ModelFileError(f"{source}: {exc}") from None
    except RecursionError:
        raise ModelFileError(f"{source}: structure nested too deeply to be a model file") from None
    except ModelFileError:
        raise
    except Exception as exc:  # any other failure means the bytes are not a well-formed pickle
        raise ModelFileError(
            f"{source}: not a readable pickle ({exc.__class__.__name__}: {exc})".replace("\n", " ")
        ) from None


def load_pickle(path: str | os.PathLike) -> Any:
    """Read a pickle file with the restricted unpickler (see :func:`loads_pickle`).

    Raises
    ------
    ModelFileError
        When the file is missing or unreadable, or on anything :func:`loads_pickle` refuses.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    return loads_pickle(data, source=str(path))
