"""Amounts and counts written outside the Latin-script digit forms that :mod:`transform.entities` reads.

Numbers are evidence that does not depend on the script: an English report's "$1.2 billion" and "46 residents"
are a Chinese report's "12亿美元" and "46名居民", a Russian one's "1,2 млрд рублей", an Arabic one's "٤٦ شخصا".
The cue term of story clustering can only use them if every report of a figure gives the *same* key, and a count
present in one report and spelled out or left unread in the other dilutes the match instead of helping it: so
this module reads each form as the digit form would be read, never more.

* **Chinese and Japanese** (:func:`cjk_amounts`): a number in digits or numerals, its scale (万, 亿), and what
  follows it: a currency ("12亿美元" -> money 1,200,000,000) or a counter ("46名", "3间"), whose class is the
  verb in the same clause ("至少12人死亡" -> dead 12), or the word before ("死亡人数升至31人"). The spans read
  are blanked so that the generic reader does not read "12亿" as a bare 12.
* **Compound number words** (:func:`spelled_values`): "forty-six", "three hundred and twenty", "two dozen",
  "quarante-six", Malay "empat puluh enam", read like digits by the generic reader.
* **Russian and Arabic** scale and unit words and Malay classifiers (:func:`language_amounts`), merged into one
  language's word lists by :mod:`transform.entities`; Arabic-Indic digits become ASCII (:func:`ascii_digits`).

The words are data (``transform/data/amounts.json``), folded when loaded, as the text they are matched against.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import Any

from transform.text import fold

__all__ = [
    "LanguageAmounts",
    "Spelled",
    "TokenBreaks",
    "ascii_digits",
    "cjk_amounts",
    "has_cjk",
    "language_amounts",
    "number_starts",
    "spelled",
    "spelled_values",
]


def _data() -> dict[str, Any]:
    return json.loads(resources.files("transform").joinpath("data/amounts.json").read_text(encoding="utf-8"))


_DATA = _data()


def _fold_words(text: str) -> frozenset[str]:
    return frozenset(fold(word) for word in str(text).split())


def _fold_values(table: dict[str, Any]) -> dict[str, int]:
    return {fold(str(word)): int(value) for word, value in table.items() if not word.startswith("_")}


# --- number words -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spelled:
    """How compound number words are read: on top of the single words, multipliers, compounds, teens, joiners."""

    numbers: dict[str, int]  # single words added to the built-in ones ("forty", "quarante")
    multipliers: dict[str, int]  # "hundred" -> 100: multiplies the group before it (or 1)
    compounds: dict[str, int]  # "quatre vingt" -> 80: a pair of words with a value of its own
    joiners: frozenset[str]  # "and", "et": allowed inside a number ("one hundred and twenty")
    teens: frozenset[str]  # Malay "belas": adds ten to the unit before it ("dua belas" = 12)
    dozens: frozenset[str]  # "dozen", "douzaine": multiply the count before them ("two dozen" = 24), else twelve
    glued_scales: dict[str, int]  # "3bn", "RM1.2b", "€2.5m": a scale written onto a currency amount


def _spelled(block: dict[str, Any], base: Spelled | None = None) -> Spelled:
    numbers = _fold_values(block.get("numbers", {})) | _fold_values(block.get("number_words", {}))
    multipliers = _fold_values(block.get("multipliers", {}))
    compounds = _fold_values(block.get("compounds", {}))
    glued = _fold_values(block.get("glued_scales", {}))
    joiners = _fold_words(block.get("joiners", ""))
    teens = _fold_words(block.get("teens", ""))
    dozens = _fold_words(block.get("dozens", ""))
    if base is not None:  # a language's own words add to the shared ones; where both name a word, the shared stays
        numbers = numbers | base.numbers
        multipliers = multipliers | base.multipliers
        compounds = compounds | base.compounds
        glued = glued | base.glued_scales
        joiners, teens, dozens = joiners | base.joiners, teens | base.teens, dozens | base.dozens
    return Spelled(numbers, multipliers, compounds, joiners, teens, dozens, glued)


_SPELLED = _spelled(_DATA["spelled"])


def spelled(language: str | None = None) -> Spelled:
    """The compound-number tables of ``language`` (the shared ones for a language without its own)."""
    return _spelled_for(language)


@lru_cache(maxsize=64)
def _spelled_for(language: str | None) -> Spelled:
    own = _DATA["languages"].get(language or "")
    return _SPELLED if own is None else _spelled(own, _SPELLED)


def number_starts(number_words: dict[str, int], tables: Spelled) -> frozenset[str]:
    """The words a number in words can begin with (for :func:`spelled_values`: most words begin none)."""
    compounds = {pair.split(" ", 1)[0] for pair in tables.compounds}
    hundreds = {word for word, value in tables.multipliers.items() if value >= 100}
    return frozenset(number_words) | frozenset(tables.numbers) | frozenset(compounds) | frozenset(hundreds)


def spelled_values(
    tokens: list[str],
    number_words: dict[str, int],
    tables: Spelled,
    starts: frozenset[str] | None = None,
    breaks: Container[int] = frozenset(),
) -> list[tuple[int, int, int]]:
    """Numbers written in words in ``tokens`` (folded words, hyphenated ones split): ``(first, end, value)``, the
    token range of each and its value. "forty six" -> 46, "three hundred and twenty" -> 320, "two dozen" -> 24,
    "quatre vingt dix" -> 90, Malay "empat puluh enam" -> 46, "dua belas" -> 12. A word sequence that is no one
    number ("two three") ends at the word that does not fit, which starts the next number. ``starts``: what
    :func:`number_starts` gives for these tables (computed when not given). ``breaks``: the indices of the tokens
    that no number continues into, because the text before them holds more than spaces or a hyphen ("twenty. One
    hundred people" is twenty, then one hundred, not 2100): see :class:`TokenBreaks`."""
    if starts is None:
        starts = number_starts(number_words, tables)
    out: list[tuple[int, int, int]] = []
    index = 0
    for candidate in [i for i, word in enumerate(tokens) if word in starts]:
        if candidate < index:
            continue  # inside the number just read
        parsed = _one_number(tokens, candidate, number_words, tables, breaks)
        if parsed is None:
            continue
        end, value = parsed
        out.append((candidate, end, value))
        index = end
    return out


# What may separate two words of one number: spaces (not a line break) and at most one hyphen.
_JOINING_GAP_RE = re.compile(r"[^\S\n]*(?:[-\u2010\u2011][^\S\n]*)?")


class TokenBreaks:
    """The indices of the words of ``text`` (the matches of ``words``) separated from the word before them by more
    than spaces or a hyphen: a full stop, a comma, a semicolon, a line break (title and text), a digit. A number in
    words never runs across them, so that the numbers of two clauses are not read as one. The word positions are
    found on the first question only: most words begin no number, and many texts hold none that does."""

    __slots__ = ("_spans", "_text", "_words")

    def __init__(self, text: str, words: re.Pattern[str]) -> None:
        self._text = text
        self._words = words
        self._spans: list[tuple[int, int]] | None = None

    def __contains__(self, index: object) -> bool:
        spans = self._spans
        if spans is None:
            spans = self._spans = [match.span() for match in self._words.finditer(self._text)]
        if not isinstance(index, int) or not 0 < index < len(spans):
            return False
        return _JOINING_GAP_RE.fullmatch(self._text, spans[index - 1][1], spans[index][0]) is None


def _word_value(
    tokens: list[str], index: int, number_words: dict[str, int], tables: Spelled, breaks: Container[int] = frozenset()
) -> tuple[int, int] | None:
    """The value of the word (or known pair of words) at ``index`` and the index after it."""
    if index + 1 < len(tokens):
        pair = f"{tokens[index]} {tokens[index + 1]}"
        if pair in tables.compounds and index + 1 not in breaks:
            return tables.compounds[pair], index + 2
    word = tokens[index]
    if word in number_words:
        return number_words[word], index + 1
    if word in tables.numbers:
        return tables.numbers[word], index + 1
    return None


def _one_number(
    tokens: list[str], start: int, number_words: dict[str, int], tables: Spelled, breaks: Container[int]
) -> tuple[int, int] | None:
    total = hundreds = small = 0
    seen = False
    index = start
    end = start
    count = len(tokens)
    while index < count:
        word = tokens[index]
        if index > start and _may_continue(word, number_words, tables) and index in breaks:
            break  # "twenty. One hundred", "twenty; one hundred": the next clause's number
        if seen and word in tables.multipliers:
            factor = tables.multipliers[word]
            if factor >= 1000:
                total += ((hundreds + small) or 1) * factor
                hundreds = small = 0
            elif factor == 100:
                if hundreds:
                    break  # "two hundred three hundred"
                hundreds, small = (small or 1) * 100, 0
            else:  # Malay "puluh": tens of the unit before it
                if small >= 10:
                    break
                small = (small or 1) * factor
            index = end = index + 1
            continue
        if seen and word in tables.teens and 0 < small < 10:
            small += 10
            index = end = index + 1
            continue
        if seen and word in tables.joiners and index + 1 < count:
            following = None if index + 1 in breaks else _word_value(tokens, index + 1, number_words, tables, breaks)
            after_hundreds = (hundreds or total) and small == 0 and following is not None and following[0] < 100
            if after_hundreds or (following is not None and _fits(small, following[0])):
                index += 1  # "one hundred and twenty", "vingt et un", "soixante et onze"
                continue
            break
        word_value = _word_value(tokens, index, number_words, tables, breaks)
        if word_value is None:
            if not seen and word in tables.multipliers and tables.multipliers[word] >= 100:
                word_value = (tables.multipliers[word], index + 1)  # "hundred" alone, "mille personnes"
            else:
                break
        value, after = word_value
        if value == 12 and word in tables.dozens:
            # "two dozen": a multiplier of the count before it; "a dozen" alone is twelve
            small = (small or 1) * 12 if seen and small < 12 else small
            if not seen:
                small = 12
            seen = True
            index = end = after
            continue
        if seen and not _fits(small, value):
            break
        small += value
        seen = True
        index = end = after
    if not seen:
        return None
    return end, total + hundreds + small


def _may_continue(word: str, number_words: dict[str, int], tables: Spelled) -> bool:
    """Whether ``word`` can be part of a number in words after its first word. Asked before the gap before it (see
    :class:`TokenBreaks`), which costs more: most words after a number word are no number."""
    return (
        word in number_words
        or word in tables.numbers
        or word in tables.multipliers
        or word in tables.joiners
        or word in tables.teens
    )


def _fits(small: int, value: int) -> bool:
    """Whether ``value`` can follow the words read so far in one number: units after tens ("forty six"), or
    anything below a hundred after nothing but hundreds and thousands."""
    if small == 0:
        return value < 100
    if small in (60, 80) and 10 <= value < 20:
        return True  # French "soixante-dix", "quatre-vingt-treize"
    return small % 10 == 0 and 20 <= small < 100 and 0 < value < 10


# --- language word lists ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LanguageAmounts:
    """Scale and unit words of one language, merged into its word lists by :mod:`transform.entities`."""

    scales: dict[str, int]
    units: dict[str, str]
    toll_words: frozenset[str]
    auxiliaries: frozenset[str]
    leading_fillers: frozenset[str]
    number_words: dict[str, int]
    unit_before_count: bool  # the casualty word comes before its count (Arabic): read the word before first


@lru_cache(maxsize=64)
def language_amounts(language: str | None) -> LanguageAmounts | None:
    """The amounts table of ``language``, or None for a language without one."""
    own = _DATA["languages"].get(language or "")
    if own is None:
        return None
    units: dict[str, str] = {}
    for unit, unit_words in own.get("units", {}).items():
        for word in _fold_words(unit_words):
            units.setdefault(word, unit)
    return LanguageAmounts(
        scales=_fold_values(own.get("scales", {})),
        units=units,
        toll_words=_fold_words(own.get("toll_words", "")),
        auxiliaries=_fold_words(own.get("auxiliaries", "")),
        leading_fillers=_fold_words(own.get("leading_fillers", "")),
        number_words={k: v for k, v in _fold_values(own.get("number_words", {})).items() if " " not in k},
        unit_before_count=bool(own.get("unit_before_count", False)),
    )


# --- digits of other scripts ------------------------------------------------------------------------------

# Arabic-Indic and Extended Arabic-Indic digits, with the Arabic decimal and thousands separators. NFKC folding
# keeps them, and the generic reader would read "٣١" but not "٣١٫٥" nor a digit glued to a letter.
_ARABIC_DIGITS = {chr(0x0660 + i): str(i) for i in range(10)} | {chr(0x06F0 + i): str(i) for i in range(10)}
_ARABIC_TABLE = str.maketrans({**_ARABIC_DIGITS, "\u066b": ".", "\u066c": ","})
_ARABIC_DIGIT_RE = re.compile("[\u0660-\u066c\u06f0-\u06f9]")


def ascii_digits(text: str) -> str:
    """Arabic-Indic digits and separators as ASCII ("٤٦" -> "46", "١٫٢" -> "1.2"); other text unchanged."""
    return text.translate(_ARABIC_TABLE) if _ARABIC_DIGIT_RE.search(text) else text


# --- Chinese and Japanese ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cjk:
    numerals: dict[str, int]
    multipliers: dict[str, int]
    scales: dict[str, int]
    pattern: re.Pattern[str]
    units: tuple[tuple[str, str], ...]  # (word, class), longest first
    before: tuple[tuple[str, str], ...]
    counters: dict[str, str]
    clause: frozenset[str]
    reach: int


def _cjk() -> _Cjk:
    block = _DATA["cjk"]
    numerals = {str(k): int(v) for k, v in block["numerals"].items()}
    multipliers = {str(k): int(v) for k, v in block["multipliers"].items()}
    scales = {str(k): int(v) for k, v in block["scales"].items()}
    counters = {word: unit for unit, words in block["counters"].items() for word in str(words).split()}
    currencies = sorted(str(block["currencies"]).split(), key=len, reverse=True)
    numeral_chars = re.escape("".join(numerals) + "".join(multipliers))
    scale_chars = re.escape("".join(scales))
    tail = "|".join(map(re.escape, [*currencies, *sorted(counters, key=len, reverse=True)]))
    marks = re.escape("".join(str(block["ordinal"]).split()) + "".join(str(block["range"]).split()))
    pattern = re.compile(
        rf"(?P<mark>[{marks}]\s*)?"
        rf"(?P<num>\d+(?:,\d{{3}})*(?:\.\d+)?|[{numeral_chars}]+)"
        rf"(?P<mult>[{re.escape(''.join(multipliers))}])?(?P<scale>[{scale_chars}]{{0,2}})"
        rf"(?:[{re.escape(''.join(str(block['approximate']).split()))}])?"
        rf"(?P<tail>{tail})?"
    )

    def pairs(table: dict[str, str]) -> tuple[tuple[str, str], ...]:
        found = [(word, unit) for unit, words in table.items() if not unit.startswith("_") for word in words.split()]
        return tuple(sorted(found, key=lambda pair: -len(pair[0])))

    return _Cjk(
        numerals=numerals,
        multipliers=multipliers,
        scales=scales,
        pattern=pattern,
        units=pairs(block["units"]),
        before=pairs({**block["before"], **{k: v for k, v in block["units"].items() if k != "none"}}),
        counters=counters,
        clause=frozenset(str(block["clause"])) | frozenset("\n"),
        reach=int(block["reach"]),
    )


_CJK = _cjk()
_CJK_RE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ORDINAL = frozenset(str(_DATA["cjk"]["ordinal"]).split())
_VAGUE = tuple(str(_DATA["cjk"]["vague"]).split())


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds Chinese or Japanese characters (the only texts :func:`cjk_amounts` reads)."""
    return _CJK_RE.search(text) is not None


def _numeral_value(text: str) -> int | None:
    """ "三十五" -> 35, "十二" -> 12, "一百二十" -> 120, "两千" -> 2000, "二〇" -> 20 (digit by digit)."""
    cjk = _CJK
    if not any(char in cjk.multipliers for char in text):
        digits = [cjk.numerals.get(char) for char in text]
        if any(d is None for d in digits):
            return None
        return int("".join(map(str, digits))) if len(digits) > 1 else digits[0]
    total = digit = 0
    for char in text:
        if char in cjk.numerals:
            digit = cjk.numerals[char]
        else:
            total += (digit or 1) * cjk.multipliers[char]
            digit = 0
    return total + digit


def _clause(text: str, start: int, stop: int, step: int) -> str:
    """The characters from ``start`` towards ``stop`` (``step`` +1 or -1) up to the clause's end or a number."""
    out = []
    index = start
    clause = _CJK.clause
    while index != stop and len(out) < _CJK.reach:
        char = text[index]
        if char in clause or char.isdigit() or char in _CJK.numerals:
            break
        out.append(char)
        index += step
    return "".join(out) if step > 0 else "".join(reversed(out))


def _class_in(window: str, table: tuple[tuple[str, str], ...], last: bool) -> str | None:
    """The class of the unit word nearest the count in ``window`` (the first after it, or the last before it)."""
    best: tuple[int, str] | None = None
    for word, unit in table:
        position = window.rfind(word) if last else window.find(word)
        if position < 0:
            continue
        distance = len(window) - position - len(word) if last else position
        if best is None or distance < best[0]:
            best = (distance, unit)
    return None if best is None else best[1]


def cjk_amounts(text: str) -> tuple[set[str], str]:
    """Number cues of the Chinese and Japanese amounts in a folded ``text``, and the text with those amounts
    blanked (for the generic reader). A number is read here when a scale, a currency or a counter follows it;
    the keys are what :mod:`transform.entities` gives the same figure in digits and a Latin-script unit."""
    cjk = _CJK
    out: set[str] = set()
    blanked: list[str] | None = None  # made on the first amount read (most matches are years, dates, times)
    for match in cjk.pattern.finditer(text):
        number, scale, tail, mark = match.group("num"), match.group("scale"), match.group("tail"), match.group("mark")
        multiplier = match.group("mult")
        if mark and mark.strip() in _ORDINAL:
            blanked = _blank(blanked, text, match.start("num"), match.end())
            continue  # "第3次", "第12届": the third, the twelfth, not three or twelve of anything
        if not (scale or tail or (multiplier and number[0].isdigit())):
            continue
        if text.endswith(_VAGUE, 0, match.start("num")):
            continue  # "数十人", "几百万元": dozens, hundreds, no figure
        if not tail and not any(char in cjk.numerals for char in number) and not number[0].isdigit():
            continue  # "千万" (by all means), "百万富翁": multipliers alone, and no counter or currency
        if match.start("num") > 0 and text[match.start("num") - 1].isdigit():
            continue
        value = _value(number, multiplier, scale)
        if value is None or (value < 2 and not number[0].isdigit()):
            continue  # "一名妇女": a woman, as "one" is no count in English either
        blanked = _blank(blanked, text, match.start("num"), match.end())
        ranged = bool(mark) and match.start() > 0 and text[match.start() - 1].isdigit()
        unit: str | None = None
        if tail in cjk.counters:
            unit = cjk.counters[tail]
            if unit == "people" and not ranged:
                after = _clause(text, match.end(), len(text), 1)
                before = _clause(text, match.start("num") - 1, -1, -1)
                unit = _class_in(after, cjk.units, last=False) or _class_in(before, cjk.before, last=True) or unit
                if unit == "none":
                    unit = "people"
            elif ranged:
                unit = None
        elif tail:
            unit = "money"
        _add(out, value, unit)
    return out, text if blanked is None else "".join(blanked)


def _blank(blanked: list[str] | None, text: str, start: int, end: int) -> list[str]:
    """``text`` as a list of characters (``blanked`` if already made) with ``start:end`` made spaces."""
    characters = list(text) if blanked is None else blanked
    characters[start:end] = " " * (end - start)
    return characters


def _value(number: str, multiplier: str | None, scale: str) -> Decimal | None:
    if number[0].isdigit():
        try:
            value = Decimal(number.replace(",", ""))
        except InvalidOperation:
            return None
        if multiplier:
            value *= _CJK.multipliers[multiplier]
    else:
        if multiplier:
            number += multiplier
        parsed = _numeral_value(number)
        if parsed is None:
            return None
        value = Decimal(parsed)
    for char in scale:
        value *= _CJK.scales[char]
    return value


def _add(out: set[str], value: Decimal, unit: str | None) -> None:
    """The keys the generic reader gives a number: a bare one and one with its class. A small count (below ten)
    only with a class, as a spelled-out one: "3间" (buildings) and "3人死亡" (dead) as "three houses" and "three
    killed", but "2人" as "two people", nothing."""
    classified = unit is not None and unit not in ("people", "years", "none")
    if value == value.to_integral_value() and value < 10 and not classified:
        return
    normalised = format(value.normalize(), "f")
    canon = normalised.rstrip("0").rstrip(".") if "." in normalised else normalised
    out.add(f"n:{canon}")
    if classified:
        out.add(f"n:{canon}:{unit}")
