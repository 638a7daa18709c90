"""What a batch is made of: lines (one audio each) gathered from files, folders and manifests.

A *line* is one take to animate: an audio file, an optional transcript, the name its outputs get
inside the output folder, and its options (frame rate, backend, language). Lines come from:

- audio files named on the command line (output name: the file's stem);
- folders, searched recursively for :data:`AUDIO_EXTENSIONS` (output name: the path below the
  folder without its extension, so ``in/npc/guard_01.wav`` becomes ``npc/guard_01``);
- a manifest, a UTF-8 TSV with a header row (see :func:`read_manifest`).

Everything here is cheap and runs in the driver before any worker starts: a bad manifest or two
lines that would write the same output are one-line errors before any work.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import InputError
from ..pipeline import BACKENDS

# Extensions libsndfile (and the MP3 fallback of flamesync.audio.io) read; matched case-insensitively.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".m4a", ".aac")

# Per-line options a manifest column (or the command line, for every line) may set, and their parsers.
OPTION_COLUMNS = ("fps", "backend", "language", "emotion", "intensity", "emotion_keys", "seed", "mouth_only",
                  "timing_offset")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
MANIFEST_COLUMNS = ("audio", "text", "text_file", "name") + OPTION_COLUMNS
BACKEND_CHOICES = BACKENDS


@dataclass(frozen=True)
class Line:
    """One take of a batch.

    Parameters
    ----------
    name : str
        Output name relative to the output folder, ``/``-separated, without a suffix.
    audio : str
        Path of the audio file (absolute).
    text : str or None
        The transcript, when given inline.
    text_file : str or None
        A file holding the transcript (read by the driver, so a bad one fails only this line).
    options : dict
        ``fps`` (float), ``backend`` (str), ``language`` (str) and the expressive layers' settings
        (``emotion``, ``intensity``, ``emotion_keys`` as ``[time, emotion, intensity]`` triples,
        ``seed``, ``mouth_only``, ``timing_offset``, and the strengths and rates of
        :func:`layer_defaults`): plain JSON values, hashed into the journal and sent to workers.
    source : str
        Where the line came from (``manifest.tsv:12``, a path), for messages.
    """

    name: str
    audio: str
    text: str | None = None
    text_file: str | None = None
    options: dict = field(default_factory=dict)
    source: str = ""


def _check_name(name: str, source: str) -> str:
    """A safe output name: relative, no ``..``, no empty parts; ``/`` separated."""
    name = name.replace("\\", "/").strip()
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or name.startswith("/") or any(p == ".." for p in parts):
        raise InputError(f"{source}: output name {name!r} must be a relative path inside the output folder")
    return "/".join(parts)


def layer_defaults(*, blinks: float = 1.0, gaze: float = 1.0, brows: float = 1.0, head: float = 1.0,
                   emotion: str = "neutral", intensity: float = 0.6, emotion_keys=None, seed: int = 0,
                   mouth_only: bool = False, timing_offset: float = 0.0, blink_rate: float = 20.0,
                   head_degrees: float = 3.0) -> dict:
    """The expressive layers' settings as batch options (what ``flamesync animate`` would use)."""
    keys = None
    if emotion_keys:
        keys = [[float(k.time), str(k.emotion), float(k.intensity)] if hasattr(k, "time") else list(k)
                for k in emotion_keys]
    return {"blinks": float(blinks), "gaze": float(gaze), "brows": float(brows), "head": float(head),
            "emotion": emotion, "intensity": float(intensity), "emotion_keys": keys, "seed": int(seed),
            "mouth_only": bool(mouth_only), "timing_offset": float(timing_offset),
            "blink_rate": float(blink_rate), "head_degrees": float(head_degrees)}


def animate_kwargs(options: dict) -> dict:
    """Keyword arguments of :func:`flamesync.animate` for a line's options (checked: bad raise InputError)."""
    from ..expressive import Layers
    from ..expressive.emotion import EmotionKey

    o = {**layer_defaults(), **options}
    keys = tuple(EmotionKey(float(t), str(e), float(i)) for t, e, i in o["emotion_keys"]) if o["emotion_keys"] else None
    layers = Layers(blinks=o["blinks"], gaze=o["gaze"], brows=o["brows"], head=o["head"], emotion=o["emotion"],
                    intensity=o["intensity"], keys=keys, seed=o["seed"], blink_rate=o["blink_rate"],
                    head_degrees=o["head_degrees"])
    return {"fps": o.get("fps", 30.0), "backend": o.get("backend", "auto"), "language": o.get("language", "en"),
            "layers": layers, "mouth_only": o["mouth_only"], "timing_offset": o["timing_offset"]}


def parse_options(raw: dict[str, str], *, source: str, defaults: dict, base: Path | None = None) -> dict:
    """Per-line options from text (a manifest row) over ``defaults``; bad values raise InputError.

    ``base`` is the folder relative paths (``emotion_keys``) are taken from.
    """
    import math

    from ..animation import check_fps
    from ..expressive.emotion import check_emotion, load_keys

    options = dict(defaults)
    for key in OPTION_COLUMNS:
        value = (raw.get(key) or "").strip()
        if not value:
            continue
        try:
            if key == "fps":
                options["fps"] = check_fps(value)
            elif key == "backend":
                if value not in BACKEND_CHOICES:
                    raise InputError(f"unknown backend {value!r}; choose one of {', '.join(BACKEND_CHOICES)}")
                options["backend"] = value
            elif key == "emotion":
                options["emotion"] = check_emotion(value, 0.0)[0]
            elif key == "intensity":
                options["intensity"] = check_emotion("neutral", value)[1]
            elif key == "emotion_keys":
                keys = load_keys((base or Path(".")) / value)
                options["emotion_keys"] = [[float(k.time), str(k.emotion), float(k.intensity)] for k in keys]
            elif key == "seed":
                try:
                    options["seed"] = int(value)
                except ValueError:
                    raise InputError(f"seed must be a whole number, got {value!r}") from None
            elif key == "mouth_only":
                if value.lower() not in _TRUE + _FALSE:
                    raise InputError(f"mouth_only must be true or false, got {value!r}")
                options["mouth_only"] = value.lower() in _TRUE
            elif key == "timing_offset":
                try:
                    offset = float(value)
                except ValueError:
                    offset = math.nan
                if not (math.isfinite(offset) and abs(offset) <= 10.0):
                    raise InputError(f"timing_offset must be seconds within 10 either way, got {value!r}")
                options["timing_offset"] = offset
            else:
                options[key] = value
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
    if options.get("emotion_keys") and raw.get("emotion", "").strip() and options.get("emotion") != "neutral":
        raise InputError(f"{source}: give either emotion or emotion_keys, not both")
    return options


def read_manifest(path: str | os.PathLike, *, defaults: dict) -> list[Line]:
    """Lines of a manifest TSV.

    The first row that is not blank or a ``#`` comment is the header. Columns (any order):
    ``audio`` (required), ``text`` (the transcript), ``text_file`` (a file holding it), ``name``
    (output name; default the audio's stem), and per-line options: ``fps``, ``backend``,
    ``language``, ``emotion``, ``intensity``, ``emotion_keys`` (a keys file), ``seed``,
    ``mouth_only`` (true/false), ``timing_offset`` (seconds); empty cells take the command line's values. Relative paths are relative to the manifest's
    folder. Unknown columns are an error, so a misspelt option is not silently ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest not found: {path}")
    try:
        text = path.read_text("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"manifest {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read manifest {path} ({exc.strerror})") from None
    base = path.parent
    rows = [(i + 1, row) for i, row in enumerate(text.splitlines()) if row.strip() and not row.lstrip().startswith("#")]
    if not rows:
        raise InputError(f"manifest {path} is empty")
    header_no, header_row = rows[0]
    header = [h.strip().lower() for h in header_row.split("\t")]
    unknown = [h for h in header if h not in MANIFEST_COLUMNS]
    if unknown:
        raise InputError(f"{path}:{header_no}: unknown column {unknown[0]!r}; columns are {', '.join(MANIFEST_COLUMNS)}")
    if "audio" not in header:
        raise InputError(f"{path}:{header_no}: the header has no 'audio' column")
    if len(set(header)) != len(header):
        raise InputError(f"{path}:{header_no}: a column is named twice")
    lines = []
    for no, row in rows[1:]:
        cells = next(csv.reader([row], delimiter="\t", quoting=csv.QUOTE_NONE))
        source = f"{path}:{no}"
        if len(cells) > len(header):
            raise InputError(f"{source}: {len(cells)} cells, the header has {len(header)} columns")
        raw = dict(zip(header, cells))
        audio = raw.get("audio", "").strip()
        if not audio:
            raise InputError(f"{source}: no audio file")
        audio_path = (base / audio).resolve()
        name = raw.get("name", "").strip() or Path(audio).stem
        text_value = raw.get("text", "")
        text_file = raw.get("text_file", "").strip()
        if text_value.strip() and text_file:
            raise InputError(f"{source}: give the transcript as text or as text_file, not both")
        lines.append(Line(
            name=_check_name(name, source),
            audio=str(audio_path),
            text=text_value.strip() or None,
            text_file=str((base / text_file).resolve()) if text_file else None,
            options=parse_options(raw, source=source, defaults=defaults, base=base),
            source=source,
        ))
    return lines


def gather(inputs: Iterable[str], *, manifests: Iterable[str] = (), defaults: dict,
           text_beside: bool = False, exclude: Iterable[str | os.PathLike] = ()) -> list[Line]:
    """All lines of a batch, in a stable order, with unique output names.

    Parameters
    ----------
    inputs : iterable of str
        Audio files, folders (searched recursively) or manifests (``.tsv`` files).
    manifests : iterable of str
        More manifests (``--manifest``).
    defaults : dict
        Options every line gets unless its manifest row says otherwise.
    text_beside : bool
        Use ``STEM.txt`` beside an audio file (from a folder or the command line) as its transcript.
    exclude : iterable of paths
        Folders not to search (the output folder: when it lies inside an input folder, the audio
        carried beside the outputs would otherwise come back as new lines on every rerun).

    Raises
    ------
    InputError
        No lines at all, a folder without audio, a bad manifest, or two lines with one output name.
        A named audio file that does not exist is *not* an error here: it becomes a line that fails
        (reported), as a bad file in a folder would.
    """
    lines: list[Line] = []
    skip = [Path(e).resolve() for e in exclude]

    def excluded(f: Path) -> bool:
        r = f.resolve()
        return any(r == e or e in r.parents for e in skip)

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file()
                           and not f.name.startswith(".") and not excluded(f))
            if not found:
                raise InputError(f"folder {p} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            for f in found:
                rel = f.relative_to(p).with_suffix("").as_posix()
                lines.append(_file_line(f, rel, defaults, text_beside))
        elif p.suffix.lower() == ".tsv":
            lines.extend(read_manifest(p, defaults=defaults))
        else:
            lines.append(_file_line(p, p.stem, defaults, text_beside))
    for m in manifests:
        lines.extend(read_manifest(m, defaults=defaults))
    if not lines:
        raise InputError("nothing to do: give audio files, folders or a manifest")
    seen: dict[str, Line] = {}
    for line in lines:
        key = line.name.casefold()  # case-insensitive file systems would merge them
        if key in seen:
            raise InputError(f"{seen[key].source} and {line.source} both write outputs named {line.name!r}; "
                             "give them names in a manifest")
        seen[key] = line
    return lines


def _file_line(path: Path, name: str, defaults: dict, text_beside: bool) -> Line:
    text_file = None
    if text_beside:
        candidate = path.with_suffix(".txt")
        if candidate.is_file():
            text_file = str(candidate.resolve())
    return Line(name=_check_name(name, str(path)), audio=str(path.resolve()), text_file=text_file,
                options=dict(defaults), source=str(path))
