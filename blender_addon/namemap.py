"""Match animation channel names (ARKit ``jawOpen`` ...) to a mesh's shape-key names.

Character tools spell the 52 ARKit shapes in many ways: ``jawOpen``, ``JawOpen``, ``jaw_open``,
``Face.jawOpen``, ``blendShape1.jawOpen``, ``A25_Jaw_Open``, ``mouthSmile_L`` / ``mouthSmile.L``
for ``mouthSmileLeft``, ``ARKit_jawOpen``, ``jawOpen_BS``. :func:`normalize` reduces a name to a
canonical key (lower case, no separators, namespace and numbered prefix dropped, side suffix
spelled out) and :func:`auto_map` pairs channels with keys whose canonical forms agree, preferring
an exact name match. Pure Python: used inside Blender and tested outside it.
"""

from __future__ import annotations

import re

_SIDE = re.compile(r"(?:[._\- ]|(?<=[a-z0-9]))(l|r|left|right)$", re.IGNORECASE)
_NUMBERED = re.compile(r"^[a-z]{0,3}\d+[_\- ]+", re.IGNORECASE)  # A25_, bs01_, 12_
_PREFIXES = ("arkit", "blendshape", "bs", "shape", "morph", "face", "head")
_SUFFIXES = ("bs", "shape", "morph")


def normalize(name: str) -> str:
    """Canonical key of a channel or shape-key name (see module doc)."""
    text = name.strip()
    # Namespaces: keep the last segment unless it is only a side marker ("eyeBlink.L").
    parts = re.split(r"[.:|/]", text)
    if len(parts) > 1:
        last = parts[-1]
        text = parts[-2] + "_" + last if last.lower() in ("l", "r") else last
    text = _NUMBERED.sub("", text)
    side = ""
    m = _SIDE.search(text)
    if m:
        token = m.group(1).lower()
        # "Left"/"Right" glued to a word ("eyeBlinkLeft") and separated single letters ("_L").
        if token in ("left", "right") or text[m.start()] in "._- ":
            side = "left" if token.startswith("l") else "right"
            text = text[: m.start()]
    key = re.sub(r"[^a-z0-9]", "", text.lower())
    for p in _PREFIXES:
        if key.startswith(p) and len(key) > len(p) + 3:
            key = key[len(p):]
            break
    for s in _SUFFIXES:
        if key.endswith(s) and len(key) > len(s) + 3:
            key = key[: -len(s)]
            break
    return key + side


def auto_map(channels, shape_keys) -> dict[str, str]:
    """Pair each channel with a shape key: exact name first, then canonical form (first wins).

    Returns ``{channel: shape_key}`` for the channels that found one; the rest are missing.
    """
    keys = [k for k in shape_keys]
    exact = set(keys)
    by_norm: dict[str, str] = {}
    for k in keys:
        by_norm.setdefault(normalize(k), k)
    used: set[str] = set()
    out: dict[str, str] = {}
    for ch in channels:
        if ch in exact:
            out[ch] = ch
            used.add(ch)
    for ch in channels:
        if ch in out:
            continue
        k = by_norm.get(normalize(ch))
        if k is not None and k not in used:
            out[ch] = k
            used.add(k)
    return out


# flamesync's channel order (flamesync/channels.py); the add-on must not need flamesync installed.
ARKIT_52 = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
