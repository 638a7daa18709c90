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
    """

    words: tuple[float, ...]
    score: float
    speech_in_pauses: float

    def to_dict(self) -> dict:
        return {"words": [round(w, 4) for w in self.words], "score": round(self.score, 4),
                "speech_in_pauses": round(self.speech_in_pauses, 4)}


def _loop_per_frame(loop: list[tuple[str, int, int, float]], n_frames: int) -> np.ndarray:
    """Spread each phone-loop segment's log-likelihood evenly over its frames, shape (n_frames,)."""
    out = np.zeros(n_frames, np.float64)
    for _, a, b, ll in loop:
        a, b = max(0, int(a)), min(n_frames - 1, int(b))
        if b >= a:
            out[a: b + 1] = ll / (b - a + 1)
    return out


def frame_energy_db(x: np.ndarray, n_frames: int) -> np.ndarray:
    """Energy per 10 ms frame in dB, shape (n_frames,)."""
    x = np.asarray(x, np.float64)
    pad = max(0, n_frames * FRAME_SAMPLES - len(x))
    frames = np.pad(x, (0, pad))[: n_frames * FRAME_SAMPLES].reshape(n_frames, FRAME_SAMPLES)
    return 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def score_alignment(word_scores: list, loop: list[tuple[str, int, int, float]], audio: np.ndarray, *,
                    n_words: int) -> AlignmentConfidence:
    """Compare a forced alignment with a free phone loop over the same audio.

    Parameters
    ----------
    word_scores : list of [word index, first frame, last frame, log-likelihood]
        ``utt.meta["word_scores"]`` of :func:`flamesync.phonetics.align.align`; index -1 marks pauses.
    loop : list of (name, first frame, last frame, log-likelihood)
        :func:`flamesync.phonetics.align.phone_loop` on the same audio.
    audio : np.ndarray, shape (N,)
        The 16 kHz audio both were decoded from.
    n_words : int
        Number of dictionary words in the transcript.

    Returns
    -------
    AlignmentConfidence
    """
    n_frames = max([int(b) + 1 for _, _, b, _ in word_scores] + [int(b) + 1 for _, _, b, _ in loop] + [1])
    ref = np.cumsum(np.concatenate([[0.0], _loop_per_frame(loop, n_frames)]))
    words = np.full(n_words, np.nan)
    frames = np.zeros(n_words)
    pause = np.zeros(n_frames, bool)
    for wi, a, b, ll in word_scores:
        a, b = int(a), int(b)
        if b < a:
            continue
        if wi < 0:
            pause[max(0, a): b + 1] = True
            continue
        k = b - a + 1
        total = ll - (ref[b + 1] - ref[a])
        prev = 0.0 if np.isnan(words[wi]) else words[wi] * frames[wi]
        frames[wi] += k
        words[wi] = (prev + total) / frames[wi]
    words = np.where(np.isnan(words), -np.inf, words) * SCALE
    ok = np.isfinite(words)
    score = float(np.sum(words[ok] * frames[ok]) / max(frames[ok].sum(), 1.0)) if ok.all() else float("-inf")
    energy = frame_energy_db(audio, n_frames)
    speech = ~pause
    level = float(np.percentile(energy[speech], 70)) if speech.any() else float(energy.max())
    loud = energy > level - 15.0
    share = float((loud & pause).sum() / max(pause.sum(), 1))
    return AlignmentConfidence(words=tuple(float(w) for w in words), score=score, speech_in_pauses=share)


def alignment_confidence(utt) -> AlignmentConfidence:
    """:func:`score_alignment` for an :class:`~flamesync.phonetics.types.Utterance` from ``align``.

    Runs pocketsphinx's free phone loop over the utterance's audio (about 15-20x real time).
    """
    from .align import phone_loop

    meta = utt.meta or {}
    if "word_scores" not in meta:
        raise ValueError("the utterance carries no alignment scores (not made by flamesync.phonetics.align.align)")
    return score_alignment(meta["word_scores"], phone_loop(utt.audio), utt.audio,
                           n_words=len(meta.get("dict_words") or ()))
