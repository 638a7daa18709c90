"""The teacher as a complete animation backend: text-to-speech or a transcript, then phones to motion.

- :func:`say`: speak text with a TTS engine (exact phone timings) and animate it.
- :func:`animate_with_text`: force-align recorded speech to its transcript and animate the phones,
  the text-assisted mode that phoneme-based lip-sync tools offer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..animation import Animation
from ..errors import InputError
from .confidence import AlignmentConfidence, TranscriptMismatchError
from .teacher import phones_to_animation
from .types import SILENCE, Utterance

if TYPE_CHECKING:
    from ..audio import SampleFile
    from .align import PackedAlignment


def check_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("text is empty")
    if not any(ch.isalnum() for ch in text):
        raise InputError(f"text has nothing speakable: {text[:60]!r}")
    return text.strip()


def check_transcript(text: object, language: str) -> str:
    """The transcript, stripped, for the aligner (English); InputError when it cannot be used."""
    text = check_text(text)
    if language.split("-")[0].lower() != "en":
        raise InputError(f"text-assisted animation supports English only (the aligner's model), got {language!r}")
    return text


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio as 16-bit PCM WAV, atomically."""
    import soundfile as sf

    from ..fileio import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.unlink()  # let soundfile create it with the usual permissions, not mkstemp's 0600
        sf.write(str(tmp), np.clip(np.asarray(audio, np.float32), -1.0, 1.0), int(sample_rate),
                 subtype="PCM_16", format="WAV")
    return path


def say(
    text: str,
    *,
    voice: str = "en-us",
    engine: str = "espeak",
    fps: float = 30.0,
    wav_path: str | Path | None = None,
    seed: int = 0,
    rate: float = 1.0,
    pitch: float | None = None,
    **style: float,
) -> tuple[Animation, Utterance]:
    """Speak ``text`` with a TTS engine and animate it with the coarticulation teacher.

    Parameters
    ----------
    text : str
    voice : str
        Engine voice; espeak takes a language code with an optional variant (``"en-us+f3"``).
    engine : str
        ``"espeak"``, ``"flite"`` or ``"festival"``.
    fps : float
        Frame rate of the animation.
    wav_path : str, Path or None
        Where to write the speech (16-bit WAV, written atomically); the animation refers to it.
    seed : int
        Passed to the engine (the current engines are deterministic).
    rate, pitch : float
        Speaking-rate and pitch factors (1.0 = the voice's normal).
    **style
        Teacher style parameters (see :data:`flamesync.phonetics.teacher.DEFAULT_STYLE`).

    Returns
    -------
    (Animation, Utterance)
        The animation covers the whole utterance: ``round(duration * fps)`` frames.
    """
    from .engines import get_engine

    text = check_text(text)
    utt = get_engine(engine).synthesize(text, voice=voice, rate=rate, pitch=pitch, seed=seed)
    if utt.audio.size == 0 or all(p.phone == SILENCE for p in utt.phones):
        raise InputError(f"text has nothing speakable: {text[:60]!r}")
    if wav_path is not None:
        write_wav(wav_path, utt.audio, utt.sample_rate)
    anim = phones_to_animation(utt.phones, fps=fps, duration=utt.duration, **style)
    # The phones ride along as in the transcript modes: 2D mouth-shape exports read them.
    meta = {**anim.meta, "mode": "say", "text": text, "engine": utt.engine, "voice": utt.voice,
            "language": utt.language,
            "phones": [[round(p.start, 4), round(p.end, 4), p.phone] for p in utt.phones]}
    return anim.replace(audio_path=str(wav_path) if wav_path is not None else None, meta=meta), utt


# Texts longer than this many words are spoken a run of sentences at a time by
# :func:`say_to_wav`, so that memory does not grow with the text (about 2.5 minutes of speech).
SAY_CHUNK_WORDS = 400


def split_sentences(text: str, *, max_words: int = SAY_CHUNK_WORDS) -> list[str]:
    """``text`` cut into runs of whole sentences of at most ``max_words`` words each.

    A sentence ends at ``.``, ``!``, ``?``, ``;`` or ``:`` followed by a space; a sentence longer
    than ``max_words`` is cut after a comma where it can be, else after ``max_words`` words. A text
    of at most ``max_words`` words is one run, unchanged.
    """
    import re

    if len(text.split()) <= max_words:
        return [text]
    pieces: list[str] = []
    for sentence in re.split(r"(?<=[.!?;:])\s+", text.strip()):
        words = sentence.split()
        while len(words) > max_words:
            cut = max((i + 1 for i, w in enumerate(words[:max_words]) if w.endswith(",")), default=max_words)
            pieces.append(" ".join(words[:cut]))
            words = words[cut:]
        if words:
            pieces.append(" ".join(words))
    runs: list[str] = []
    count = 0
    for piece in pieces:
        n = len(piece.split())
        if runs and count + n <= max_words:
            runs[-1] += " " + piece
            count += n
        else:
            runs.append(piece)
            count = n
    return runs


def say_to_wav(
    text: str,
    wav_path: str | Path,
    *,
    voice: str = "en-us",
    engine: str = "espeak",
    fps: float = 30.0,
    seed: int = 0,
    rate: float = 1.0,
    pitch: float | None = None,
    max_words: int = SAY_CHUNK_WORDS,
) -> tuple[Animation, float]:
    """:func:`say` for long texts: the speech goes into ``wav_path`` a run of sentences at a time.

    Each run of at most ``max_words`` words (:func:`split_sentences`) is synthesised on its own,
    appended to the WAV (16-bit, written atomically) and let go; only its timed phones are kept,
    so memory does not grow with the text's audio. The animation is the teacher's over all phones,
    as :func:`say` makes it. A text of at most ``max_words`` words is :func:`say` exactly.

    Returns
    -------
    (Animation, float)
        The animation (``audio_path`` the WAV) and the speech's length in seconds.
    """
    import soundfile as sf

    from ..fileio import atomic_path
    from .engines import get_engine
    from .types import PhoneSegment

    text = check_text(text)
    runs = split_sentences(text, max_words=max_words)
    if len(runs) == 1:
        anim, utt = say(text, voice=voice, engine=engine, fps=fps, wav_path=wav_path, seed=seed, rate=rate,
                        pitch=pitch)
        return anim, utt.duration
    eng = get_engine(engine)
    info: dict = {}
    phones: list = []
    done = 0
    sample_rate = None
    path = Path(wav_path)
    with atomic_path(path) as tmp:
        tmp.unlink()  # let soundfile create it with the usual permissions, not mkstemp's 0600
        fh = None
        try:
            for run in runs:
                if not any(ch.isalnum() for ch in run):
                    continue
                try:
                    utt = eng.synthesize(run, voice=voice, rate=rate, pitch=pitch, seed=seed)
                except InputError:
                    continue  # a run with nothing speakable (the others carry the speech)
                if fh is None:
                    sample_rate = utt.sample_rate
                    fh = sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=1, subtype="PCM_16",
                                      format="WAV")
                fh.write(np.clip(np.asarray(utt.audio, np.float32), -1.0, 1.0))
                offset = done / sample_rate
                phones += [PhoneSegment(p.start + offset, p.end + offset, p.phone, p.label) for p in utt.phones]
                info = {"engine": utt.engine, "voice": utt.voice, "language": utt.language}
                done += len(utt.audio)
                del utt
        finally:
            if fh is not None:
                fh.close()
        if fh is None or all(p.phone == SILENCE for p in phones):
            raise InputError(f"text has nothing speakable: {text[:60]!r}")
    duration = done / sample_rate
    anim = phones_to_animation(phones, fps=fps, duration=duration)
    meta = {**anim.meta, "mode": "say", "text": text, **info,
            "phones": [[round(p.start, 4), round(p.end, 4), p.phone] for p in phones]}
    return anim.replace(audio_path=str(wav_path), meta=meta), duration


def animate_with_text(
    audio: "str | Path | np.ndarray | SampleFile",
    text: str,
    *,
    fps: float = 30.0,
    language: str = "en",
    sample_rate: int | None = None,
    check: bool = True,
    **style: float,
) -> Animation:
    """Animate recorded speech from its transcript: forced alignment, then the teacher.

    Parameters
    ----------
    audio : str, Path, np.ndarray or SampleFile
        An audio file, samples ``(N,)`` / ``(N, channels)`` at ``sample_rate``, or 16 kHz samples
        in a :class:`~flamesync.audio.SampleFile` (left open). A file is decoded into a temporary
        SampleFile, so memory does not grow with the recording's length.
    text : str
        What is said in it.
    fps : float
        Frame rate of the animation.
    language : str
        Language of the speech (the aligner's English model: ``"en"``).
    sample_rate : int or None
        Rate of an array ``audio``.
    check : bool
        Score the alignment against a free phone loop
        (:func:`flamesync.phonetics.confidence.alignment_confidence`; its phone loop took 160 of the
        420 s of an hour-long recording) and raise
        :class:`TranscriptMismatchError` when the transcript does not fit the audio.
    **style
        Teacher style parameters.

    Returns
    -------
    Animation
        ``round(duration * fps)`` frames covering the audio; ``audio_path`` is the file when one was
        given; ``meta["phones"]`` lists the aligned phones as ``[start, end, phone]``;
        ``meta["transcript_fit"]`` the alignment's score when checked.

    Raises
    ------
    TranscriptMismatchError
        ``check`` and the transcript is not what the audio says.
    """
    from ..audio import SampleFile

    text = check_transcript(text, language)
    if isinstance(audio, (np.ndarray, SampleFile)):
        return _animate_with_text(audio, text, fps=fps, language=language, sample_rate=sample_rate, check=check,
                                  style=style)
    with SampleFile.from_file(audio) as samples:
        anim = _animate_with_text(samples, text, fps=fps, language=language, sample_rate=None, check=check,
                                  style=style)
    return anim.replace(audio_path=str(audio))


def _animate_with_text(audio, text: str, *, fps, language, sample_rate, check, style) -> Animation:
    """:func:`animate_with_text` on samples: an array (``audio_path`` None) or a SampleFile."""
    from ..audio import SampleFile
    from ..audio.io import SAMPLE_RATE, load_audio

    samples = audio if isinstance(audio, SampleFile) else load_audio(audio, sample_rate=SAMPLE_RATE,
                                                                     source_rate=sample_rate)
    phones, meta = align_transcript(samples, text, language=language, check=check)
    anim = phones_to_animation(phones, fps=fps, duration=len(samples) / SAMPLE_RATE, **style)
    return anim.replace(audio_path=None, meta={**anim.meta, **meta})


def align_transcript(samples, text: str, *, language: str = "en", check: bool = True) -> tuple[list, dict]:
    """The transcript backend's first half: the aligned phones of 16 kHz ``samples`` and what the
    animation's ``meta`` records about them (mode, text, aligner, phones, transcript fit).

    Parameters
    ----------
    samples : np.ndarray or SampleFile
        16 kHz mono, (N,).
    text : str
        What is said (already checked by the caller).
    language : str
    check : bool
        As for :func:`animate_with_text`.

    Returns
    -------
    phones : list of PhoneSegment
    meta : dict

    Raises
    ------
    TranscriptMismatchError
        ``check`` and the transcript is not what the audio says.
    """
    from .types import PhoneSegment

    packed, fit = _aligned_and_checked(samples, text, language=language, check=check)
    phones = [PhoneSegment(*p) for p in zip(*packed.columns())]
    return phones, _text_meta(text, phones, _aligner(), fit)



def _aligner() -> str:
    """What the header records as the aligner: align's own engine name (import kept lazy)."""
    from .align import ENGINE

    return ENGINE


def _aligned_and_checked(samples, text: str, *, language: str, check: bool) -> tuple["PackedAlignment", dict | None]:
    """The alignment, packed, and the transcript fit (None unchecked).

    Packed (:func:`~flamesync.phonetics.align.align_packed`), and checked on the arrays, so that what
    is held while the phone loop runs does not grow by a few hundred bytes of objects a phone.
    """
    from ..audio.io import SAMPLE_RATE
    from .align import align_packed

    packed = align_packed(samples, SAMPLE_RATE, text, language=language)
    fit = None
    if check:
        from .confidence import transcript_confidence, transcript_mismatch

        conf = transcript_confidence(packed.word_scores, packed.audio, segments=packed.segments,
                                     n_words=len(packed.dict_words), n_phones=packed.n_spoken)
        reason = transcript_mismatch(conf)
        if reason is not None:
            raise TranscriptMismatchError(f"the transcript does not match the speech: {reason}",
                                          confidence=conf)
        fit = {k: v for k, v in conf.to_dict().items() if k != "words"}
    return packed, fit


def _text_meta(text: str, phones: list, aligner: str, fit: dict | None) -> dict:
    meta = {"mode": "text", "text": text, "aligner": aligner,
            "phones": [[round(p.start, 4), round(p.end, 4), p.phone] for p in phones]}
    if fit is not None:
        meta["transcript_fit"] = fit
    return meta


def align_transcript_apart(samples, text: str, *, language: str = "en", check: bool = True) -> tuple[list, dict]:
    """:func:`align_transcript` in a forked child process, where the platform forks.

    An alignment allocates and frees small objects per phone and per segment for as long as the
    recording lasts, and pocketsphinx loads a decoder per search kind; the heap they leave keeps
    its high-water mark for the rest of the process (an hour of speech left about 20 MB more than
    ten minutes did, before the frames were even made). In a child, all of that ends with the
    child: the parent gets the phones and the header's record of them, and makes the frames with
    the memory it had before. Same results as :func:`align_transcript` (the child is a copy of
    this process, every search starts from a fresh front end).
    """
    from ..forking import call_in_child
    from .types import PhoneSegment

    def work():
        try:
            packed, fit = _aligned_and_checked(samples, text, language=language, check=check)
        except TranscriptMismatchError as exc:
            conf = None if exc.confidence is None else dataclasses.asdict(exc.confidence)
            return {"mismatch": str(exc), "confidence": conf}
        # Columns, not a list per phone: the child's last step should not be the biggest.
        start, end, phone, label = packed.columns()
        return {"start": start, "end": end, "phone": phone, "label": label, "fit": fit}

    out = call_in_child(work)
    if "mismatch" in out:
        conf = out["confidence"]
        if conf is not None:
            conf = AlignmentConfidence(**{**conf, "words": tuple(conf["words"])})
        raise TranscriptMismatchError(out["mismatch"], confidence=conf)
    phones = [PhoneSegment(*p) for p in zip(out.pop("start"), out.pop("end"), out.pop("phone"), out.pop("label"))]
    return phones, _text_meta(text, phones, _aligner(), out["fit"])


def recognized_phones(samples: np.ndarray) -> tuple[str, list]:
    """The words pocketsphinx's word recogniser hears in 16 kHz speech, and their aligned phones.

    Parameters
    ----------
    samples : np.ndarray, shape (N,), float32, 16 kHz mono

    Returns
    -------
    words : str
        Lower case, empty when it hears none.
    phones : list of PhoneSegment
        Covering the audio; one silence when it hears nothing or its words do not align.
    """
    from ..audio.io import SAMPLE_RATE
    from .align import align, recognize_words
    from .types import PhoneSegment

    words = recognize_words(samples, SAMPLE_RATE)
    phones = [PhoneSegment(0.0, len(samples) / SAMPLE_RATE, SILENCE, "SIL")]
    if words:
        try:
            phones = list(align(samples, SAMPLE_RATE, words).phones)
        except InputError:
            pass  # the recogniser's own words did not align: a face at rest says less that is wrong
    return words, phones


def animate_recognized_words(
    audio: str | Path | np.ndarray,
    *,
    fps: float = 30.0,
    sample_rate: int | None = None,
    **style: float,
) -> Animation:
    """Animate English speech from the words a recogniser hears: recognise, align, then the teacher.

    The transcript-free path of phoneme lip-sync tools: pocketsphinx's word recogniser (with its
    language model, so its phones are those of real words) finds the words, which are then
    force-aligned and animated like a given transcript. Where it hears nothing, or its words
    cannot be aligned, the face stays at rest.

    Parameters
    ----------
    audio : str, Path or np.ndarray
    fps : float
    sample_rate : int or None
        Rate of an array ``audio``.
    **style
        Teacher style parameters.

    Returns
    -------
    Animation
        ``meta["text"]`` holds the recognised words.
    """
    from ..audio.io import SAMPLE_RATE, load_audio

    samples = load_audio(audio, sample_rate=SAMPLE_RATE, source_rate=sample_rate)
    duration = len(samples) / SAMPLE_RATE
    words, phones = recognized_phones(samples)
    anim = phones_to_animation(phones, fps=fps, duration=duration, **style)
    path = None if isinstance(audio, np.ndarray) else str(audio)
    meta = {**anim.meta, "mode": "words", "text": words, "recognizer": "pocketsphinx-lm",
            "phones": [[round(p.start, 4), round(p.end, 4), p.phone] for p in phones]}
    return anim.replace(audio_path=path, meta=meta)
