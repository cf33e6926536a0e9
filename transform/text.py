"""Text normalisation for the quality core: folding, content terms and shingles.

Two consumers want different views of the same text:

* near-duplicate detection compares *surface* text, so :func:`shingles` keeps every word (stopwords
  included) and only folds case, accents and punctuation; a copy with a changed word still shares most
  shingles, an independently written article shares almost none;
* story clustering compares *content*, so :func:`content_terms` drops stopwords of EN/FR/ES/DE (and
  newsroom filler such as "said"/"a déclaré"; Malay and Indonesian from ``transform/data/malay.json``, see
  :mod:`transform.lexicon`), folds accents and applies a light suffix stemmer, so "Genève"/"Geneve" and
  "killed"/"killing" meet. Languages without a stemmer of their own (Malay, Indonesian...) get the English
  one: their articles' Latin-script names then stem as in the English reports they must meet ("Kuching").

Scripts written without spaces (Chinese, Japanese, Thai...) cannot be split into words without a
dictionary, and Arabic-script words carry clitics ("ال", "و"), so both fall back to character n-grams:
crude, but it degrades gracefully instead of producing one giant "word" per sentence.

Everything here is deterministic across processes (no use of Python's salted ``hash()``), because
shingle hashes and terms end up in state that must be rebuilt identically after a restart.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache

import numpy as np

from transform.lexicon import language_words, languages_with_words

# Word-ish runs: letters, digits, marks. Apostrophes/hyphens split ("l'Intérieur" -> "l", "interieur").
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)

# Scripts without word separators: every character is a token, n-grams are built over characters.
_NO_SPACE_RANGES: tuple[tuple[int, int], ...] = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables (spaced, but syllable bigrams match better across particles)
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
)
_CLITIC_SCRIPT_RANGES: tuple[tuple[int, int], ...] = (
    (0x0600, 0x06FF),  # Arabic
    (0x0750, 0x077F),  # Arabic supplement
    (0x0590, 0x05FF),  # Hebrew
)


def _char_class(ranges: tuple[tuple[int, int], ...]) -> re.Pattern[str]:
    return re.compile("[" + "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in ranges) + "]")


_NO_SPACE_RE = _char_class(_NO_SPACE_RANGES)
_CLITIC_SCRIPT_RE = _char_class(_CLITIC_SCRIPT_RANGES)


def is_no_space_char(char: str) -> bool:
    return _NO_SPACE_RE.match(char) is not None


def space_out_no_space_scripts(text: str) -> str:
    """Put spaces around every character of a no-space script ("发生6.1级地震" -> "发 生 6.1 级 地 震"), so that
    patterns written for spaced text (numbers, dates) find what sits between such characters."""
    if not _NO_SPACE_RE.search(text):
        return text
    return _NO_SPACE_RE.sub(lambda match: f" {match.group()} ", text)


def fold(text: str) -> str:
    """Case-fold, NFKC-normalise and strip combining accents: "Genève" -> "geneve", "Ｔｏｋｙｏ" -> "tokyo"."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    stripped = _COMBINING_RE.sub("", decomposed)
    # "ß" casefolds to "ss" already; fold the few letters NFD does not decompose. Most texts have none of them,
    # and a search for them costs far less than translating every character through the table.
    composed = unicodedata.normalize("NFC", stripped)
    return composed.translate(_EXTRA_FOLD) if _EXTRA_FOLD_RE.search(composed) else composed


# Combining marks (accents, Arabic harakat, Hebrew points...): the blocks that matter for folding.
_COMBINING_RE = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u064b-\u065f\u0670\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)
_EXTRA_FOLD = str.maketrans({"ø": "o", "đ": "d", "ł": "l", "æ": "ae", "œ": "oe", "ı": "i", "þ": "th"})
_EXTRA_FOLD_RE = re.compile("[" + "".join(map(chr, _EXTRA_FOLD)) + "]")  # the letters the table folds


def words(text: str) -> list[str]:
    """Folded surface tokens; runs of no-space scripts are split into single characters.

    One article body is tokenised by near-duplicate lookup, indexing, content terms and entity
    phrases in turn; the last few results are kept so that they share one tokenisation. A copy is
    returned, so callers may still mutate what they get.
    """
    return list(_shared_words(text))


@lru_cache(maxsize=4)
def _shared_words(text: str) -> tuple[str, ...]:
    return tuple(_words(text))


def _words(text: str) -> list[str]:
    folded = fold(text)
    if not _NO_SPACE_RE.search(folded):
        return _WORD_RE.findall(folded)
    out: list[str] = []
    for match in _WORD_RE.finditer(folded):
        token = match.group()
        if _NO_SPACE_RE.search(token):
            out.extend(_split_mixed(token))
        else:
            out.append(token)
    return out


def _split_mixed(token: str) -> Iterator[str]:
    """Split "東京2026年" into "東", "京", "2026", "年": characters for CJK, whole runs for the rest."""
    run = ""
    for ch in token:
        if is_no_space_char(ch):
            if run:
                yield run
                run = ""
            yield ch
        else:
            run += ch
    if run:
        yield run


# --- stopwords --------------------------------------------------------------------------------------


def _wordlist(text: str) -> list[str]:
    return text.split()


_EN = _wordlist(
    "a about above after again against ago all almost along already also although always am among an and "
    "another any are around as at away back be became because been before being below between both but by can "
    "cannot could did do does doing done down during each either else even ever every few for from further "
    "get gets got had has have having he her here hers herself him himself his how however i if in into is it "
    "its itself just last least less like made make many may me might more most much must my myself near "
    "neither never new next no nor not now of off often on once one only or other others our ours ourselves "
    "out over own per rather same she should since so some still such than that the their theirs them "
    "themselves then there these they this those though through thus to too two under until up upon us very "
    "was we were what when where whether which while who whom whose why will with within without would yet "
    "you your yours yourself yourselves said says say saying told tell tells according added adding also "
    "including include includes included reported report reports reporting statement week weeks day days year "
    "years month months time times people monday tuesday wednesday thursday friday saturday sunday today "
    "yesterday tomorrow morning evening night am pm local gmt utc mr mrs ms dr three four five six seven "
    "eight nine ten first second third later earlier around about least more than le la les el los las "
    "der das du des di da del"
)

_FR = _wordlist(
    "a au aux avec ce ces cet cette dans de des du elle elles en entre et eux il ils je la le les leur leurs "
    "lui ma mais me meme mes moi mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sont sur "
    "ta te tes toi ton tu un une vos votre vous c d j l m n s t y ete etee etes etait etaient etre avoir ai "
    "as avons avez ont avait avaient eu aura auront sera seront serait est sont fait faire fais font plus "
    "moins tres tout tous toute toutes autre autres aussi ainsi alors apres avant depuis donc dont encore "
    "deja lors lorsque selon sans sous chez contre vers pendant parce comme comment quand si car puis cela "
    "ceci celui celle ceux celles ici leur quelque quelques chaque aucun aucune non oui ni "
    "bien peu tant trop deux trois quatre cinq six sept huit neuf dix premier premiere deuxieme lundi mardi "
    "mercredi jeudi vendredi samedi dimanche aujourd hui hier demain matin soir nuit heure heures jour jours "
    "semaine semaines mois an ans annee annees declare declaree declarent dit dite disent affirme indique "
    "precise ajoute explique estime annonce souligne rapporte selon m mme mlle personnes"
)

_ES = _wordlist(
    "a al algo algunas algunos ante antes como con contra cual cuando de del desde donde durante e el ella "
    "ellas ellos en entre era erais eran eras eres es esa esas ese eso esos esta estaba estaban estado estan "
    "estar estas este esto estos fue fueron fui ha habia han hasta hay la las le les lo los mas me mi mis "
    "mucho muy nada ni no nos nosotros o os otra otras otro otros para pero poco por porque que quien se sea "
    "ser si sido sin sobre son su sus tambien tanto te tiene tienen todo todos tu tus un una uno unos y ya yo "
    "dijo dice segun anadio informo lunes martes miercoles jueves viernes sabado domingo hoy ayer dos tres "
    "cuatro cinco seis siete ocho nueve diez"
)

_DE = _wordlist(
    "aber alle allem allen aller alles als also am an ander andere anderem anderen anderer anderes auch auf "
    "aus bei bin bis bist da damit dann das dass dein deine dem den denn der des dessen die dies diese diesem "
    "diesen dieser dieses doch dort du durch ein eine einem einen einer eines er es etwa euer eure fur gegen "
    "gewesen hab habe haben hat hatte hatten hier hin hinter ich ihm ihn ihnen ihr ihre im in indem ins ist "
    "jede jedem jeden jeder jedes jetzt kann kein keine konnen machen man mehr mein meine mit muss nach nicht "
    "nichts noch nun nur ob oder ohne sehr sein seine sich sie sind so solche soll sollen sondern sonst uber "
    "um und uns unser unter viel vom von vor wahrend war waren warum was weg weil weiter welche wenn werde "
    "werden wie wieder will wir wird wirst wo wurde wurden zu zum zur zwar zwischen sagte sagt laut montag "
    "dienstag mittwoch donnerstag freitag samstag sonntag heute gestern zwei drei vier funf sechs sieben acht "
    "neun zehn prozent"
)

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(_EN),
    "fr": frozenset(_FR),
    "es": frozenset(_ES),
    "de": frozenset(_DE),
}
# Unknown language: the union is safer than nothing; the few cross-language clashes ("die", "son")
# cost a little recall on those words only. Only the four languages above: the data-file languages stay
# out of the union, because their function words are names and content words elsewhere (Malay "dan" is
# the English given name, "para" and "ada" Spanish words, "lima" a capital), so adding them would change
# the terms of every article whose language is unknown or has no list (zh, ru, ar...); and an article in
# those languages is rarely unknown, since language identification names Malay and Indonesian confidently.
ALL_STOPWORDS: frozenset[str] = frozenset().union(*STOPWORDS.values())
for _language in languages_with_words():
    STOPWORDS[_language] = language_words(_language).stopwords  # type: ignore[union-attr]


def stopwords_for(language: str | None) -> frozenset[str]:
    return _STOPWORDS_FOR.get(language, ALL_STOPWORDS)  # type: ignore[arg-type]


# Quotes and names from other languages are common in news; English filler leaks into every
# language's copy, so it is always dropped. Built once: this is looked up for every article.
_STOPWORDS_FOR: dict[str, frozenset[str]] = {lang: words | STOPWORDS["en"] for lang, words in STOPWORDS.items()}


# --- light stemming ---------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def stem(word: str, language: str | None) -> str:
    """A deliberately light suffix stripper: merge inflections, never conflate distinct roots.

    Aggressive stemmers (Porter, Snowball) over-merge proper nouns, which are the most valuable tokens
    for matching stories; so only plural/gender/common verb endings go, and short words are left alone.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if language == "fr":
        return _stem_fr(word)
    if language == "es":
        return _stem_es(word)
    if language == "de":
        return _stem_de(word)
    return _stem_en(word)


def _stem_en(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 4:
        word = word[:-1]
    if word.endswith("ing") and len(word) > 6:
        word = word[:-3]
    elif word.endswith("ed") and len(word) > 5:
        word = word[:-2]
    return word


def _stem_fr(word: str) -> str:
    if word.endswith("aux") and len(word) > 5:
        return word[:-3] + "al"
    if word.endswith(("s", "x")) and len(word) > 4:
        word = word[:-1]
    if word.endswith("e") and len(word) > 5:
        word = word[:-1]
    return word


def _stem_es(word: str) -> str:
    if word.endswith("es") and len(word) > 5:
        word = word[:-2]
    elif word.endswith("s") and len(word) > 4:
        word = word[:-1]
    if word.endswith(("a", "o")) and len(word) > 5:
        word = word[:-1]
    return word


def _stem_de(word: str) -> str:
    for suffix in ("ungen", "en", "er", "es", "e", "n", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


# --- content terms ----------------------------------------------------------------------------------


def _char_ngrams(chars: list[str], n: int) -> Iterator[str]:
    if len(chars) < n:
        if chars:
            yield "".join(chars)
        return
    for i in range(len(chars) - n + 1):
        yield "".join(chars[i : i + n])


def content_terms(text: str, language: str | None) -> list[str]:
    """Terms for topical similarity: stopwords out, light stems, n-gram fallback for other scripts.

    Pure numbers are dropped here: they are compared as number cues by :mod:`transform.entities`, where
    "2.300" and "2,300" are recognised as the same quantity.
    """
    stop = stopwords_for(language)
    out: list[str] = []
    append = out.append
    pending_chars: list[str] = []

    def flush() -> None:
        if pending_chars:
            out.extend(_char_ngrams(pending_chars, 2))
            pending_chars.clear()

    for token in words(text):
        ascii_token = token.isascii()  # ASCII is neither a no-space nor a clitic script: skip the regexes
        if len(token) == 1 and not ascii_token and is_no_space_char(token):
            pending_chars.append(token)
            continue
        if pending_chars:
            flush()
        if token.isdigit() or token in stop:
            continue
        if not ascii_token and _CLITIC_SCRIPT_RE.search(token):
            out.extend(_char_ngrams(list(token), 3))
            continue
        if len(token) < 2 or token[0].isdigit():
            continue
        append(stem(token, language))
    flush()
    return out


@lru_cache(maxsize=65536)
def term_of(word: str, language: str | None) -> str | None:
    """The content term one plain word becomes, or None for stopwords/numbers (for display maps)."""
    folded = fold(word)
    if not folded.isalpha() or len(folded) < 2 or folded in stopwords_for(language):
        return None
    return stem(folded, language)


# --- shingles ---------------------------------------------------------------------------------------


def stable_hash64(value: str) -> int:
    """A process-independent 64-bit hash (Python's ``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "little")


def shingle_tokens(text: str) -> list[str]:
    """Surface tokens for shingling: every word kept, numbers included (they differ between stories)."""
    return words(text)


def shingles(text: str, k: int = 5) -> set[int]:
    """Hashed k-word shingles of ``text`` (k characters for no-space scripts, which use 1-char tokens).

    A text shorter than k tokens yields one shingle of everything it has, so it still matches itself.
    """
    return set(hashed_shingles(shingle_tokens(text), k))


def hashed_shingles(tokens: Iterable[str], k: int) -> Iterator[int]:
    """The hash of every run of ``k`` consecutive tokens, in text order (see :func:`shingle_hashes`)."""
    yield from shingle_hashes(list(tokens), k).tolist()


def shingle_hashes(tokens: Sequence[str], k: int) -> np.ndarray:
    """:func:`stable_hash64` of every run of ``k`` consecutive tokens joined by a space, in text order, as
    ``uint64``; a text of at most ``k`` tokens gives one hash of all of them, no tokens none.

    These are the stored signatures' shingles, so the values must not change. Each token is encoded once and
    the runs are joined as bytes (the UTF-8 of a space-joined string is the space-joined UTF-8 of its parts),
    and the digests are read as one little-endian array instead of one ``int`` each.
    """
    if not tokens:
        return np.zeros(0, dtype=np.uint64)
    if len(tokens) <= k:
        return np.array([stable_hash64(" ".join(tokens))], dtype=np.uint64)
    encoded = [token.encode("utf-8") for token in tokens]
    runs = zip(*(encoded[i:] for i in range(k)), strict=False)  # stops at the shortest: len(tokens) - k + 1 runs
    blake2b, join = hashlib.blake2b, b" ".join
    digests = b"".join([blake2b(join(run), digest_size=8).digest() for run in runs])
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)
