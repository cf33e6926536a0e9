"""Malay and Indonesian words (``transform/data/malay.json``) in content terms and cues, and only there.

English and Malay reports of one story share names, numbers and dates, not words; these tests check that a
Malay article gives the cues its English counterpart gives ("5 Mac" is March 5, "tiga orang maut" three dead,
"Sungai Golok" the Golok), and that no article in another language sees a Malay word ("Lima" stays the city,
"di" stays an Italian connector, "Khamis" a name).
"""

from __future__ import annotations

import pytest

from transform.entities import extract_cues
from transform.lexicon import language_words, languages_with_words
from transform.text import ALL_STOPWORDS, STOPWORDS, content_terms, stopwords_for


def _keys(title: str, text: str, language: str | None) -> set[str]:
    cues = extract_cues(title, text, language)
    return set(cues.places | cues.people | cues.organisations | cues.others)


def test_malay_and_indonesian_have_tables_and_share_the_common_words() -> None:
    assert set(languages_with_words()) >= {"ms", "id"}
    malay, indonesian = language_words("ms"), language_words("id")
    assert malay is not None and indonesian is not None
    assert {"yang", "dan", "di", "kepada", "berkata"} <= malay.stopwords & indonesian.stopwords
    assert malay.months["mac"] == 3 and malay.months["ogos"] == 8 and malay.months["disember"] == 12
    assert indonesian.months["maret"] == 3 and indonesian.months["agustus"] == 8
    assert malay.number_words["lapan"] == 8 and indonesian.number_words["delapan"] == 8
    assert malay.units["maut"] == "dead" and malay.units["cedera"] == "injured" and malay.units["hilang"] == "missing"
    assert language_words("en") is None and language_words(None) is None


def test_malay_function_words_are_dropped_and_names_kept() -> None:
    terms = content_terms("Banjir di Kelantan: mangsa yang dipindahkan ke pusat pemindahan dan sekolah", "ms")
    assert "kelantan" in terms and "banjir" in terms
    assert not {"di", "yang", "ke", "dan"} & set(terms)
    # English filler is dropped in Malay articles too, as in every language with a list
    assert "said" not in content_terms("Ahmad said banjir", "ms")


def test_the_union_for_unknown_languages_is_still_that_of_the_four_built_in_lists() -> None:
    assert frozenset().union(*(STOPWORDS[lang] for lang in ("en", "fr", "es", "de"))) == ALL_STOPWORDS
    assert stopwords_for(None) is ALL_STOPWORDS and stopwords_for("zh") is ALL_STOPWORDS
    assert "yang" not in ALL_STOPWORDS and "dan" not in stopwords_for("en")
    assert "dan" in content_terms("Dan Morris met Lima officials", None)


@pytest.mark.parametrize(
    ("text", "language", "date"),
    [
        ("KUALA LUMPUR, 5 Mac (BWN) -- Bank Negara Malaysia menurunkan OPR.", "ms", "d:03-05"),
        ("Mesyuarat itu pada 14 Mac 2026 di Putrajaya.", "ms", "d:03-14"),
        ("Hujan lebat dijangka sehingga Rabu, 14 Januari.", "ms", "d:01-14"),
        ("KOTA TINGGI, 7 Julai (BWN) -- Tanah runtuh menimbus tiga rumah.", "ms", "d:07-07"),
        ("KUCHING, 24 Ogos -- Sebanyak 412 sekolah ditutup.", "ms", "d:08-24"),
        ("Banjir pada 3 Disember menenggelamkan jalan.", "ms", "d:12-03"),
        ("Mesyuarat seterusnya pada 7 Mei.", "ms", "d:05-07"),
        ("Rapat Dewan Gubernur pada 17-18 Maret 2026 memutuskan.", "id", "d:03-18"),
        ("Kebakaran hutan sejak 17 Agustus meluas.", "id", "d:08-17"),
    ],
)
def test_malay_and_indonesian_dates(text: str, language: str, date: str) -> None:
    assert date in extract_cues("", text, language).dates


def test_malay_months_are_not_read_in_other_languages() -> None:
    assert extract_cues("", "He bought 5 Mac laptops and 3 Mei vases.", "en").dates == frozenset()
    assert extract_cues("", "Le 5 mars à Kuala Lumpur.", "fr").dates == {"d:03-05"}


@pytest.mark.parametrize(
    ("text", "language", "cue"),
    [
        ("Tiga orang maut dalam kejadian itu.", "ms", "n:3:dead"),
        ("Dua penumpang maut manakala lima lagi masih hilang.", "ms", "n:5:missing"),
        ("Sekurang-kurangnya 8 pendatang maut.", "ms", "n:8:dead"),
        ("Lapan mangsa maut dalam nahas itu.", "ms", "n:8:dead"),
        ("Seramai 12 pekerja cedera.", "ms", "n:12:injured"),
        ("Polis menahan 14 individu yang disyaki.", "ms", "n:14:arrested"),
        ("OPR diturunkan kepada 2.50 peratus.", "ms", "n:2.5:percent"),
        ("OPR diturunkan sebanyak 25 mata asas.", "ms", "n:25:points"),
        ("BI-Rate turun menjadi 4,50 persen.", "id", "n:4.5:percent"),
        ("Delapan orang tewas dalam kecelakaan itu.", "id", "n:8:dead"),
        ("Kerugian dianggarkan 3 juta ringgit.", "ms", "n:3000000:money"),
    ],
)
def test_malay_and_indonesian_counts_with_units(text: str, language: str, cue: str) -> None:
    assert cue in extract_cues("", text, language).numbers


def test_a_count_before_a_clause_break_is_not_the_subject_of_the_verb_before_it() -> None:
    numbers = extract_cues(
        "", "Tiga orang maut manakala 14,238 mangsa banjir berada di pusat pemindahan.", "ms"
    ).numbers
    assert "n:3:dead" in numbers and "n:14238" in numbers and "n:14238:dead" not in numbers


def test_malay_number_words_are_not_read_in_english() -> None:
    # "Lima" is Peru's capital, not Malay "five", in an English article
    assert "n:5:dead" not in extract_cues("", "Protests in Lima killed two people on Sunday.", "en").numbers


def test_malay_names_split_at_di_and_drop_generic_river_and_island_words() -> None:
    keys = _keys("", "Paras air Sungai Golok di Rantau Panjang melepasi paras bahaya.", "ms")
    assert {"rantau panjang", "golok", "sungai golok"} <= keys
    assert not any(" di " in key for key in keys)
    assert "mabul" in _keys("", "Bot itu dalam perjalanan ke Pulau Mabul pagi ini.", "ms")
    # Italian keeps "di" as a name connector
    assert "cassa di risparmio di firenze" in _keys("", "La Cassa di Risparmio di Firenze ha chiuso.", "it")


def test_malay_ranks_and_titles_lead_to_the_person() -> None:
    text = (
        "Pengarah Maritim Zon Semporna, Komander Maritim Azmir Jaafar, berkata bot itu karam. "
        "Ketua Polis Kelantan, Datuk Rosdi Yusof, berkata dua mayat ditemui."
    )
    cues = extract_cues("", text, "ms")
    assert {"azmir jaafar", "rosdi yusof"} <= cues.people
    assert "semporna" not in cues.people and "zon semporna" not in cues.people


def test_malay_weekdays_and_months_are_not_names_in_malay_but_names_elsewhere() -> None:
    malay = _keys("", "Hujan turun sejak Khamis. Mac lalu, Ahad dan Sabtu cerah. Kata Nik Omar, banjir surut.", "ms")
    assert not {"khamis", "mac", "ahad", "sabtu"} & malay
    assert "nik omar" in malay
    assert "nik faridah binti nik omar" in _keys("", "Menurut Nik Faridah binti Nik Omar, air surut.", "ms")
    assert "khamis" in _keys("", "The deputy, Khamis, told reporters the talks had failed.", "en")
