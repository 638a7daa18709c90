"""Exporters: one module per file format behind a small registry.

``export(animation, path, face=...)`` picks the format from the file name (the longest matching
suffix wins, so ``take.meshes.npz`` is a vertex sequence while ``take.npz`` is an animation file).
Each format module provides ``write(animation, path, *, face, audio_path=None, **options)`` and is
imported only when used, so an optional dependency is needed only by the format that uses it.
Writers are handed a temporary path that becomes ``path`` only when they return: a failed export
leaves nothing behind. ``dest`` tells them the final name (for files written beside it, e.g. audio).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..animation import Animation
from ..errors import InputError


@dataclass(frozen=True)
class Format:
    suffix: str
    module: str
    description: str
    is_directory: bool = False  # writes a folder of files (frame sequences)
    needs_face: bool = True  # False: writes channels only, so no face model need be loaded
    carries_audio: bool = True  # copies the audio beside the output as <stem>.wav


FORMATS: dict[str, Format] = {}


def register(suffix: str, module: str, description: str, *, is_directory: bool = False,
             needs_face: bool = True, carries_audio: bool = True) -> None:
    FORMATS[suffix.lower()] = Format(suffix.lower(), module, description, is_directory, needs_face, carries_audio)


register(".npz", "animation_npz", "flamesync animation (channels per frame, JSON header)", needs_face=False,
         carries_audio=False)
register(".meshes.npz", "meshseq", "vertex sequence: vertices (T,V,3), faces, fps", carries_audio=False)
register(".obj", "meshseq", "OBJ sequence: a folder with one OBJ per frame (one file if one frame)",
         carries_audio=False)
register(".ply", "meshseq", "PLY sequence: a folder with one binary PLY per frame (one file if one frame)",
         carries_audio=False)
register(".glb", "gltf", "glTF 2.0 binary: head mesh, ARKit morph targets, jaw joint, animation")
register(".gltf", "gltf", "glTF 2.0 JSON with embedded buffer: head mesh, ARKit morph targets, jaw joint, animation")
register(".fbx", "blender_formats", "FBX via Blender: mesh with shape-key animation")
register(".abc", "blender_formats", "Alembic via Blender: baked vertex cache")
register(".usd", "blender_formats", "USD via Blender: mesh with shape-key animation")
register(".usda", "blender_formats", "USD (ASCII) via Blender: mesh with shape-key animation")
register(".usdc", "blender_formats", "USD (binary) via Blender: mesh with shape-key animation")
register(".blend", "blender_formats", "Blender scene: mesh, shape-key action, jaw/head bones, audio strip")
register(".csv", "tables", "Live Link Face CSV: ARKit weights per frame (Unreal / MetaHuman)", needs_face=False)
register(".channels.csv", "tables", "plain CSV: frame, time and every named channel per frame", needs_face=False)
register(".json", "tables", "plain JSON: fps, times and every named channel per frame", needs_face=False)
register(".rhubarb.json", "mouth2d", "Rhubarb Lip Sync JSON: 2D mouth cues A-H, X (adventure games, Spine, Live2D)",
         needs_face=False, carries_audio=False)
register(".rhubarb.tsv", "mouth2d", "Rhubarb Lip Sync TSV: one start time and mouth shape (A-H, X) per row",
         needs_face=False, carries_audio=False)
register(".ovr.csv", "mouth2d", "Meta/OVR lip sync: the 15 viseme weights per frame (CSV)", needs_face=False,
         carries_audio=False)
register(".ovr.json", "mouth2d", "Meta/OVR lip sync: the 15 viseme weights per frame (JSON)", needs_face=False,
         carries_audio=False)
register(".openxr.csv", "mouth2d", "OpenXR XR_META_face_tracking_visemes: the 15 viseme weights per frame (CSV)",
         needs_face=False, carries_audio=False)
register(".openxr.json", "mouth2d", "OpenXR XR_META_face_tracking_visemes: the 15 viseme weights per frame (JSON)",
         needs_face=False, carries_audio=False)
register(".flame.npz", "flame_params", "FLAME parameters per frame (expression, jaw/neck/eye pose, shape)")


def format_for(path: str | Path) -> Format:
    """The registered format for ``path`` (longest suffix match) or a clear error."""
    name = Path(path).name.lower()
    best = None
    for suffix, fmt in FORMATS.items():
        if name.endswith(suffix) and (best is None or len(suffix) > len(best.suffix)):
            best = fmt
    if best is None:
        known = ", ".join(sorted(FORMATS))
        raise InputError(f"unknown output format for {Path(path).name!r}; known extensions: {known}")
    return best


def check_writable(path: str | Path, *, directory_ok: bool = False) -> Path:
    """Check, before any work, that a file can be written at ``path``; return it as a Path.

    Fails with one line for: a name that is not valid text, a missing or read-only folder, an
    existing directory where a file goes (unless ``directory_ok``), or an existing read-only file.
    """
    from ..fileio import OutputError

    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Names arrive from the command line as bytes decoded with surrogate escapes.
        raise OutputError(f"output name {text.encode('utf-8', 'replace').decode()!r} is not valid UTF-8; "
                          "rename it") from None
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
    if path.is_dir() and not directory_ok:
        raise OutputError(f"cannot write {path}: it is an existing directory")
    if path.exists() and not path.is_dir() and not os.access(path, os.W_OK):
        raise OutputError(f"cannot write {path}: the existing file is read-only")
    return path


def check_output(path: str | Path) -> Format:
    """Check that ``path`` can be written in a known format, before any work; return the format.

    Also checks where the audio carried beside it would go (``<stem>.wav``).
    """
    from ..fileio import OutputError
    from .rig import carried_audio_path

    check_writable(path, directory_ok=True)  # the name first: format_for quotes it
    fmt = format_for(path)
    if Path(path).is_dir() and not fmt.is_directory:
        raise OutputError(f"cannot write {path}: it is an existing directory")

    wav = carried_audio_path(path)
    if fmt.carries_audio and wav.is_dir():
        raise OutputError(f"cannot write {wav} (the audio carried with {Path(path).name}): it is an existing directory")
    return fmt


def export(
    animation: Animation,
    path: str | Path,
    *,
    face=None,
    audio_path: str | None = None,
    **options,
) -> Path:
    """Write ``animation`` to ``path`` in the format its name asks for; return ``path``.

    Parameters
    ----------
    animation : Animation
    path : str or Path
    face : FaceModel, str or None
        The face model for formats that carry geometry (``load_face`` spec accepted).
    audio_path : str or None
        Audio to carry alongside; defaults to ``animation.audio_path``.
    """
    from ..fileio import atomic_path, transaction

    fmt = format_for(path)
    module = importlib.import_module(f".{fmt.module}", __name__)
    path = Path(path)
    audio_path = audio_path or animation.audio_path
    if face is not None:
        # An ARKit animation bound for a FLAME face becomes FLAME parameters here, once, so that
        # every format writes what that face really does.
        from ..face import load_face
        from ..retarget import animation_for_face

        if isinstance(face, (str, Path)):
            face = load_face(face)
        animation = animation_for_face(animation, face)
    check_output(path)
    # One transaction: the output and the audio carried beside it appear together or not at all.
    with transaction(), atomic_path(path) as tmp:
        tmp.unlink()  # writers create their own file or folder at this name
        module.write(animation, tmp, face=face, audio_path=audio_path, fmt=fmt, dest=path, **options)
    return path
