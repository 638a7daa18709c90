"""Real recorded speech as training items: forced alignment, teacher targets, confidence, splits.

``build_real_corpus(source, out_dir)`` reads a folder of transcribed recordings (any layout of
:data:`LAYOUTS`), aligns each transcript with pocketsphinx (:func:`flamesync.phonetics.align.align`),
scores the alignment against a free phone loop (:mod:`flamesync.phonetics.confidence`), animates
the aligned phones with the coarticulation teacher, and writes the same shard format as the
synthetic corpus, so :class:`flamesync.data.corpus.Corpus` and the trainer read it unchanged.

* Items whose alignment fits badly are dropped and counted by reason; words that fit badly inside a
  kept item are *masked* (their time spans are listed in the item's ``meta["mask"]`` and the trainer
  ignores those frames), never guessed.
* Splits are speaker-disjoint: every recording of a speaker is in ``train`` or every one is in
  ``val``. Sources that do not identify speakers per file count each file as its own speaker (so
  for them the split is disjoint by file only; say so when you report on it).
* Alignments are cached per recording and transcript in ``<cache>/real/align``; a rebuild only
  re-reads audio and re-writes shards.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import FlamesyncError, InputError
from .synth import FORMAT, FPS, SAMPLE_RATE, VERSION, write_shard

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")
ALIGN_VERSION = 1  # bump when the cached alignment's content changes


@dataclass(frozen=True)
class Thresholds:
    """When an alignment is trusted (units of :mod:`flamesync.phonetics.confidence`).

    Chosen on 40 random realtrain clips aligned to their own and to another clip's transcript
    (docs/corpus.md, "Real speech"): right transcripts score -0.3 to -2.5, wrong ones -1.6 to -6.
    """

    min_score: float = -2.5           # the whole item: mean word fit per frame
    max_speech_in_pauses: float = 0.35  # share of loud frames the alignment calls pauses
    mask_word_below: float = -4.5     # a word fitting worse than this is masked, not trusted
    max_masked_share: float = 0.34    # more masked words than this: drop the item
    min_seconds: float = 0.4
    max_seconds: float = 30.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RealClip:
    """One recording and what is said in it."""

    path: Path
    text: str
    source: str = "folder"
    speaker: str = ""  # unique within ``source``; empty when the source does not say
    style: str = "read"
    labels: dict | None = None  # picovoice_intent: {"intent": ..., "slots": {...}}, text empty
    lexicon: dict | None = None  # word -> canonical ARPAbet phones, where the source gives them
    duration: float | None = None

    @property
    def group(self) -> str:
        """The speaker key the split is made on (the file where the speaker is unknown)."""
        return f"{self.source}:{self.speaker or self.path.stem}"


# --------------------------------------------------------------------------------------- readers
def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None


def read_manifest(root: str | Path) -> list[RealClip]:
    """``MANIFEST.tsv`` (columns file, source, speaker, transcript, style, labels): the realtrain layout.

    speechocean762's canonical phones (``speechocean762/text-phone``) become each clip's lexicon.
    """
    root = Path(root)
    canon = _speechocean_phones(root / "speechocean762" / "text-phone")
    clips = []
    with open(root / "MANIFEST.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            labels = json.loads(row["labels"]) if row.get("labels") else None
            path = root / row["file"]
            lexicon = None
            if row.get("source") == "speechocean762":
                words = row["transcript"].split()
                phones = canon.get(path.stem, {})
                if len(phones) == len(words):
                    lexicon = {w.lower(): phones[i] for i, w in enumerate(words)}
            dur = float(row["duration_s"]) if row.get("duration_s") else None
            clips.append(RealClip(path, row.get("transcript", ""), row.get("source") or "manifest",
                                  row.get("speaker", ""), row.get("style") or "read", labels, lexicon, dur))
    return clips


def _speechocean_phones(path: Path) -> dict[str, dict[int, list[str]]]:
    """``<utt>.<word index> PHONE_B PHONE_I ...`` -> {utt: {index: [PHONE, ...]}} (position suffixes dropped)."""
    out: dict[str, dict[int, list[str]]] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, phones = line.partition("\t") if "\t" in line else line.partition(" ")
        utt, _, idx = key.rpartition(".")
        if utt and idx.isdigit():
            out.setdefault(utt, {})[int(idx)] = [p.rsplit("_", 1)[0] for p in phones.split()]
    return out


def read_folder(root: str | Path) -> list[RealClip]:
    """Audio files with a transcript beside them (``x.wav`` + ``x.txt`` or ``x.lab``).

    The speaker is the name of the folder holding the file, relative to ``root`` (files directly
    in ``root`` have no speaker).
    """
    root = Path(root)
    clips = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        for ext in (".txt", ".lab"):
            t = path.with_suffix(ext)
            if t.is_file():
                rel = path.parent.relative_to(root).as_posix()
                clips.append(RealClip(path, _read_text(t), "folder", "" if rel == "." else rel))
                break
    return clips


def read_librispeech(root: str | Path) -> list[RealClip]:
    """LibriSpeech: ``SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` with ``ID TEXT`` lines and ``ID.flac``."""
    root = Path(root)
    clips = []
    for trans in sorted(root.rglob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            uid, _, text = line.strip().partition(" ")
            if not uid:
                continue
            audio = next((trans.parent / f"{uid}{e}" for e in AUDIO_EXTENSIONS if (trans.parent / f"{uid}{e}").is_file()), None)
            if audio is not None:
                clips.append(RealClip(audio, text, "librispeech", uid.split("-")[0]))
    return clips


def read_common_voice(root: str | Path) -> list[RealClip]:
    """Common Voice: ``validated.tsv`` (client_id, path, sentence) and the audio in ``clips/``."""
    root = Path(root)
    clips = []
    with open(root / "validated.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            audio = root / "clips" / row["path"]
            if audio.is_file():
                clips.append(RealClip(audio, row["sentence"], "commonvoice", row.get("client_id", "")))
    return clips


def read_ljspeech(root: str | Path) -> list[RealClip]:
    """LJSpeech: ``metadata.csv`` (``id|text|normalized text``) and ``wavs/<id>.wav``; one speaker."""
    root = Path(root)
    clips = []
    with open(root / "metadata.csv", encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("|")
            if len(parts) < 2:
                continue
            text = parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]
            audio = root / "wavs" / f"{parts[0]}.wav"
            if audio.is_file():
                clips.append(RealClip(audio, text, "ljspeech", "ljspeech"))
    return clips


LAYOUTS: dict[str, tuple[Callable[[Path], bool], Callable]] = {
    "manifest": (lambda r: (r / "MANIFEST.tsv").is_file(), read_manifest),
    "commonvoice": (lambda r: (r / "validated.tsv").is_file(), read_common_voice),
    "ljspeech": (lambda r: (r / "metadata.csv").is_file() and (r / "wavs").is_dir(), read_ljspeech),
    "librispeech": (lambda r: next(r.rglob("*.trans.txt"), None) is not None, read_librispeech),
    "folder": (lambda r: True, read_folder),
}


def read_clips(root: str | Path, *, layout: str = "auto") -> tuple[str, list[RealClip]]:
    """The transcribed recordings under ``root`` and the layout they were read as.

    Parameters
    ----------
    root : path
        A folder in one of :data:`LAYOUTS`: ``manifest`` (``MANIFEST.tsv``), ``commonvoice``
        (``validated.tsv`` + ``clips/``), ``ljspeech`` (``metadata.csv`` + ``wavs/``),
        ``librispeech`` (``*.trans.txt``), ``folder`` (``x.wav`` + ``x.txt``/``x.lab``).
    layout : str
        One of those names, or ``"auto"`` (the first whose marker file is there, in that order).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"real-speech folder not found: {root}")
    if layout == "auto":
        layout = next(name for name, (found, _) in LAYOUTS.items() if found(root))
    if layout not in LAYOUTS:
        raise InputError(f"unknown real-speech layout {layout!r}; choose from auto, {', '.join(LAYOUTS)}")
    try:
        clips = LAYOUTS[layout][1](root)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{root} could not be read as a {layout} folder ({exc.__class__.__name__}: {exc})") from None
    if not clips:
        raise InputError(f"no transcribed recordings found in {root} (layout {layout})")
    return layout, clips


# --------------------------------------------------------------------------------------- splits
def _unit_hash(seed: int, key: str) -> float:
    h = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def assign_splits(clips: list[RealClip], *, seed: int = 0, val_share: float = 0.15,
                  val_sources: Iterable[str] = ()) -> dict[str, str]:
    """Speaker-disjoint ``train``/``val`` assignment.

    Parameters
    ----------
    clips : list of RealClip
    seed : int
        Which speakers go to validation follows from it (a hash of seed and speaker).
    val_share : float
        Share of speakers (of files, where a source names none) held out.
    val_sources : iterable of str
        Sources held out whole (e.g. a single-speaker source whose voice must stay unheard).

    Returns
    -------
    dict
        ``RealClip.group`` -> ``"train"`` or ``"val"``. At least one speaker is held out. With a
        single speaker in all, the split is made by file instead (and cannot be speaker-disjoint).
    """
    held = set(val_sources)
    groups = sorted({c.group for c in clips})
    by_file = len(groups) < 2
    if by_file:
        warnings.warn("only one speaker: validation is split by file, not by speaker")
    out = {}
    for c in clips:
        key = f"{c.source}:{c.path.stem}" if by_file else c.group
        if key in out:
            continue
        out[key] = "val" if c.source in held or _unit_hash(seed, key) < val_share else "train"
    if val_share > 0 and "val" not in out.values() and len(out) > 1:
        # Few speakers: hold out the one the hash ranks first, so there is something to validate on.
        out[min(out, key=lambda k: _unit_hash(seed, k))] = "val"
    return out


def split_key(clip: RealClip, splits: dict[str, str]) -> str:
    return splits.get(clip.group) or splits[f"{clip.source}:{clip.path.stem}"]


def val_role(item_meta: dict, *, seed: int = 0) -> str:
    """Which half of the held-out speakers a val item belongs to: ``"calibrate"`` or ``"select"``.

    The closure decoder is calibrated on one half and networks are compared on the other, so no
    score that chooses is measured on the speakers a threshold was fitted to.
    """
    return "calibrate" if _unit_hash(seed + 1_000_003, str(item_meta.get("speaker", ""))) < 0.5 else "select"


def in_check_set(item_meta: dict, *, seed: int = 0, share: float = 0.0, offset: float = 0.0) -> bool:
    """Whether a ``train`` item's speaker is held out of training as a "check" set.

    Once both halves of the val split have been looked at, a new speaker-disjoint check needs
    speakers no network has heard: a training config can hold a share of the train split's
    speakers out (``corpus.real[].check_share``) and ``flamesync eval --val-half check`` scores
    them. The hash is salted apart from :func:`assign_splits` and :func:`val_role`, so the check
    speakers are a fresh draw. Where a source names no speaker, its "speaker" is the file, so the
    check set is disjoint by file only there, as the val split is.

    A speaker is in the set when its hash falls in ``[offset, offset + share)``. Sets with offset 0
    are nested across shares; once one has been looked at, a band above it (``offset`` = the old
    share) is a new draw that shares no speaker with it.
    """
    if share <= 0:
        return False
    return offset <= _unit_hash(seed + 2_000_003, str(item_meta.get("speaker", ""))) < offset + share


# --------------------------------------------------------------------------------------- intents
_SLOT = re.compile(r"\$(\w+):(\w+)")


def intent_grammar(expressions: list[str], slots: dict[str, str]) -> str | None:
    """JSGF of the expressions that use exactly the labelled slots, with the labelled values put in.

    Expressions follow the Picovoice context syntax: ``[a, b]`` optional alternatives, ``(a, b)``
    required ones, ``$type:name`` a slot. Returns None when no expression fits the labels.
    """
    want = {k: " ".join(_plain(v)) for k, v in slots.items()}
    rules = []
    for expr in expressions:
        names = [m.group(2) for m in _SLOT.finditer(expr)]
        if sorted(names) != sorted(want):
            continue
        body = _SLOT.sub(lambda m: f"( {want[m.group(2)]} )", expr)
        body = re.sub(r"\[([^\]]*)\]", lambda m: "[ " + " | ".join(" ".join(_plain(a)) for a in m.group(1).split(",")) + " ]", body)
        body = re.sub(r"\(([^)$]*,[^)$]*)\)", lambda m: "( " + " | ".join(" ".join(_plain(a)) for a in m.group(1).split(",")) + " )", body)
        words = [w if w in "[]()|" else w.lower() for w in body.split()]
        rules.append(" ".join(words))
    if not rules:
        return None
    alts = " | ".join(f"( {r} )" for r in dict.fromkeys(rules))
    return f"#JSGF V1.0;\ngrammar intent;\npublic <utt> = {alts};\n"


def _plain(text: str) -> list[str]:
    return [w for w in re.sub(r"[^a-zA-Z' ]", " ", text).lower().split() if w]


# --------------------------------------------------------------------------------------- one clip
def _cache_key(audio: np.ndarray, clip: RealClip) -> str:
    h = hashlib.sha1(np.ascontiguousarray(audio, np.float32).tobytes())
    h.update(json.dumps([clip.text, clip.labels, clip.lexicon, ALIGN_VERSION], sort_keys=True).encode())
    return h.hexdigest()[:20]


def _decode_intent(audio: np.ndarray, clip: RealClip, expressions: list[str]) -> str:
    """The words of a labelled spoken command, decoded against the grammar restricted to its labels."""
    from ..phonetics.align import SAMPLE_RATE as SR, _LOCK, _decoder, WIDE, _pcm, pronunciations

    grammar = intent_grammar(expressions, (clip.labels or {}).get("slots") or {})
    if grammar is None:
        raise InputError("no grammar expression uses exactly the labelled slots")
    with _LOCK:
        d = _intent_decoder()
        words = sorted({w for w in re.findall(r"[a-z']+", grammar.split("=", 1)[1])})
        for w, (variants, _) in pronunciations(words, d).items():
            if not d.lookup_word(w):
                d.add_word(w, " ".join(variants[0]), True)
        d.add_jsgf_string("intent", grammar)
        d.activate_search("intent")
        d.start_utt()
        d.process_raw(_pcm(audio), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
    if hyp is None or not hyp.hypstr.strip():
        raise InputError("the command could not be decoded against its grammar")
    return hyp.hypstr.strip()


_INTENT_DECODER = None


def _intent_decoder():
    global _INTENT_DECODER
    if _INTENT_DECODER is None:
        from ..phonetics.align import WIDE, _decoder

        _INTENT_DECODER = _decoder(WIDE, lm=None)
    return _INTENT_DECODER


def align_clip(clip: RealClip, *, thresholds: Thresholds = Thresholds(), expressions: list[str] | None = None,
               cache: bool = True) -> dict:
    """Align one recording; return a dict with either ``dropped`` (a reason) or the aligned item.

    The returned item holds ``audio`` (int16, 16 kHz), ``phones`` (list of [start, end, phone]),
    ``text`` (the transcript aligned: for spoken commands, the decoded words), ``confidence``
    (:class:`~flamesync.phonetics.confidence.AlignmentConfidence` as a dict) and ``mask`` (time
    spans of distrusted words).
    """
    from ..audio import load_audio
    from ..cache import cache_dir
    from ..phonetics.align import FRAME, OFFSET, align
    from ..phonetics.confidence import alignment_confidence

    try:
        x = load_audio(clip.path, sample_rate=SAMPLE_RATE)
    except FlamesyncError as exc:
        return {"dropped": "unreadable audio", "detail": str(exc)}
    dur = len(x) / SAMPLE_RATE
    if dur < thresholds.min_seconds or dur > thresholds.max_seconds:
        return {"dropped": "duration out of range", "detail": f"{dur:.2f} s"}
    audio = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    key = _cache_key(x, clip)
    path = cache_dir("real", "align") / f"{key}.json" if cache else None
    if path is not None and path.is_file():
        rec = json.loads(path.read_text("utf-8"))
    else:
        rec = _align_record(x, clip, expressions)
        if path is not None:
            from ..fileio import atomic_write_text

            atomic_write_text(path, json.dumps(rec))
    if "error" in rec:
        return {"dropped": rec["error"], "detail": rec.get("detail", "")}
    conf = rec["confidence"]
    words = conf["words"]
    if conf["score"] < thresholds.min_score:
        return {"dropped": "low alignment confidence", "detail": f"{conf['score']:.2f}"}
    if conf["speech_in_pauses"] > thresholds.max_speech_in_pauses:
        return {"dropped": "speech left unaligned", "detail": f"{conf['speech_in_pauses']:.2f}"}
    bad = [i for i, w in enumerate(words) if w < thresholds.mask_word_below]
    if words and len(bad) / len(words) > thresholds.max_masked_share:
        return {"dropped": "too many distrusted words", "detail": f"{len(bad)}/{len(words)}"}
    spans = {}
    for wi, a, b, _ in rec["word_scores"]:
        if wi in bad:
            s = spans.setdefault(wi, [a, b])
            s[0], s[1] = min(s[0], a), max(s[1], b)
    t = lambda f: f * FRAME + OFFSET if f > 0 else 0.0
    mask = [[round(t(a), 4), round(min(dur, t(b + 1)), 4)] for a, b in spans.values()]
    return {"audio": audio, "phones": rec["phones"], "text": rec["text"], "confidence": conf, "mask": mask,
            "duration": dur, "words": rec["words"]}


def _align_record(x: np.ndarray, clip: RealClip, expressions: list[str] | None) -> dict:
    """What the cache keeps of one alignment (JSON-ready), or ``{"error": reason}``."""
    from ..phonetics.align import align
    from ..phonetics.confidence import alignment_confidence

    text = clip.text
    try:
        if not text.strip() and clip.labels is not None:
            if not expressions:
                return {"error": "no transcript and no grammar"}
            text = _decode_intent(x, clip, expressions)
        if not text.strip():
            return {"error": "no transcript"}
        utt = align(x, SAMPLE_RATE, text, lexicon=clip.lexicon)
        conf = alignment_confidence(utt)
    except FlamesyncError as exc:
        return {"error": "alignment failed", "detail": str(exc)[:200]}
    words = conf.to_dict()
    if not all(math.isfinite(w) for w in words["words"]):
        return {"error": "alignment failed", "detail": "a word got no frames"}
    return {"text": text, "phones": [[round(p.start, 5), round(p.end, 5), p.phone] for p in utt.phones],
            "words": [[round(w.start, 4), round(w.end, 4), w.word] for w in utt.words],
            "word_scores": utt.meta["word_scores"], "confidence": words}


# --------------------------------------------------------------------------------------- corpus
_WORK: dict = {}


def _work(i: int) -> tuple[int, dict]:
    import warnings as _w

    with _w.catch_warnings():
        _w.simplefilter("ignore")
        return i, align_clip(_WORK["clips"][i], thresholds=_WORK["thresholds"], expressions=_WORK["expressions"])


def _grammar_expressions(root: Path | None) -> list[str]:
    """The spoken-command grammar's expressions (``picovoice_intent/*.yaml``), if the folder has one."""
    if root is None:
        return []
    import yaml

    out = []
    for p in sorted(root.glob("*/*.yaml")):
        try:
            doc = yaml.safe_load(p.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        for exprs in ((doc.get("context") or {}).get("expressions") or {}).values():
            out.extend(str(e) for e in exprs)
    return out


def build_real_corpus(source: str | Path, out_dir: str | Path, *, layout: str = "auto", seed: int = 0,
                      val_share: float = 0.15, val_sources: Iterable[str] = ("ljspeech_part", "ljspeech"),
                      thresholds: Thresholds = Thresholds(), workers: int | None = None,
                      limit: int | None = None, shard_seconds: float = 180.0) -> dict:
    """Align a folder of transcribed recordings into a training corpus; return its manifest.

    Parameters
    ----------
    source : path
        The recordings (a layout of :data:`LAYOUTS`).
    out_dir : path
        Corpus folder (its shards are rewritten; alignments come from the cache when present).
    layout : str
        ``"auto"`` or a name in :data:`LAYOUTS`.
    seed, val_share, val_sources
        The speaker-disjoint split (:func:`assign_splits`).
    thresholds : Thresholds
        When an alignment is trusted.
    workers : int or None
        Processes aligning in parallel (default: CPU count).
    limit : int or None
        Use only the first ``limit`` recordings (in a deterministic shuffled order), for trials.
    shard_seconds : float
        Speech per shard.
    """
    from ..channels import JAW_ROTATION, SPEECH_CHANNELS
    from ..fileio import atomic_write_text
    from ..phonetics.teacher import load_tables, phones_to_animation
    from ..phonetics.types import PhoneSegment
    from ..progress import track

    source = Path(source)
    layout, clips = read_clips(source, layout=layout)
    if limit is not None:
        order = sorted(range(len(clips)), key=lambda i: _unit_hash(seed, clips[i].path.as_posix()))
        clips = [clips[i] for i in sorted(order[: int(limit)])]
    splits = assign_splits(clips, seed=seed, val_share=val_share, val_sources=val_sources)
    expressions = _grammar_expressions(source) if any(c.labels for c in clips) else []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    channels = list(SPEECH_CHANNELS) + list(JAW_ROTATION)

    _WORK.update(clips=clips, thresholds=thresholds, expressions=expressions)
    load_tables()
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(clips)))
    results: dict[int, dict] = {}
    if workers == 1:
        it = map(_work, range(len(clips)))
        for i, r in track(it, total=len(clips), desc="align"):
            results[i] = r
    else:
        from ..forking import fork_pool

        with fork_pool(workers) as pool:
            for i, r in track(pool.imap_unordered(_work, range(len(clips)), chunksize=8), total=len(clips), desc="align"):
                results[i] = r

    dropped: Counter = Counter()
    dropped_by_source: dict[str, Counter] = {}
    kept: dict[str, list[tuple[RealClip, dict]]] = {"train": [], "val": []}
    for i, clip in enumerate(clips):
        r = results[i]
        if "dropped" in r:
            dropped[r["dropped"]] += 1
            dropped_by_source.setdefault(clip.source, Counter())[r["dropped"]] += 1
            continue
        kept[split_key(clip, splits)].append((clip, r))

    shards: dict[str, list[str]] = {"train": [], "val": [], "test_lang": []}
    for old in out_dir.glob("*/shard-*.npz"):
        old.unlink()
    stats_parts = []
    index = 0
    for split, rows in kept.items():
        batch: list[tuple[RealClip, dict]] = []
        total = 0.0
        for k, (clip, r) in enumerate(rows):
            batch.append((clip, r))
            total += r["duration"]
            if total >= shard_seconds or k == len(rows) - 1:
                name = f"{split}/shard-{index:05d}.npz"
                stats_parts.append(_write_real_shard(out_dir / name, batch, split=split, index=index,
                                                     channels=channels, seed=seed))
                shards[split].append(name)
                index += 1
                batch, total = [], 0.0
    from .synth import merge_stats

    stats = merge_stats(stats_parts) if stats_parts else {"seconds": 0.0, "utterances": 0}
    speakers = {s: sorted({c.group for c, _ in rows}) for s, rows in kept.items()}
    manifest = {
        "format": FORMAT, "version": VERSION, "kind": "real", "complete": True, "fps": FPS,
        "sample_rate": SAMPLE_RATE, "seed": seed, "channels": channels, "shards": shards, "stats": stats,
        "source": str(source), "layout": layout,
        "config": {"layout": layout, "val_share": val_share, "val_sources": list(val_sources),
                   "thresholds": thresholds.to_dict(), "limit": limit, "recordings": len(clips)},
        "dropped": dict(dropped), "dropped_by_source": {k: dict(v) for k, v in dropped_by_source.items()},
        "speakers": {s: len(v) for s, v in speakers.items()},
        "val_speakers": speakers["val"],
    }
    atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


def _write_real_shard(path: Path, rows: list, *, split: str, index: int, channels: list[str], seed: int) -> dict:
    from ..phonetics.teacher import phones_to_animation
    from ..phonetics.types import PhoneSegment

    audio, targets, phones, metas = [], [], [], []
    for clip, r in rows:
        ph = [PhoneSegment(float(s), float(e), str(p), str(p)) for s, e, p in r["phones"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            anim = phones_to_animation(ph, fps=FPS, duration=r["duration"])
        audio.append(r["audio"])
        targets.append(np.asarray(anim.values, np.float32))
        phones.append(ph)
        metas.append({
            "id": clip.path.stem, "file": clip.path.name, "text": r["text"], "engine": "real",
            "voice": clip.source, "source": clip.source, "speaker": clip.group, "style": clip.style,
            "language": "en", "split": split, "duration": r["duration"], "gender": None,
            "confidence": r["confidence"]["score"], "speech_in_pauses": r["confidence"]["speech_in_pauses"],
            "mask": r["mask"], "words": r["words"],
        })
    header = {"format": FORMAT + ".shard", "version": VERSION, "key": "real", "index": index, "split": split,
              "fps": FPS, "sample_rate": SAMPLE_RATE, "channels": channels, "seed": seed}
    return write_shard(path, audio=audio, targets=targets, phones=phones, metas=metas, header=header)


def format_report(manifest: dict) -> str:
    """What a build kept and dropped, per split and reason."""
    st = manifest.get("stats") or {}
    lines = [f"kept: {st.get('seconds', 0) / 3600:.3f} h in {st.get('utterances', 0)} recordings "
             f"of {manifest['config']['recordings']}; speakers train {manifest['speakers'].get('train', 0)}, "
             f"val {manifest['speakers'].get('val', 0)}"]
    split = st.get("split") or {}
    lines.append("hours per split: " + ", ".join(f"{k} {v / 3600:.3f}" for k, v in sorted(split.items())))
    voice = st.get("voice") or {}
    lines.append("hours per source: " + ", ".join(f"{k} {v / 3600:.3f}" for k, v in sorted(voice.items())))
    drop = manifest.get("dropped") or {}
    lines.append("dropped: " + (", ".join(f"{k} {v}" for k, v in sorted(drop.items(), key=lambda kv: -kv[1])) or "none"))
    for src, d in sorted((manifest.get("dropped_by_source") or {}).items()):
        lines.append(f"  {src}: " + ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)
