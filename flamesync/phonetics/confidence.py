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


def score_alignment(word_scores: list, loop: list[tuple[str, int, int, float]], audio: np.ndarray, *,
                    n_words: int, n_phones: int | None = None) -> AlignmentConfidence:
    """Compare a forced alignment with a free phone loop over the same audio.

    Parameters
    ----------
    word_scores : list of [word index, first frame, last frame, log-likelihood]
        ``utt.meta["word_scores"]`` of :func:`flamesync.phonetics.align.align`; index -1 marks pauses.
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
    if isinstance(loop, np.ndarray):  # already spread over its frames (alignment_confidence)
        loop = np.asarray(loop, np.float64)
        n_frames = _n_frames(word_scores, len(loop))
        per_frame = loop if len(loop) == n_frames else np.concatenate([loop, np.zeros(n_frames - len(loop))])
    else:
        n_frames = _n_frames(word_scores, max([int(b) + 1 for _, _, b, _ in loop] + [1]))
        per_frame = _loop_per_frame(loop, n_frames)
    words, frames = _word_fit(word_scores, per_frame, n_words)
    del per_frame
    return _judge(word_scores, words, frames, audio, n_frames=n_frames, n_phones=n_phones)


def _n_frames(word_scores: list, n_loop: int) -> int:
    return max([int(b) + 1 for _, _, b, _ in word_scores] + [n_loop, 1])


def _word_fit(word_scores: list, per_frame: np.ndarray, n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """Per word: the forced path's log-likelihood minus the loop's, per frame; and its frames."""
    ref = np.cumsum(np.concatenate([[0.0], per_frame]))
    words = np.full(n_words, np.nan)
    frames = np.zeros(n_words)
    for wi, a, b, ll in word_scores:
        a, b = int(a), int(b)
        if b < a or wi < 0:
            continue
        k = b - a + 1
        total = ll - (ref[b + 1] - ref[a])
        prev = 0.0 if np.isnan(words[wi]) else words[wi] * frames[wi]
        frames[wi] += k
        words[wi] = (prev + total) / frames[wi]
    return words, frames


def _judge(word_scores: list, words: np.ndarray, frames: np.ndarray, audio, *, n_frames: int,
           n_phones: int | None) -> AlignmentConfidence:
    """The whole transcript's fit from its words', and the speech its pauses leave unexplained.

    Every per-frame array here is 1 or 8 bytes a 10 ms frame (9 MB an hour for the 8-byte ones),
    so they are made one after another and the percentiles partition copies in place.
    """
    words = np.where(np.isnan(words), -np.inf, words) * SCALE
    ok = np.isfinite(words)
    score = float(np.sum(words[ok] * frames[ok]) / max(frames[ok].sum(), 1.0)) if ok.all() else float("-inf")
    pause = np.zeros(n_frames, bool)
    for wi, a, b, _ in word_scores:
        a, b = int(a), int(b)
        if wi < 0 and b >= a:
            pause[max(0, a): b + 1] = True
    energy = frame_energy_db(audio, n_frames)
    top = float(np.percentile(energy, 90)) - 15.0
    loud_any = energy > top
    if pause.all():
        level = float(energy.max())
    else:
        level = float(np.percentile(energy[~pause], 70, overwrite_input=True))
    loud = energy > level - 15.0
    del energy
    share = float((loud & pause).sum() / max(pause.sum(), 1))
    unexplained = float((loud_any & pause).sum() / max(loud_any.sum(), 1))
    talk = int((~pause).sum())
    rate = n_phones / (talk * FRAME_SAMPLES / 16000.0) if n_phones is not None and talk else float("nan")
    return AlignmentConfidence(words=tuple(float(w) for w in words), score=score, speech_in_pauses=share,
                               unexplained_speech=unexplained, phone_rate=float(rate))


def alignment_confidence(utt) -> AlignmentConfidence:
    """:func:`score_alignment` for an :class:`~flamesync.phonetics.types.Utterance` from ``align``.

    Runs pocketsphinx's free phone loop over the utterance's audio (about 15-20x real time), one
    segment at a time: ``utt.audio`` is only sliced, so it may be a
    :class:`~flamesync.audio.SampleFile` (as :func:`~flamesync.phonetics.align.align` returns for one).
    """
    from .align import phone_loop

    meta = utt.meta or {}
    if "word_scores" not in meta:
        raise ValueError("the utterance carries no alignment scores (not made by flamesync.phonetics.align.align)")
    from .types import SILENCE

    # A long recording aligned in segments (meta["segments"], sample ranges) is compared with a
    # phone loop over the same segments: each search starts its own feature normalisation, and
    # the two scores are comparable only over the same stretch of audio. It also keeps the phone
    # loop's cost linear in the length.
    # Each segment's loop goes straight onto its frames (as _loop_per_frame spreads it), so no
    # list of an hour's phone-loop segments is ever held.
    per_frame = np.zeros(-(-len(utt.audio) // FRAME_SAMPLES) + 1)
    top = 0
    for a, b in meta.get("segments") or [[0, len(utt.audio)]]:
        f0 = int(a) // FRAME_SAMPLES
        for _, s, e, ll in phone_loop(utt.audio[int(a): int(b)]):
            s, e = max(0, f0 + int(s)), f0 + int(e)
            if e >= len(per_frame):
                per_frame = np.concatenate([per_frame, np.zeros(e + 1 - len(per_frame))])
            if e >= s:
                per_frame[s: e + 1] = ll / (e - s + 1)
            top = max(top, f0 + int(e) + 1)
    n_frames = _n_frames(meta["word_scores"], top)
    if n_frames > len(per_frame):
        per_frame = np.concatenate([per_frame, np.zeros(n_frames - len(per_frame))])
    words, frames = _word_fit(meta["word_scores"], per_frame[:n_frames], len(meta.get("dict_words") or ()))
    del per_frame  # before the pause checks make their own per-frame arrays
    return _judge(meta["word_scores"], words, frames, utt.audio, n_frames=n_frames,
                  n_phones=sum(p.phone != SILENCE for p in utt.phones))


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
