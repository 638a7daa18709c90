import pytest

from flamesync.errors import InputError
from flamesync.phonetics.phoneset import (
    inventory, map_phone, normalize_ipa, phone_info, phone_map,
)


def test_inventory_features():
    inv = inventory()
    assert inv["_"].is_silence
    p = phone_info("p")
    assert (p.place, p.manner, p.voiced, p.has_closure) == ("bilabial", "stop", False, True)
    assert phone_info("m").manner == "nasal" and phone_info("m").place == "bilabial"
    assert phone_info("f").place == "labiodental"
    assert phone_info("tʃ").manner == "affricate"
    u = phone_info("uː")
    assert u.is_vowel and u.rounded and u.long and u.height == "close" and u.backness == "back"
    ai = phone_info("aɪ")
    assert ai.kind == "diphthong" and ai.height == "open" and ai.height2 == "near-close"
    for info in inv.values():
        if info.kind == "consonant":
            assert info.place and info.manner, info
        elif info.is_vowel:
            assert info.height and info.backness, info
    with pytest.raises(InputError):
        phone_info("not-a-phone")


@pytest.mark.parametrize("symbol, expected", [
    ("ˈaɪ", "aɪ"), ("t͡ʃ", "tʃ"), ("ɔ̃", "ɔ"), ("o̞", "o"), ("ä", "a"), ("pʰ", "p"),
    ("iː", "iː"), ("ɪː", "iː"), ("kː", "k"), ("g", "ɡ"), ("ɫ", "l"), ("dʲ", "d"), ("ə-", "ə"),
    ("ʧ", "tʃ"), ("ja", "a"), ("aɪ̯", "aɪ"), ("ɹ̩", "ɚ"), ("_", "_"), ("", "_"), ("e˧˥", "e"),
])
def test_normalize_ipa(symbol, expected):
    assert normalize_ipa(symbol) == expected


def test_normalize_ipa_always_lands_in_inventory():
    inv = inventory()
    for s in ["ɐ̃", "ʀ̥", "ɯᵝ", "ɔø", "æi", "ts'", "r̝", "ɛ̃ː", "ɕʰ", "ʈʂʰ", "ɨ̞"]:
        assert normalize_ipa(s) in inv, s


def test_normalize_ipa_rejects_non_phones():
    with pytest.raises(InputError):
        normalize_ipa("ˈˌ")
    with pytest.raises(InputError):
        normalize_ipa("Ж")


def test_engine_tables_map_into_inventory():
    inv = inventory()
    for name in ("radio", "cmu_arpabet"):
        table = phone_map(name)
        assert len(table) > 40
        assert set(table.values()) <= set(inv)
    assert map_phone("radio", "pau") == "_"
    assert map_phone("radio", "ch") == "tʃ"
    assert map_phone("cmu_arpabet", "AA1") == "ɑː"
    assert map_phone("cmu_arpabet", "sil") == "_"
    with pytest.raises(InputError):
        map_phone("radio", "qq")
    with pytest.raises(InputError):
        phone_map("klingon")
