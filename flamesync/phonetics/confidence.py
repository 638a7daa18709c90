"""How far to trust a forced alignment: each word's acoustic fit against a free phone loop.

A forced aligner always returns an answer, even for a transcript of other speech. The usual check
(as in goodness-of-pronunciation scoring) compares two searches over the same audio: the path the
transcript forces, and the best path of a free phone loop, which no transcript constrains. Where
the transcript is right the two explain the frames about equally well; where it is wrong (a word
not said, a misread word, a mispronunciation, noise aligned as speech) the forced path is much
worse. pocketsphinx scores both searches relative to each frame's best senone, so their acoustic
log-likelihoods can be subtracted frame range by frame range.

A transcript can also leave speech unexplained: one word of a sentence aligns, the rest of the
audio goes to "silence". The share of speech-level energy inside aligned pauses catches that.

Units: scores are pocketsphinx's scaled log-likelihoods per 10 ms frame (natural log of its
reported probabilities, times :data:`SCALE`), so that typical values are of order 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

# When a transcript is not what the audio says (``transcript_mismatch``). Chosen on 120 random
# realtrain clips (seed 0; read sentences and commands, 1-10 s) aligned to their own transcript and
# to wrong ones (three short phrases, another clip's text), by the rule written first: the most wrong
# transcripts caught with at most 3% of right ones refused. Result there: 2.5% of right transcripts
# refused, 85% of wrong ones caught (docs/phonetics.md, "Is the transcript right?").
MIN_SCORE = -3.0              # mean word fit per frame of the whole transcript
MAX_UNEXPLAINED_SPEECH = 0.3  # share of the loud frames that the alignment calls pauses
MIN_PHONE_RATE = 3.0          # phones per second of aligned speech: fewer means words stretched over other speech
BAD_WORD_BELOW = -4.5         # a word fitting worse than this is not there...
MAX_BAD_WORD_SHARE = 0.34     # ...and more such words than this condemn the transcript

SCALE = 1024.0  # pocketsphinx shifts senone scores by 10 bits; undo it so thresholds read as ordinary numbers
FRAME_SAMPLES = 160  # 10 ms at 16 kHz


@dataclass(frozen=True)
class AlignmentConfidence:
    """Per-word and whole-utterance fit of a forced alignment.

    Attributes
    ----------
    words : tuple of float
        Per dictionary word of the transcript (``utt.meta["dict_words"]``), the forced path's
        log-likelihood minus the phone loop's over the word's frames, per frame (0 or a little
        below: a fit as good as the free loop; strongly negative: the word is not there).
    score : float
        The frame-weighted mean of ``words``.
    speech_in_pauses : float
        Share of the frames aligned to pauses whose energy is within 15 dB of the utterance's
        speech level (the transcript leaves that speech unexplained).
    unexplained_speech : float
        Share of the loud frames (within 15 dB of the clip's 90th-percentile frame energy) that are
        aligned to pauses. Unlike ``speech_in_pauses`` it does not swing when the pauses are few.
    phone_rate : float
        Phones per second of the audio aligned to words (NaN when the phone count is not given).
    """

    words: tuple[float, ...]
    score: float
    speech_in_pauses: float
    unexplained_speech: float = float("nan")
    phone_rate: float = float("nan")

    def to_dict(self) -> dict:
        return {"words": [round(w, 4) for w in self.words], "score": round(self.score, 4),
                "speech_in_pauses": round(self.speech_in_pauses, 4),
                "unexplained_speech": round(self.unexplained_speech, 4), "phone_rate": round(self.phone_rate, 3)}


def _loop_per_frame(loop: list[tuple[str, int, int, float]], n_frames: int) -> np.ndarray:
    """Spread each phone-loop segment's log-likelihood evenly over its frames, shape (n_frames,)."""
    out = np.zeros(n_frames, np.float64)
    for _, a, b, ll in loop:
        a, b = max(0, int(a)), min(n_frames - 1, int(b))
        if b >= a:
            out[a: b + 1] = ll / (b - a + 1)
    return out


def frame_energy_db(x: np.ndarray, n_frames: int, *, block_frames: int = 1 << 12) -> np.ndarray:
    """Energy per 10 ms frame in dB, shape (n_frames,); computed in blocks of frames (``x`` is only
    sliced, so it may be a :class:`~flamesync.audio.SampleFile`), so long audio needs no float64
    copy of itself and the temporaries stay at a few MB (the same numbers as one pass)."""
    out = np.empty(n_frames, np.float64)
    for a in range(0, n_frames, block_frames):
        b = min(n_frames, a + block_frames)
        seg = np.asarray(x[a * FRAME_SAMPLES: b * FRAME_SAMPLES], np.float64)
        seg = np.pad(seg, (0, (b - a) * FRAME_SAMPLES - len(seg)))
        out[a:b] = 10.0 * np.log10(np.mean(seg.reshape(b - a, FRAME_SAMPLES) ** 2, axis=1) + 1e-12)
    return out


def score_alignment(word_scores: "list | np.ndarray", loop: list[tuple[str, int, int, float]], audio: np.ndarray, *,
                    n_words: int, n_phones: int | None = None) -> AlignmentConfidence:
    """Compare a forced alignment with a free phone loop over the same audio.

    Parameters
    ----------
    word_scores : list of [word index, first frame, last frame, log-likelihood], or np.ndarray
        ``utt.meta["word_scores"]`` of :func:`flamesync.phonetics.align.align`, or the same rows as an
        array of shape (S, 4) (:attr:`flamesync.phonetics.align.PackedAlignment.word_scores`); index -1
        marks pauses.
    loop : list of (name, first frame, last frame, log-likelihood), or np.ndarray
        :func:`flamesync.phonetics.align.phone_loop` on the same audio, or its log-likelihoods
        already spread evenly over each segment's frames, shape (frames,).
    audio : np.ndarray, shape (N,), or SampleFile
        The 16 kHz audio both were decoded from (only sliced).
    n_words : int
        Number of dictionary words in the transcript.
    n_phones : int or None
        Number of phones the words were aligned as (for ``phone_rate``).

    Returns
    -------
    AlignmentConfidence
    """
    if isinstance(loop, np.ndarray):  # already spread over its frames
        per_frame = np.asarray(loop, np.float64)
    else:
        n_loop = max([int(b) + 1 for _, _, b, _ in loop] + [1])
        per_frame = _loop_per_frame(loop, _n_frames(word_scores, n_loop))
    sums = _LoopSums(word_scores)
    sums.feed(per_frame)
    words, frames, n_frames = _word_fit(word_scores, sums, len(per_frame), n_words)
    del per_frame  # before the pause checks make their own per-frame arrays
    return _judge(word_scores, words, frames, audio, n_frames=n_frames, n_phones=n_phones)


def _rows(word_scores: "list | np.ndarray"):
    """(word, first frame, last frame, log-likelihood) of each row, as Python numbers.

    An array's rows are read a few thousand at a time: one list of all of them would take about
    150 bytes a row, the arrays were made to keep long recordings' memory flat.
    """
    if not isinstance(word_scores, np.ndarray):
        yield from word_scores
        return
    for k in range(0, len(word_scores), 4096):
        for wi, a, b, ll in word_scores[k: k + 4096].tolist():
            yield int(wi), int(a), int(b), ll


def _n_frames(word_scores: "list | np.ndarray", n_loop: int) -> int:
    return max(max((int(b) + 1 for _, _, b, _ in _rows(word_scores)), default=1), n_loop, 1)


class _LoopSums:
    """The phone loop's log-likelihood summed from the first frame up to each frame where a word
    starts or ends: ``np.cumsum`` of the per-frame values after a 0, at those frames only.

    The frames are fed a stretch at a time, in order, and each stretch is summed on from the total
    so far in the order ``np.cumsum`` adds (one value after another), so the sums are the same
    numbers as from the whole array, which a long recording then never needs in memory (8 bytes a
    10 ms frame, three such arrays at once: 26 MB over three hours).
    """

    def __init__(self, word_scores: "list | np.ndarray"):
        if isinstance(word_scores, np.ndarray):
            wi, a, b = (word_scores[:, k].astype(np.int64) for k in range(3))
            used = (wi >= 0) & (b >= a)
            needed = np.concatenate([a[used], b[used] + 1])
        else:
            needed = [k for wi, a, b, _ in word_scores if wi >= 0 and int(b) >= int(a) for k in (int(a), int(b) + 1)]
        self.frames = np.unique(np.asarray(needed, np.int64))  # (K,) sorted
        self.sums = np.zeros(len(self.frames))                 # (K,) filled as frames come
        self._done = 0      # frames fed so far
        self._total = 0.0   # their sum (np.cumsum's last value)
        self._next = 0      # first entry of self.frames not yet filled

    def feed(self, values: np.ndarray) -> None:
        """The next frames' values, shape (F,)."""
        c = np.cumsum(np.concatenate([[self._total], values]))  # c[j]: the sum before frame done + j
        stop = int(np.searchsorted(self.frames, self._done + len(values), side="right"))
        self.sums[self._next: stop] = c[self.frames[self._next: stop] - self._done]
        self._next = stop
        self._done += len(values)
        self._total = c[-1]

    def finish(self) -> None:
        """Frames after the last fed are zeros: the sums stay where they are."""
        self.sums[self._next:] = self._total
        self._next = len(self.frames)

    def at(self, frame: int) -> float:
        return self.sums[int(np.searchsorted(self.frames, frame))]


def _word_fit(word_scores: "list | np.ndarray", sums: _LoopSums, n_loop: int,
              n_words: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per word: the forced path's log-likelihood minus the loop's, per frame; its frames; and the
    number of frames both searches cover.

    ``sums`` has been fed the loop's per-frame log-likelihood over its first ``n_loop`` frames (the
    frames after those count as zeros).
    """
    n_frames = _n_frames(word_scores, n_loop)
    sums.finish()
    words = np.full(n_words, np.nan)
    frames = np.zeros(n_words)
    for wi, a, b, ll in _rows(word_scores):
        a, b = int(a), int(b)
        if b < a or wi < 0:
            continue
        k = b - a + 1
        total = ll - (sums.at(b + 1) - sums.at(a))
        prev = 0.0 if np.isnan(words[wi]) else words[wi] * frames[wi]
        frames[wi] += k
        words[wi] = (prev + total) / frames[wi]
    return words, frames, n_frames


def _judge(word_scores: "list | np.ndarray", words: np.ndarray, frames: np.ndarray, audio, *, n_frames: int,
           n_phones: int | None) -> AlignmentConfidence:
    """The whole transcript's fit from its words', and the speech its pauses leave unexplained.

    Every per-frame array here is 1 or 8 bytes a 10 ms frame (9 MB an hour for the 8-byte ones),
    so they are made one after another and the percentiles partition copies in place.
    """
    words = np.where(np.isnan(words), -np.inf, words) * SCALE
    ok = np.isfinite(words)
    score = float(np.sum(words[ok] * frames[ok]) / max(frames[ok].sum(), 1.0)) if ok.all() else float("-inf")
    pause = np.zeros(n_frames, bool)
    for wi, a, b, _ in _rows(word_scores):
        a, b = int(a), int(b)
        if wi < 0 and b >= a:
            pause[max(0, a): b + 1] = True
    # The energy per frame is made again for each use rather than copied (a partition reorders it):
    # one float64 array per frame at a time, not two (9 MB an hour each); the same numbers each time.
    energy = frame_energy_db(audio, n_frames)
    top = float(np.percentile(energy, 90, overwrite_input=True)) - 15.0
    energy = None
    energy = frame_energy_db(audio, n_frames)
    loud_any = energy > top
    if pause.all():
        level = float(energy.max())
    else:
        level = float(np.percentile(_compact(energy, ~pause), 70, overwrite_input=True))
        energy = None
        energy = frame_energy_db(audio, n_frames)
    loud = energy > level - 15.0
    del energy
    share = float((loud & pause).sum() / max(pause.sum(), 1))
    unexplained = float((loud_any & pause).sum() / max(loud_any.sum(), 1))
    talk = int((~pause).sum())
    rate = n_phones / (talk * FRAME_SAMPLES / 16000.0) if n_phones is not None and talk else float("nan")
    return AlignmentConfidence(words=tuple(float(w) for w in words), score=score, speech_in_pauses=share,
                               unexplained_speech=unexplained, phone_rate=float(rate))


def _compact(values: np.ndarray, keep: np.ndarray, *, block: int = 1 << 16) -> np.ndarray:
    """``values[keep]`` made in ``values``' own memory (its first elements; the rest is left as it
    was), a block at a time: no copy of the whole array. Shapes (N,) and (N,) bool."""
    n = 0
    for a in range(0, len(values), block):
        part = values[a: a + block][keep[a: a + block]]
        values[n: n + len(part)] = part
        n += len(part)
    return values[:n]


def alignment_confidence(utt) -> AlignmentConfidence:
    """:func:`score_alignment` for an :class:`~flamesync.phonetics.types.Utterance` from ``align``.

    Runs pocketsphinx's free phone loop over the utterance's audio (about 15-20x real time), one
    segment at a time: ``utt.audio`` is only sliced, so it may be a
    :class:`~flamesync.audio.SampleFile` (as :func:`~flamesync.phonetics.align.align` returns for one).
    """
    meta = utt.meta or {}
    if "word_scores" not in meta:
        raise ValueError("the utterance carries no alignment scores (not made by flamesync.phonetics.align.align)")
    from .types import SILENCE

    return transcript_confidence(meta["word_scores"], utt.audio, segments=meta.get("segments"),
                                 n_words=len(meta.get("dict_words") or ()),
                                 n_phones=sum(p.phone != SILENCE for p in utt.phones))


def transcript_confidence(word_scores: "list | np.ndarray", audio, *, segments: list | None, n_words: int,
                          n_phones: int | None) -> AlignmentConfidence:
    """:func:`score_alignment` against pocketsphinx's free phone loop, run here over ``audio``.

    Parameters
    ----------
    word_scores : list of [word index, first frame, last frame, log-likelihood], or np.ndarray, shape (S, 4)
        As for :func:`score_alignment`.
    audio : np.ndarray, shape (N,), or SampleFile
        The 16 kHz audio aligned (only sliced).
    segments : list of [int, int] or None
        The sample ranges aligned one by one (``meta["segments"]`` of ``align``); None: one search.
    n_words, n_phones : int
        As for :func:`score_alignment`.

    Returns
    -------
    AlignmentConfidence
    """
    from .align import phone_loop

    # A long recording aligned in segments is compared with a phone loop over the same segments:
    # each search starts its own feature normalisation, and the two scores are comparable only over
    # the same stretch of audio. It also keeps the phone loop's cost linear in the length.
    # Each segment's loop goes straight onto its frames (as _loop_per_frame spreads it), so no
    # list of an hour's phone-loop segments is ever held.
    # Frames before a segment's first are final once it starts (a segment's loop writes only from
    # its own first frame on; the segments come in order), so only the frames from the current
    # segment on are held, and the sums of those before are taken as they become final.
    sums = _LoopSums(word_scores)
    held = np.zeros(0)  # the loop's values from frame `held_from` on
    held_from = 0
    top = 0
    for a, b in segments or [[0, len(audio)]]:
        f0 = int(a) // FRAME_SAMPLES
        if f0 > held_from:
            final = held[: f0 - held_from]
            sums.feed(final if len(final) == f0 - held_from
                      else np.concatenate([final, np.zeros(f0 - held_from - len(final))]))
            held, held_from = held[f0 - held_from:].copy(), f0
        for _, s, e, ll in phone_loop(audio[int(a): int(b)]):
            s, e = max(0, f0 + int(s)), f0 + int(e)
            if e - held_from >= len(held):
                held = np.concatenate([held, np.zeros(max(e + 1 - held_from - len(held), (int(b) - int(a)) // FRAME_SAMPLES))])
            if e >= s:
                held[s - held_from: e - held_from + 1] = ll / (e - s + 1)
            top = max(top, e + 1)  # e counts from the audio's start already (f0 added once)
    sums.feed(held)
    del held
    words, frames, n_frames = _word_fit(word_scores, sums, top, n_words)
    del sums
    return _judge(word_scores, words, frames, audio, n_frames=n_frames, n_phones=n_phones)


class TranscriptMismatchError(InputError):
    """The transcript given with the audio is not what the audio says."""

    def __init__(self, message: str, *, confidence: AlignmentConfidence | None = None):
        super().__init__(message)
        self.confidence = confidence


def transcript_mismatch(conf: AlignmentConfidence, *, min_score: float = MIN_SCORE,
                        max_unexplained_speech: float = MAX_UNEXPLAINED_SPEECH,
                        min_phone_rate: float = MIN_PHONE_RATE,
                        bad_word_below: float = BAD_WORD_BELOW,
                        max_bad_word_share: float = MAX_BAD_WORD_SHARE) -> str | None:
    """Why a transcript does not fit its audio, or None when it does.

    Parameters
    ----------
    conf : AlignmentConfidence
        From :func:`alignment_confidence`.
    min_score, max_unexplained_speech, min_phone_rate, bad_word_below, max_bad_word_share : float
        Thresholds (the module constants by default; see the note above them).

    Returns
    -------
    str or None
        A short reason in words, fit for a one-line message.
    """
    if conf.unexplained_speech > max_unexplained_speech:
        return (f"it leaves {conf.unexplained_speech:.0%} of the speech unaligned "
                f"(limit {max_unexplained_speech:.0%})")
    if not np.isfinite(conf.score) or conf.score < min_score:
        return f"its words fit the audio poorly (score {conf.score:.2f}, limit {min_score})"
    bad = sum(1 for w in conf.words if w < bad_word_below)
    if conf.words and bad / len(conf.words) > max_bad_word_share:
        return f"{bad} of its {len(conf.words)} words are not found in the audio"
    if conf.phone_rate < min_phone_rate:  # NaN (rate unknown) compares False
        return (f"its words are stretched over {conf.phone_rate:.1f} phones per second of speech "
                f"(speech has at least {min_phone_rate:g})")
    return None
