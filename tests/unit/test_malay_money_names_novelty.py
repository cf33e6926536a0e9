"""What an English and a Malay (or Indonesian) report of one story must share, and what a sequel must not.

Money: "RM1.2 billion" and "RM1.2 bilion", "$2 billion" and "USD2 bilion", "Rp 3 trillion" and "Rp 3 triliun" give
one money cue. Names: a Malay name of a place or an agency ("Pulau Pinang", "Kepulauan Riau", "Agensi
Penguatkuasaan Maritim Malaysia") gives the key an English report gives ("penang", "riau islands", "malaysian
maritime enforcement agency"), in Malay and Indonesian articles only. Novelty: a Malay headline announcing another
incident ("Satu lagi kebakaran kilang", "Bot kedua karam") is a sequel, one reporting more of the same story
("Tiga lagi mayat ditemui", "Kedua-dua mangsa") is not.
"""

from __future__ import annotations

import pytest

from transform.clustering import text_features
from transform.entities import extract_cues
from transform.lexicon import language_words


def _numbers(text: str, language: str) -> frozenset[str]:
    return extract_cues("", text, language).numbers


def _names(text: str, language: str) -> set[str]:
    cues = extract_cues("", text, language)
    return set(cues.places | cues.people | cues.organisations | cues.others)


@pytest.mark.parametrize(
    ("english", "other", "language", "cue"),
    [
        (
            "The state gets RM1.2 billion for flood works.",
            "Negeri itu terima RM1.2 bilion.",
            "ms",
            "n:1200000000:money",
        ),
        ("The state gets RM500 million.", "Kerajaan peruntuk RM500 juta.", "ms", "n:500000000:money"),
        ("The state gets RM 500 million.", "Kerajaan peruntuk RM 500 juta.", "ms", "n:500000000:money"),
        ("Norvane will invest $2 billion.", "Norvane labur USD2 bilion.", "ms", "n:2000000000:money"),
        ("Norvane will invest US$2 billion.", "Norvane melabur US$2 miliar.", "id", "n:2000000000:money"),
        ("Jakarta sets aside Rp 3 trillion.", "Pemerintah siapkan Rp 3 triliun.", "id", "n:3000000000000:money"),
        ("Jakarta sets aside Rp3 trillion.", "Indonesia peruntuk Rp3 trilion.", "ms", "n:3000000000000:money"),
        ("Jakarta pledges Rp 1.5 trillion.", "Pemerintah kucurkan Rp 1,5 triliun.", "id", "n:1500000000000:money"),
        ("The rupiah was at Rp16,240 a dollar.", "Rupiah stabil di level Rp16.240.", "id", "n:16240:money"),
    ],
)
def test_an_amount_gives_one_money_cue_in_english_malay_and_indonesian(
    english: str, other: str, language: str, cue: str
) -> None:
    assert cue in _numbers(english, "en")
    assert cue in _numbers(other, language)
    assert cue.rsplit(":", 1)[0] in _numbers(other, language)  # the bare figure too, as "$2 billion" gives


def test_currency_codes_are_read_only_before_an_amount() -> None:
    assert not any(key.endswith(":money") for key in _numbers("The term1 result, farm 12 and arm 15 units.", "en"))
    assert not any(key.endswith(":money") for key in _numbers("Pasukan SPRM 25 orang.", "ms"))
    assert "n:16240" in _numbers("at 16,240 per dollar", "en")  # a plain figure keeps its plain cue


@pytest.mark.parametrize(
    ("malay", "language", "english", "key"),
    [
        ("Kebakaran di Pulau Pinang malam tadi.", "ms", "A fire in Penang late on Monday.", "penang"),
        ("Bot dari Kepulauan Riau karam.", "ms", "A boat from the Riau Islands capsized.", "riau islands"),
        ("PEKANBARU: Wilayah Riau mengisytiharkan darurat.", "ms", "Indonesia's Riau declared an emergency.", "riau"),
        ("Gempa di Kabupaten Sukabumi, Jawa Barat, bulan lalu.", "id", "A quake in West Java last month.", "west java"),
        (
            "Banjir di Sulawesi Selatan merusak rumah.",
            "id",
            "Floods in South Sulawesi damaged homes.",
            "south sulawesi",
        ),
        ("Tanker karam di Selat Melaka.", "ms", "A tanker sank in the Strait of Malacca.", "strait of malacca"),
        ("Polis di Johor Baharu menahan dua suspek.", "ms", "Police in Johor Bahru held two suspects.", "johor bahru"),
        (
            "Rizab Persekutuan Amerika Syarikat dijangka.",
            "ms",
            "Rates in the United States are expected.",
            "united states",
        ),
        ("Eksport ke Jepun meningkat.", "ms", "Exports to Japan rose.", "japan"),
        (
            "Menurut Agensi Penguatkuasaan Maritim Malaysia, dua maut.",
            "ms",
            "The Malaysian Maritime Enforcement Agency said two died.",
            "malaysian maritime enforcement agency",
        ),
        (
            "Jabatan Kerja Raya menutup jalan itu.",
            "ms",
            "The Public Works Department closed the road.",
            "public works department",
        ),
    ],
)
def test_a_malay_name_gives_the_key_of_the_english_name(malay: str, language: str, english: str, key: str) -> None:
    assert key in _names(malay, language)
    assert key in _names(english, "en")


def test_every_canonical_name_of_the_table_is_what_an_english_report_gives() -> None:
    malay = language_words("ms")
    assert malay is not None
    keys = set(malay.places.values()) | set(malay.organisations.values())
    assert len(keys) > 60
    for key in keys:
        shown = (
            key.upper() if len(key) <= 4 else " ".join(w if w in ("of", "and") else w.capitalize() for w in key.split())
        )
        assert key in _names(f"Officials from {shown} met reporters on Monday.", "en"), key


def test_malay_names_are_read_only_in_malay_and_indonesian() -> None:
    assert "japan" not in _names("The word Jepun appears in Kuala Lumpur.", "en")
    assert "united states" not in _names("Il a rejoint l'AS Monaco puis Rome.", "fr")
    assert "penang" not in _names("Il est né à Pulau Pinang en 1980.", "fr")


@pytest.mark.parametrize(
    ("title", "language", "novel"),
    [
        ("Satu lagi kebakaran kilang di Pulau Pinang, dua maut", "ms", True),
        ("Banjir lagi di Pahang, 300 dipindahkan", "ms", True),
        ("Tanah runtuh sekali lagi di Jalan Simpang Pulai", "ms", True),
        ("Bot kedua karam di perairan Sabah dalam seminggu", "ms", True),
        ("Gempa kedua guncang Lombok", "id", True),
        ("Kes baharu jangkitan di Kelantan", "ms", True),
        ("Tragedi bot karam Semporna: Tiga lagi mayat ditemui", "ms", False),  # three more: the same story
        ("Banjir: 5 lagi mangsa maut", "ms", False),
        ("Seorang lagi pekerja meninggal dunia, korban jadi empat", "ms", False),
        ("Jalan Tapah tidak lagi ditutup", "ms", False),  # no longer
        ("Kedua-dua mangsa tanah runtuh ditemui", "ms", False),  # both
        ("Kedua korban tewas di Jawa Barat", "id", False),  # both, Indonesian
        ("Satu lagi kebakaran kilang", "en", False),  # Malay words only in Malay and Indonesian articles
    ],
)
def test_malay_headlines_announcing_another_incident(title: str, language: str, novel: bool) -> None:
    assert text_features(title, "Teks berita.", language, 2).novelty is novel


def test_a_malay_lede_calling_the_incident_separate_marks_a_sequel() -> None:
    lede = "KUANTAN: Dalam kejadian berasingan, seorang nelayan lemas di Sungai Pahang."
    assert text_features("Nelayan lemas di Pekan", lede, "ms", 2).novelty
    assert not text_features("Nelayan lemas di Pekan", lede, "en", 2).novelty
