"""2D mouth shapes: Rhubarb Lip Sync cues (JSON, TSV) and Meta/OVR viseme weights (CSV, JSON).

- ``.rhubarb.json``: Rhubarb's JSON layout, exactly its fields::

      {"metadata": {"soundFile": "...", "duration": 1.23},
       "mouthCues": [{"start": 0.00, "end": 0.05, "value": "X"}, ...]}

  times in seconds with two decimals, shapes ``A``-``H`` and ``X``; cues are contiguous from 0 to
  the duration. ``soundFile`` is the audio the animation was made from (as Rhubarb writes the path
  it was given).
- ``.rhubarb.tsv``: Rhubarb's TSV layout, one ``start<TAB>shape`` row per cue; when the last cue is
  not ``X`` a final ``duration<TAB>X`` row says when the mouth returns to rest.
- ``.ovr.csv``: ``frame, time`` then the 15 OVR visemes (``sil PP FF TH DD kk CH SS nn RR aa E ih
  oh ou``), weights per frame summing to 1.
- ``.ovr.json``: ``{"format": "flamesync.ovr-visemes", "fps", "audio", "audio_offset", "visemes",
  "times", "frames"}``.
- ``.openxr.csv`` / ``.openxr.json``: the same weights under OpenXR's names
  (``XR_META_face_tracking_visemes``: ``XR_FACE_TRACKING_VISEME_SIL_META`` ... ``_OU_META``, in the
  order of the ``XrFaceTrackingVisemeMETA`` enumeration, so a frame's row is the ``visemes`` array
  a runtime fills); the JSON's format is ``flamesync.openxr-visemes``.

The mappings are in :mod:`flamesync.mouthshapes` and ``docs/batch.md``. None of these formats
copies the audio beside itself: 2D tools load the sound they were given.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..animation import Animation


def write(animation: Animation, path, *, face=None, audio_path=None, fmt=None, dest=None, audio_label=None, **_):
    suffix = fmt.suffix if fmt is not None else Path(dest or path).suffix
    if suffix == ".rhubarb.json":
        write_rhubarb_json(animation, path, audio_path=audio_path, audio_label=audio_label)
    elif suffix == ".rhubarb.tsv":
        write_rhubarb_tsv(animation, path, audio_path=audio_path)
    elif suffix in (".ovr.csv", ".openxr.csv"):
        write_ovr_csv(animation, path, audio_path=audio_path, openxr=suffix == ".openxr.csv")
    else:
        write_ovr_json(animation, path, audio_path=audio_path, openxr=suffix == ".openxr.json")


def rhubarb_json_text(animation: Animation, *, audio_path: str | None = None, audio_label: str | None = None) -> str:
    """The ``.rhubarb.json`` document as text (Rhubarb's field order and number format)."""
    from ..mouthshapes import audio_duration, rhubarb_cues

    audio_path = audio_path or animation.audio_path
    duration = audio_duration(animation, audio_path)
    cues = rhubarb_cues(animation, audio_path=audio_path, duration=duration)
    rows = ",\n".join(f'    {{ "start": {a:.2f}, "end": {b:.2f}, "value": {json.dumps(v)} }}' for a, b, v in cues)
    return ("{\n"
            '  "metadata": {\n'
            f'    "soundFile": {json.dumps(str(audio_label or audio_path or ""), ensure_ascii=False)},\n'
            f'    "duration": {round(duration, 2):.2f}\n'
            "  },\n"
            '  "mouthCues": [\n'
            f"{rows}\n"
            "  ]\n"
            "}\n")


def write_rhubarb_json(animation: Animation, path, *, audio_path: str | None = None,
                       audio_label: str | None = None) -> None:
    Path(path).write_text(rhubarb_json_text(animation, audio_path=audio_path, audio_label=audio_label),
                          encoding="utf-8")


def write_rhubarb_tsv(animation: Animation, path, *, audio_path: str | None = None) -> None:
    from ..mouthshapes import audio_duration, rhubarb_cues

    audio_path = audio_path or animation.audio_path
    duration = audio_duration(animation, audio_path)
    cues = rhubarb_cues(animation, audio_path=audio_path, duration=duration)
    rows = [f"{a:.2f}\t{v}\n" for a, _, v in cues]
    if cues and cues[-1][2] != "X":
        rows.append(f"{cues[-1][1]:.2f}\tX\n")
    Path(path).write_text("".join(rows), encoding="utf-8")


def _viseme_names(openxr: bool) -> tuple[str, ...]:
    from ..mouthshapes import OPENXR_VISEMES, OVR_VISEMES

    return OPENXR_VISEMES if openxr else OVR_VISEMES


def write_ovr_csv(animation: Animation, path, *, audio_path: str | None = None, openxr: bool = False) -> None:
    from ..mouthshapes import ovr_weights

    weights = ovr_weights(animation, audio_path=audio_path)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame", "time", *_viseme_names(openxr)])
        for i, (t, row) in enumerate(zip(animation.times, weights)):
            w.writerow([i, f"{t:.6f}"] + [f"{x:.6f}" for x in row])


def write_ovr_json(animation: Animation, path, *, audio_path: str | None = None, openxr: bool = False) -> None:
    from ..mouthshapes import ovr_weights

    weights = ovr_weights(animation, audio_path=audio_path)
    doc = {
        "format": "flamesync.openxr-visemes" if openxr else "flamesync.ovr-visemes",
        "fps": animation.fps,
        "audio": audio_path or animation.audio_path,
        "audio_offset": animation.audio_offset,
        "visemes": list(_viseme_names(openxr)),
        "times": [round(float(t), 6) for t in animation.times],
        "frames": [[round(float(x), 6) for x in row] for row in weights],
    }
    Path(path).write_text(json.dumps(doc))
