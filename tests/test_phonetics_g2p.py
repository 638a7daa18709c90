from flamesync.phonetics.g2p import letter_to_sound, number_words, words_of


def test_number_words():
    assert number_words(0) == ["zero"]
    assert number_words(25) == ["twenty", "five"]
    assert number_words(1001) == ["one", "thousand", "one"]
    assert number_words(342) == ["three", "hundred", "forty", "two"]


def test_words_of_keeps_tokens_and_expands():
    got = dict(words_of("In 1984, the 25th well-known U.S.A. -- & 3.5"))
    assert got["1984,"] == ["nineteen", "eighty", "four"]
    assert got["25th"] == ["twenty", "fifth"]
    assert got["well-known"] == ["well", "known"]
    assert got["&"] == ["and"]
    assert got["3.5"] == ["three", "point", "five"]
    assert "--" not in got
    assert words_of("... !!! --") == []


def test_letter_to_sound_gives_phones_for_any_word():
    assert letter_to_sound("make") == ["M", "EY", "K"]
    assert letter_to_sound("church") == ["CH", "ER", "CH"]
    for w in ["flamesync", "zyx", "straße", "naïve", "qwrtp"]:
        assert letter_to_sound(w), w
