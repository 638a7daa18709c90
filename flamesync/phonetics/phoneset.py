"""The unified phone inventory (broad IPA with articulatory features) and mappings onto it.

Every engine labels phones its own way: espeak-ng writes narrow IPA with stress, length and
diacritics (``ˈaɪ``, ``t͡ʃ``, ``ɔ̃``, ``o̞``), flite and festival use the US "radio" set (``aa``,
``ch``, ``pau``), pocketsphinx uses CMU ARPAbet (``AA1``, ``SIL``). Downstream code (visemes, the
coarticulation teacher, evaluation) sees one label set: the phones listed in
``configs/phones/inventory.tsv``. :func:`normalize_ipa` maps any IPA-ish symbol onto it and
:func:`map_phone` maps an engine's native symbol through that engine's table.

The data files live in ``configs/phones/``: ``inventory.tsv`` (the phones and their features),
``ipa_aliases.tsv`` (alternative spellings), and one ``<phoneset>.tsv`` per engine phone set.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, ModelFileError
from ..tables import config_path, read_tsv
from .types import SILENCE

CONFIG_DIR = config_path("phones")

# Marks that carry no articulatory target for the lips/jaw at this level of detail: stress,
# syllabicity, tone letters, release/aspiration/secondary articulations, syllable separators.
_STRIP_CHARS = set("ˈˌ'\"ˑ.‿|‖-_%=+*()[]/") | set("˥˦˧˨˩˩˧˦˨˥") | set("0123456789")
_STRIP_MODIFIERS = set("ʰʱʷʲˠˤⁿˡʼ˞ʴ̚ꜛꜜ↗↘")
_LENGTH = "ː"


@dataclass(frozen=True)
class PhoneInfo:
    """Articulatory features of one phone of the inventory.

    ``kind`` is ``silence``, ``consonant``, ``vowel`` or ``diphthong``. Consonants have ``place``
    (bilabial, labiodental, dental, alveolar, postalveolar, retroflex, alveolopalatal, palatal,
    velar, uvular, pharyngeal, glottal, labial-velar, labial-palatal) and ``manner`` (stop, nasal,
    fricative, affricate, approximant, lateral, lateral-fricative, tap, trill). Vowels have
    ``height`` (close ... open), ``backness`` (front ... back) and ``rounded``; diphthongs add the
    glide target in ``height2``/``backness2``/``rounded2``. ``rounded`` on a consonant marks lip
    rounding or protrusion (w, ʃ...).
    """

    phone: str
    kind: str
    place: str | None
    manner: str | None
    voiced: bool
    rounded: bool
    height: str | None
    backness: str | None
    long: bool
    height2: str | None
    backness2: str | None
    rounded2: bool | None
    description: str

    @property
    def is_silence(self) -> bool:
        return self.kind == "silence"

    @property
    def is_vowel(self) -> bool:
        return self.kind in ("vowel", "diphthong")

    @property
    def is_consonant(self) -> bool:
        return self.kind == "consonant"

    @property
    def has_closure(self) -> bool:
        """Stops and affricates: a full oral closure precedes the release."""
        return self.manner in ("stop", "affricate")


def _read_tsv(name: str) -> list[dict[str, str]]:
    return read_tsv(CONFIG_DIR / name)


def _opt(v: str) -> str | None:
    return None if v == "-" else v


@functools.lru_cache(maxsize=None)
def inventory() -> dict[str, PhoneInfo]:
    """All phones of the unified set, in file order, keyed by IPA label (``"_"`` is silence)."""
    out: dict[str, PhoneInfo] = {}
    for r in _read_tsv("inventory.tsv"):
        out[r["phone"]] = PhoneInfo(
            phone=r["phone"],
            kind=r["kind"],
            place=_opt(r["place"]),
            manner=_opt(r["manner"]),
            voiced=r["voiced"] == "1",
            rounded=r["rounded"] == "1",
            height=_opt(r["height"]),
            backness=_opt(r["backness"]),
            long=r["long"] == "1",
            height2=_opt(r["height2"]),
            backness2=_opt(r["backness2"]),
            rounded2=None if r["rounded2"] == "-" else r["rounded2"] == "1",
            description=r["description"],
        )
    return out


def phone_info(phone: str) -> PhoneInfo:
    """Features of a unified phone; InputError for labels outside the inventory."""
    try:
        return inventory()[phone]
    except KeyError:
        raise InputError(f"{phone!r} is not a phone of the unified inventory") from None


@functools.lru_cache(maxsize=None)
def _aliases() -> dict[str, str]:
    return {r["symbol"]: r["ipa"] for r in _read_tsv("ipa_aliases.tsv")}


def _clean(symbol: str) -> str:
    """Drop stress, tone, tie bars and diacritics, keeping base letters and the length mark."""
    inv = inventory()
    out = []
    for ch in unicodedata.normalize("NFC", symbol.strip()):
        if ch in _STRIP_CHARS or ch in _STRIP_MODIFIERS or ch.isspace():
            continue
        if ch == ":":
            ch = _LENGTH
        if ch == _LENGTH or ch in inv:
            out.append(ch)
            continue
        # Combining marks (nasal ̃, lowered ̞, syllabic ̩, non-syllabic ̯, tie bars ͡ ͜ ...) and
        # precomposed letters with them (ä, ẽ) reduce to their base letters.
        for part in unicodedata.normalize("NFD", ch):
            if not unicodedata.combining(part):
                out.append(part)
    return "".join(out)


def _lookup(s: str) -> str | None:
    inv, al = inventory(), _aliases()
    if s in inv:
        return s
    if s in al:
        return al[s]
    if s.endswith(_LENGTH) and (s[:-1] in inv or s[:-1] in al):
        # A long vowel the inventory lists only short (length is in the timing already).
        return _lookup(s[:-1])
    return None


@functools.lru_cache(maxsize=4096)
def normalize_ipa(symbol: str) -> str:
    """Map an IPA-ish phone symbol from any engine onto the unified inventory.

    Stress and tone marks, tie bars, syllable marks and diacritics are dropped (``ˈaɪ`` -> ``aɪ``,
    ``t͡ʃ`` -> ``tʃ``, ``ɔ̃`` -> ``ɔ``, ``pʰ`` -> ``p``, ``o̞`` -> ``o``); length is kept where the
    inventory has the long vowel (``iː``) and dropped otherwise; alternative spellings go through
    ``ipa_aliases.tsv`` (``g`` -> ``ɡ``, ``ʧ`` -> ``tʃ``); what still does not match falls back to
    the known phones it is made of (its first vowel, else its first phone).

    Parameters
    ----------
    symbol : str
        One phone, e.g. ``"ˈaɪ"``, ``"t͡ʃ"``, ``"r̩"``. ``"_"`` (and blank) is silence.

    Returns
    -------
    str
        A key of :func:`inventory`.

    Raises
    ------
    InputError
        When no character of the symbol is a known phone.
    """
    if symbol.strip() in ("", SILENCE):
        return SILENCE
    raw = unicodedata.normalize("NFC", symbol.strip())
    if raw in _aliases():
        return _aliases()[raw]
    s = _clean(symbol)
    if not s:
        raise InputError(f"phone symbol {symbol!r} has no phonetic content")
    hit = _lookup(s)
    if hit is not None:
        return hit
    # Split into known phones, longest first; a vowel carries more of the mouth shape than a glide
    # or a secondary consonant, so it represents the whole (Russian "ja" -> "a").
    parts, i = [], 0
    while i < len(s):
        for j in range(len(s), i, -1):
            hit = _lookup(s[i:j])
            if hit is not None:
                parts.append(hit)
                i = j
                break
        else:
            i += 1
    if parts:
        vowels = [p for p in parts if inventory()[p].is_vowel]
        return vowels[0] if vowels else parts[0]
    raise InputError(f"phone symbol {symbol!r} does not map onto the unified phone inventory")


@functools.lru_cache(maxsize=None)
def phone_map(phoneset: str) -> dict[str, str]:
    """An engine phone set's table ``configs/phones/<phoneset>.tsv``: native symbol -> unified phone.

    Known sets: ``"radio"`` (flite, festival's US voices), ``"cmu_arpabet"`` (pocketsphinx,
    cmudict). Keys are lower-cased.
    """
    if not (CONFIG_DIR / f"{phoneset}.tsv").is_file():
        raise InputError(f"unknown phone set {phoneset!r} (no {CONFIG_DIR / (phoneset + '.tsv')})")
    table = {}
    inv = inventory()
    for r in _read_tsv(f"{phoneset}.tsv"):
        if r["ipa"] not in inv:
            raise ModelFileError(f"{phoneset}.tsv maps {r['symbol']!r} to {r['ipa']!r}, not in inventory")
        table[r["symbol"].lower()] = r["ipa"]
    return table


def map_phone(phoneset: str, symbol: str) -> str:
    """Unified phone for an engine's native symbol (stress digits ignored: ``AA1`` -> ``ɑː``)."""
    table = phone_map(phoneset)
    key = symbol.strip().lower()
    if key not in table:
        key = key.rstrip("012")
    try:
        return table[key]
    except KeyError:
        raise InputError(f"phone {symbol!r} is not in the {phoneset} phone set") from None
