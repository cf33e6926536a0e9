"""Amounts and counts across scripts and spellings give the keys the digit form gives (transform/amounts.py).

An English "$1.2 billion" and "forty-six residents", a Chinese "12亿美元" and "46名居民", a Japanese "1200億円", a
Russian "1,2 млрд рублей", an Arabic "٤٦ شخصا": each report of a figure must give the same number cue, or the cue
term sees disagreement where the reports agree. And what is no amount (years, dates, phone numbers, ordinals, the
second number of a range, "一名妇女") gives no count.
"""

from __future__ import annotations

import pytest

from transform.amounts import ascii_digits, cjk_amounts, spelled, spelled_values
from transform.entities import _lexicon_for, extract_cues


def _numbers(text: str, language: str | None) -> frozenset[str]:
    return extract_cues("", text, language).numbers


def _value(words: str, language: str | None = "en") -> list[int]:
    lexicon = _lexicon_for(language)
    tokens = [part for word in words.split() for part in word.split("-")]
    return [value for _, _, value in spelled_values(tokens, lexicon.number_words, spelled(language))]


@pytest.mark.parametrize(
    ("words", "language", "values"),
    [
        ("forty-six", "en", [46]),
        ("twenty one", "en", [21]),
        ("three hundred and twenty", "en", [320]),
        ("one hundred and five", "en", [105]),
        ("two thousand five hundred", "en", [2500]),
        ("two dozen", "en", [24]),
        ("a dozen", "en", [12]),
        ("two three", "en", [2, 3]),  # no one number: two numbers
        ("twenty thirty", "en", [20, 30]),
        ("quarante-six", "fr", [46]),
        ("vingt et un", "fr", [21]),
        ("soixante-dix", "fr", [70]),
        ("quatre-vingt-treize", "fr", [93]),
        ("deux cents", "fr", [200]),
        ("empat puluh enam", "ms", [46]),
        ("dua ratus lima puluh", "ms", [250]),
        ("dua belas", "ms", [12]),
        ("tiga ribu", "ms", [3000]),
    ],
)
def test_compound_number_words(words: str, language: str, values: list[int]) -> None:
    assert _value(words, language) == values


@pytest.mark.parametrize(
    ("text", "language", "cues"),
    [
        (
            "The death toll rose to twenty. One hundred people were injured.",
            "en",
            {"n:20", "n:20:dead", "n:100", "n:100:injured"},
        ),
        ("twenty; one hundred residents were evacuated", "en", {"n:100", "n:100:displaced"}),
        ("Twenty killed\nOne hundred people were injured", "en", {"n:20", "n:20:dead", "n:100", "n:100:injured"}),
        ("thirty, five houses were destroyed", "en", {"n:5", "n:5:buildings"}),
        ("one hundred and twenty people were injured", "en", {"n:120", "n:120:injured"}),
        ("forty - six houses", "en", {"n:46", "n:46:buildings"}),
        (
            "Le bilan est de vingt. Cent personnes ont été blessées.",
            "fr",
            {"n:20", "n:20:dead", "n:100", "n:100:injured"},
        ),
        ("vingt, et un blessé", "fr", set()),
        ("vingt et un blessés", "fr", {"n:21", "n:21:injured"}),
        ("quatre. Vingt maisons détruites", "fr", {"n:20", "n:20:buildings"}),
        ("dua puluh. Lima buah rumah musnah", "ms", {"n:5", "n:5:buildings"}),
        ("Jumlah kematian dua puluh; lima orang cedera", "ms", {"n:20", "n:20:dead", "n:5", "n:5:injured"}),
        ("empat puluh enam orang cedera", "ms", {"n:46", "n:46:injured"}),
    ],
)
def test_number_words_are_not_joined_across_punctuation(text: str, language: str, cues: set[str]) -> None:
    """Words of one number are separated by spaces or a hyphen (or joined by "and", "et" inside it); a full stop,
    a comma, a semicolon or a line break ends the number, so that two clauses' numbers are not read as one
    ("twenty. One hundred people were injured" is no 2100 injured)."""
    assert _numbers(text, language) == cues


def test_number_words_are_not_joined_across_title_and_text() -> None:
    numbers = extract_cues("Toll rises to twenty", "One hundred people were injured", "en").numbers
    assert numbers == {"n:20", "n:20:dead", "n:100", "n:100:injured"}  # no n:2100


@pytest.mark.parametrize(
    ("english", "other", "language", "cues"),
    [
        # the Kota Tinggi landslide of corpus part 4: the English spells the counts the Chinese writes in digits
        ("Forty-six residents were moved.", "共46名居民已被转移。", "zh", {"n:46"}),
        ("The landslide buried three houses.", "3间房屋被埋。", "zh", {"n:3", "n:3:buildings"}),
        ("It buried three houses.", "tiga buah rumah tertimbus", "ms", {"n:3", "n:3:buildings"}),
        ("killing twelve workers", "事故已造成12人死亡", "zh", {"n:12", "n:12:dead"}),
        ("killing twelve workers", "少なくとも12人が死亡した", "ja", {"n:12", "n:12:dead"}),
        ("Twelve people were killed", "至少十二人死亡", "zh", {"n:12", "n:12:dead"}),
        ("46 people were injured", "46人受伤", "zh", {"n:46", "n:46:injured"}),
        ("three people were missing", "另有3人失联", "zh", {"n:3", "n:3:missing"}),
        ("the toll rose to 31", "死亡人数升至31人", "zh", {"n:31", "n:31:dead"}),
        ("the toll rose to 31", "死者は31人に", "ja", {"n:31", "n:31:dead"}),
        ("$1.2 billion", "12亿美元", "zh", {"n:1200000000", "n:1200000000:money"}),
        ("¥850 billion", "8500億円", "ja", {"n:850000000000", "n:850000000000:money"}),
        ("¥850 billion", "8500亿日元", "zh", {"n:850000000000", "n:850000000000:money"}),
        ("RM1.2 billion", "12亿令吉", "zh", {"n:1200000000", "n:1200000000:money"}),
        ("RM1.2b", "RM1.2 bilion", "ms", {"n:1200000000", "n:1200000000:money"}),
        ("$3bn", "$3 billion", "en", {"n:3000000000", "n:3000000000:money"}),
        ("1.2 billion roubles", "1,2 млрд рублей", "ru", {"n:1200000000", "n:1200000000:money"}),
        ("Nine miners were killed", "погибли 9 горняков", "ru", {"n:9", "n:9:dead"}),
        ("Nine miners were killed", "9 человек погибли", "ru", {"n:9", "n:9:dead"}),
        ("11 people were evacuated", "11 человек эвакуированы", "ru", {"n:11", "n:11:displaced"}),
        (
            "killing 14 people and injuring 23",
            "مصرع ١٤ شخصا وإصابة ٢٣",
            "ar",
            {"n:14", "n:14:dead", "n:23", "n:23:injured"},
        ),
        ("killing 14 people", "لقي ١٤ شخصا مصرعهم", "ar", {"n:14", "n:14:dead"}),
        ("$1.2 billion", "بقيمة ١٫٢ مليار دولار", "ar", {"n:1200000000", "n:1200000000:money"}),
        ("quarante-six habitants évacués", "46 residents evacuated", "en", {"n:46", "n:46:displaced"}),
    ],
)
def test_one_figure_gives_one_cue_across_scripts(english: str, other: str, language: str, cues: set[str]) -> None:
    """Both reports give exactly the same number keys: no extra or contradictory class key on either side (the
    dilution the module's docstring warns about)."""
    source = "fr" if "habitants" in english else "en"
    assert _numbers(english, source) == cues
    assert _numbers(other, language) == cues


def test_a_class_read_on_one_side_only_leaves_the_bare_figure_shared() -> None:
    # "millions d'euros" gives no money class (yet): the bare figure is still the same key on both sides
    assert _numbers("€2.5m", "en") == {"n:2500000", "n:2500000:money"}
    assert _numbers("2,5 millions d'euros", "fr") == {"n:2500000"}


def test_a_count_without_its_class_on_one_side_gives_no_class_key_there() -> None:
    # "46 residents" gives the bare 46 only: nothing the other report could disagree with
    assert _numbers("Forty-six residents were moved to a hall.", "en") == {"n:46"}
    assert _numbers("46 residents were moved to a hall.", "en") == {"n:46"}


@pytest.mark.parametrize(
    ("text", "language", "absent"),
    [
        ("2026年4月14日", "zh", {"n:2026", "n:4"}),  # a date: the year and the month are no counts
        ("第3次会议", "zh", {"n:3"}),  # an ordinal
        ("第12届全运会", "zh", {"n:12"}),
        ("30至40人受伤", "zh", {"n:40:injured", "n:30:injured"}),  # a range: no class for either end
        ("30-40人受伤", "zh", {"n:40:injured"}),
        ("一名妇女罹难", "zh", {"n:1", "n:1:dead"}),  # "a woman": no count
        ("千万不要靠近", "zh", {"n:10000000"}),  # "by all means": multipliers alone
        ("数十人受伤", "zh", {"n:10", "n:10:injured"}),  # dozens: no figure
        ("几百万元", "zh", {"n:1000000", "n:100000000"}),
        ("造成12人伤亡", "zh", {"n:12:injured", "n:12:dead"}),  # casualties: dead and injured together
        ("咨询电话0731-84561234", "zh", {"n:84561234"}),  # a phone number
        ("Call 0731-84561234", "en", {"n:84561234"}),
        ("since 2019, three times", "en", {"n:2019", "n:3"}),  # a year; a count without a unit
        ("the 5th round, the 1990s, 15km away", "en", {"n:5", "n:1990", "n:15"}),
        ("the third and fourth victims died", "en", {"n:3", "n:4", "n:3:dead", "n:4:dead"}),  # ordinals
        ("one of the buildings", "en", {"n:1", "n:1:buildings"}),
        ("a 5m wall and 3b", "en", {"n:5000000", "n:3000000000"}),  # a glued scale only on money
    ],
)
def test_what_is_no_amount_gives_no_count(text: str, language: str, absent: set[str]) -> None:
    assert not (absent & _numbers(text, language)), _numbers(text, language)


def test_a_chinese_amount_is_read_once() -> None:
    found, blanked = cjk_amounts("政府拨款12亿美元")
    assert found == {"n:1200000000", "n:1200000000:money"}
    assert "12" not in blanked  # the generic reader does not read a bare 12 in it
    assert _numbers("政府拨款12亿美元", "zh") == found


def test_a_chinese_count_is_bounded_by_its_clause() -> None:
    assert _numbers("3间房屋被埋，一名妇女罹难", "zh") == {"n:3", "n:3:buildings"}  # no n:3:dead
    assert _numbers("3人死亡、12人受伤", "zh") == {"n:3", "n:3:dead", "n:12", "n:12:injured"}  # no n:12:dead


def test_arabic_indic_digits_read_as_ascii() -> None:
    assert ascii_digits("١٤ و٢٣ و١٫٥ و۴۲") == "14 و23 و1.5 و42"
    assert ascii_digits("no digits here") == "no digits here"


def test_language_words_stay_in_their_language() -> None:
    # the Russian and Arabic words are read in their own articles only, the Malay classifier in Malay ones
    assert "n:1200000000:money" not in _numbers("1,2 млрд рублей", "en")
    assert "n:3:buildings" not in _numbers("tiga buah rumah", "en")
