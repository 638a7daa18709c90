"""flite (CMU Flite 2.x) run as a program: ``flite -psdur`` prints each segment's end time.

flite prints one relation per run, so word boundaries come from its own front end: ``t2p`` gives
each token's pronunciation (tokens separated by commas, which flite marks with ``pau``), and an
edit-distance alignment of those against the synthesised segments assigns segments to tokens.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

from ...errors import FlamesyncError, InputError
from ..closure import refine_closures, remap_words
from ..phoneset import map_phone
from ..types import SILENCE, PhoneSegment, Utterance, WordSegment, fill_gaps
from ._proc import align_tokens, clean_word, token_spans, check_text_speakable, need_program, read_wav, run_program
from .base import SpeechEngine, register_engine

# Limited-domain voices only say what they were built for (awb_time: the time of day).
_LIMITED_DOMAIN = {"awb_time"}
_PAUSES = {"pau", "h#", "brth"}


def split_tokens(text: str) -> list[str]:
    """Tokens of ``text``, punctuation-only ones merged into the next (see ``token_spans``)."""
    return [t for _, _, t in token_spans(text)]


def parse_psdur(out: str) -> list[tuple[str, float]]:
    """``name:end`` pairs from ``flite -psdur`` output."""
    segs = []
    for m in re.finditer(r"(\S+):([0-9.]+)", out):
        segs.append((m.group(1), float(m.group(2))))
    if not segs:
        raise InputError("flite printed no segments for this text")
    return segs


class FliteEngine(SpeechEngine):
    """CMU Flite voices (kal, kal16, awb, rms, slt), US English."""

    name = "flite"
    default_voice = "slt"

    @functools.cached_property
    def _exe(self) -> str:
        return need_program("flite", engine="flite", package="flite")

    @functools.cached_property
    def _t2p(self) -> str:
        return need_program("t2p", engine="flite", package="flite")

    @functools.cached_property
    def _voices(self) -> list[str]:
        out = run_program([self._exe, "-lv"], engine="flite")
        names = out.split(":", 1)[-1].split()
        return [v for v in names if v not in _LIMITED_DOMAIN]

    def voices(self) -> list[str]:
        return list(self._voices)

    def languages(self) -> list[str]:
        return ["en-us"]

    def language_of(self, voice: str) -> str:
        return "en-us"

    def _token_phones(self, tokens: list[str]) -> list[list[str]]:
        """Each token's pronunciation from flite's front end (stress digits removed)."""
        def phones(s: str) -> list[str]:
            return [re.sub(r"\d", "", p) for p in s.split()]

        joined = run_program([self._t2p, ", ".join(tokens)], engine="flite t2p")
        groups = [g for g in re.split(r"\bpau\b", joined) if g.strip()]
        if len(groups) == len(tokens):
            return [phones(g) for g in groups]
        # A token that flite reads as nothing or as several phrases: ask token by token.
        return [
            [p for p in phones(run_program([self._t2p, t], engine="flite t2p")) if p not in _PAUSES]
            for t in tokens
        ]

    def _synthesize(self, text, *, voice, rate, pitch, seed) -> Utterance:
        check_text_speakable(text, engine="flite")
        if voice not in self.voices():
            raise InputError(f"flite has no voice {voice!r}; choose from {', '.join(self.voices())}")
        text = " ".join(text.split())
        with tempfile.TemporaryDirectory(prefix="flamesync-flite-") as tmp:
            wav = Path(tmp) / "out.wav"
            args = [self._exe, "-voice", voice, "--setf", f"duration_stretch={1.0 / rate:.6f}",
                    "-psdur", "-t", text, "-o", str(wav)]
            out = run_program(args, engine="flite")
            audio, sr = read_wav(wav, engine="flite")
        segs = parse_psdur(out)
        phones, t = [], 0.0
        for name, end in segs:
            phones.append(PhoneSegment(t, end, map_phone("radio", name), name))
            t = end
        if all(p.phone == SILENCE for p in phones):
            raise InputError(f"text has nothing flite can speak: {text[:60]!r}")
        duration = len(audio) / sr
        # Diphone voices (kal) cut the final pause short; what is spoken must fit the audio.
        spoken_end = max((p.end for p in phones if p.phone != SILENCE), default=0.0)
        if spoken_end > duration + 0.02 or t < duration - 0.1:
            raise FlamesyncError(
                f"flite segments (speech until {spoken_end:.3f} s, end {t:.3f} s) do not fit "
                f"its audio ({duration:.3f} s)"
            )
        phones = fill_gaps(phones, duration)
        words = self._words(text, phones)
        # Stops are labelled with their closure already; only a stray quiet stretch is moved,
        # and a pause before a stop stays a pause.
        refined = refine_closures(audio, sample_rate=sr, phones=phones, max_closure_after_pause=0.0)
        words = remap_words(words, phones, refined)
        utt = Utterance(audio=audio, sample_rate=sr, phones=refined, words=words, text=text,
                        language="en-us", voice=voice, engine=self.name)
        if pitch is not None and pitch != 1.0:
            from ..augment import shift_pitch

            utt = shift_pitch(utt, factor=pitch, seed=seed)
        return utt

    def _words(self, text: str, phones: list[PhoneSegment]) -> list[WordSegment]:
        tokens = split_tokens(text)
        spoken = [(i, p) for i, p in enumerate(phones) if p.phone != SILENCE]
        owner = align_tokens([p.label for _, p in spoken], self._token_phones(tokens))
        words = []
        for t, tok in enumerate(tokens):
            mine = [p for (_, p), o in zip(spoken, owner) if o == t]
            if mine:
                words.append(WordSegment(mine[0].start, mine[-1].end, clean_word(tok) or tok))
        return words


register_engine("flite", FliteEngine)
