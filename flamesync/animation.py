"""The animation value type that flows between every stage of flamesync.

An :class:`Animation` is a frame rate, an ordered list of named channels and a ``(T, C)`` float32
array of per-frame values. Expression channels carry ARKit-52 names (weights, nominally 0..1);
rotation channels come in triplets ``jaw.rx/ry/rz`` and ``head.rx/ry/rz`` holding axis-angle vectors
in radians. Frame ``i`` sits at time ``audio_offset + i / fps`` seconds of the referenced audio.

It saves to one ``.npz`` file (``values`` plus a JSON header with the format version, channels, fps
and metadata) that loads without pickle.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .channels import ARKIT_52, ROTATION_GROUPS
from .errors import InputError
from .numeric import gaussian_smooth, is_finite_number, slerp_rotvec

FORMAT_NAME = "flamesync.animation"
FORMAT_VERSION = 1


# Frame rates flamesync produces: up to 1000 fps (high-speed capture tops out near 240; each frame
# costs memory and file size, and 1e6 fps would take gigabytes for a few seconds of speech).
MAX_FPS = 1000.0


def check_fps(fps) -> float:
    """``fps`` as a float when it is a frame rate flamesync produces (0 < fps <= MAX_FPS)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise InputError(f"frame rate must be a number, got {fps!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_FPS):
        raise InputError(f"frame rate must be above 0 and at most {MAX_FPS:g} fps, got {fps!r}")
    return value


@dataclass(frozen=True)
class Animation:
    """Per-frame channel values at a fixed frame rate.

    Parameters
    ----------
    fps : float
        Frames per second (> 0).
    channels : tuple of str
        Channel names, unique. Rotation channels come as complete triplets (``jaw.rx``, ``jaw.ry``,
        ``jaw.rz``).
    values : np.ndarray, shape (T, C), float32
        Finite values; row ``i`` is frame ``i``.
    audio_path : str or None
        The audio this animation was made from, if any.
    audio_offset : float
        Time in seconds, within the audio, of frame 0.
    meta : dict
        Free-form JSON-serialisable metadata (source, model, seed, ...).
    """

    fps: float
    channels: tuple[str, ...]
    values: np.ndarray
    audio_path: str | None = None
    audio_offset: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        channels = _checked_layout(self.channels)
        values = np.ascontiguousarray(np.asarray(self.values, dtype=np.float32))
        if values.ndim == 1 and len(channels) == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[1] != len(channels):
            raise InputError(
                f"animation values must have shape (frames, {len(channels)}), got {values.shape}"
            )
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"frame rate must be a positive number, got {self.fps!r}")
        if not np.isfinite(values).all():
            bad = np.unique(np.nonzero(~np.isfinite(values))[1])
            raise InputError(
                "animation values contain NaN or infinity in channel(s) "
                + ", ".join(channels[i] for i in bad[:5])
            )
        values.setflags(write=False)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "audio_offset", float(self.audio_offset))
        object.__setattr__(self, "meta", dict(self.meta))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_channels(
        cls,
        *,
        fps: float,
        data: Mapping[str, Iterable[float]],
        jaw: np.ndarray | None = None,
        head: np.ndarray | None = None,
        **kwargs,
    ) -> "Animation":
        """Build from a mapping ``name -> (T,)`` plus optional ``(T, 3)`` jaw/head rotations."""
        names: list[str] = []
        cols: list[np.ndarray] = []
        for name, col in data.items():
            names.append(name)
            cols.append(np.asarray(col, dtype=np.float32).reshape(-1))
        for group, rot in (("jaw", jaw), ("head", head)):
            if rot is not None:
                rot = np.asarray(rot, dtype=np.float32)
                if rot.ndim != 2 or rot.shape[1] != 3:
                    raise InputError(f"{group} rotation must have shape (frames, 3), got {rot.shape}")
                names.extend(ROTATION_GROUPS[group])
                cols.extend(rot.T)
        lengths = {len(c) for c in cols}
        if len(lengths) > 1:
            raise InputError(f"channels have different lengths: {sorted(lengths)}")
        values = np.stack(cols, axis=1) if cols else np.zeros((0, 0), np.float32)
        return cls(fps=fps, channels=tuple(names), values=values, **kwargs)

    @classmethod
    def zeros(cls, n_frames: int, *, fps: float, channels: Iterable[str] = ARKIT_52, **kw) -> "Animation":
        channels = tuple(channels)
        return cls(fps=fps, channels=channels, values=np.zeros((n_frames, len(channels)), np.float32), **kw)

    # ------------------------------------------------------------------ access
    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def duration(self) -> float:
        """Seconds covered: each frame stands for ``1 / fps`` seconds."""
        return self.n_frames / self.fps

    @property
    def times(self) -> np.ndarray:
        """Frame times in seconds relative to the audio, shape (T,)."""
        return self.audio_offset + np.arange(self.n_frames) / self.fps

    def has(self, name: str) -> bool:
        return name in self.channels

    def channel(self, name: str) -> np.ndarray:
        """Values of one channel, shape (T,). Unknown names raise :class:`InputError`."""
        try:
            return self.values[:, self.channels.index(name)]
        except ValueError:
            raise InputError(f"animation has no channel {name!r}") from None

    def weights(self, names: Iterable[str] = ARKIT_52) -> np.ndarray:
        """Expression weights for ``names`` in that order, zero where absent, shape (T, len(names))."""
        names = tuple(names)
        out = np.zeros((self.n_frames, len(names)), np.float32)
        src, dst = _column_map(self.channels, names)
        out[:, dst] = self.values[:, src]
        return out

    def rotation(self, group: str) -> np.ndarray | None:
        """Axis-angle rotation of ``"jaw"`` or ``"head"``, shape (T, 3), or None if absent."""
        names = ROTATION_GROUPS[group]
        src, _ = _column_map(self.channels, names)
        if len(src) < len(names):  # the group is whole or absent (checked at construction)
            return None
        return self.values[:, src]

    @property
    def jaw(self) -> np.ndarray | None:
        return self.rotation("jaw")

    @property
    def head(self) -> np.ndarray | None:
        return self.rotation("head")

    def as_dict(self) -> dict[str, np.ndarray]:
        return {c: self.values[:, i].copy() for i, c in enumerate(self.channels)}

    # ------------------------------------------------------------------ transforms
    def replace(self, **changes) -> "Animation":
        kw = dict(
            fps=self.fps, channels=self.channels, values=self.values, audio_path=self.audio_path,
            audio_offset=self.audio_offset, meta=self.meta,
        )
        kw.update(changes)
        return Animation(**kw)

    def select(self, names: Iterable[str]) -> "Animation":
        """Keep only ``names`` (in that order); missing names raise :class:`InputError`."""
        names = tuple(names)
        idx = [self._index(n) for n in names]
        return self.replace(channels=names, values=self.values[:, idx])

    def _index(self, name: str) -> int:
        try:
            return self.channels.index(name)
        except ValueError:
            raise InputError(f"animation has no channel {name!r}") from None

    def slice_frames(self, start: int, stop: int | None = None) -> "Animation":
        stop = self.n_frames if stop is None else stop
        return self.replace(values=self.values[start:stop], audio_offset=self.audio_offset + start / self.fps)

    def resample(self, fps: float, *, block_frames: int = 20000) -> "Animation":
        """Resample to another frame rate over the same time span.

        The output has ``round(T * fps / self.fps)`` frames at times ``j / fps``. Values are
        interpolated linearly; rotation triplets are interpolated on the rotation group (slerp).
        When the rate drops, the signal is first low-pass filtered with a Gaussian whose width
        matches the rate ratio, so fast motion does not alias into slow wobble.

        ``block_frames`` output frames are computed at a time (memory; the result does not depend
        on it). :class:`ResampleStream` gives the same frames for a take that arrives in pieces.
        """
        fps = check_fps(fps)
        if abs(fps - self.fps) < 1e-9 or self.n_frames == 0:
            return self.replace(fps=fps)
        n_out = resampled_length(self.n_frames, self.fps, fps)
        plan = _ResamplePlan(self.fps, fps, self.channels)
        pos_all = np.clip(np.arange(n_out) * plan.step, 0, self.n_frames - 1)
        out = np.empty((n_out, self.values.shape[1]), np.float32)
        # Blocks of output frames, each from its stretch of source frames plus the kernel's radius
        # on both sides: the same numbers as one pass over the whole take (every value is the same
        # sum in the same order, and the true ends are padded as before), in memory that does not
        # grow with the take (float64 copies of an hour at 50 fps would be hundreds of MB).
        for j0 in range(0, n_out, block_frames):
            pos = pos_all[j0: j0 + block_frames]
            out[j0: j0 + len(pos)] = plan.rows(self.values, 0, self.n_frames, pos)
        return self.replace(fps=fps, values=out)

    # ------------------------------------------------------------------ files
    def header(self) -> dict[str, Any]:
        return file_header(fps=self.fps, channels=self.channels, n_frames=self.n_frames,
                           audio_path=self.audio_path, audio_offset=self.audio_offset, meta=self.meta)

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (``.npz``) atomically and return the path."""
        from .fileio import atomic_path

        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise InputError(f"animation files end in .npz, got {path.name}")
        with atomic_path(path) as tmp:
            self.write_npz(tmp)
        return path

    def write_npz(self, path: str | Path) -> None:
        """Write the file format of :meth:`save` to ``path`` directly (no atomic rename)."""
        header = json.dumps(self.header(), sort_keys=True)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, values=self.values, header=np.array(header))

    @classmethod
    def load(cls, path: str | Path) -> "Animation":
        """Read a file written by :meth:`save`; anything else raises :class:`InputError`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"animation file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                values = np.asarray(z["values"], dtype=np.float32)
        except Exception as exc:  # zip, key or JSON errors all mean "not our file"
            raise InputError(f"{path} is not a flamesync animation file ({exc.__class__.__name__}: {exc})") from None
        _check_header(header, values, path)
        return cls(
            fps=header["fps"],
            channels=tuple(header["channels"]),
            values=values,
            audio_path=header.get("audio_path"),
            audio_offset=header.get("audio_offset", 0.0),
            meta=header.get("meta") or {},
        )

    def __repr__(self) -> str:
        return (
            f"Animation({self.n_frames} frames @ {self.fps:g} fps, {len(self.channels)} channels, "
            f"{self.duration:.2f} s)"
        )


def resampled_length(n_frames: int, src_fps: float, fps: float) -> int:
    """Frames of :meth:`Animation.resample` from ``n_frames`` at ``src_fps`` to ``fps``."""
    if abs(float(fps) - float(src_fps)) < 1e-9 or n_frames == 0:
        return int(n_frames)
    return max(1, int(round(n_frames * float(fps) / float(src_fps))))


class _ResamplePlan:
    """The arithmetic of :meth:`Animation.resample`, shared with :class:`ResampleStream` so that
    a take resampled whole and one resampled as it arrives are the same numbers."""

    def __init__(self, src_fps: float, fps: float, channels):
        self.step = float(src_fps) / float(fps)
        self.sigma = 0.5 * math.sqrt(self.step * self.step - 1.0) if self.step > 1.0 else 0.0
        # gaussian_smooth's kernel radius (truncate=4): output frames read the smoothed source only
        # within [lo, hi], which depends on source frames within the radius of it.
        self.radius = int(4.0 * self.sigma + 0.5) if self.sigma > 0 else 0
        self.rot_cols = [[channels.index(n) for n in names] for names in ROTATION_GROUPS.values()
                         if names[0] in channels]

    def rows(self, buf: np.ndarray, buf0: int, end: int, pos: np.ndarray) -> np.ndarray:
        """Output frames at source positions ``pos`` (increasing, within ``[0, end - 1]``).

        Parameters
        ----------
        buf : np.ndarray, shape (n, C)
            Source frames ``buf0 .. buf0 + n - 1``; they must cover ``floor(pos[0]) - radius`` up
            to ``min(end, floor(pos[-1]) + 2 + radius)``.
        buf0 : int
            Source index of ``buf[0]``.
        end : int
            Source frames known to exist; the take's length when it has ended (its last frame is
            then repeated past the end, as a whole-take pass pads).

        Returns
        -------
        np.ndarray, shape (len(pos), C), float64
        """
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, end - 1)
        a = max(0, int(lo[0]) - self.radius)
        b = min(end, int(hi[-1]) + 1 + self.radius)
        src = buf[a - buf0: b - buf0].astype(np.float64)
        if self.sigma > 0:
            src = gaussian_smooth(src, self.sigma)
        lo, hi = lo - a, hi - a
        frac = (pos - np.floor(pos))[:, None]
        block = src[lo] * (1 - frac) + src[hi] * frac
        for cols in self.rot_cols:
            rot = src[:, cols]
            block[:, cols] = slerp_rotvec(rot[lo], rot[hi], frac[:, 0])
        return block


class ResampleStream:
    """:meth:`Animation.resample` for a take that arrives a block of frames at a time.

    Every output frame is computed as soon as the source frames it reads (its two neighbours plus
    the low-pass kernel's radius) have arrived, by the same arithmetic as the whole-take method, so
    the concatenated output equals ``Animation.resample`` of the concatenated input bit for bit.
    Memory: the kernel's reach of source frames plus one pushed block.

    Parameters
    ----------
    src_fps, fps : float
        Frame rates of the input and the output.
    channels : sequence of str
        The input's channels (rotation triplets are interpolated on the rotation group).
    """

    def __init__(self, src_fps: float, fps: float, channels):
        self.src_fps = float(src_fps)
        self.fps = check_fps(fps)
        self._same = abs(self.fps - self.src_fps) < 1e-9
        self._plan = _ResamplePlan(self.src_fps, self.fps, tuple(channels))
        self._n_channels = len(tuple(channels))
        self._buf = np.zeros((0, self._n_channels), np.float32)
        self._buf0 = 0  # source index of _buf[0]
        self._n_in = 0
        self._next = 0  # next output frame

    @property
    def frames_out(self) -> int:
        return self._next

    def push(self, values: np.ndarray) -> np.ndarray:
        """Add the next source frames ``(n, C)``; return the output frames now complete, ``(k, C)``."""
        values = np.asarray(values, np.float32)
        self._n_in += len(values)
        if self._same:
            self._next += len(values)
            return values
        self._buf = np.concatenate([self._buf, values]) if len(self._buf) else values
        # Output j reads source frames up to floor(j * step) + 1 + radius; before the end that
        # must lie inside what has arrived (so neither the take's length nor its end padding
        # matters yet).
        limit = self._n_in - 2 - self._plan.radius
        if limit < 0:
            return np.zeros((0, self._n_channels), np.float32)
        stop = max(self._next, int((limit + 1) / self._plan.step) + 2)
        pos = np.arange(self._next, stop) * self._plan.step
        pos = pos[np.floor(pos) <= limit]
        return self._emit(pos, self._n_in)

    def finish(self) -> np.ndarray:
        """The take has ended: return the remaining output frames, ``(k, C)``."""
        if self._same or self._n_in == 0:
            return np.zeros((0, self._n_channels), np.float32)
        n_out = resampled_length(self._n_in, self.src_fps, self.fps)
        pos = np.clip(np.arange(self._next, n_out) * self._plan.step, 0, self._n_in - 1)
        return self._emit(pos, self._n_in)

    def _emit(self, pos: np.ndarray, end: int) -> np.ndarray:
        if not len(pos):
            return np.zeros((0, self._n_channels), np.float32)
        out = self._plan.rows(self._buf, self._buf0, end, pos).astype(np.float32)
        self._next += len(pos)
        # Keep the source frames the next output frame can still read.
        keep = min(int(np.floor(self._next * self._plan.step)), end - 1) - self._plan.radius
        if keep > self._buf0:
            self._buf = self._buf[keep - self._buf0:]
            self._buf0 = keep
        return out


def file_header(*, fps: float, channels, n_frames: int, audio_path: str | None, audio_offset: float,
                meta: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON header of an animation file (see :meth:`Animation.save`)."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "fps": float(fps),
        "channels": list(channels),
        "n_frames": int(n_frames),
        "audio_path": audio_path,
        "audio_offset": float(audio_offset),
        "meta": dict(meta),
    }


class AnimationWriter:
    """Writes the file of :meth:`Animation.write_npz` a block of frames at a time.

    The file is the one ``np.savez_compressed`` writes for the whole animation (the same zip
    entries, ``values.npy`` then ``header.npy``, the same ``.npy`` headers and the same deflate
    stream, which does not depend on how the data is cut into writes), so a take too long to hold
    can be written while it is made. The frame count goes into the ``.npy`` header first, so it
    must be known in advance; :meth:`close` checks it.

    Parameters
    ----------
    path : str or Path
        The file to write (created or truncated).
    channels : sequence of str
    n_frames : int
        Frames that will be written.
    """

    def __init__(self, path, *, channels, n_frames: int):
        import zipfile

        from numpy.lib import format as npy

        self.channels = tuple(channels)
        self.n_frames = int(n_frames)
        self.written = 0
        self._fh = open(path, "wb")
        try:
            # As numpy.savez_compressed: deflate, zip64 allowed and forced on every entry.
            self._zip = zipfile.ZipFile(self._fh, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
            self._entry = self._zip.open("values.npy", "w", force_zip64=True)
            npy.write_array_header_1_0(self._entry, {"descr": npy.dtype_to_descr(np.dtype(np.float32)),
                                                     "fortran_order": False,
                                                     "shape": (self.n_frames, len(self.channels))})
        except BaseException:
            self._fh.close()
            raise

    def write(self, values: np.ndarray) -> None:
        """Append frames, shape (k, C), float32."""
        values = np.ascontiguousarray(values, np.float32)
        if values.ndim != 2 or values.shape[1] != len(self.channels):
            raise InputError(f"frames must have shape (k, {len(self.channels)}), got {values.shape}")
        if self.written + len(values) > self.n_frames:
            raise InputError(f"more than the {self.n_frames} frames announced")
        if len(values):
            self._entry.write(memoryview(values).cast("B"))
            self.written += len(values)

    def close(self, *, fps: float, audio_path: str | None = None, audio_offset: float = 0.0,
              meta: Mapping[str, Any] | None = None) -> None:
        """Finish the values and write the header; the frames written must be those announced."""
        if self.written != self.n_frames:
            self.abort()
            raise InputError(f"{self.written} frames written, {self.n_frames} announced")
        try:
            self._entry.close()
            header = file_header(fps=fps, channels=self.channels, n_frames=self.n_frames, audio_path=audio_path,
                                 audio_offset=audio_offset, meta=meta or {})
            with self._zip.open("header.npy", "w", force_zip64=True) as fid:
                write_text_npy(fid, json.dumps(header, sort_keys=True))
            self._zip.close()
        finally:
            self._fh.close()

    def abort(self) -> None:
        """Stop without finishing the file properly (the caller removes or rewrites it)."""
        try:
            # Closed in order, so the zip object has nothing left to write when it is collected.
            self._entry.close()
            self._zip.close()
        except Exception:  # already failing (a full disk): the file is discarded anyway
            pass
        finally:
            self._fh.close()


def write_text_npy(fid, text: str, *, chunk_chars: int = 1 << 16) -> None:
    """Write ``text`` as ``.npy`` of a 0-d unicode array, the bytes ``np.save(np.array(text))`` writes.

    Without the array: numpy keeps unicode as 4 bytes per character, and ``write_array`` makes a
    second copy of those bytes, so a long take's header (its phone list runs to megabytes) took
    eight times its length in memory at the end of a run that was otherwise flat.
    """
    from numpy.lib import format as npy

    if not text or text.endswith("\0"):  # numpy stores these otherwise (and drops trailing NULs)
        npy.write_array(fid, np.array(text), allow_pickle=False)
        return
    npy.write_array_header_1_0(fid, {"descr": f"<U{len(text)}", "fortran_order": False, "shape": ()})
    for i in range(0, len(text), chunk_chars):
        fid.write(text[i: i + chunk_chars].encode("utf-32-le"))


def _check_header(header, values: np.ndarray, path: Path) -> None:
    """Check an animation file's header against its schema before anything uses it."""
    def bad(what: str):
        return InputError(f"{path} is not a valid flamesync animation file ({what})")

    if not isinstance(header, dict):
        raise bad(f"its header is a JSON {type(header).__name__}, not an object")
    if header.get("format") != FORMAT_NAME:
        raise InputError(f"{path} is not a flamesync animation file (format {header.get('format')!r})")
    version = header.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad(f"format version {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise InputError(f"{path} was written by a newer flamesync (format version {version}); upgrade flamesync")
    if "fps" not in header:
        raise bad("its header has no fps")
    if not is_finite_number(header["fps"]) or header["fps"] <= 0:
        raise bad(f"fps {header['fps']!r} is not a positive number")
    channels = header.get("channels")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise bad("its channels are not a list of names")
    if values.ndim != 2 or values.shape[1] != len(channels):
        raise bad(f"values of shape {values.shape} do not match its {len(channels)} channels")
    if "n_frames" in header and header["n_frames"] != values.shape[0]:
        raise bad(f"header says {header['n_frames']!r} frames, the values hold {values.shape[0]}")
    if header.get("audio_path") is not None and not isinstance(header["audio_path"], str):
        raise bad("audio_path is not text")
    if not is_finite_number(header.get("audio_offset", 0.0)):
        raise bad(f"audio_offset {header.get('audio_offset')!r} is not a number")
    if header.get("meta") is not None and not isinstance(header["meta"], dict):
        raise bad("meta is not an object")


@functools.lru_cache(maxsize=256)
def _column_map(channels: tuple[str, ...], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Columns of ``channels`` holding ``names`` (src) and their positions in ``names`` (dst).

    Cached: a live stream looks up the same few layouts for every chunk of a frame or two.
    """
    index = {c: i for i, c in enumerate(channels)}
    pairs = [(index[n], j) for j, n in enumerate(names) if n in index]
    src = np.array([p[0] for p in pairs], np.intp)
    dst = np.array([p[1] for p in pairs], np.intp)
    src.setflags(write=False)
    dst.setflags(write=False)
    return src, dst


_LAYOUTS: dict[tuple, tuple[str, ...]] = {}


def _checked_layout(channels) -> tuple[str, ...]:
    """``channels`` as a tuple of str, checked for duplicates and partial rotation groups.

    Layouts that passed are remembered: a live stream builds a few small animations per chunk,
    all with the same channels, and the checks cost more than the rest of the construction.
    """
    key = channels if type(channels) is tuple else None
    try:
        hit = _LAYOUTS.get(key) if key is not None else None
    except TypeError:  # an unhashable name: checked (and turned into str) below, not remembered
        hit = key = None
    if hit is not None:
        return hit
    names = tuple(str(c) for c in channels)
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise InputError(f"duplicate animation channels: {', '.join(dup)}")
    for group, group_names in ROTATION_GROUPS.items():
        present = [n in names for n in group_names]
        if any(present) and not all(present):
            raise InputError(f"rotation channels for '{group}' must come as {', '.join(group_names)}")
    if key is not None:
        if len(_LAYOUTS) >= 256:  # bounded: a program making many distinct layouts rechecks them
            _LAYOUTS.clear()
        _LAYOUTS[key] = names
    return names
