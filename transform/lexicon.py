"""Word lists of languages whose tables live in data files (``transform/data/malay.json``: Malay and Indonesian).

The English, French, Spanish and German lists grew up inside :mod:`transform.text` and
:mod:`transform.entities` and apply to every text (a French month name is read in an English article too).
The languages added since are kept as data, and apply only to articles in their own language: Malay words
collide with names and words of the others ("Lima" the city is Malay "five", "Khamis" a given name is Malay
"Thursday", "di" is Italian's name connector and Malay's "at"), so reading them everywhere would change what
the clusterer sees in articles of every other language.

A table has a ``common`` block shared by its languages and one block per language; a language's words are the
union of both (numbers and months: the language's own entry wins).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["LanguageWords", "language_words", "languages_with_words"]

_TABLES = ("data/malay.json",)


@dataclass(frozen=True)
class LanguageWords:
    """One language's word lists, all folded (lower case, no accents)."""

    language: str
    stopwords: frozenset[str]
    weekdays: frozenset[str]
    months: dict[str, int]  # month name or abbreviation -> 1..12
    number_words: dict[str, int]
    scales: dict[str, int]  # "juta" -> 1,000,000
    units: dict[str, str]  # word -> unit class ("maut" -> "dead")
    auxiliaries: frozenset[str]  # words allowed between a number's weak unit and its verb ("5 orang yang maut")
    leading_fillers: frozenset[str]  # words allowed between a number and its verb ("lima lagi masih hilang")
    toll_words: frozenset[str]
    clause_words: frozenset[str]  # a count before one of these is not the subject of a verb after it
    person_titles: frozenset[str]
    title_qualifiers: frozenset[str]  # words after a title that are still the title ("Komander Maritim")
    person_context: frozenset[str]
    org_words: frozenset[str]
    place_words: frozenset[str]
    place_prefixes: frozenset[str]  # "Sungai Golok" is also "Golok" (English writes "the Golok river")
    place_context: frozenset[str]
    weak_place_context: frozenset[str]
    descriptors: frozenset[str]  # sentence openers that are not part of the name after them ("Menurut")
    connectors: frozenset[str]  # words inside names ("Nik Faridah binti Nik Omar")
    not_connectors: frozenset[str]  # the shared name connectors that mean something else here ("di")
    # Headline words announcing another incident of a kind already reported (English "new", "another"), and
    # those that do only after the word they qualify: "Banjir lagi" (floods again) but "Tiga lagi maut" (three
    # more dead: a development), "bot kedua" (a second boat) but "Kedua-dua mangsa" (both victims).
    novelty_words: frozenset[str]
    novelty_after_words: frozenset[str]
    novelty_not_after: frozenset[str]  # "tidak lagi" (no longer), "seorang lagi" (one more person)
    novelty_not_before: frozenset[str]  # "kedua dua" (both)
    separation_phrases: tuple[str, ...]  # lede phrases calling the incident separate ("kejadian berasingan")
    places: dict[str, str]  # folded variant -> canonical key, read on top of the built-in gazetteer
    organisations: dict[str, str]


def _words(block: dict[str, Any], name: str) -> set[str]:
    return set(str(block.get(name, "")).split())


def _names(common: dict[str, Any], own: dict[str, Any], table: str) -> dict[str, str]:
    """Variant -> canonical key of a ``names`` table (canonical key -> variants, as in ``gazetteer.json``)."""
    out: dict[str, str] = {}
    for block in (own, common):  # the language's own entry wins
        for key, variants in block.get("names", {}).get(table, {}).items():
            out.setdefault(str(key), str(key))  # a canonical key is a variant of itself, as in the gazetteer
            for variant in variants:
                out.setdefault(str(variant), str(key))
    return out


def _numbers(block: dict[str, Any], name: str) -> dict[str, int]:
    return {str(word): int(value) for word, value in block.get(name, {}).items()}


def _load() -> dict[str, LanguageWords]:
    out: dict[str, LanguageWords] = {}
    for table in _TABLES:
        data = json.loads(resources.files("transform").joinpath(table).read_text(encoding="utf-8"))
        for language, own in data.items():
            if not language.startswith("_") and language != "common":
                out[language] = _language(language, data["common"], own)
    return out


def _language(language: str, common: dict[str, Any], own: dict[str, Any]) -> LanguageWords:
    def words(name: str) -> frozenset[str]:
        return frozenset(_words(common, name) | _words(own, name))

    months = {word: int(number) for number, names in own.get("months", {}).items() for word in str(names).split()}
    units: dict[str, str] = {}
    for block in (own, common):  # the language's own entry wins
        for unit, unit_words in block.get("units", {}).items():
            for word in str(unit_words).split():
                units.setdefault(word, unit)
    number_words = {**_numbers(common, "number_words"), **_numbers(own, "number_words")}
    return LanguageWords(
        language=language,
        # like English's "monday" and "three": calendar and counting words say nothing of the story
        stopwords=words("stopwords") | words("weekdays") | frozenset(number_words),
        weekdays=words("weekdays"),
        months=months,
        number_words=number_words,
        scales={**_numbers(common, "scales"), **_numbers(own, "scales")},
        units=units,
        auxiliaries=words("auxiliaries"),
        leading_fillers=words("leading_fillers"),
        toll_words=words("toll_words"),
        clause_words=words("clause_words"),
        person_titles=words("person_titles"),
        title_qualifiers=words("title_qualifiers"),
        person_context=words("person_context"),
        org_words=words("org_words"),
        place_words=words("place_words"),
        place_prefixes=words("place_prefixes"),
        place_context=words("place_context"),
        weak_place_context=words("weak_place_context"),
        descriptors=words("descriptors"),
        connectors=words("connectors"),
        not_connectors=words("not_connectors"),
        novelty_words=words("novelty_words"),
        novelty_after_words=words("novelty_after_words"),
        novelty_not_after=words("novelty_not_after"),
        novelty_not_before=words("novelty_not_before"),
        separation_phrases=tuple(
            sorted({str(p) for block in (common, own) for p in block.get("separation_phrases", [])})
        ),
        places=_names(common, own, "places"),
        organisations=_names(common, own, "organisations"),
    )


@lru_cache(maxsize=1)
def _all() -> dict[str, LanguageWords]:
    return _load()


def languages_with_words() -> tuple[str, ...]:
    """The languages that have a data table, in a stable order."""
    return tuple(sorted(_all()))


def language_words(language: str | None) -> LanguageWords | None:
    """The data-file word lists of ``language``, or None for a language without a table."""
    if language is None:
        return None
    return _all().get(language)
