"""Score lip-sync systems on real speech (with transcripts) and on held-out synthetic speech.

Real speech: each clip's transcript is force-aligned with pocketsphinx (cached); the alignment
gives the /p b m/, open-vowel and silence intervals and a phone-derived openness curve; each
system animates the audio alone (the ``text`` system, the teacher on the alignment, is shown as a
reference, not a competitor); the default head turns every animation into a lip gap per frame.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..animation import Animation
from ..errors import InputError
from . import metrics

EVAL_FPS = 100.0  # fine enough to resolve lag to a few ms
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data")


@dataclass
class Clip:
    name: str
    path: Path
    transcript: str
    language: str = "en"
    group: str = ""


@dataclass
class ClipScore:
    clip: str
    system: str
    closure: float
    n_bilabial: int
    open_vowel_mm: float
    rest: float
    n_silence: int
    lag_ms: float
    corr: float
    jitter: float
    closed_vowels: float = float("nan")  # share of vowels with the lips shut mid-vowel (lower is better)
    n_vowel: int = 0
    extra: dict = field(default_factory=dict)


def realspeech_clips(directory: str | Path, *, languages=("en",)) -> list[Clip]:
    """Clips listed in ``MANIFEST.tsv`` of the shared real-speech folder."""
    directory = Path(directory)
    manifest = directory / "MANIFEST.tsv"
    if not manifest.is_file():
        raise InputError(f"no MANIFEST.tsv in {directory}")
    clips = []
    with open(manifest, encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if languages and row["language"] not in languages:
                continue
            clips.append(Clip(row["file"], directory / row["file"], row["transcript"], row["language"], "realspeech"))
    return clips


def librivox_clips(root: Path = LIBRIVOX_DIR) -> list[Clip]:
    """Debian pocketsphinx-testdata's LibriVox read speech with its transcription (empty if absent)."""
    clips = []
    trans = root / "librivox" / "transcription"
    if trans.is_file():
        for line in trans.read_text().splitlines():
            if "(" not in line:
                continue
            words, _, fid = line.rpartition("(")
            text = words.replace("<s>", "").replace("</s>", "").strip()
            fid = fid.strip(") ")
            wav = root / "librivox" / f"{fid}.wav"
            if wav.is_file():
                clips.append(Clip(fid, wav, text, "en", "librivox"))
    return clips


def _aligned_phones(clip: Clip, wave: np.ndarray, sample_rate: int):
    """pocketsphinx alignment of a clip's transcript, cached by audio and text hash."""
    from ..cache import cache_dir
    from ..phonetics.align import align
    from ..phonetics.types import PhoneSegment

    key = hashlib.sha1(wave.tobytes() + clip.transcript.encode()).hexdigest()[:16]
    path = cache_dir("eval", "align") / f"{key}.json"
    if path.is_file():
        rows = json.loads(path.read_text())
        return [PhoneSegment(*r) for r in rows]
    result = align(wave, sample_rate, clip.transcript, language=clip.language)
    phones = list(result.phones)
    path.write_text(json.dumps([[p.start, p.end, p.phone, p.label] for p in phones]))
    return phones


def score_animation(anim: Animation, phones, duration: float, face, *, system: str, clip: str) -> ClipScore:
    """All real-speech metrics of one animation against one alignment."""
    anim = anim.resample(EVAL_FPS) if anim.fps != EVAL_FPS else anim
    n = int(round(duration * EVAL_FPS))
    # The lip gap is measured vertically, so a nodding head would change it: lips are judged in
    # the head's own frame (only the expressive layers rotate the head).
    lips = anim.select([c for c in anim.channels if not c.startswith("head.")]) if anim.head is not None else anim
    verts = face.animate(lips)
    opening = np.asarray(face.mouth_opening(verts), np.float64)
    if len(opening) < n:
        opening = np.pad(opening, (0, n - len(opening)), mode="edge")
    opening = opening[:n]
    channels = face.channels
    if anim.meta.get("expressive"):
        # Blinks, gaze and brows are expected in a silence; "at rest" is about the mouth there.
        channels = [c for c in channels if not c.startswith(("eye", "brow", "nose", "cheekSquint"))]
    weights = anim.weights(channels)[:n]
    if len(weights) < n:
        weights = np.pad(weights, ((0, n - len(weights)), (0, 0)), mode="edge")
    closure, n_b = metrics.closure_rate(opening, EVAL_FPS, phones)
    rest, n_s = metrics.silence_at_rest(opening, weights, EVAL_FPS, phones)
    closed_v, n_v = metrics.vowel_closure_rate(opening, EVAL_FPS, phones)
    ref = metrics.openness_curve(phones, EVAL_FPS, n)
    lag, corr = metrics.av_lag(opening, ref, EVAL_FPS)
    return ClipScore(
        clip=clip, system=system, closure=closure, n_bilabial=n_b,
        open_vowel_mm=1000 * metrics.open_vowel_opening(opening, EVAL_FPS, phones),
        rest=rest, n_silence=n_s, lag_ms=1000 * lag, corr=corr,
        jitter=metrics.jitter(opening, EVAL_FPS), closed_vowels=closed_v, n_vowel=n_v,
    )


def default_systems(checkpoint: str | None = None) -> dict[str, Callable]:
    """The systems compared by ``flamesync eval``: the network and the phone-recognition baseline."""
    from ..audio.io import SAMPLE_RATE

    systems: dict[str, Callable] = {}
    cache: dict = {}

    def net():
        from ..net.infer import load_default_model, load_model

        if "net" not in cache:
            cache["net"] = load_model(checkpoint) if checkpoint else load_default_model()
        return cache["net"]

    def model_system(wave, phones):
        return net().predict(wave)

    def baseline_system(wave, phones):
        from ..phonetics.align import recognize_phones
        from ..phonetics.teacher import phones_to_animation

        rec = recognize_phones(wave, SAMPLE_RATE).phones
        return phones_to_animation(rec, fps=EVAL_FPS, duration=len(wave) / SAMPLE_RATE)

    def text_system(wave, phones):
        from ..phonetics.teacher import phones_to_animation

        return phones_to_animation(phones, fps=EVAL_FPS, duration=len(wave) / SAMPLE_RATE)

    def recognised(wave):
        # 'words' and 'fused' hear the same recogniser on the same clip: run it once per clip.
        from ..phonetics.textanimate import recognized_phones

        key = hashlib.sha1(np.ascontiguousarray(wave).tobytes()).hexdigest()
        if cache.get("rec_key") != key:
            cache["rec_key"], cache["rec"] = key, recognized_phones(np.asarray(wave, np.float32))
        return cache["rec"][1]

    def words_system(wave, phones):
        from ..phonetics.teacher import phones_to_animation

        return phones_to_animation(recognised(wave), fps=EVAL_FPS, duration=len(wave) / SAMPLE_RATE)

    def fused_system(wave, phones):
        from ..net.fusion import predict_fused

        return predict_fused(net(), wave, phones=recognised(wave))

    def alive_system(wave, phones):
        from ..expressive import Layers, add_layers

        return add_layers(model_system(wave, phones), wave, Layers())

    systems["model"] = model_system
    systems["alive"] = alive_system
    systems["phones"] = baseline_system
    systems["text"] = text_system
    systems["words"] = words_system
    systems["fused"] = fused_system
    return systems


def evaluate_real(clips: list[Clip], systems: dict[str, Callable], *, face=None) -> list[ClipScore]:
    """Score every system on every clip."""
    from ..audio.io import SAMPLE_RATE, load_audio
    from ..face import load_face
    from ..progress import track

    face = load_face(face)
    scores = []
    for clip in track(clips, desc="eval clips"):
        wave = load_audio(clip.path)
        phones = _aligned_phones(clip, wave, SAMPLE_RATE)
        for name, system in systems.items():
            anim = system(wave, phones)
            sc = score_animation(anim, phones, len(wave) / SAMPLE_RATE, face, system=name, clip=clip.name)
            if anim.meta.get("expressive"):
                from .alive import alive_metrics

                sc.extra["alive"] = alive_metrics(anim, wave, phones, len(wave) / SAMPLE_RATE)
            scores.append(sc)
    return scores


def corpus_clips(corpus_dir, *, split: str = "val", max_per_source: int | None = 150,
                 role: str | None = "select", sources=None, check_share: float = 0.0,
                 check_offset: float = 0.0) -> list[tuple[Clip, object]]:
    """Items of a real-speech corpus split (:mod:`flamesync.data.real`) as evaluation clips.

    Items with distrusted (masked) words are left out, since their reference phones are in doubt.
    With ``role`` (``"select"``, the default), only val items of that half of the held-out speakers
    (:func:`flamesync.data.real.val_role`): the other half is where closure decoders are calibrated.
    With ``role="check"``, the train items of the speakers a training config with this
    ``check_share`` and ``check_offset`` left out (:func:`flamesync.data.real.in_check_set`), whatever
    ``split`` says.
    Per source, at most ``max_per_source`` items, spread evenly over the split. With ``sources``, only
    those sources (an unknown name is an error that lists the corpus's own).

    Returns
    -------
    list of (Clip, CorpusItem): the clip's ``group`` is its source, ``path`` its corpus shard.
    """
    from ..data.corpus import Corpus

    from ..data.real import in_check_set, val_role

    corpus = Corpus(corpus_dir)
    seed = int(corpus.manifest.get("seed", 0))
    if role == "check":
        if not 0.0 < check_share < 1.0:
            raise InputError(f"the check set needs a check share in (0, 1), got {check_share}")
        if not 0.0 <= check_offset <= 1.0 - check_share:
            raise InputError(f"the check offset must be in [0, 1 - check share], got {check_offset}")
        split = "train"
    by_source: dict[str, list] = {}
    known: set[str] = set()
    for item in corpus.items(split):
        source = str(item.meta.get("source", ""))
        known.add(source)
        if item.meta.get("mask"):
            continue
        if role == "check":
            if not in_check_set(item.meta, seed=seed, share=check_share, offset=check_offset):
                continue
        elif role and split == "val" and val_role(item.meta, seed=seed) != role:
            continue
        if sources is None or source in sources:
            by_source.setdefault(source, []).append(item)
    if sources is not None:
        unknown = sorted(set(sources) - known)
        if unknown:
            raise InputError(f"{corpus_dir} has no source {', '.join(unknown)} (it has: {', '.join(sorted(known))})")
    out = []
    for source, items in sorted(by_source.items()):
        if max_per_source is not None and len(items) > max_per_source:
            idx = np.linspace(0, len(items) - 1, max_per_source).round().astype(int)
            items = [items[int(i)] for i in idx]
        for item in items:
            out.append((Clip(f"{source}/{item.meta.get('id')}", corpus.path, item.meta.get("text", ""), "en", source),
                        item))
    return out


def evaluate_corpus(pairs, systems: dict[str, Callable], *, face=None, tempo: float = 1.0,
                    hesitations: bool = False) -> list[ClipScore]:
    """Score every system on corpus items, against the corpus's own aligned phones.

    With ``tempo`` other than 1, each item is first spoken that many times faster at the same pitch
    (:func:`flamesync.phonetics.augment.change_tempo`) and its phone times divided by it: a
    stand-in for fast, casual speech of the same held-out speakers, which the read corpus lacks.
    With ``hesitations``, each item that has a pause, a central vowel and an /m/ first gets an "um"
    made of them (:func:`flamesync.phonetics.augment.insert_hesitation`, a fixed draw per item),
    whose /m/ then counts among the closures: a stand-in for conversational hesitations.
    """
    import zlib

    from ..audio.io import SAMPLE_RATE
    from ..face import load_face
    from ..phonetics.augment import change_tempo, insert_hesitation
    from ..phonetics.types import PhoneSegment
    from ..progress import track

    face = load_face(face)
    scores = []
    for clip, item in track(pairs, desc="eval items"):
        wave, phones, duration = item.audio_float(), item.phones, item.duration
        if hesitations:
            made = insert_hesitation(wave, phones, rng=np.random.default_rng(zlib.crc32(clip.name.encode())),
                                     sample_rate=SAMPLE_RATE)
            if made is not None:
                wave, phones, _ = made
                duration = len(wave) / SAMPLE_RATE
        if tempo != 1.0:
            wave = change_tempo(wave, rate=tempo, sample_rate=SAMPLE_RATE)
            phones = [PhoneSegment(p.start / tempo, p.end / tempo, p.phone, p.label) for p in phones]
            duration = len(wave) / SAMPLE_RATE
        for name, system in systems.items():
            anim = system(wave, phones)
            sc = score_animation(anim, phones, duration, face, system=name, clip=clip.name)
            sc.extra["group"] = clip.group
            scores.append(sc)
    return scores


def summarize_by_group(scores: list[ClipScore]) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`summarize` per ``extra["group"]`` (e.g. the source of each corpus item)."""
    groups = sorted({s.extra.get("group", "") for s in scores})
    return {g: summarize([s for s in scores if s.extra.get("group", "") == g]) for g in groups}


def summarize(scores: list[ClipScore]) -> dict[str, dict[str, float]]:
    """Pooled figures per system: closure over all /p b m/, rest over all long silences, lag median."""
    out = {}
    for system in dict.fromkeys(s.system for s in scores):
        rows = [s for s in scores if s.system == system]

        def pooled(rate_attr, count_attr):
            num = sum(getattr(r, rate_attr) * getattr(r, count_attr) for r in rows if getattr(r, count_attr))
            den = sum(getattr(r, count_attr) for r in rows)
            return num / den if den else float("nan")

        out[system] = {
            "closure": pooled("closure", "n_bilabial"),
            "n_bilabial": sum(r.n_bilabial for r in rows),
            "open_vowel_mm": float(np.nanmean([r.open_vowel_mm for r in rows])),
            "rest": pooled("rest", "n_silence"),
            "n_silence": sum(r.n_silence for r in rows),
            "lag_ms": float(np.nanmedian([r.lag_ms for r in rows])),
            "abs_lag_ms": float(np.nanmedian([abs(r.lag_ms) for r in rows])),
            "corr": float(np.nanmean([r.corr for r in rows])),
            "jitter": float(np.nanmean([r.jitter for r in rows])),
            "closed_vowels": pooled("closed_vowels", "n_vowel"),
            "n_vowel": sum(r.n_vowel for r in rows),
        }
    return out


def format_table(scores: list[ClipScore], summary: dict[str, dict[str, float]]) -> str:
    def f(x, fmt):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    head = f"{'clip':42s} {'system':7s} {'pbm closed':>11s} {'open vowel':>10s} {'rest':>9s} {'lag':>7s} {'corr':>5s} {'jitter':>7s} {'vowels shut':>12s}"
    lines = [head, f"{'':42s} {'':7s} {'':>11s} {'mm':>10s} {'':>9s} {'ms':>7s} {'':>5s} {'m/s2':>7s}", "-" * len(head)]
    for s in scores:
        lines.append(
            f"{s.clip[:42]:42s} {s.system:7s} {f(s.closure, '.0%'):>6s} ({s.n_bilabial:2d}) "
            f"{f(s.open_vowel_mm, '10.1f')} {f(s.rest, '.0%'):>5s} ({s.n_silence}) {f(s.lag_ms, '7.0f')} "
            f"{f(s.corr, '5.2f')} {f(s.jitter, '7.2f')} {f(s.closed_vowels, '.1%'):>6s} ({s.n_vowel:3d})"
        )
    lines.append("-" * len(head))
    for system, m in summary.items():
        lines.append(
            f"{'OVERALL':42s} {system:7s} {f(m['closure'], '.0%'):>6s} ({m['n_bilabial']:2d}) "
            f"{f(m['open_vowel_mm'], '10.1f')} {f(m['rest'], '.0%'):>5s} ({m['n_silence']}) "
            f"{f(m['lag_ms'], '7.0f')} {f(m['corr'], '5.2f')} {f(m['jitter'], '7.2f')} "
            f"{f(m.get('closed_vowels'), '.1%'):>6s} ({m.get('n_vowel', 0):3d})"
        )
    return "\n".join(lines)


def format_groups(by_group: dict[str, dict[str, dict[str, float]]], overall: dict[str, dict[str, float]], *,
                  title: str = "") -> str:
    """One line per (group, system) and the pooled lines: the summary table of a corpus evaluation."""
    def f(x, fmt):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    head = (f"{'source':24s} {'system':7s} {'pbm closed':>13s} {'open vowel':>10s} {'rest':>11s} {'|lag|':>6s} "
            f"{'corr':>5s} {'jitter':>7s} {'vowels shut':>14s}")
    lines = ([title] if title else []) + [head, "-" * len(head)]
    rows = [(g, sysname, m) for g, per in by_group.items() for sysname, m in per.items()]
    rows += [("OVERALL", sysname, m) for sysname, m in overall.items()]
    for g, sysname, m in rows:
        lines.append(f"{g[:24]:24s} {sysname:7s} {f(m['closure'], '.1%'):>6s} ({m['n_bilabial']:4d}) "
                     f"{f(m['open_vowel_mm'], '10.1f')} {f(m['rest'], '.1%'):>6s} ({m['n_silence']:3d}) "
                     f"{f(m['abs_lag_ms'], '6.0f')} {f(m['corr'], '5.2f')} {f(m['jitter'], '7.2f')} "
                     f"{f(m.get('closed_vowels'), '.1%'):>6s} ({m.get('n_vowel', 0):5d})")
    return "\n".join(lines)


def evaluate_synthetic(corpus_dir, *, splits=("val", "test_lang"), max_items: int = 60, checkpoint=None,
                       face=None) -> dict[str, dict[str, float]]:
    """Lip vertex error against the teacher on held-out synthetic voices and languages.

    For each split, up to ``max_items`` utterances (clean audio, as synthesised) are animated by
    the network; the teacher's targets stored in the corpus are the reference. Both drive the
    default head and the lip vertex error is measured there; the /p b m/ closure rate uses the
    corpus's exact phone timings.

    Returns
    -------
    dict
        Per split: ``lve_mm2`` (mean lip vertex error, square millimetres), ``closure`` and
        ``closure_teacher`` (share of /p b m/ closed by the network and by the teacher),
        ``n_items``, ``n_bilabial``.
    """
    from ..data.corpus import Corpus
    from ..face import load_face
    from ..net.infer import load_default_model, load_model
    from ..progress import track

    face = load_face(face)
    net = load_model(checkpoint) if checkpoint else load_default_model()
    corpus = Corpus(corpus_dir)
    fps = float(corpus.manifest["fps"])
    out = {}
    for split in splits:
        lve, closed, closed_ref, n_b, n = [], 0.0, 0.0, 0, 0
        items = []
        for item in corpus.items(split):
            items.append(item)
            if len(items) >= max_items:
                break
        for item in track(items, desc=f"eval {split}"):
            wave = item.audio.astype(np.float32) / 32767.0
            pred = net.predict(wave).resample(fps)
            ref = Animation(fps=fps, channels=item.channels, values=item.targets,
                            meta={"jaw_rotation": "implied"})
            t = min(pred.n_frames, ref.n_frames)
            vp = face.animate(pred.slice_frames(0, t))
            vr = face.animate(ref.slice_frames(0, t))
            lve.append(metrics.lip_vertex_error(vp, vr, face.lip_vertices))
            rate, k = metrics.closure_rate(face.mouth_opening(vp), fps, item.phones)
            rate_ref, _ = metrics.closure_rate(face.mouth_opening(vr), fps, item.phones)
            if k:
                closed += rate * k
                closed_ref += rate_ref * k
                n_b += k
            n += 1
        out[split] = {
            "lve_mm2": float(np.mean(lve) * 1e6) if lve else float("nan"),
            "closure": closed / n_b if n_b else float("nan"),
            "closure_teacher": closed_ref / n_b if n_b else float("nan"),
            "n_items": n, "n_bilabial": n_b,
        }
    return out


TARGETS = {"closure": 0.90, "abs_lag_ms": 33.0, "rest": 0.95}


def target_report(summary: dict[str, dict[str, float]]) -> list[tuple[str, str, bool]]:
    """Each target of the shipped model as (what, measured, met), including "beats the baseline"."""
    m = summary.get("model")
    if m is None:
        return []
    rows = [
        ("lips close on >= 90% of /p b m/", f"{m['closure']:.1%}", m["closure"] >= TARGETS["closure"]),
        ("|lag| <= 33 ms (median over clips)", f"{m['abs_lag_ms']:.0f} ms", m["abs_lag_ms"] <= TARGETS["abs_lag_ms"]),
        (">= 95% of long silences at rest", f"{m['rest']:.1%}", m["rest"] >= TARGETS["rest"]),
    ]
    b = summary.get("phones")
    if b is not None:
        ref = summary.get("text", {}).get("open_vowel_mm", float("nan"))
        better = {
            "closure": m["closure"] > b["closure"],
            "abs_lag_ms": m["abs_lag_ms"] < b["abs_lag_ms"],
            "rest": m["rest"] >= b["rest"],
            "corr": m["corr"] > b["corr"],
            "jitter": m["jitter"] < b["jitter"],
            "open_vowel_mm (closer to the text reference)": abs(m["open_vowel_mm"] - ref) < abs(b["open_vowel_mm"] - ref),
            "closed_vowels (fewer)": m.get("closed_vowels", math.nan) <= b.get("closed_vowels", math.nan),
        }
        for k, ok in better.items():
            rows.append((f"better than the phone-recognition baseline: {k}", "yes" if ok else "no", ok))
    return rows


def _hours(seconds_by_key) -> str:
    if not isinstance(seconds_by_key, dict):
        return "-"
    return ", ".join(f"{k} {v / 3600:.2f}" for k, v in sorted(seconds_by_key.items(), key=lambda kv: -kv[1]))


def attributions(source_dir) -> list[str]:
    """The ``Attribution:`` paragraphs of a speech folder's README.md (empty if it has none)."""
    readme = Path(source_dir) / "README.md"
    if not readme.is_file():
        return []
    out, cur = [], None
    for line in readme.read_text("utf-8").splitlines():
        if line.startswith("Attribution:"):
            cur = [line.strip()]
            out.append(cur)
        elif cur is not None and line.strip() and not line.startswith("#"):
            cur.append(line.strip())
        else:
            cur = None
    return [" ".join(p) for p in out]


def real_corpus_lines(meta: dict) -> list[str]:
    """Model-card lines for the real speech a network was trained on, with its attribution."""
    lines = []
    for rc in meta.get("real_corpora") or ():
        st = rc.get("stats") or {}
        cfg = rc.get("config") or {}
        drop = rc.get("dropped") or {}
        lines += [
            f"- real speech (`flamesync data real`, layout {rc.get('layout')}): {st.get('seconds', float('nan')) / 3600:.2f} h "
            f"in {st.get('utterances')} of {cfg.get('recordings')} recordings kept; per split {_hours(st.get('split'))}; "
            f"per source {_hours({k.split(':', 1)[-1]: v for k, v in (st.get('voice') or {}).items()})}; speakers "
            f"{json.dumps(rc.get('speakers'))}; dropped {json.dumps(drop)}",
        ]
        credits = attributions(rc["source"]) if rc.get("source") else []
        if credits:
            lines += ["", "Real training speech, with the attribution its licences ask for "
                      f"(from `{Path(rc['source']).name}/README.md`; licence texts in its `LICENSES/`):", ""]
            lines += [f"  - {c}" for c in credits]
            lines.append("")
    if meta.get("init"):
        lines.append(f"- fine-tuned from: `{meta['init']}`")
    if meta.get("averaged_from"):
        lines.append(f"- weights: the element-wise mean of {len(meta['averaged_from'])} networks fine-tuned from one "
                     f"start (the training config above is the first one's): "
                     + ", ".join(f"`{Path(p).parent.name}/{Path(p).name}`" for p in meta["averaged_from"]))
    refit_map = bool(((meta.get("train_config") or {}).get("calibration") or {}).get("amplitude_map"))
    if meta.get("recalibrated_from"):
        what = "closure decoder and amplitude map" if refit_map and meta.get("amplitude_map") else "closure decoder"
        lines.append(f"- {what} recalibrated from: `{Path(meta['recalibrated_from']).name}`")
    if meta.get("amplitude_map"):
        lines.append("- amplitude map (the network's opening channels mapped quantile by quantile onto the "
                     f"teacher's): {', '.join(sorted(meta['amplitude_map']))}")
    return lines


def model_card(meta: dict, scores, summary, synthetic: dict | None, command: str, *,
               real_val: dict | None = None) -> str:
    """A Markdown model card from the checkpoint's metadata and this evaluation.

    ``real_val`` is the ``--real-val`` result (``overall``, ``by_source``, ``corpus``) when measured.
    """
    import datetime

    tc = meta.get("train_config", {})
    corpus = meta.get("corpus") or {}
    stats = corpus.get("stats") or {}
    lines = [
        "# flamesync default model",
        "",
        f"Written by `{command}` on {datetime.date.today().isoformat()}; every figure below comes from that run",
        "and from the checkpoint's own metadata.",
        "",
        "## Network",
        f"- parameters: {meta.get('parameters')}",
        f"- model config: `{json.dumps(meta.get('model'))}`",
        f"- features: `{json.dumps(meta.get('features'))}`",
        f"- output: {len(meta.get('channels', []))} channels at {meta.get('fps')} fps (ARKit speech channels; jaw rotation implied)",
        "",
        "## Training",
        f"- steps: {meta.get('step')}, seed {meta.get('seed')}, training time {meta.get('train_seconds', float('nan')) / 60:.1f} min (CPU, 2 cores)",
        f"- train config: `{json.dumps(tc.get('train'))}`",
        f"- corpus seed: {corpus.get('seed')}; {stats.get('seconds', float('nan')) / 3600:.2f} h of synthetic speech "
        f"in {stats.get('utterances')} utterances",
        f"- hours per split: {_hours(stats.get('split'))}",
        f"- hours per engine: {_hours(stats.get('engine'))}",
    ]
    for extra in meta.get("extra_corpora") or ():
        st = extra.get("stats") or {}
        cfg = extra.get("config") or {}
        lines += [
            f"- extra corpus (seed {extra.get('seed')}; engines {', '.join(cfg.get('engines') or [])}, "
            f"English share {cfg.get('english_share')}, voice-changed share {cfg.get('gender_share')}): "
            f"{st.get('seconds', float('nan')) / 3600:.2f} h in {st.get('utterances')} utterances; "
            f"per split {_hours(st.get('split'))}; per engine {_hours(st.get('engine'))}",
        ]
    lines += real_corpus_lines(meta)
    cal = meta.get("calibration") or {}
    lines += [
        f"- closure calibration ({cal.get('data', 'noisy, reverberant held-out synthetic voices')}): `{json.dumps(cal)}`",
        "",
        "## Evaluation on real speech (never trained on)",
        "Systems hear audio only; the transcript is used only to align the reference phones.",
        "`model` = this network, `phones` = pocketsphinx phone recognition + teacher (baseline),",
        "`text` = teacher on the aligned transcript (reference, not audio-only).",
        "",
        "```",
        format_table(scores, summary),
        "```",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for what, value, ok in target_report(summary):
        lines.append(f"| {what} | {value} | {'yes' if ok else 'NO'} |")
    if real_val:
        lines += ["", "## Real speech of held-out speakers (the real corpus's val split, \"select\" half)",
                  "Speakers never trained on, and not those the closure decoder was calibrated on; every rule",
                  "that chose a shipped network held it to bars here (EXPERIMENTS.md).", "", "```",
                  format_groups(real_val["by_source"], real_val["overall"], title=str(real_val.get("corpus", ""))),
                  "```"]
    if synthetic:
        lines += ["", "## Held-out synthetic speech (voices and languages not in training)", "",
                  "| split | items | lip vertex error (mm^2) | p/b/m closed: model | p/b/m closed: teacher |",
                  "|---|---|---|---|---|"]
        for split, r in synthetic.items():
            lines.append(f"| {split} | {r['n_items']} | {r['lve_mm2']:.3f} | {r['closure']:.1%} | {r['closure_teacher']:.1%} |")
    return "\n".join(lines) + "\n"
