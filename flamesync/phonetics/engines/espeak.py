"""espeak-ng through ctypes on libespeak-ng, with phoneme events at exact sample offsets.

The library runs in synchronous mode: ``espeak_Synth`` calls our callback with blocks of 16-bit
samples and the events that fall in them. Phoneme events (requested as IPA names) carry the sample
index at which the phoneme starts; word events carry the character span of the word in the text.

libespeak-ng keeps one global state and is not thread-safe: one engine per process (a lock guards
it inside the process; use separate processes for parallel synthesis).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError, MissingDependencyError
from ..closure import refine_closures, remap_words
from ..phoneset import normalize_ipa
from ..types import SILENCE, PhoneSegment, Utterance, WordSegment, fill_gaps
from ._proc import clean_word, token_spans
from .base import SpeechEngine, register_engine

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_EV_LIST_TERMINATED, _EV_WORD, _EV_SENTENCE, _EV_END, _EV_PHONEME = 0, 1, 2, 5, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH = 1, 3
_RATE_MIN, _RATE_MAX, _RATE_NORMAL = 80, 450, 175


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class _Raw:
    samples: list
    events: list  # (type, text_position, length, sample, name_or_number)


class _Library:
    """The process's one initialised libespeak-ng."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise MissingDependencyError(
                f"the espeak engine needs libespeak-ng ({exc}); install it with: "
                "apt-get install libespeak-ng1 espeak-ng-data"
            ) from None
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
            _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT,
        )
        if rate <= 0:
            raise MissingDependencyError(
                "libespeak-ng failed to initialise (is espeak-ng-data installed?); "
                "install it with: apt-get install espeak-ng-data"
            )
        self.lib = lib
        self.sample_rate = int(rate)
        data_path = ctypes.c_char_p()
        lib.espeak_Info(ctypes.byref(data_path))
        self.data_dir = Path(data_path.value.decode()) if data_path.value else None
        self.lock = threading.Lock()
        self._raw: _Raw | None = None
        # Keep a reference: ctypes callbacks are freed with their Python object.
        self._callback = _Callback(self._on_synth)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, n, events) -> int:
        raw = self._raw
        if raw is None:
            return 0
        if n > 0:
            raw.samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            e = events[i]
            if e.type == _EV_PHONEME:
                value = bytes(e.id).split(b"\0", 1)[0].decode("utf-8", "replace")
            else:
                value = int.from_bytes(bytes(e.id)[:4], "little", signed=True)
            raw.events.append((e.type, e.text_position, e.length, e.sample, value))
            i += 1
        return 0

    def voices(self) -> list[tuple[str, str, str]]:
        """(language code, voice name, identifier) of every voice, variants excluded."""
        out = []
        arr = self.lib.espeak_ListVoices(None)
        i = 0
        while arr[i]:
            v = arr[i].contents
            langs = v.languages or b""
            # languages: (priority byte, name, NUL) pairs; the first is the voice's own language.
            code = langs[1:].split(b"\0", 1)[0].decode("utf-8", "replace") if len(langs) > 1 else ""
            ident = (v.identifier or b"").decode("utf-8", "replace")
            if code and not ident.startswith("mb/"):
                out.append((code, (v.name or b"").decode("utf-8", "replace"), ident))
            i += 1
        return out

    def run(self, text: str, voice: str, wpm: int, pitch: int | None) -> _Raw:
        """Samples and events of one synthesis, made in a forked child where the platform forks.

        libespeak-ng carries state from one synthesis to the next (the same text spoken twice in
        one process differs in length and samples) and has no call to reset it; re-initialising
        it hangs. A child forked from a parent that never synthesises starts from the same state
        every time, so the same text gives the same samples however many came before.
        """
        if not hasattr(os, "fork"):
            return self._run_here(text, voice, wpm, pitch)
        from ...forking import bytes_from_child

        def child() -> bytes:
            _reseed_rand()
            try:
                raw = self._run_here(text, voice, wpm, pitch)
                head = {"events": raw.events}
                body = b"".join(np.ascontiguousarray(b, np.int16).tobytes() for b in raw.samples)
            except InputError as exc:
                head, body = {"error": str(exc)}, b""
            data = json.dumps(head).encode("utf-8")
            return len(data).to_bytes(8, "little") + data + body

        data = bytes_from_child(child)
        n = int.from_bytes(data[:8], "little")
        head = json.loads(data[8: 8 + n].decode("utf-8"))
        if "error" in head:
            raise InputError(head["error"])
        samples = np.frombuffer(data, np.int16, offset=8 + n) if len(data) > 8 + n else np.zeros(0, np.int16)
        return _Raw([samples], [tuple(e) for e in head["events"]])

    def _run_here(self, text: str, voice: str, wpm: int, pitch: int | None) -> _Raw:
        if self.lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
            raise InputError(f"espeak has no voice {voice!r} (see the engine's voices())")
        self.lib.espeak_SetParameter(_PARAM_RATE, wpm, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, 50 if pitch is None else pitch, 0)
        data = text.encode("utf-8") + b"\0"
        self._raw = _Raw([], [])
        try:
            err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != 0:
                raise InputError(f"espeak could not synthesise the text (error {err})")
            self.lib.espeak_Synchronize()
            return self._raw
        finally:
            self._raw = None


_LIB: _Library | None = None
_LIB_PID: int | None = None


def _library() -> _Library:
    global _LIB, _LIB_PID
    if _LIB is None or _LIB_PID != os.getpid():
        # A forked child inherits the parent's initialised copy, which is usable there as long as
        # the parent was not synthesising at fork time; a fresh lock avoids inheriting a held one.
        if _LIB is None:
            _LIB = _Library()
        else:
            _LIB.lock = threading.Lock()
        _LIB_PID = os.getpid()
        _reseed_rand()
    return _LIB


def _reseed_rand() -> None:
    """Voice variants draw breath noise from the C library's rand(), whose state a forked child
    inherits too: start each synthesis from a fresh process's state (glibc treats an unseeded
    rand() as srand(1)), so its output never depends on what ran before."""
    try:
        ctypes.CDLL(None).srand(1)
    except (OSError, AttributeError):  # no C library with srand (not glibc or musl)
        pass


def _pitch_param(factor: float | None) -> int | None:
    # espeak scales the voice's base pitch by a table that is close to 2**((p - 50) / 50).
    if factor is None:
        return None
    p = 50 + 50 * math.log2(factor)
    if not 0 <= p <= 100:
        raise InputError(f"espeak pitch factor must lie in [0.5, 2.0], got {factor}")
    return int(round(p))


def _rate_wpm(factor: float) -> int:
    wpm = _RATE_NORMAL * factor
    if not _RATE_MIN <= wpm <= _RATE_MAX:
        raise InputError(
            f"espeak rate factor must lie in [{_RATE_MIN / _RATE_NORMAL:.2f}, "
            f"{_RATE_MAX / _RATE_NORMAL:.2f}], got {factor}"
        )
    return int(round(wpm))


def events_to_segments(
    events: list, n_samples: int, sample_rate: int, text: str
) -> tuple[list[PhoneSegment], list[WordSegment], list[str]]:
    """Phone and word segments from espeak's event list.

    Parameters
    ----------
    events : list of tuple
        ``(type, text_position, length, sample, value)`` in emission order.
    n_samples : int
        Length of the audio.
    sample_rate : int
    text : str
        The synthesised text (word events index it by 1-based character position).

    Returns
    -------
    phones : list of PhoneSegment
        Not yet gap-filled.
    words : list of WordSegment
    switches : list of str
        Languages espeak switched to for some words (``"(en)"`` markers), in order.
    """
    # Tokens: phones with their word index; pauses (empty names) outside words.
    marks: list[tuple[int, str, int | None]] = []  # (sample, name, word index)
    words_meta: list[tuple[int, int]] = []  # (text_position, length)
    switches: list[str] = []
    word = None
    for etype, pos, length, sample, value in events:
        if etype == _EV_WORD:
            words_meta.append((pos, length))
            word = len(words_meta) - 1
        elif etype in (_EV_END, _EV_SENTENCE):
            word = None
        elif etype == _EV_PHONEME:
            if value.startswith("("):
                # "(en)": a language switch; long codes arrive cut to 8 bytes ("(en-us-n").
                switches.append(value[1:].rstrip(")"))
                continue
            marks.append((int(sample), value, word))
    marks.sort(key=lambda m: m[0])
    phones: list[PhoneSegment] = []
    owner: list[int | None] = []
    for i, (sample, name, w) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else n_samples
        if end <= sample:
            continue
        phone = _phone_of(name)
        if phone is None:
            # No IPA content: a pause, or inside a word a transition espeak names "" or "ʲ" (the
            # palatal off-glide ";" after /i/ in Spanish "días", Russian palatalisation, the
            # epenthetic "@-" in Russian "привет").
            prev_same = i > 0 and marks[i - 1][2] == w and bool(phones) and phones[-1].phone != SILENCE
            next_same = i + 1 < len(marks) and marks[i + 1][2] == w and _phone_of(marks[i + 1][1])
            if name.strip() and prev_same:
                phone = None  # a modifier such as "ʲ" belongs to the phone before it
            elif w is None or not (prev_same and next_same):
                phone, w = SILENCE, None
            elif _is_consonant(phones[-1].phone) and (end - sample) / sample_rate >= 0.02:
                phone = "ə"  # a vowel-like release between consonants
            if phone is None:
                phones[-1] = PhoneSegment(phones[-1].start, end / sample_rate, phones[-1].phone,
                                          phones[-1].label + name)
                continue
        phones.append(PhoneSegment(sample / sample_rate, end / sample_rate, phone, name))
        owner.append(w if phone != SILENCE else None)
    # espeak reports each word by its character position; several events can fall in one text
    # token ("25" -> twenty, five) and positions of expanded tokens can land on a neighbouring
    # punctuation token, so words are the text's tokens, found by position.
    spans = token_spans(text)
    token_of = [_token_at(spans, pos - 1) for pos, _ in words_meta]
    words: list[WordSegment] = []
    last_token = None
    for wi, tok in enumerate(token_of):
        mine = [p for p, o in zip(phones, owner) if o == wi]
        if not mine or tok is None:
            continue
        if words and tok == last_token:
            words[-1] = WordSegment(words[-1].start, mine[-1].end, words[-1].word)
        else:
            words.append(WordSegment(mine[0].start, mine[-1].end, clean_word(spans[tok][2])))
        last_token = tok
    return phones, words, switches


def _phone_of(name: str) -> str | None:
    """Unified phone for an espeak IPA name, None for pauses and modifier-only names."""
    if name.strip() == "":
        return None
    try:
        return normalize_ipa(name)
    except InputError:
        return None


def _is_consonant(phone: str) -> bool:
    from ..phoneset import inventory

    info = inventory().get(phone)
    return info is not None and info.is_consonant


def _token_at(spans: list[tuple[int, int, str]], index: int) -> int | None:
    """The token containing character ``index``, or else the next token."""
    for k, (a, b, _) in enumerate(spans):
        if index < b:
            return k
    return len(spans) - 1 if spans else None


class EspeakEngine(SpeechEngine):
    """espeak-ng: every language it ships and its voice variants (``"en-us+f3"``)."""

    name = "espeak"
    default_voice = "en-us"

    @functools.cached_property
    def _voices(self) -> dict[str, str]:
        # espeak_SetVoiceByName takes the voice file's name ("en-us", "fr"), not always the
        # language code ("fr-fr"); keep both directions.
        return {ident.rsplit("/", 1)[-1].lower(): code for code, _, ident in _library().voices()}

    def voices(self) -> list[str]:
        """Voice names (``"en-us"``, ``"de"``, ``"fr"``...); append ``+<variant>`` freely."""
        return sorted(self._voices)

    def languages(self) -> list[str]:
        """Language codes of the voices (``"en-gb"``, ``"fr-fr"``...)."""
        return sorted(set(self._voices.values()))

    def variants(self) -> list[str]:
        """Voice variants (``"f3"``, ``"m1"``, ``"klatt"``...) to append as ``voice+variant``."""
        lib = _library()
        vdir = (lib.data_dir / "voices" / "!v") if lib.data_dir else None
        if vdir is None or not vdir.is_dir():
            return []
        return sorted(p.name for p in vdir.iterdir() if p.is_file())

    def resolve_voice(self, voice: str) -> str:
        """The voice name espeak accepts for a voice name or language code, with its variant."""
        base, plus, variant = voice.partition("+")
        key = base.strip().lower()
        if key not in self._voices:
            by_code = {code.lower(): name for name, code in self._voices.items()}
            if key not in by_code:
                raise InputError(
                    f"espeak has no voice or language {base!r} (see `espeak-ng --voices`)"
                )
            key = by_code[key]
        if plus:
            known = self.variants()
            if known and variant not in known:
                raise InputError(
                    f"espeak has no voice variant {variant!r}; e.g. {', '.join(known[:12])}..."
                )
        return key + plus + variant

    def language_of(self, voice: str) -> str:
        return self._voices[self.resolve_voice(voice).split("+", 1)[0]]

    def _synthesize(self, text, *, voice, rate, pitch, seed) -> Utterance:
        voice = self.resolve_voice(voice)
        lib = _library()
        with lib.lock:
            raw = lib.run(text, voice, _rate_wpm(rate), _pitch_param(pitch))
        # Straight into one float32 array, each block released once copied: concatenating and
        # converting whole made three more copies of a long text's audio at once.
        audio = np.empty(sum(len(b) for b in raw.samples), np.float32)
        pos = 0
        for i, block in enumerate(raw.samples):
            audio[pos: pos + len(block)] = block
            pos += len(block)
            raw.samples[i] = None
        audio /= 32768.0
        sr = lib.sample_rate
        phones, words, switches = events_to_segments(raw.events, len(audio), sr, text)
        if not words or all(p.phone == SILENCE for p in phones):
            raise InputError(f"text has nothing espeak can speak: {text[:60]!r}")
        phones = fill_gaps(phones, len(audio) / sr)
        refined = refine_closures(audio, sample_rate=sr, phones=phones)
        words = remap_words(words, phones, refined)
        phones = refined
        return Utterance(
            audio=audio,
            sample_rate=sr,
            phones=phones,
            words=words,
            text=text,
            language=self.language_of(voice),
            voice=voice,
            engine=self.name,
            meta={"rate_wpm": _rate_wpm(rate), "language_switches": switches},
        )


register_engine("espeak", EspeakEngine)
