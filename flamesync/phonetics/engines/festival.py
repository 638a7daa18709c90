"""The Festival speech synthesis system run as a program on a generated Scheme script.

For each text the script synthesises an utterance, saves its waveform and prints every segment
(name and end time) and every word (with the start and end of its segments, read through the
SylStructure relation). Many texts go through one festival process (:meth:`synthesize_many`).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from ...errors import FlamesyncError, InputError
from ..closure import refine_closures, remap_words
from ..phoneset import map_phone
from ..types import SILENCE, PhoneSegment, Utterance, WordSegment, fill_gaps
from ._proc import check_text_speakable, need_program, read_wav, run_program
from .base import SpeechEngine, register_engine

_VOICE_DIRS = [Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices")]

_DUMP = r"""
(define (fs_dump idx utt wav)
  (utt.save.wave utt wav 'riff)
  (format t "U\t%d\n" idx)
  (mapcar (lambda (s) (format t "S\t%s\t%f\n" (item.name s) (item.feat s "end")))
          (utt.relation.items utt 'Segment))
  (mapcar (lambda (w)
            (let ((segs nil) (sw (item.relation w 'SylStructure)))
              (if sw
                  (mapcar (lambda (syl)
                            (mapcar (lambda (sg) (set! segs (cons sg segs))) (item.daughters syl)))
                          (item.daughters sw)))
              (if segs
                  (format t "W\t%f\t%f\t%s\n"
                          (item.feat (car (last segs)) "segment_start") (item.feat (car segs) "end")
                          (item.name w)))))
          (utt.relation.items utt 'Word))
  (format t "E\t%d\n" idx)
  t)
"""


def _scheme_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_dump(out: str) -> dict[int, tuple[list[tuple[str, float]], list[tuple[float, float, str]]]]:
    """Segments and words per utterance index from the script's output."""
    res: dict[int, tuple[list, list]] = {}
    cur = None
    for line in out.splitlines():
        parts = line.split("\t")
        if parts[0] == "U" and len(parts) == 2:
            cur = int(parts[1])
            res[cur] = ([], [])
        elif parts[0] == "S" and cur is not None and len(parts) == 3:
            res[cur][0].append((parts[1], float(parts[2])))
        elif parts[0] == "W" and cur is not None and len(parts) >= 4:
            res[cur][1].append((float(parts[1]), float(parts[2]), "\t".join(parts[3:])))
        elif parts[0] == "E":
            cur = None
    return res


class FestivalEngine(SpeechEngine):
    """Festival voices installed on the system (kal_diphone, cmu_us_slt_arctic_hts, ked_diphone...)."""

    name = "festival"
    default_voice = "kal_diphone"

    @functools.cached_property
    def _exe(self) -> str:
        return need_program("festival", engine="festival", package="festival festvox-kallpc16k")

    def voices(self) -> list[str]:
        names = set()
        for root in _VOICE_DIRS:
            if root.is_dir():
                for lang in root.iterdir():
                    if lang.is_dir():
                        names.update(v.name for v in lang.iterdir() if v.is_dir())
        return sorted(names)

    def languages(self) -> list[str]:
        return ["en-us"] if self.voices() else []

    def language_of(self, voice: str) -> str:
        return "en-us"

    def _synthesize(self, text, *, voice, rate, pitch, seed) -> Utterance:
        return self._batch([text], voice=voice, rate=rate, pitch=pitch, seed=seed)[0]

    def synthesize_many(self, texts, *, voice=None, rate=1.0, pitch=None, seed=0) -> list[Utterance]:
        """Speak several texts in one festival process (saves ~0.3 s of start-up per text)."""
        texts = list(texts)
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise InputError("text to speak is empty")
        if not texts:
            return []
        if pitch is not None and not pitch > 0:
            raise InputError(f"pitch factor must be a positive number, got {pitch!r}")
        if not rate > 0:
            raise InputError(f"speaking rate must be a positive number, got {rate!r}")
        return self._batch(texts, voice=voice or self.default_voice, rate=float(rate), pitch=pitch,
                           seed=int(seed))

    def _batch(self, texts, *, voice, rate, pitch, seed=0) -> list[Utterance]:
        if voice not in self.voices():
            raise InputError(
                f"festival has no voice {voice!r}; installed: {', '.join(self.voices()) or 'none'}"
            )
        texts = [" ".join(t.split()) for t in texts]
        for t in texts:
            check_text_speakable(t, engine="festival")
        with tempfile.TemporaryDirectory(prefix="flamesync-festival-") as tmp:
            script = [
                _DUMP,
                f"(voice_{voice})",
                f"(Parameter.set 'Duration_Stretch {1.0 / rate:.6f})",
                # HTS voices take their own durations and ignore Duration_Stretch; hts_engine's
                # speed option (-r) scales them instead.
                f"(if (boundp 'hts_engine_params) (set! hts_engine_params "
                f"(append hts_engine_params (list (list \"-r\" {rate:.6f})))))",
            ]
            wavs = [Path(tmp) / f"u{i}.wav" for i in range(len(texts))]
            for i, (t, w) in enumerate(zip(texts, wavs)):
                script.append(f"(fs_dump {i} (SynthText {_scheme_string(t)}) {_scheme_string(str(w))})")
            path = Path(tmp) / "run.scm"
            path.write_text("\n".join(script) + "\n", encoding="utf-8")
            out = run_program([self._exe, "--batch", str(path)], engine="festival",
                              timeout=60.0 + 10.0 * len(texts))
            dumps = parse_dump(out)
            results = []
            for i, (t, w) in enumerate(zip(texts, wavs)):
                if i not in dumps:
                    raise FlamesyncError(f"festival gave no result for text {i} ({t[:40]!r})")
                audio, sr = read_wav(w, engine="festival")
                results.append(self._utterance(t, voice, audio, sr, *dumps[i], pitch=pitch, seed=seed))
        return results

    def _utterance(self, text, voice, audio, sr, segs, words, *, pitch, seed=0) -> Utterance:
        phones, t = [], 0.0
        for name, end in segs:
            phones.append(PhoneSegment(t, end, map_phone("radio", name), name))
            t = max(t, end)
        if all(p.phone == SILENCE for p in phones):
            raise InputError(f"text has nothing festival can speak: {text[:60]!r}")
        duration = len(audio) / sr
        # Diphone voices (kal) cut the final pause short; what is spoken must fit the audio.
        spoken_end = max((p.end for p in phones if p.phone != SILENCE), default=0.0)
        if spoken_end > duration + 0.02 or t < duration - 0.1:
            raise FlamesyncError(
                f"festival segments (speech until {spoken_end:.3f} s, end {t:.3f} s) do not fit "
                f"its audio ({duration:.3f} s)"
            )
        phones = fill_gaps(phones, duration)
        words = [WordSegment(s, e, w) for s, e, w in words]
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


register_engine("festival", FestivalEngine)
