"""Generate the synthetic training corpus: TTS speech with exact phone timings plus teacher targets.

The corpus is a folder of shards, each a ``.npz`` file (no pickle) holding a few minutes of speech:
raw audio at 16 kHz (int16, not augmented: the trainer augments on the fly), the teacher's target
animation at 50 fps, the phone segments and per-utterance metadata. Everything about a shard
follows from the corpus seed and the shard's index, so shards can be made in any order, in parallel
processes, and a re-run skips the shards that are already there (each is written atomically).

Splits keep evaluation honest: ``train``; ``val``, made only with voices that ``train`` never uses
(held-out espeak variants, flite and festival voices); ``test_lang``, made only in languages that
``train`` never uses.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FlamesyncError, InputError

FORMAT = "flamesync.corpus"
VERSION = 1
FPS = 50.0
SAMPLE_RATE = 16000
SPLITS = ("train", "val", "test_lang")

# espeak-ng voices. Variants in VAL_VARIANTS never appear in train; neither do VAL voices of the
# other engines. Variant names are espeak-ng's files in espeak-ng-data/voices/!v.
ESPEAK_ENGLISH = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
                  "en-gb-x-gbclan", "en-gb-x-gbcwmd")
TRAIN_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f5", "klatt", "klatt3",
                  "klatt4", "Andy", "Annie", "Denis", "Michael", "steph", "Alicia", "Lee", "linda",
                  "paul", "rob", "Storm", "zac", "adam", "belinda", "benjamin", "caleb", "david",
                  "john", "max", "edward", "iven", "quincy", "Gene", "Hugo", "anika", "aunty")
VAL_VARIANTS = ("f4", "m6", "klatt2", "travis", "Jacky", "shelby", "victor", "grandma")
VAL_VOICES = {"flite": ("rms",), "festival": ("ked", "ked_diphone")}
DEFAULT_LANGUAGES = ("de", "fr", "es", "pt", "pl", "ru", "sv", "cs", "fi", "hu", "tr", "ro", "id",
                     "sw", "hr", "da", "it", "nl")
DEFAULT_TEST_LANGUAGES = ("it", "nl")
ENGINE_SHARE = {"espeak": 0.6, "flite": 0.25, "festival": 0.15}  # of English utterances


@dataclass(frozen=True)
class SynthConfig:
    """What a corpus is made of. Everything that changes shard contents is in :meth:`key`."""

    hours: float
    seed: int = 0
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    test_languages: tuple[str, ...] = DEFAULT_TEST_LANGUAGES
    english_share: float = 0.6
    gender_share: float = 0.35
    engines: tuple[str, ...] = ("espeak", "flite", "festival")
    shard_seconds: float = 180.0
    fps: float = FPS
    sample_rate: int = SAMPLE_RATE
    fillers: float = 0.0

    def key(self) -> str:
        d = asdict(self)
        d.pop("hours")  # more hours = more shards of the same kind
        if not d["fillers"]:
            d.pop("fillers")  # corpora made before fillers existed keep their key
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def n_shards(self) -> int:
        return max(len(SPLITS), int(math.ceil(self.hours * 3600.0 / self.shard_seconds)))

    def train_languages(self) -> tuple[str, ...]:
        return tuple(l for l in self.languages if l not in self.test_languages)


def split_of_shard(index: int) -> str:
    """Shards cycle through splits: 10% val, 5% test_lang, the rest train."""
    r = index % 20  # the first three shards cover all splits, so tiny corpora have each
    return "val" if r in (1, 11) else "test_lang" if r == 2 else "train"


def shard_name(index: int) -> str:
    return f"{split_of_shard(index)}/shard-{index:05d}.npz"


# ------------------------------------------------------------------------------------ planning
def _voices_for(engine: str, split: str) -> list[str]:
    from ..phonetics import get_engine

    eng = get_engine(engine)
    held = set(VAL_VOICES.get(engine, ()))
    voices = sorted(eng.voices())
    if engine == "espeak":
        return voices
    chosen = [v for v in voices if (v in held) == (split == "val")]
    return chosen


def _choose_spec(cfg: SynthConfig, split: str, rng: np.random.Generator, available: dict[str, list[str]]) -> dict:
    """One utterance's engine, voice, language and prosody."""
    if split == "test_lang":
        language = str(rng.choice(cfg.test_languages))
    elif rng.random() < cfg.english_share or not cfg.train_languages():
        language = "en"
    else:
        language = str(rng.choice(cfg.train_languages()))
    variants = VAL_VARIANTS if split == "val" else TRAIN_VARIANTS
    engine = "espeak"
    if language == "en":
        names = [e for e in ENGINE_SHARE if e in cfg.engines and available.get(e)]
        p = np.array([ENGINE_SHARE[e] for e in names])
        engine = str(rng.choice(names, p=p / p.sum()))
    if engine == "espeak":
        base = str(rng.choice(ESPEAK_ENGLISH)) if language == "en" else language
        variant = str(rng.choice(variants))
        voice = base + ("+" + variant if variant else "")
        rate = float(np.exp(rng.uniform(np.log(0.75), np.log(1.7))))
        pitch = float(np.exp(rng.uniform(np.log(0.75), np.log(1.4))))
    else:
        voice = str(rng.choice(available[engine]))
        rate = float(np.exp(rng.uniform(np.log(0.8), np.log(1.45))))
        pitch = None
    gender = None
    if rng.random() < cfg.gender_share:
        gender = {
            "formant_shift": float(np.exp(rng.uniform(np.log(0.85), np.log(1.2)))),
            "pitch_factor": float(np.exp(rng.uniform(np.log(0.7), np.log(1.5)))),
            "pitch_range": float(rng.uniform(0.7, 1.4)),
            "duration_factor": float(np.exp(rng.uniform(np.log(0.85), np.log(1.15)))),
        }
    return {"language": language, "engine": engine, "voice": voice, "rate": rate, "pitch": pitch,
            "gender": gender}


# ------------------------------------------------------------------------------------ one shard
def _to_16k_int16(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate != SAMPLE_RATE:
        import soxr  # librosa's resampler, without librosa's import time

        audio = soxr.resample(np.asarray(audio, np.float32), rate, SAMPLE_RATE, quality="HQ")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0.99:  # only to avoid clipping; levels otherwise stay as the engine made them
        audio = audio * (0.99 / peak)
    return np.round(np.asarray(audio) * 32767.0).astype(np.int16)


def _change_gender(utt, params: dict, seed: int):
    """Praat voice change in a forked child with a time limit.

    Praat's "Change gender" can spin for many minutes on rare inputs (seen on a Romanian espeak
    utterance at 22 kHz); such an utterance keeps its own voice instead of stalling the shard.
    The limit is generous (30 s plus 20x real time), so on any working machine the outcome
    depends only on the input and the seed.
    """
    import select

    import numpy as np

    from ..phonetics.augment import change_voice

    kwargs = dict(
        formant_ratio=params["formant_shift"],
        pitch_factor=params["pitch_factor"],
        pitch_range=params["pitch_range"],
        duration_factor=params["duration_factor"],
        seed=seed,
    )
    # os.fork rather than multiprocessing: shards already run in daemonic pool workers, which may
    # not start multiprocessing children. The child sends back raw float32 samples (or nothing on
    # error, and the parent reruns the call to raise the same error itself).
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        from ..forking import single_threaded_child

        single_threaded_child()
        os.close(read_fd)
        code = 0
        try:
            # Only the samples cross the pipe; with_changed_voice rebuilds the same utterance
            # (fitting already-fitted audio and rescaling times by the same ratio are exact).
            data = np.ascontiguousarray(change_voice(utt, **kwargs).audio, np.float32).tobytes()
            with os.fdopen(write_fd, "wb") as fh:
                fh.write(len(data).to_bytes(8, "little") + data)
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(write_fd)
    limit = 30.0 + 20.0 * len(utt.audio) / utt.sample_rate
    chunks, deadline = [], time.monotonic() + limit
    with os.fdopen(read_fd, "rb", buffering=0) as fh:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fh], [], [], remaining)[0]:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                warnings.warn(f"Praat voice change timed out after {limit:.0f} s; keeping the original voice")
                return utt
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    blob = b"".join(chunks)
    if status != 0 or len(blob) < 8:
        return change_voice(utt, **kwargs)  # raises the child's error here, with its message
    from ..phonetics.augment import with_changed_voice

    kwargs.pop("seed")
    return with_changed_voice(utt, np.frombuffer(blob[8:], dtype=np.float32).copy(), **kwargs)


def synth_shard(cfg: SynthConfig, index: int, out_dir: Path, available: dict[str, list[str]]) -> dict:
    """Make shard ``index`` (if missing) and return its statistics."""
    from ..phonetics import get_engine
    from ..phonetics.teacher import phones_to_animation
    from ..channels import SPEECH_CHANNELS, JAW_ROTATION
    from .text import text_generator

    path = out_dir / shard_name(index)
    if path.is_file():
        try:
            return read_shard_stats(path, expect_key=cfg.key())
        except InputError:
            raise
        except Exception:
            pass  # unreadable leftover: make it again
    split = split_of_shard(index)
    rng = np.random.default_rng([cfg.seed, index, 1])
    texts: dict[str, Any] = {}
    audio, targets, phones, metas = [], [], [], []
    total = 0.0
    attempts = 0
    while total < cfg.shard_seconds and attempts < 400:
        attempts += 1
        spec = _choose_spec(cfg, split, rng, available)
        lang = spec["language"]
        if lang not in texts:
            texts[lang] = text_generator(lang, int(rng.integers(2**31)), fillers=cfg.fillers)
        text = texts[lang].sentence()
        try:
            utt = get_engine(spec["engine"]).synthesize(
                text, voice=spec["voice"], rate=spec["rate"], pitch=spec["pitch"], seed=index)
            if spec["gender"] is not None:
                utt = _change_gender(utt, spec["gender"], seed=int(rng.integers(2**31)))
        except FlamesyncError as exc:  # unspeakable text or a voice this machine lacks: skip it
            warnings.warn(f"corpus shard {index}: skipped {text[:40]!r} ({exc})")
            continue
        a16 = _to_16k_int16(utt.audio, utt.sample_rate)
        dur = len(a16) / SAMPLE_RATE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            anim = phones_to_animation(utt.phones, fps=cfg.fps, duration=dur)
        audio.append(a16)
        targets.append(anim.values)
        phones.append(list(utt.phones))
        metas.append({
            "id": f"{index:05d}-{len(metas):03d}", "text": text, "engine": utt.engine, "voice": spec["voice"],
            "language": lang, "rate": spec["rate"], "pitch": spec["pitch"], "gender": spec["gender"],
            "split": split, "duration": dur,
            "words": [[round(w.start, 4), round(w.end, 4), w.word] for w in utt.words],
        })
        total += dur
    if not metas:
        raise InputError(f"corpus shard {index}: no utterance could be synthesized")
    channels = tuple(SPEECH_CHANNELS) + JAW_ROTATION
    header = {"format": FORMAT + ".shard", "version": VERSION, "key": cfg.key(), "index": index,
              "split": split, "fps": cfg.fps, "sample_rate": SAMPLE_RATE, "channels": list(channels),
              "seed": cfg.seed}
    return write_shard(path, audio=audio, targets=targets, phones=phones, metas=metas, header=header)


def write_shard(path: Path, *, audio: list[np.ndarray], targets: list[np.ndarray], phones: list[list],
                metas: list[dict], header: dict) -> dict:
    """Write one shard atomically (the format :func:`flamesync.data.corpus.read_shard` reads).

    Parameters
    ----------
    audio : per utterance, int16 samples, shape (N_i,)
    targets : per utterance, float32 targets, shape (T_i, C)
    phones : per utterance, list of PhoneSegment
    metas : per utterance, a JSON-ready dict (``duration``, ``engine``, ``voice``, ``language``,
        ``split`` and ``gender`` feed the statistics)
    header : JSON-ready shard header

    Returns
    -------
    dict : the shard's statistics
    """
    from ..fileio import atomic_path

    stats = _shard_stats(metas, [p.phone for ph in phones for p in ph])
    off = lambda arrs: np.concatenate([[0], np.cumsum([len(a) for a in arrs])]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                audio=np.concatenate(audio), audio_offsets=off(audio),
                targets=np.concatenate(targets).astype(np.float32), target_offsets=off(targets),
                phone_start=np.array([p.start for ph in phones for p in ph], np.float64),
                phone_end=np.array([p.end for ph in phones for p in ph], np.float64),
                phone_label=np.array([p.phone for ph in phones for p in ph], dtype=str),
                phone_offsets=off(phones),
                meta=np.array(json.dumps(metas, ensure_ascii=False)),
                header=np.array(json.dumps(header)), stats=np.array(json.dumps(stats, ensure_ascii=False)),
            )
    return stats


def _shard_stats(metas: list[dict], phones: list[str]) -> dict:
    st: dict[str, Any] = {"seconds": 0.0, "utterances": len(metas), "engine": {}, "voice": {},
                          "language": {}, "split": {}, "gender_changed": 0.0, "phones": {}}
    for m in metas:
        d = m["duration"]
        st["seconds"] += d
        for k in ("engine", "language", "split"):
            st[k][m[k]] = st[k].get(m[k], 0.0) + d
        v = f"{m['engine']}:{m['voice']}"
        st["voice"][v] = st["voice"].get(v, 0.0) + d
        if m["gender"]:
            st["gender_changed"] += d
    for p in phones:
        st["phones"][p] = st["phones"].get(p, 0) + 1
    return st


def read_shard_stats(path: Path, *, expect_key: str | None = None) -> dict:
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["header"]))
        stats = json.loads(str(z["stats"]))
    if expect_key is not None and header.get("key") != expect_key:
        raise InputError(
            f"{path.parent.parent} holds a corpus made with other settings (seed, languages or shard "
            "size); use another --out or the same settings"
        )
    return stats


def merge_stats(parts: list[dict]) -> dict:
    out: dict[str, Any] = {"seconds": 0.0, "utterances": 0, "engine": {}, "voice": {}, "language": {},
                           "split": {}, "gender_changed": 0.0, "phones": {}}
    for st in parts:
        out["seconds"] += st["seconds"]
        out["utterances"] += st["utterances"]
        out["gender_changed"] += st["gender_changed"]
        for k in ("engine", "voice", "language", "split", "phones"):
            for name, v in st[k].items():
                out[k][name] = out[k].get(name, 0) + v
    return out


# ------------------------------------------------------------------------------------ driver
def _worker(job: tuple) -> tuple[int, dict, float]:
    cfg, index, out_dir, available = job
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = synth_shard(cfg, index, Path(out_dir), available)
    return index, stats, time.perf_counter() - t0


def _preload() -> None:
    """Import and load, once in the parent, what every worker needs (inherited through fork)."""
    import soxr  # noqa: F401
    from scipy import ndimage  # noqa: F401

    from ..phonetics import augment, engines  # noqa: F401
    from ..phonetics.teacher import load_tables
    from .text import _cmu_words, language_material

    load_tables()
    language_material()
    _cmu_words()


def _available_voices(cfg: SynthConfig) -> dict[str, dict[str, list[str]]]:
    """Per split, the voices of each non-espeak engine that this machine has."""
    out: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    for engine in cfg.engines:
        if engine == "espeak":
            for s in SPLITS:
                out[s]["espeak"] = ["*"]
            continue
        try:
            for s in SPLITS:
                out[s][engine] = _voices_for(engine, s)
        except FlamesyncError as exc:
            warnings.warn(f"corpus: engine {engine} unavailable ({exc}); continuing without it")
    return out


def synthesize_corpus(
    out_dir: str | Path,
    *,
    hours: float,
    seed: int = 0,
    workers: int | None = None,
    languages: tuple[str, ...] | None = None,
    test_languages: tuple[str, ...] | None = None,
    shard_seconds: float | None = None,
    engines: tuple[str, ...] | None = None,
    gender_share: float = 0.35,
    english_share: float = 0.6,
    fillers: float = 0.0,
) -> dict:
    """Make (or finish) a corpus in ``out_dir``; return its manifest.

    Parameters
    ----------
    out_dir : path
        Corpus folder (created). Shards already there are kept if they were made with the same
        settings.
    hours : float
        Amount of speech to make (at least; shards end at utterance boundaries).
    seed : int
        Everything random (texts, voices, rates, voice changes, splits) follows from it.
    workers : int or None
        Processes (default: CPU count).
    languages : tuple of str or None
        espeak-ng languages besides English (default :data:`DEFAULT_LANGUAGES`).
    test_languages : tuple of str or None
        Languages only in the ``test_lang`` split (default ``it``, ``nl``, when present).
    shard_seconds : float or None
        Speech per shard; default 180 s, or less for small corpora so every split gets shards.
        A re-run reuses the folder's value.
    engines : tuple of str or None
        Engines for English (default espeak, flite, festival).
    gender_share : float
        Share of utterances given a Praat "change gender" voice transformation.
    english_share : float
        Share of train/val utterances in English (the rest are espeak-ng in ``languages``).
    fillers : float
        Share of English word slots that become hesitations ("um", "uh", "er"), in [0, 0.5].
    """
    from ..fileio import atomic_write_text
    from ..progress import track
    from .text import language_material

    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise InputError(f"--hours must be a positive number, got {hours!r}")
    if not (isinstance(fillers, (int, float)) and 0.0 <= fillers <= 0.5):
        raise InputError(f"--fillers must be a share between 0 and 0.5, got {fillers!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    old = None
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except ValueError:
            old = None
    languages = tuple(languages) if languages is not None else DEFAULT_LANGUAGES
    known = language_material()
    bad = [l for l in languages if l.split("-")[0] != "en" and l not in known]
    if bad:
        raise InputError(f"no corpus text material for language(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    languages = tuple(l for l in languages if l.split("-")[0] != "en")
    if test_languages is None:
        test_languages = tuple(l for l in DEFAULT_TEST_LANGUAGES if l in languages) or languages[-1:]
    if not test_languages:
        raise InputError("the test_lang split needs at least one language besides English (--languages)")
    bad = [l for l in test_languages if l not in known]
    if bad:
        raise InputError(f"no corpus text material for test language(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    if shard_seconds is None:
        shard_seconds = (old or {}).get("config", {}).get("shard_seconds") or min(180.0, hours * 3600.0 / 20)
    cfg = SynthConfig(hours=float(hours), seed=int(seed), languages=languages,
                      test_languages=tuple(test_languages), shard_seconds=float(shard_seconds),
                      engines=tuple(engines) if engines else ("espeak", "flite", "festival"),
                      gender_share=float(gender_share), english_share=float(english_share),
                      fillers=float(fillers))
    if old and old.get("key") not in (None, cfg.key()):
        raise InputError(
            f"{out_dir} holds a corpus made with other settings (seed, languages or shard size); "
            "use another --out or the same settings"
        )
    available = _available_voices(cfg)
    manifest = {"format": FORMAT, "version": VERSION, "key": cfg.key(), "complete": False,
                "fps": cfg.fps, "sample_rate": SAMPLE_RATE, "seed": cfg.seed, "config": asdict(cfg),
                "shards": {s: [] for s in SPLITS}, "stats": {}}
    from ..channels import JAW_ROTATION, SPEECH_CHANNELS

    manifest["channels"] = list(SPEECH_CHANNELS) + list(JAW_ROTATION)
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1, ensure_ascii=False))

    jobs = [(cfg, i, str(out_dir), available[split_of_shard(i)]) for i in range(cfg.n_shards)]
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(jobs)))
    results: dict[int, dict] = {}
    t0 = time.perf_counter()
    _preload()
    from ..forking import fork_pool

    # One fresh forked process per shard: espeak-ng carries synthesis state from one call to the
    # next (its output depends on what it spoke before), so a shard is reproducible only when it
    # starts from the same state whatever ran earlier. Forking after _preload makes this cheap.
    with fork_pool(workers, maxtasksperchild=1) as pool:
        for index, stats, _ in track(pool.imap_unordered(_worker, jobs), total=len(jobs), desc="synth shards"):
            results[index] = stats
    wall = time.perf_counter() - t0
    stats = merge_stats([results[i] for i in sorted(results)])
    stats["wall_seconds_last_run"] = wall
    manifest["shards"] = {s: [shard_name(i) for i in sorted(results) if split_of_shard(i) == s] for s in SPLITS}
    manifest["stats"] = stats
    manifest["complete"] = True
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


def format_stats(stats: dict, *, top: int = 12) -> str:
    """Human-readable corpus statistics: hours per split/engine/language/voice, phone coverage."""
    lines = [f"speech: {stats['seconds'] / 3600:.3f} h in {stats['utterances']} utterances "
             f"({stats.get('gender_changed', 0) / max(stats['seconds'], 1e-9):.0%} voice-changed)"]
    for key in ("split", "engine", "language", "voice"):
        items = sorted(stats[key].items(), key=lambda kv: -kv[1])
        shown = items if key != "voice" else items[:top]
        lines.append(f"hours per {key} ({len(items)}): " + ", ".join(f"{k} {v / 3600:.3f}" for k, v in shown)
                     + (" ..." if len(shown) < len(items) else ""))
    phones = stats["phones"]
    try:
        from ..phonetics.phoneset import inventory

        inv = [p for p in inventory() if p != "_"]
        seen = [p for p in inv if p in phones]
        missing = [p for p in inv if p not in phones]
        lines.append(f"phone coverage: {len(seen)}/{len(inv)} inventory phones"
                     + (f" (missing: {' '.join(missing)})" if missing else ""))
    except Exception:  # inventory unavailable: report what was seen
        lines.append(f"phones seen: {len(phones)}")
    rare = sorted(phones.items(), key=lambda kv: kv[1])[:10]
    lines.append("rarest phones: " + ", ".join(f"{p} {n}" for p, n in rare))
    return "\n".join(lines)
