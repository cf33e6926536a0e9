"""Online story clustering: group articles about the same real-world event, across outlets and languages.

Each article is compared with the *events* (clusters) that share salient terms or cues with it, and
joins the best one if the combined similarity reaches the threshold; otherwise it opens a new event.

Similarity of an article to an event combines

* **text**: cosine between the article's TF-IDF vector (title terms boosted) and the event's centroid;
* **cues**: cosine over named entities, numbers with units and calendar dates (see
  :mod:`transform.entities`), IDF-weighted so that "France" counts far less than "Khan al-Assal". Cues
  are language-neutral, which is what lets an English and a French report of one story meet;
* **meaning**: cosine between the article's multilingual sentence embedding (title and lead, see
  :mod:`newswire.embedding`) and the event's mean embedding. It is what joins scripts that share neither
  words nor spelled names ("台湾" and "Taiwan"), and it finds candidate events by itself (exact search over
  the live events' normalised mean vectors), since such an article shares no index key with them;
* **time**: the score decays once the article is more than ``time_grace`` away from the event's time
  span, and is zero beyond ``horizon``, so stories months apart never merge.

Candidates come from an inverted index (salient terms and cues -> events) in which keys shared by
more than ``max_posting`` events are ignored, plus the events nearest in meaning, so the work per
article is bounded by the configuration, not by the number of stored articles; events older than the
horizon are evicted.

Determinism and restarts: the index state is a pure function of the *set* of (article, event) pairs it
holds. Per-event aggregates are integer sums (exact, order-free), document frequencies count the live
articles, IDF is recomputed from them at comparison time, and every floating-point sum runs in an
order fixed by the data (``math.fsum`` over the article's terms, arrays sorted by key for events).
Embeddings are float16 values, exact in float64, so an event's vector sum is exact whatever the order its
articles came in; the search matrix is only a pre-filter, every score is recomputed exactly.
:meth:`StoryClusterer.restore` therefore rebuilds, in any order, the very state that the original
:meth:`StoryClusterer.assign` calls produced, and later assignments are identical to those of an
uninterrupted run.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import heapq
import math
import operator
import re
import sys
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import accumulate, chain, compress, filterfalse, islice, repeat
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from newswire.embedding import DEFAULT_MODEL, Embedding, embed_articles, encoder_for, model_id_for
from transform.documents import ArticleDoc
from transform.entities import Cues, extract_cues, outlet_keys
from transform.errors import ClusteringError, StaleFeatures, UnknownEvent
from transform.lexicon import LanguageWords, language_words
from transform.scoring import load_kernel
from transform.text import content_terms, term_of, words

__all__ = [
    "FEATURES_VERSION",
    "Assignment",
    "ClusteringConfig",
    "ClusteringError",
    "EventProfile",
    "StaleFeatures",
    "StoryClusterer",
    "TextFeatures",
    "UnknownEvent",
    "text_features",
]

# Bumped whenever feature extraction (text.py, entities.py, _features) changes what it computes:
# features stored by an older version would then differ from a recomputation, and must be rebuilt.
# 3: Malay and Indonesian word tables (transform/data/malay.json) change the features of ms/id articles.
# 4: currency codes before amounts ("RM1.2 billion", "Rp 3 triliun", "US$2 billion") and "trillion" read as money
#    in every language; Malay and Indonesian novelty words and names of places and agencies (ms/id articles only).
# 5: amounts across scripts and spellings (transform/amounts.py): Chinese and Japanese amounts and counts, English,
#    French and Malay number words, glued scales ("$3bn"), Russian and Arabic scale and casualty words, Arabic-Indic
#    digits; in every language (number words are everywhere).
FEATURES_VERSION = 5


@dataclass(frozen=True)
class ClusteringConfig:
    """Tunables of :class:`StoryClusterer`; the defaults are measured with ``python -m bench.quality``.

    threshold: minimum combined score for an article to join an existing event.
    merge_threshold: an article that also scores at least this with a *second* event shows the two are
        one story; they are merged (the older event survives). Higher than ``threshold`` on purpose:
        a wrong merge fuses two whole stories, a missed one only leaves a story split.
    text_weight, cue_weight: weights of text and cue cosines in the combined score.
    cue_only_weight: cross-language articles share almost no words, so the score is also at least
        ``cue_only_weight * cue cosine``: strong agreement on names and numbers alone can join events.
    title_weight: how many times a title term counts compared with a body term.
    horizon: articles further than this from an event's time span never join it (also the eviction
        horizon of :meth:`StoryClusterer.evict_before`). On the labelled corpus the longest gap between
        an article and the previous one of its story is ~18 days (a verdict after a trial opening);
        21 days keeps those reachable while stories months apart can never meet.
    time_grace, time_half_life: no decay for gaps up to ``time_grace``; beyond, the score halves every
        ``time_half_life`` of extra gap.
    novelty_penalty, novelty_min_gap: an article whose headline announces a *new* incident ("New quake
        hits...", "Nouvel incendie...", "Second derailment...") or whose lede calls it separate from an
        earlier one ("a week after a separate blaze"), published more than ``novelty_min_gap`` after an
        event began, is a sequel, not a development: its score with that event is multiplied by
        ``novelty_penalty``.
    embedding_model: the multilingual encoder (``NEWSWIRE_EMBEDDING_MODEL``; ``"none"`` turns the meaning
        term off). Articles carrying a vector of another model get one recomputed: models never mix.
    semantic_floor: embedding cosines up to this carry no evidence: articles on unrelated subjects in one
        language already score 0.2-0.5 with this encoder. Above it the cosine is rescaled to 0..1.
    semantic_weight: weight of the rescaled cosine in the linear mix with text and cues.
    semantic_only_weight, semantic_cue_weight: the score is also at least ``semantic_only_weight *
        meaning + semantic_cue_weight * cue``: what joins a Chinese and an English report, which share no
        words and few cues, while two earthquakes a week apart (close in meaning, apart in cues and time)
        stay apart.
    semantic_candidates: how many events nearest in meaning (above ``semantic_floor``) are scored besides
        those found through shared keys.
    query_terms: how many of the article's top TF-IDF terms are used to look up candidate events.
    max_candidates: how many candidate events (most shared keys first) are scored per article.
    max_posting: keys that index more events than this are too common to select candidates; bounds
        the lookup cost per article whatever the number of stored events.
    """

    threshold: float = 0.20
    merge_threshold: float = 0.45
    text_weight: float = 0.5
    cue_weight: float = 0.5
    cue_only_weight: float = 0.75
    title_weight: int = 2
    horizon: timedelta = timedelta(days=21)
    time_grace: timedelta = timedelta(days=2)
    time_half_life: timedelta = timedelta(days=10)
    novelty_penalty: float = 0.5
    novelty_min_gap: timedelta = timedelta(days=1)
    embedding_model: str = DEFAULT_MODEL
    semantic_floor: float = 0.5
    semantic_weight: float = 0.0
    semantic_only_weight: float = 0.4
    semantic_cue_weight: float = 0.35
    semantic_candidates: int = 5
    query_terms: int = 25
    max_candidates: int = 20
    max_posting: int = 400
    keyword_count: int = 10
    entity_count: int = 10

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.threshold <= 1.0:
            problems.append(f"threshold must be in (0, 1], got {self.threshold}")
        if self.merge_threshold < self.threshold:
            problems.append("merge_threshold must be >= threshold")
        if self.horizon <= timedelta(0) or self.time_half_life <= timedelta(0):
            problems.append("horizon and time_half_life must be positive")
        if not 0.0 <= self.novelty_penalty <= 1.0:
            problems.append("novelty_penalty must be in [0, 1]")
        if self.time_grace < timedelta(0) or self.novelty_min_gap < timedelta(0):
            problems.append("time_grace and novelty_min_gap must not be negative")
        if not 0.0 <= self.semantic_floor < 1.0:
            problems.append("semantic_floor must be in [0, 1)")
        if self.title_weight < 1 or self.query_terms < 1 or self.max_candidates < 1 or self.max_posting < 1:
            problems.append("title_weight, query_terms, max_candidates and max_posting must be >= 1")
        if problems:
            raise ClusteringError("; ".join(problems))


@dataclass(frozen=True)
class Assignment:
    """Where :meth:`StoryClusterer.assign` put an article."""

    event_id: str
    created: bool
    merged: tuple[str, ...]  # event ids merged INTO event_id by this article (they no longer exist)
    score: float  # similarity to the chosen event (0 when created)


@dataclass(frozen=True)
class EventProfile:
    """A summary of one event for event records (names are display forms, most frequent first)."""

    event_id: str
    article_ids: tuple[str, ...]
    representative_article_id: str  # the article closest to the event centroid
    keywords: tuple[str, ...]
    places: tuple[str, ...]
    people: tuple[str, ...]
    organisations: tuple[str, ...]
    languages: tuple[str, ...]
    sources: tuple[str, ...]
    first_published_at: datetime
    last_published_at: datetime


# --- per-article features -------------------------------------------------------------------------

_WEIGHT_SCALE = 1000  # term weights are stored as integers (exact, order-free sums)


@dataclass(frozen=True)
class _Features:
    article_id: str
    source: str
    language: str | None
    published_at: datetime
    terms: dict[str, int]  # stem -> sublinear tf * 1000 (title occurrences count title_weight times)
    cues: frozenset[str]  # "e:<entity>", "n:<number>[:<unit>]", "d:<mm-dd>"
    entity_kinds: tuple[tuple[str, str, str], ...]  # (kind, key, display) for profiles
    surfaces: dict[str, str] = field(compare=False)  # stem -> a surface word, for keywords
    novelty: bool  # the headline announces a new incident ("new quake", "nouvel incendie")
    embedding: Embedding | None = field(default=None, compare=False)  # of the clusterer's model, or None


# The head of an article carries its story; capping bounds the cost of hostile or broken input.
_MAX_TITLE_CHARS = 1_000
_MAX_TEXT_CHARS = 50_000


@lru_cache(maxsize=4096)
def _weight(tf: int) -> int:
    """Sublinear term weight as an integer; most counts are small, so they are computed once."""
    return round(_WEIGHT_SCALE * (1.0 + math.log(tf)))


class _Weights(dict[int, int]):
    """:func:`_weight` by count as a dict, so that an article's weights are one C-level ``map`` of lookups."""

    def __missing__(self, tf: int) -> int:
        value = _weight(tf)
        if len(self) < 4096:  # bounded like the cache behind _weight
            self[tf] = value
        return value


_WEIGHTS = _Weights()


@dataclass(frozen=True)
class TextFeatures:
    """The part of an article's features that depends only on its title, text and language (and
    ``title_weight``): everything but the outlet's own names, which :func:`_with_doc` removes.

    It is what the extraction workers compute beside trafilatura and the article message carries
    (:mod:`transform.carried`), so the order of ``counts`` and ``surfaces`` is kept as computed: the stored
    features (``article_features``) serialise those dicts in that order.
    """

    counts: dict[str, int]  # stem -> occurrences (title occurrences count title_weight times), first-seen order
    cues: frozenset[str]  # every cue key, the outlet's names included
    entity_kinds: tuple[tuple[str, str, str], ...]  # (kind, key, display), the outlet's names included
    surfaces: dict[str, str]
    novelty: bool


def text_features(title: str, text: str, language: str | None, title_weight: int) -> TextFeatures:
    """Tokenisation, terms, cues, surfaces and novelty of one article: the costly part of :func:`_features`.

    ``language`` is the article's base language as :class:`ArticleDoc` normalises it.
    """
    title, text = title[:_MAX_TITLE_CHARS], text[:_MAX_TEXT_CHARS]
    title_terms = content_terms(title, language)
    body_terms = content_terms(text, language)
    counts: Counter[str] = Counter(body_terms)
    for term in title_terms:
        counts[term] += title_weight
    cues = extract_cues(title, text, language)
    return TextFeatures(
        counts=dict(counts),
        cues=_cue_keys(cues),
        entity_kinds=_entity_kinds(cues),
        surfaces=_surfaces(f"{title}\n{text}", language, {term: _weight(tf) for term, tf in counts.items()}),
        novelty=_announces_new_incident(title, text, language),
    )


_Canonical = Callable[[Iterable[str]], Iterable[str]]


def _interned(keys: Iterable[str]) -> Iterator[str]:
    """The keys as :func:`sys.intern` makes them: one string object per distinct text."""
    return map(sys.intern, keys)


def _features(
    doc: ArticleDoc, config: ClusteringConfig, embedding: Embedding | None, canonical: _Canonical = _interned
) -> _Features:
    return _with_doc(text_features(doc.title, doc.text, doc.language, config.title_weight), doc, embedding, canonical)


def _with_doc(
    text: TextFeatures, doc: ArticleDoc, embedding: Embedding | None, canonical: _Canonical = _interned
) -> _Features:
    """An article's features from its text features: the outlet's own names removed, the document's fields.

    ``canonical`` gives each term the one string object the clusterer holds for it (the term vocabulary's, see
    :meth:`_Vocabulary.canonical`; else :func:`sys.intern`'s), so that every event, posting and
    member holding a term shares one string.
    """
    counts = text.counts
    terms = dict(zip(canonical(counts), map(_WEIGHTS.__getitem__, counts.values()), strict=True))
    outlet, outlet_cues = _outlet(doc.source)
    return _Features(
        article_id=doc.article_id,
        source=doc.source,
        language=doc.language,
        published_at=doc.published_at,
        terms=terms,
        cues=text.cues - outlet_cues,
        entity_kinds=tuple(item for item in text.entity_kinds if item[1] not in outlet),
        surfaces=text.surfaces,
        novelty=text.novelty,
        embedding=embedding,
    )


@lru_cache(maxsize=4096)
def _outlet(source: str) -> tuple[frozenset[str], frozenset[str]]:
    """The outlet's own entity keys and their cue keys (``e:<key>``): the same few sources recur in every batch."""
    keys = outlet_keys(source)
    return keys, frozenset(f"e:{key}" for key in keys)


# Headline words that announce another incident of a kind already reported. Only the headline is
# checked: bodies of follow-ups routinely say "new details", "a second hearing".
_NOVELTY_WORDS = frozenset(
    {
        "new", "another", "second", "fresh", "renewed", "again", "nouveau", "nouvel", "nouvelle",
        "nouveaux", "nouvelles", "deuxieme", "seconde", "nuevo", "nueva", "nuevos", "nuevas",
        "otro", "otra", "segundo", "segunda", "neue", "neuer", "neues", "neuen", "erneut", "erneuter",
        "erneute", "zweite", "zweiter", "wieder",
    }
)  # fmt: skip


# Lede phrases that state the incident is distinct from an earlier one ("a week after a separate
# blaze", "sans lien apparent"). Only the lede: further down, "unrelated" often qualifies something else.
_SEPARATION_PHRASES = (
    "separate", "unrelated", "not related", "no connection", "not connected", "not linked",
    "sans lien", "aucun lien", "distinct de", "distincte de", "sin relacion", "otro incidente",
    "kein zusammenhang", "nichts zu tun",
)  # fmt: skip
_LEDE_CHARS = 600


def _announces_new_incident(title: str, text: str, language: str | None) -> bool:
    own = language_words(language)
    if any(word in _NOVELTY_WORDS for word in words(title)) or (own is not None and _announces_in(title, own)):
        return True
    lede = f" {' '.join(words(text[:_LEDE_CHARS]))} "
    phrases = _SEPARATION_PHRASES if own is None else _SEPARATION_PHRASES + own.separation_phrases
    return any(f" {phrase} " in lede for phrase in phrases)


_PHRASE_BREAK_RE = re.compile(r"[:;,.!?|()\[\]\"“”«»—–]")


def _announces_in(title: str, own: LanguageWords) -> bool:
    """A headline's novelty words in a language with a data table (:mod:`transform.lexicon`: Malay, Indonesian).

    Some of them mark a new incident only after the word they qualify, inside one phrase of the headline:
    "Banjir lagi di Pahang" (floods again) and "Satu lagi bot karam" (another boat capsizes), but not "Tiga lagi
    mayat ditemui" (three more bodies found: a development of the same story) nor "Kedua-dua mangsa" (both victims).
    """
    for phrase in _PHRASE_BREAK_RE.split(title):
        tokens = words(phrase)
        for index, word in enumerate(tokens):
            if word in own.novelty_words:
                return True
            if word not in own.novelty_after_words or index == 0:
                continue
            previous = tokens[index - 1]
            after_count = previous.isdigit() or own.number_words.get(previous, 0) >= 2
            if after_count or previous in own.novelty_not_after:
                continue
            if index + 1 < len(tokens) and tokens[index + 1] in own.novelty_not_before:
                continue
            return True
    return False


def _cue_keys(cues: Cues) -> frozenset[str]:
    # One namespace for all names: the same name is sometimes classified as a person in one article
    # and left unclassified in another; matching must not depend on that guess.
    names = cues.places | cues.people | cues.organisations | cues.others
    return frozenset({f"e:{name}" for name in names} | cues.numbers | cues.dates)


def _entity_kinds(cues: Cues) -> tuple[tuple[str, str, str], ...]:
    display = cues.display()
    out = []
    for kind, keys in (("place", cues.places), ("person", cues.people), ("organisation", cues.organisations)):
        out.extend((kind, key, display.get(key, key)) for key in sorted(keys))
    return tuple(out)


_WORD_RE = re.compile(r"[^\W\d_]+")


def _surfaces(text: str, language: str | None, terms: dict[str, int]) -> dict[str, str]:
    """Map the article's top stems back to a readable word ("injur" -> "injured")."""
    top = set(heapq.nsmallest(30, terms, key=lambda t: (-terms[t], t)))
    out: dict[str, str] = {}
    seen: set[str] = set()  # a word already looked at cannot add anything: skip the lookups
    for match in _WORD_RE.finditer(text):
        word = match.group()
        if word in seen:
            continue
        seen.add(word)
        term = term_of(word, language)
        if term is not None and term in top and term not in out:
            out[term] = word.lower()
            if len(out) == len(top):
                break
    return out


def _parse_features(data: Mapping[str, Any]) -> _Features:
    """Inverse of :meth:`StoryClusterer.export_features` (after its version check)."""
    try:
        published_at = datetime.fromisoformat(data["published_at"])
        language = data["language"]
        stored_terms = data["terms"]
        terms = dict(zip(map(sys.intern, map(str, stored_terms.keys())), map(int, stored_terms.values()), strict=True))
        entities = tuple((str(kind), str(key), str(display)) for kind, key, display in data["entities"])
        features = _Features(
            article_id=str(data["article_id"]),
            source=str(data["source"]),
            language=None if language is None else str(language),
            published_at=published_at,
            terms=terms,
            cues=frozenset(map(str, data["cues"])),
            entity_kinds=entities,
            surfaces=dict(zip(map(str, data["surfaces"].keys()), map(str, data["surfaces"].values()), strict=True)),
            novelty=bool(data["novelty"]),
            embedding=_parse_embedding(data.get("embedding")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ClusteringError(f"malformed stored features: {exc!r}") from exc
    if published_at.tzinfo is None:
        raise ClusteringError("malformed stored features: naive published_at")
    return features


def _parse_embedding(value: Any) -> Embedding | None:
    if value is None:
        return None
    raw = base64.b64decode(str(value["vector"]), validate=True)
    if not raw or len(raw) % 2:
        raise ValueError("embedding vector of odd length")
    return Embedding(str(value["model"]), raw)


def _unit_norm(vector: np.ndarray, fixed: _Fixed | None = None) -> float:
    """Euclidean norm, exactly rounded (``math.fsum``): the same bits whatever produced the array.

    With ``fixed`` (the same values as integers, :func:`_fixed`) small enough that every square is exact in
    float64, the sum of squares is taken in integers instead: exact, so its one rounding to float is the rounding
    ``math.fsum`` makes of the same exact sum, without a Python float per component.
    """
    if fixed is not None and fixed.peak * fixed.peak * len(fixed.values) < _INT_SUM_LIMIT and fixed.peak < _EXACT_INT:
        return math.sqrt(math.ldexp(float(int(fixed.values @ fixed.values)), -2 * _FIXED_BITS))
    return math.sqrt(math.fsum((vector * vector).tolist()))


# Every float16 value is an integer multiple of 2**-24, so the embeddings, their sums and the products of two
# such values are integers once scaled: a product of magnitude below 2**53 (scaled by 2**-48) is exact in
# float64, and sums of such products fit int64 when below 2**63. Within those bounds an integer dot product is
# exact, and rounding it once gives the very float ``math.fsum`` gives of the float products.
_FIXED_BITS = 24
_FIXED_SCALE = float(1 << _FIXED_BITS)
_EXACT_INT = 1 << 26  # a square below 2**52: exact as a float
_EXACT_PRODUCT = 1 << 53
_INT_SUM_LIMIT = 1 << 62


@dataclass(frozen=True)
class _Fixed:
    """A float vector as exact integers (``values * 2**-24`` is the vector) and the largest magnitude."""

    values: np.ndarray  # int64
    peak: int


def _fixed(vector: np.ndarray) -> _Fixed | None:
    """``vector`` (float16 values or exact sums of them) as integers, or None when it is not exactly such
    (not finite, too large, or a value that is not a multiple of 2**-24): callers then use ``math.fsum``."""
    if not len(vector):
        return None
    scaled = vector * _FIXED_SCALE
    peak = float(_max_reduce(_absolute(scaled)))
    if not peak < _INT_SUM_LIMIT:  # also NaN and infinities
        return None
    values = scaled.astype(np.int64)
    if not _all_reduce(_equal(values, scaled)):  # the int64 values compare as floats: exact iff a whole number
        return None
    return _Fixed(values, int(peak))


def _fixed_sum(first: _Fixed, second: _Fixed) -> _Fixed | None:
    """:func:`_fixed` of the float sum of the two vectors, from their integer forms: None beyond 2**53, where the
    float sum may round (the caller then takes :func:`_fixed` of the float sum itself)."""
    if first.peak + second.peak >= _EXACT_PRODUCT:
        return None
    values = first.values + second.values
    return _Fixed(values, int(float(_max_reduce(_absolute(values)))))


# ufuncs and their reductions called directly, without the Python-level argument handling of np.sum, np.max, ...
_add_reduce = np.add.reduce
_max_reduce = np.maximum.reduce
_all_reduce = np.logical_and.reduce
_absolute = np.absolute
_equal = np.equal

# --- events -----------------------------------------------------------------------------------------


class _Vocabulary:
    """Document frequencies of the live articles, with a dense id per key for vectorised IDF lookups.

    Ids are bookkeeping only (never an ordering), and are recycled once no live article uses a key,
    so memory follows the horizon's vocabulary rather than everything ever seen.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        # each live key's own string object (the one ``_ids`` holds): see canonical()
        self._keys: dict[str, str] = {}
        self._df = np.zeros(1024, dtype=np.int64)
        self._free: list[int] = []
        # the same frequencies by key, for the per-article lookups: one C-level dict pass, no array round trip
        self._counts: Counter[str] = Counter()
        # two zero arrays indexed by id (see StoryClusterer._shared_dots), zero again after every use
        self._scratch: tuple[np.ndarray, np.ndarray] | None = None
        # Changes with every count (and so with every id given or taken back): what lookup() gives at one
        # generation stays true while it lasts (an article's keys are looked up once, to score and to attach it).
        self.generation = 0

    def __len__(self) -> int:
        return len(self._ids)

    def df(self, key: str) -> int:
        index = self._ids.get(key)
        return 0 if index is None else int(self._df[index])

    def frequencies(self) -> dict[str, int]:
        return {key: int(self._df[index]) for key, index in self._ids.items()}

    def ids(self, keys: list[str]) -> np.ndarray:
        """Ids of keys that are all live (every key of a live event is)."""
        return np.fromiter(map(self._ids.__getitem__, keys), dtype=np.int64, count=len(keys))

    def document_frequencies(self, ids: np.ndarray) -> np.ndarray:
        return self._df[ids]

    @property
    def frequency_array(self) -> np.ndarray:
        """The document frequency by id (int64; free ids hold 0), read by the C kernel of scoring."""
        return self._df

    def canonical(self, keys: Iterable[str]) -> Iterator[str]:
        """The string object this vocabulary holds for each key, else the key itself (which becomes it once added).

        What :func:`sys.intern` gives the clusterer's terms (one shared object per live term, in every event,
        posting and member), from a table of the live terms only: an article's terms arrive as new strings every
        time (decoded or tokenised), and interning them costs a lookup in the interpreter's table of every
        interned string, a larger table than this one.
        """
        keys = list(keys)
        return map(self._keys.get, keys, keys)  # in C, like map(sys.intern, keys)

    def lookup(self, keys: list[str]) -> tuple[list[int], list[int]]:
        """The id (-1 for a key no live article has) and the document frequency (0 then) of each key."""
        return list(map(self._ids.get, keys, repeat(-1))), list(map(self._counts.get, keys, repeat(0)))

    def scratch(self) -> tuple[np.ndarray, np.ndarray]:
        """Two float arrays with one zero per possible id; the caller sets some entries and zeroes them again."""
        if self._scratch is None or len(self._scratch[0]) != len(self._df):
            self._scratch = (np.zeros(len(self._df)), np.zeros(len(self._df)))
        return self._scratch

    def frequencies_of(self, keys: list[str]) -> list[int]:
        """Document frequency of each key (0 for a key no live article has)."""
        return list(map(self._counts.get, keys, repeat(0)))

    def add(self, keys: Iterable[str], known: list[int] | None = None) -> list[int]:
        """Count one more article for each of ``keys`` (distinct keys: one article's terms or cues); their ids.

        ``known`` is :meth:`lookup`'s ids of the same keys at the current :attr:`generation` (-1 for a key without
        one), when the caller has them: then only the keys without an id are looked at again.
        """
        ids = self._ids
        keys = list(keys)
        # in C; the keys seen for the first time get an id below
        index = list(map(ids.get, keys, repeat(-1))) if known is None else known
        if -1 in index:
            # a loop over the new keys only (a fraction of an article's), then every id again in one C-level pass
            for key in compress(keys, map(operator.eq, index, repeat(-1))):
                found = self._free.pop() if self._free else len(ids)
                if found >= len(self._df):
                    self._df = np.concatenate([self._df, np.zeros(len(self._df), dtype=np.int64)])
                ids[key] = found
                self._keys[key] = key
            index = list(map(ids.__getitem__, keys))
        if index:
            self._df[np.array(index, dtype=np.int64)] += 1  # distinct ids: one increment each
            self._counts.update(keys)
            self.generation += 1
        return index

    def subtract(self, amounts: Counter[str]) -> None:
        self.generation += 1
        for key, amount in amounts.items():
            index = self._ids[key]
            self._df[index] -= amount
            self._counts[key] -= amount
            if self._df[index] <= 0:
                self._df[index] = 0
                del self._ids[key]
                del self._keys[key]
                del self._counts[key]
                self._free.append(index)


@dataclass(frozen=True)
class _EventArrays:
    term_ids: np.ndarray
    term_sums: np.ndarray
    cue_ids: np.ndarray
    cue_counts: np.ndarray


@dataclass(frozen=True)
class _Member:
    """What an event keeps of one article: enough for profiles, not the full vectors (memory)."""

    article_id: str
    source: str
    language: str | None
    published_at: datetime
    top_terms: tuple[tuple[str, int], ...]  # the article's strongest terms, for centrality


_MEMBER_TERMS = 40


def _member(features: _Features, keyed: _Keyed | None = None) -> _Member:
    terms = features.terms
    if keyed is None:
        strongest = _strongest(list(terms.values()), list(terms), _MEMBER_TERMS)
    else:
        strongest = keyed.strongest(keyed.weights, _MEMBER_TERMS)
    top = tuple(zip(strongest, map(terms.__getitem__, strongest), strict=True))
    return _Member(features.article_id, features.source, features.language, features.published_at, top)


class _Keyed:
    """One article's terms and cues as lists and arrays, with their vocabulary ids and frequencies: what scoring and
    attaching the article both use, made once per article.

    ``rank`` holds each term's position in the *string* order of the article's terms: ties between terms are broken
    by it (see :meth:`strongest`) as they were by the terms themselves. The ids and frequencies are those of
    :meth:`_Vocabulary.lookup` at the vocabulary generations recorded with them (-1 and 0 for a key without an id),
    and are looked up again once a vocabulary changed.
    """

    __slots__ = (
        "cue_frequencies",
        "cue_generation",
        "cue_ids",
        "cues",
        "features",
        "rank",
        "term_frequencies",
        "term_generation",
        "term_ids",
        "terms",
        "weights",
    )

    def __init__(self, features: _Features) -> None:
        self.features = features
        self.terms = list(features.terms)
        self.weights = np.fromiter(features.terms.values(), dtype=np.float64, count=len(self.terms))
        self.cues = list(features.cues)
        self.rank = np.empty(len(self.terms), dtype=np.intp)
        order = sorted(range(len(self.terms)), key=self.terms.__getitem__)
        self.rank[order] = np.arange(len(self.terms), dtype=np.intp)
        self.term_ids: list[int] = []
        self.cue_ids: list[int] = []
        self.term_frequencies: list[int] = []
        self.cue_frequencies: list[int] = []
        self.term_generation = self.cue_generation = -1

    def look_up(self, terms: _Vocabulary, cues: _Vocabulary) -> None:
        """Ids and document frequencies of its terms and cues, unless those held are still valid."""
        if self.term_generation != terms.generation or self.cue_generation != cues.generation:
            self.term_ids, self.term_frequencies = terms.lookup(self.terms)
            self.cue_ids, self.cue_frequencies = cues.lookup(self.cues)
            self.term_generation, self.cue_generation = terms.generation, cues.generation

    def strongest(self, values: np.ndarray, n: int) -> list[str]:
        """:func:`_strongest` of ``values`` (one per term, in the terms' order) and the terms: the ``n`` terms of
        largest value, ties by term, in that order. One NumPy sort by (-value, position in string order): the same
        total order as the (-value, term) pairs, since the terms are distinct."""
        return list(map(self.terms.__getitem__, np.lexsort((self.rank, -values))[: max(n, 0)].tolist()))


def _strongest(values: list[Any], keys: list[str], n: int) -> list[str]:
    """The ``n`` keys of largest value, ties by key: ``[k for _, k in heapq.nsmallest(n, [(-v, k) ...])]``.

    The pairs are ordered by value alone (a C-level key); those above the n-th one's value are ranked with their
    keys, and the rest of the n are the smallest keys of that value (sub-linear weights tie a lot: most terms occur
    once). The values are numbers, the keys distinct.
    """
    if n <= 0:
        return []  # as nsmallest; the bisection below needs an n-th pair
    by_value = sorted(zip(values, keys, strict=True), key=itemgetter(0), reverse=True)
    if len(by_value) <= n:
        return [key for _, key in sorted([(-value, key) for value, key in by_value])]
    cut = by_value[n - 1][0]
    first = bisect.bisect_left(by_value, -cut, hi=n - 1, key=_negated_value)
    end = bisect.bisect_right(by_value, -cut, lo=n - 1, key=_negated_value)
    above = [key for _, key in sorted([(-value, key) for value, key in by_value[:first]])]
    return above + sorted(map(itemgetter(1), by_value[first:end]))[: n - first]


def _negated_value(pair: tuple[Any, str]) -> Any:
    """The bisection key of pairs ordered by value, largest first."""
    return -pair[0]


def _add_counts(counter: Counter[Any], amounts: Mapping[Any, int]) -> None:
    """``counter.update(amounts)`` for a mapping, with the sums taken by C-level iterators instead of
    ``Counter.update``'s loop in Python: the same values, new keys added in the same order."""
    dict.update(
        counter, zip(amounts, map(operator.add, amounts.values(), map(counter.get, amounts, repeat(0))), strict=True)
    )


def _sorted_keys(
    counts: Counter[str],
    previous: tuple[list[str], np.ndarray] | None,
    vocabulary: _Vocabulary,
    added_ids: list[int] | None = None,
) -> tuple[list[str], np.ndarray]:
    """The keys of ``counts`` in sorted order with their vocabulary ids, from ``previous`` (the same for an earlier
    state of ``counts``) and the keys added since, whose ids are ``added_ids`` when known.

    An event never loses a key and a dict appends new keys at the end, so the previous sorted keys followed by the
    added ones are two runs that ``sorted`` merges in linear time. With the added keys' ids (an event keeps those
    the vocabulary gave when its articles were attached), every id follows its key through that sort, and no key is
    looked up again; otherwise the ids are one C-level dict lookup per key.
    """
    old_keys, old_ids = previous if previous is not None else ([], _NO_IDS)
    if previous is not None and len(old_keys) == len(counts):
        return previous
    added = list(islice(counts, len(old_keys), None))
    if added_ids is None or len(added_ids) != len(added):
        # sorting the two sorted runs merges them in linear time; every id is one dict lookup in C
        keys = sorted(old_keys + added)
        return keys, vocabulary.ids(keys)
    combined = old_keys + added
    order = sorted(range(len(combined)), key=combined.__getitem__)  # the same merge, as positions
    ids = np.concatenate((old_ids, np.array(added_ids, dtype=np.int64)))[np.array(order, dtype=np.intp)]
    return list(map(combined.__getitem__, order)), ids


_NO_IDS = np.zeros(0, dtype=np.int64)


def _keep_earliest(
    table: dict[str, tuple[Any, ...]], keys: Iterable[str], candidates: Iterable[tuple[Any, ...]]
) -> None:
    """Display forms come from the earliest article (not the first *added*): order-free. Each key keeps the
    smaller of its candidate and the one held; one loop over an article's or an event's few dozen pairs, not a
    call per pair."""
    get = table.get
    for key, candidate in zip(keys, candidates, strict=True):
        current = get(key)
        if current is None or candidate < current:
            table[key] = candidate


def _keep_earliest_distinct(
    table: dict[str, tuple[Any, ...]], keys: Iterable[str], candidates: Iterable[tuple[Any, ...]]
) -> None:
    """:func:`_keep_earliest` for distinct ``keys`` (a dict's), by C-level iterators instead of a loop in Python:
    the keys not held take their candidate, the others the smaller of the two. With distinct keys no candidate
    competes with another of the same call, so doing the two groups apart changes nothing (keys new to the table
    are added in the same order; a key held keeps its place)."""
    keys, candidates = list(keys), list(candidates)
    held = list(map(table.get, keys))
    absent = list(map(operator.is_, held, repeat(None)))
    if any(absent):
        dict.update(table, compress(zip(keys, candidates, strict=True), absent))
        present = list(map(operator.not_, absent))
        keys, candidates, held = (list(compress(values, present)) for values in (keys, candidates, held))
    smaller = list(map(operator.lt, candidates, held))
    if any(smaller):
        dict.update(table, compress(zip(keys, candidates, strict=True), smaller))


class _Event:
    """Aggregates of one event; every field is an order-free function of its articles."""

    __slots__ = (
        "_added",
        "_arrays",
        "_cue_index",
        "_term_index",
        "cue_counts",
        "displays",
        "entity_counts",
        "event_id",
        "first",
        "last",
        "members",
        "slot",
        "surfaces",
        "term_docs",
        "term_sum",
        "vec_fixed",
        "vec_norm",
        "vec_sum",
    )

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        self.members: dict[str, _Member] = {}
        self.term_sum: Counter[str] = Counter()  # sum of the articles' term weights
        self.term_docs: Counter[str] = Counter()  # how many of its articles use each term
        self.cue_counts: Counter[str] = Counter()  # how many of its articles carry each cue
        self.entity_counts: Counter[tuple[str, str]] = Counter()  # (kind, key) -> articles
        # entity key -> (all capitals?, published_at, article_id, display): "Washington" over "WASHINGTON"
        self.displays: dict[str, tuple[bool, datetime, str, str]] = {}
        self.surfaces: dict[str, tuple[datetime, str, str]] = {}  # term -> readable word
        self.first: datetime | None = None
        self.last: datetime | None = None
        self._arrays: _EventArrays | None = None
        # its keys sorted, with their vocabulary ids, as of the last arrays(): kept, since an event only gains keys
        self._term_index: tuple[list[str], np.ndarray] | None = None
        self._cue_index: tuple[list[str], np.ndarray] | None = None
        # the vocabulary ids of the term and cue keys added since those indexes (in the counters' order), or None
        # when unknown (after a merge): the next arrays() then looks them up
        self._added: tuple[list[int], list[int]] | None = ([], [])
        # Exact sum of the members' float16 embeddings (float64 holds each sum exactly), and its norm.
        self.vec_sum: np.ndarray | None = None
        self.vec_fixed: _Fixed | None = None  # vec_sum as integers, for exact integer dot products (see _fixed)
        self.vec_norm = 0.0
        self.slot = -1  # its dense id in the clusterer's postings (see _EventSlots), once live

    def arrays(self, terms: _Vocabulary, cues: _Vocabulary) -> _EventArrays:
        """Aggregates as arrays sorted by key, rebuilt only after the event changed.

        Sorting by key (not insertion order) makes every float computed from them bit-identical in
        an uninterrupted run and after a restore, whatever order the articles were added in.
        """
        if self._arrays is None:
            added_terms, added_cues = self._added if self._added is not None else (None, None)
            self._term_index = _sorted_keys(self.term_sum, self._term_index, terms, added_terms)
            self._cue_index = _sorted_keys(self.cue_counts, self._cue_index, cues, added_cues)
            self._added = ([], [])
            (term_keys, term_ids), (cue_keys, cue_ids) = self._term_index, self._cue_index
            self._arrays = _EventArrays(
                term_ids=term_ids,
                term_sums=np.fromiter(map(self.term_sum.__getitem__, term_keys), np.float64, len(term_keys)),
                cue_ids=cue_ids,
                cue_counts=np.fromiter(map(self.cue_counts.__getitem__, cue_keys), np.float64, len(cue_keys)),
            )
        return self._arrays

    def add(
        self,
        features: _Features,
        vector: tuple[np.ndarray, _Fixed | None] | None = None,
        keyed: tuple[_Keyed, list[int], list[int]] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Add one article; its terms and cues that the event did not have yet.

        ``vector`` is its embedding as float64 and :func:`_fixed` when already computed; ``keyed`` its
        :class:`_Keyed` form with the vocabulary ids of its terms and cues, when the clusterer made them.
        """
        self._arrays = None
        if keyed is None:
            new_terms = list(filterfalse(self.term_sum.__contains__, features.terms))
            new_cues = list(filterfalse(self.cue_counts.__contains__, features.cues))
            self._added = None
        else:
            # the new keys, in the order the counters below append them, and their ids for the next arrays()
            fresh_terms = list(map(operator.not_, map(self.term_sum.__contains__, keyed[0].terms)))
            fresh_cues = list(map(operator.not_, map(self.cue_counts.__contains__, keyed[0].cues)))
            new_terms = list(compress(keyed[0].terms, fresh_terms))
            new_cues = list(compress(keyed[0].cues, fresh_cues))
            if self._added is not None:
                self._added[0].extend(compress(keyed[1], fresh_terms))
                self._added[1].extend(compress(keyed[2], fresh_cues))
        first = not self.members  # a new event: its tables are empty, so the article's sets them as they are
        self.members[features.article_id] = _member(features, None if keyed is None else keyed[0])
        published_at, article_id, kinds = features.published_at, features.article_id, features.entity_kinds
        # the (published_at, article_id, word) candidates, built by a C-level iterator
        stamped = zip(repeat(published_at), repeat(article_id), features.surfaces.values())
        if first:
            # What the general updates below give empty tables (same keys, order and values), as C-level dict
            # updates: every article that opens an event takes this path.
            dict.update(self.term_sum, features.terms)
            dict.update(self.term_docs, dict.fromkeys(features.terms, 1))
            dict.update(self.cue_counts, dict.fromkeys(features.cues, 1))
            dict.update(self.surfaces, zip(features.surfaces, stamped, strict=True))
        else:
            _add_counts(self.term_sum, features.terms)
            self.term_docs.update(features.terms.keys())
            self.cue_counts.update(features.cues)
            _keep_earliest_distinct(self.surfaces, features.surfaces, stamped)
        for kind, key, _ in kinds:
            self.entity_counts[(kind, key)] += 1
        displays = [(word.isupper(), published_at, article_id, word) for _, _, word in kinds]
        _keep_earliest(self.displays, map(itemgetter(1), kinds), displays)
        self._extend_span(features.published_at, features.published_at)
        if features.embedding is not None:
            if vector is None:
                self._add_vector(features.embedding.array())
            else:
                self._add_vector(*vector)
        return new_terms, new_cues

    def absorb(self, other: _Event) -> None:
        self._arrays = None
        self._added = None  # the other's keys: their ids are looked up when the arrays are next built
        self.members.update(other.members)
        _add_counts(self.term_sum, other.term_sum)
        _add_counts(self.term_docs, other.term_docs)
        _add_counts(self.cue_counts, other.cue_counts)
        _add_counts(self.entity_counts, other.entity_counts)
        _keep_earliest_distinct(self.displays, other.displays, other.displays.values())
        _keep_earliest_distinct(self.surfaces, other.surfaces, other.surfaces.values())
        assert other.first is not None and other.last is not None
        self._extend_span(other.first, other.last)
        if other.vec_sum is not None:
            self._add_vector(other.vec_sum)

    def _add_vector(self, vector: np.ndarray, fixed: _Fixed | None = None) -> None:
        """Add ``vector`` (with its :func:`_fixed` form when known) to the sum; the integer form of the new sum is
        then the sum of the two integer forms, which is exactly what :func:`_fixed` of the float sum gives while
        every value stays below 2**53 (the float sum is exact there); otherwise it is computed from the sum."""
        held = self.vec_fixed
        if self.vec_sum is None:
            self.vec_sum = vector.copy()
            self.vec_fixed = fixed if fixed is not None else _fixed(self.vec_sum)
        else:
            self.vec_sum = self.vec_sum + vector
            self.vec_fixed = _fixed_sum(held, fixed) if held is not None and fixed is not None else None
            if self.vec_fixed is None:
                self.vec_fixed = _fixed(self.vec_sum)
        self.vec_norm = _unit_norm(self.vec_sum, self.vec_fixed)

    def _extend_span(self, first: datetime, last: datetime) -> None:
        self.first = first if self.first is None or first < self.first else self.first
        self.last = last if self.last is None or last > self.last else self.last

    @property
    def sort_key(self) -> tuple[datetime, str]:
        """Older events first: the survivor of a merge is the event with the earliest article."""
        assert self.first is not None
        return (self.first, self.event_id)


class _EventSlots:
    """Dense integer ids of the live events, so that candidate lookups add up posting weights in NumPy.

    Ids are bookkeeping only (never an ordering: candidates are ranked by score, then event id) and are recycled
    when an event leaves, so the arrays follow the number of live events.
    """

    def __init__(self) -> None:
        self.owners: list[_Event | None] = []
        self._free: list[int] = []

    def take(self, event: _Event) -> None:
        slot = self._free.pop() if self._free else len(self.owners)
        if slot == len(self.owners):
            self.owners.append(None)
        self.owners[slot] = event
        event.slot = slot

    def release(self, event: _Event) -> None:
        self.owners[event.slot] = None
        self._free.append(event.slot)
        event.slot = -1


class _VectorIndex:
    """The live events' normalised mean embeddings, one float32 row each, for exact nearest-event search.

    A matrix-vector product over every row is cheap next to the rest of the per-article work at the sizes
    the story state allows (``NEWSWIRE_STORY_STATE_MAX_ARTICLES``), and needs no index library. Rows are
    recycled; the matrix doubles when full. Results are only a pre-filter: callers rescore exactly.
    """

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._owners: list[str | None] = []
        self._free: list[int] = []
        self._matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def put(self, event_id: str, vec_sum: np.ndarray, norm: float) -> None:
        if norm == 0.0:
            self.remove(event_id)
            return
        row = self._rows.get(event_id)
        if row is None:
            if self._matrix is None:
                self._matrix = np.zeros((256, len(vec_sum)), dtype=np.float32)
            row = self._free.pop() if self._free else len(self._owners)
            if row == len(self._owners):
                self._owners.append(None)
            if row >= len(self._matrix):
                self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
            self._rows[event_id] = row
            self._owners[row] = event_id
        assert self._matrix is not None
        self._matrix[row] = vec_sum / norm

    def remove(self, event_id: str) -> None:
        row = self._rows.pop(event_id, None)
        if row is not None and self._matrix is not None:
            self._matrix[row] = 0.0
            self._owners[row] = None
            self._free.append(row)

    def cosines(self, unit: np.ndarray) -> np.ndarray:
        """Approximate cosines of ``unit`` with every row (float32; free rows are zero)."""
        if self._matrix is None:
            return np.zeros(0, dtype=np.float32)
        # einsum, not ``@``: a matrix-vector product goes to BLAS, whose extra threads spin on the transform's
        # cores; einsum's own loop is as fast here and single-threaded.
        return np.einsum("ij,j->i", self._matrix[: len(self._owners)], unit.astype(np.float32))

    def may_reach(self, cosines: np.ndarray, event_id: str, floor: float) -> bool:
        """Whether the event's exact cosine could exceed ``floor``, judging by its approximate one."""
        row = self._rows.get(event_id)
        return row is not None and row < len(cosines) and bool(cosines[row] >= floor - _APPROXIMATION_MARGIN)

    def nearest(self, cosines: np.ndarray, floor: float, limit: int) -> list[str]:
        """Up to ``limit`` events whose approximate cosine reaches ``floor`` (minus a margin), best first."""
        if not self._rows:
            return []
        hits = (cosines >= floor - _APPROXIMATION_MARGIN).nonzero()[0]
        if len(hits) > limit:
            hits = hits[np.argsort(-cosines[hits], kind="stable")[:limit]]
        return [owner for owner in map(self._owners.__getitem__, hits.tolist()) if owner is not None]


_NO_POSTING: array[int] = array("q")  # what a key without a posting looks up (empty: never used)

# float32 products differ from the exact cosine by ~1e-6: this margin keeps every event that could reach the
# floor exactly, so the exact rescoring sees the same set in every run (and skips only true zeros).
_APPROXIMATION_MARGIN = 1e-3


class _IdfTable(dict[int, float]):
    """IDF by document frequency, ``log((1 + live articles) / (1 + frequency)) + 1``, for one number of live
    articles: the logarithm is taken once per distinct frequency (most keys share a handful of small ones), and
    the table serves every lookup until an article is stored (one article's terms and cues, a batch's profiles).
    ``squares`` holds ``idf ** 2`` the same way."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.squares = _IdfSquares(total)

    def __missing__(self, frequency: int) -> float:
        value = self[frequency] = _idf(self.total, frequency)
        return value


class _IdfSquares(dict[int, float]):
    """``idf ** 2`` by document frequency (see :class:`_IdfTable`). It keeps the total, not its table: a table
    and its squares referring to each other were a reference cycle per stored article, garbage only the cyclic
    collector could free."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total

    def __missing__(self, frequency: int) -> float:
        value = self[frequency] = _idf(self.total, frequency) ** 2
        return value


def _idf(total: int, frequency: int) -> float:
    """The IDF of a key in ``frequency`` of ``total - 1`` live articles (one expression: the same float wherever)."""
    return math.log(total / (1 + frequency)) + 1.0


# --- the clusterer ------------------------------------------------------------------------------------


class StoryClusterer:
    """Incremental story clustering over :class:`ArticleDoc` values (see the module docstring)."""

    def __init__(self, config: ClusteringConfig | None = None) -> None:
        self.config = config or ClusteringConfig()
        self._events: dict[str, _Event] = {}
        self._article_event: dict[str, str] = {}
        self._terms = _Vocabulary()
        self._cues = _Vocabulary()
        # term -> slots of the events holding it, and cue -> slots: two tables, so that no key string is built.
        # A posting is an array of int64 slots, not a set: tens of thousands of sets were most of the objects the
        # garbage collector walks, and the lookup joins the arrays' bytes into one NumPy array with no int objects.
        # An event joins a key's posting once (when the key is new to it), so a slot is never held twice.
        self._term_postings: dict[str, array[int]] = {}
        self._cue_postings: dict[str, array[int]] = {}
        self._slots = _EventSlots()
        self._by_last: list[tuple[datetime, str]] = []  # lazy min-heap of (event.last, event_id)
        self._last_features: tuple[ArticleDoc, _Features] | None = None  # assign() then export_features()
        self.model_id = model_id_for(self.config.embedding_model)  # None: no meaning term
        self._vectors = _VectorIndex()
        self._idf_table: _IdfTable | None = None
        self._keyed: _Keyed | None = None  # the article being scored and attached, in its keyed form
        # the last article's embedding and its float64, integer and norm forms (see _vector_of)
        self._last_vector: tuple[Embedding, tuple[np.ndarray, _Fixed | None, float]] | None = None
        # The C kernel of scoring (transform.scoring), or None for the pure-Python path: the same floats.
        self._kernel = load_kernel()
        self._totals = np.zeros(0, dtype=np.float64)  # the kernel's hit totals by event slot, zero between uses

    # --- public API -------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of live events."""
        return len(self._events)

    @property
    def article_count(self) -> int:
        return len(self._article_event)

    def event_of(self, article_id: str) -> str | None:
        return self._article_event.get(article_id)

    def assign(self, doc: ArticleDoc) -> Assignment:
        """Put ``doc`` into the best matching event, or open a new one.

        Replaying an article already held (at-least-once delivery) changes nothing and reports its
        current event with ``created=False`` and score 1.
        """
        known = self._article_event.get(doc.article_id)
        if known is not None:
            return Assignment(event_id=known, created=False, merged=(), score=1.0)
        features = self._features_of(doc)
        scored = self._score_candidates(features)
        if not scored or scored[0][0] < self.config.threshold:
            event_id = self._new_event_id(doc.article_id)
            self._attach(features, event_id)
            return Assignment(event_id=event_id, created=True, merged=(), score=0.0)
        best_score, best_event = scored[0]
        to_merge = [event for score, event in scored[1:] if score >= self.config.merge_threshold]
        merged: tuple[str, ...] = ()
        target = best_event
        if to_merge and best_score >= self.config.merge_threshold:
            group = sorted([best_event, *to_merge], key=lambda event: event.sort_key)
            target = group[0]
            for event in group[1:]:
                self._merge_into(target, event)
            merged = tuple(event.event_id for event in group[1:])
        self._attach(features, target.event_id)
        return Assignment(event_id=target.event_id, created=False, merged=merged, score=round(best_score, 6))

    def restore(self, doc: ArticleDoc, event_id: str) -> None:
        """Re-add a stored article to the event it belongs to *now* (after merges: the survivor).

        Restore every article that went through :meth:`assign` (not the near-duplicates that inherited
        an event without being assigned), in any order; the resulting state equals the original.
        """
        if not self._restored_already(doc.article_id, event_id):
            self._attach(self._features_of(doc), event_id)

    def export_features(self, doc: ArticleDoc) -> dict[str, Any]:
        """The features of ``doc`` as a JSON-able dict, for :meth:`restore_features` after a restart.

        Restoring from them skips tokenisation and entity extraction, which dominate the cost of
        :meth:`restore`. Call it right after :meth:`assign` (or :meth:`restore`) for the same ``doc``:
        the features computed there are reused.
        """
        features = self._features_of(doc)
        return {
            "v": FEATURES_VERSION,
            "title_weight": self.config.title_weight,
            "article_id": features.article_id,
            "source": features.source,
            "language": features.language,
            "published_at": features.published_at.isoformat(),
            "terms": dict(features.terms),
            "cues": sorted(features.cues),
            "entities": [list(item) for item in features.entity_kinds],
            "surfaces": dict(features.surfaces),
            "novelty": features.novelty,
            "embedding": None
            if features.embedding is None
            else {
                "model": features.embedding.model,
                "vector": base64.b64encode(features.embedding.vector).decode("ascii"),
            },
        }

    def restore_features(self, features: Mapping[str, Any], event_id: str) -> None:
        """:meth:`restore` from :meth:`export_features` output instead of the article text.

        The resulting state is exactly the one ``restore(doc, event_id)`` gives. Raises
        :class:`StaleFeatures` when they were made by another feature version or ``title_weight`` (fall
        back to :meth:`restore`), :class:`ClusteringError` when they are malformed.
        """
        parsed = self._stored_features(features)
        if not self._restored_already(parsed.article_id, event_id):
            self._attach(parsed, event_id)

    def prime_features(self, doc: ArticleDoc, features: Mapping[str, Any]) -> None:
        """Let the next :meth:`assign` of ``doc`` use its stored :meth:`export_features` output instead of
        extracting the features from its text again (a rebuild re-assigns articles the warehouse holds
        features of). The assignment is the one ``assign(doc)`` makes. Raises like :meth:`restore_features`.
        """
        parsed = self._stored_features(features)
        if parsed.article_id != doc.article_id:
            raise ClusteringError(f"stored features of {parsed.article_id!r} offered for {doc.article_id!r}")
        self._last_features = (doc, parsed)

    def prime_text_features(self, doc: ArticleDoc, text: TextFeatures) -> None:
        """Let the next :meth:`assign` of ``doc`` use text features computed elsewhere (an extraction worker,
        see :mod:`transform.carried`) for the very title, text and language of ``doc``: the assignment and the
        exported features are those ``assign(doc)`` makes, without tokenising again here."""
        self._last_features = (doc, _with_doc(text, doc, self._embedding_of(doc), self._terms.canonical))

    def _stored_features(self, features: Mapping[str, Any]) -> _Features:
        if features.get("v") != FEATURES_VERSION or features.get("title_weight") != self.config.title_weight:
            raise StaleFeatures(
                f"features version {features.get('v')!r}/title_weight {features.get('title_weight')!r}, "
                f"expected {FEATURES_VERSION}/{self.config.title_weight}"
            )
        parsed = _parse_features(features)
        if self.model_id is None:
            return replace(parsed, embedding=None)
        if parsed.embedding is None or parsed.embedding.model != self.model_id:
            model = None if parsed.embedding is None else parsed.embedding.model
            raise StaleFeatures(f"stored embedding of model {model!r}, expected {self.model_id!r}")
        return parsed

    def _restored_already(self, article_id: str, event_id: str) -> bool:
        """Restoring an article twice is a no-op; into another event, an error (the stored state disagrees)."""
        known = self._article_event.get(article_id)
        if known is not None and known != event_id:
            raise ClusteringError(
                f"article {article_id!r} is already in event {known!r}, cannot restore into {event_id!r}"
            )
        return known is not None

    def profile(self, event_id: str) -> EventProfile:
        event = self._events.get(event_id)
        if event is None:
            raise UnknownEvent(event_id)
        return self._profile(event)

    def event_ids(self) -> list[str]:
        return sorted(self._events)

    def evict_before(self, moment: datetime) -> int:
        """Drop events whose last article was published before ``moment - horizon``; returns how many.

        Evicted events can no longer be joined, which is the point: nothing older than the horizon
        could have joined them anyway, and memory stays proportional to the horizon's traffic.
        """
        cutoff = moment - self.config.horizon
        dropped = 0
        while self._by_last and self._by_last[0][0] < cutoff:
            last, event_id = heapq.heappop(self._by_last)
            event = self._events.get(event_id)
            if event is None or event.last != last:
                continue  # stale heap entry: the event grew, merged away, or was already dropped
            self._drop_event(event)
            dropped += 1
        return dropped

    def drop(self, event_id: str) -> bool:
        """Forget one event now (for eviction policies decided by the caller); False if it is not held."""
        event = self._events.get(event_id)
        if event is None:
            return False
        self._drop_event(event)  # its entry in the time heap goes stale and is skipped later
        return True

    def _features_of(self, doc: ArticleDoc) -> _Features:
        last = self._last_features
        if last is not None and (last[0] is doc or last[0] == doc):
            return last[1]
        features = _features(doc, self.config, self._embedding_of(doc), self._terms.canonical)
        self._last_features = (doc, features)
        return features

    def _embedding_of(self, doc: ArticleDoc) -> Embedding | None:
        """The vector ingest sent when it is of this clusterer's model; else computed here (older messages,
        replays, rebuilds, a changed model)."""
        if self.model_id is None:
            return None
        if doc.embedding is not None and doc.embedding.model == self.model_id:
            return doc.embedding
        encoder = encoder_for(self.config.embedding_model)
        assert encoder is not None
        return embed_articles(encoder, [(doc.title, doc.text)])[0]

    # --- scoring ----------------------------------------------------------------------------------

    def _keyed_of(self, features: _Features) -> _Keyed:
        """The :class:`_Keyed` form of ``features``: the one made when the article was scored, when it was."""
        keyed = self._keyed
        if keyed is None or keyed.features is not features:
            keyed = self._keyed = _Keyed(features)
        return keyed

    def _idf_by_frequency(self) -> _IdfTable:
        """The IDF table of the current number of live articles (see :class:`_IdfTable`)."""
        total = 1 + len(self._article_event)
        table = self._idf_table
        if table is None or table.total != total:
            table = self._idf_table = _IdfTable(total)
        return table

    def _idfs(self, keys: Iterable[str], vocabulary: _Vocabulary) -> dict[str, float]:
        """IDF of each key, ``log((1 + live articles) / (1 + document frequency)) + 1``, in one pass: the same float
        for the same (total, frequency)."""
        keys = list(keys)
        return dict(zip(keys, map(self._idf_by_frequency().__getitem__, vocabulary.frequencies_of(keys)), strict=True))

    def _vector_of(self, embedding: Embedding | None) -> tuple[np.ndarray | None, _Fixed | None, float]:
        """An article's embedding as float64, its :func:`_fixed` form and its norm; the last article's are kept,
        since scoring and then attaching it need them both."""
        if embedding is None:
            return None, None, 0.0
        cached = self._last_vector
        if cached is not None and cached[0] is embedding:
            return cached[1]
        vector = embedding.array()
        fixed = _fixed(vector)
        result = (vector, fixed, _unit_norm(vector, fixed))
        self._last_vector = (embedding, result)
        return result

    def _score_candidates(self, features: _Features) -> list[tuple[float, _Event]]:
        """Candidate events with their scores, best first (ties: older event first)."""
        table = self._idf_by_frequency()
        keyed = self._keyed_of(features)
        keyed.look_up(self._terms, self._cues)
        term_keys, cue_keys = keyed.terms, keyed.cues
        term_ids, term_frequencies = keyed.term_ids, keyed.term_frequencies
        cue_ids, cue_frequencies = keyed.cue_ids, keyed.cue_frequencies
        term_idf = dict(zip(term_keys, map(table.__getitem__, term_frequencies), strict=True))
        cue_idf = dict(zip(cue_keys, map(table.__getitem__, cue_frequencies), strict=True))
        article_vector, article_fixed, article_vector_norm = self._vector_of(features.embedding)
        # the article's TF-IDF weights, in its terms' order (the same floats as w * idf one term at a time)
        weighted = list(map(operator.mul, features.terms.values(), term_idf.values()))
        candidates = self._candidates(features, keyed, weighted, term_idf, cue_idf)
        approximate = np.zeros(0, dtype=np.float32)
        exact: dict[str, float] = {}  # exact embedding cosines, each computed once per article
        if article_vector is not None and article_vector_norm > 0.0:
            approximate = self._vectors.cosines(article_vector / article_vector_norm)
            candidates = self._with_nearest(
                candidates, article_vector, article_fixed, article_vector_norm, approximate, exact
            )
        else:
            article_vector = None
        if not candidates:
            return []
        # idf**2 once per frequency (the same float the per-event products used to compute each time)
        term_idf2 = list(map(table.squares.__getitem__, term_frequencies))
        cue_idf2 = list(map(table.squares.__getitem__, cue_frequencies))
        article_term_norm = math.sqrt(math.fsum(map(pow, weighted, repeat(2))))
        article_cue_norm = math.sqrt(math.fsum(cue_idf2))
        floor = self.config.semantic_floor
        # First the time decay per candidate, then the dot products and the events' TF-IDF norms of all of them in
        # one NumPy pass over their concatenated key-sorted arrays: the norms change with every article stored
        # (every IDF moves), so they cannot be kept, but one pass costs a fraction of one per event.
        pending: list[tuple[float, _Event, bool]] = []
        moment, horizon = features.published_at, self.config.horizon
        for event in candidates:
            assert event.first is not None and event.last is not None
            # Most candidates found through shared keys lie beyond the horizon, where _time_factor is 0: the same
            # test as its own (the gap to the nearer end of the span), without a call per candidate.
            if moment - event.last > horizon or event.first - moment > horizon:
                continue
            decay = self._time_factor(moment, event)
            if decay <= 0.0:
                continue
            if features.novelty and features.published_at - event.first > self.config.novelty_min_gap:
                decay *= self.config.novelty_penalty
            meaningful = article_vector is not None and self._vectors.may_reach(approximate, event.event_id, floor)
            pending.append((decay, event, meaningful))
        if not pending:
            return []
        if article_vector is not None:
            meaningful_events = [item[1] for item in pending if item[2]]
            self._cosines(article_vector, article_fixed, article_vector_norm, meaningful_events, exact)
        arrays = [event.arrays(self._terms, self._cues) for _, event, _ in pending]
        text_dots, text_norms = self._dots_and_norms(
            self._terms,
            [a.term_ids for a in arrays],
            [a.term_sums for a in arrays],
            term_ids,
            keyed.weights,
            term_idf2,
            scaled=True,
            wanted=bool(article_term_norm),
        )
        cue_dots, cue_norms = self._dots_and_norms(
            self._cues,
            [a.cue_ids for a in arrays],
            [a.cue_counts for a in arrays],
            cue_ids,
            None,
            cue_idf2,
            scaled=False,
            wanted=bool(article_cue_norm),
        )
        scored = []
        for (decay, event, meaningful), text_dot, text_norm, cue_dot, cue_norm in zip(
            pending, text_dots, text_norms, cue_dots, cue_norms, strict=True
        ):
            meaning = self._meaning(exact[event.event_id]) if meaningful else 0.0
            text = _cosine_of(text_dot, article_term_norm, text_norm)
            cue = _cosine_of(cue_dot, article_cue_norm, cue_norm)
            scored.append((self._combine(text, cue, meaning) * decay, event))
        scored.sort(key=lambda pair: (-pair[0], pair[1].sort_key))
        return scored

    def _dots_and_norms(
        self,
        vocabulary: _Vocabulary,
        event_ids: list[np.ndarray],
        event_values: list[np.ndarray],
        article_ids: list[int],
        article_values: np.ndarray | None,
        article_idf2: list[float],
        *,
        scaled: bool,
        wanted: bool,
    ) -> tuple[list[float], list[float]]:
        """For each event (its key-sorted ids and values): the dot product of its TF-IDF vector with the article's,
        and, where that is not zero, its norm under the current document frequencies.

        The dot products are ``math.fsum`` over the shared keys of ``(article value * event value) * idf ** 2``
        (``scaled``; without it ``event value * idf ** 2``, the article's cues weighing one each): exact and
        order-free, so they are the floats a per-event loop over a set intersection gives. The shared keys are found
        for all events at once: the article's values are scattered into a zero array indexed by vocabulary id, and
        gathered back at the events' ids (zero where the article lacks the key; its values are positive).

        Each norm is ``np.add.reduce`` (what ``np.sum`` does) over the event's own slice of the concatenated squares,
        the same values in the same order as over its own array, so it has the bits a per-event computation gives.
        """
        count = len(event_ids)
        if not wanted:
            return [0.0] * count, [0.0] * count
        if self._kernel is not None:
            weights, squares_of_idf = vocabulary.scratch()
            dots = self._kernel.dots(
                event_ids, event_values, article_ids, article_values, article_idf2, weights, squares_of_idf, scaled
            )
            if not any(dots):
                return dots, [0.0] * count
            frequencies = vocabulary.frequency_array
            needed, idf = self._needed_idf(frequencies, event_ids, dots)
            return dots, self._kernel.norms(event_ids, event_values, dots, frequencies, needed, idf)
        lengths = list(map(len, event_ids))
        offsets = [0, *accumulate(lengths)]
        ids = np.concatenate(event_ids)
        values = np.concatenate(event_values)
        known = np.array(article_ids, dtype=np.intp)
        held = known >= 0
        known = known[held]
        weights, squares_of_idf = vocabulary.scratch()
        weights[known] = 1.0 if article_values is None else article_values[held]
        squares_of_idf[known] = np.array(article_idf2)[held]
        try:
            gathered = weights[ids]
            shared = gathered.nonzero()[0]
            shared_values = values[shared]
            if scaled:
                shared_values = gathered[shared] * shared_values
            products = shared_values * squares_of_idf[ids[shared]]
        finally:
            weights[known] = 0.0
            squares_of_idf[known] = 0.0
        listed = products.tolist()
        bounds = np.searchsorted(shared, offsets).tolist()
        dots = list(map(math.fsum, map(listed.__getitem__, map(slice, bounds, bounds[1:]))))
        norms = [0.0] * count
        if any(dots):
            idf = np.log((1.0 + len(self._article_event)) / (1.0 + vocabulary.document_frequencies(ids))) + 1.0
            weighted = values * idf
            squares = weighted * weighted
            for position, dot in enumerate(dots):
                start, stop = offsets[position], offsets[position + 1]
                if dot and stop > start:
                    norms[position] = math.sqrt(float(_add_reduce(squares[start:stop])))
        return dots, norms

    def _needed_idf(
        self, frequencies: np.ndarray, event_ids: list[np.ndarray], dots: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The sorted distinct document frequencies of the keys of the events whose dot is not 0, and their IDF,
        for the kernel's norms: the floats the NumPy path computes per key, ``np.log((1 + live articles) / (1 +
        frequency)) + 1``, by NumPy too (the kernel takes no logarithm: libm's and NumPy's may differ in the last
        bit), element by element. Only the frequencies these events hold: a table of every frequency up to the live
        article count would cost that count for every article."""
        assert self._kernel is not None
        needed = np.array(self._kernel.frequencies(event_ids, dots, frequencies), dtype=np.int64)
        return needed, np.log((1.0 + len(self._article_event)) / (1.0 + needed)) + 1.0

    def _combine(self, text: float, cue: float, meaning: float = 0.0) -> float:
        config = self.config
        return max(
            config.text_weight * text + config.cue_weight * cue + config.semantic_weight * meaning,
            config.cue_only_weight * cue,
            config.semantic_only_weight * meaning + config.semantic_cue_weight * cue,
        )

    @staticmethod
    def _cosines(
        vector: np.ndarray, fixed: _Fixed | None, norm: float, events: list[_Event], known: dict[str, float]
    ) -> None:
        """Exact cosines of an article's vector with events' vector sums (``math.fsum``: order-free) into ``known``.

        Where the article's and an event's integer forms (:func:`_fixed`) bound every product below 2**53, each such
        event's dot product is one int64 dot of the two integer forms: exact, so it rounds to the float
        ``math.fsum`` gives of the float products. The others (and exact zeros, whose sign ``math.fsum`` decides)
        take the products of all the events in one NumPy step (element by element, the same floats as one event at
        a time) and ``math.fsum``. An event already in ``known`` is not computed again.
        """
        todo = [event for event in events if event.event_id not in known]
        if not todo:
            return
        integral: list[_Event] = []
        summed: list[_Event] = []
        for event in todo:
            known[event.event_id] = 0.0
            if event.vec_sum is not None and event.vec_norm != 0.0 and norm != 0.0:
                held = event.vec_fixed
                if (
                    fixed is not None
                    and held is not None
                    and fixed.peak * held.peak < _EXACT_PRODUCT
                    and fixed.peak * held.peak * len(fixed.values) < _INT_SUM_LIMIT
                ):
                    integral.append(event)
                else:
                    summed.append(event)
        if integral:
            assert fixed is not None
            # one integer dot product per event: exact, like a matrix product, without stacking the rows first
            article_values = fixed.values
            for event in integral:
                dot = int(event.vec_fixed.values @ article_values)  # type: ignore[union-attr]
                if dot:
                    known[event.event_id] = math.ldexp(float(dot), -2 * _FIXED_BITS) / (norm * event.vec_norm)
                else:
                    summed.append(event)
        if not summed:
            return
        products = (np.stack([event.vec_sum for event in summed]) * vector).tolist()  # type: ignore[misc]
        for event, row in zip(summed, products, strict=True):
            known[event.event_id] = math.fsum(row) / (norm * event.vec_norm)

    def _meaning(self, cosine: float) -> float:
        """The embedding cosine rescaled so that ``semantic_floor`` and below count as no evidence."""
        floor = self.config.semantic_floor
        return max(0.0, (cosine - floor) / (1.0 - floor))

    def _with_nearest(
        self,
        candidates: list[_Event],
        vector: np.ndarray,
        fixed: _Fixed | None,
        norm: float,
        approximate: np.ndarray,
        exact: dict[str, float],
    ) -> list[_Event]:
        """``candidates`` plus the events nearest in meaning (exact cosine above the floor, kept in ``exact``),
        best first."""
        config = self.config
        have = {event.event_id for event in candidates}
        found = self._vectors.nearest(approximate, config.semantic_floor, 4 * config.semantic_candidates)
        near = [self._events[event_id] for event_id in found if event_id not in have]
        self._cosines(vector, fixed, norm, near, exact)
        nearest = []
        for event in near:
            cosine = exact[event.event_id]
            if cosine > config.semantic_floor:
                nearest.append((-cosine, event.sort_key, event))
        nearest.sort(key=lambda item: (item[0], item[1]))
        return candidates + [event for _, _, event in nearest[: config.semantic_candidates]]

    def _time_factor(self, moment: datetime, event: _Event) -> float:
        assert event.first is not None and event.last is not None
        if event.first <= moment <= event.last:
            gap = timedelta(0)
        else:
            gap = min(abs(moment - event.first), abs(moment - event.last))
        if gap > self.config.horizon:
            return 0.0
        extra = gap - self.config.time_grace
        if extra <= timedelta(0):
            return 1.0
        return 0.5 ** (extra / self.config.time_half_life)

    def _candidates(
        self,
        features: _Features,
        keyed: _Keyed,
        weighted: list[float],
        term_idf: dict[str, float],
        cue_idf: dict[str, float],
    ) -> list[_Event]:
        """Events sharing salient keys with the article, most (IDF-weighted) shared keys first; ``weighted`` holds
        the article's TF-IDF weights in the order of its terms."""
        config = self.config
        # the top terms by weight * idf, ties by term (-w * idf is exactly -(w * idf))
        top_terms = keyed.strongest(np.array(weighted, dtype=np.float64), config.query_terms)
        # Same key order as before (top terms by weight, then cues by key): float sums below depend on it.
        cue_keys = sorted(features.cues)
        postings = list(
            chain(
                map(self._term_postings.get, top_terms, repeat(_NO_POSTING)),
                map(self._cue_postings.get, cue_keys, repeat(_NO_POSTING)),
            )
        )
        weights = list(chain(map(term_idf.__getitem__, top_terms), map(cue_idf.__getitem__, cue_keys)))
        hits = self._kernel_hits if self._kernel is not None else self._python_hits
        slots, negated = hits(postings, weights)
        events = list(map(self._slots.owners.__getitem__, slots))
        # by total, then event id (ids are unique: the events themselves are never compared)
        ranked = sorted(zip(negated, map(attrgetter("event_id"), events), events, strict=True))
        return [event for _, _, event in ranked[: config.max_candidates]]

    def _python_hits(self, postings: list[array[int]], weights: list[float]) -> tuple[list[int], list[float]]:
        """The slots of the events the postings hit (not too common, see ``max_posting``), cut to the
        ``max_candidates`` best with ties, and their negated hit totals."""
        config = self.config
        sizes = list(map(len, postings))
        kept = list(map(range(1, config.max_posting + 1).__contains__, sizes))  # held, and not too common
        used = list(compress(postings, kept))
        if not used:
            return [], []
        # Each event's hit weight is the sum of its keys' weights, added one by one in key order: np.add.at adds
        # unbuffered, in the order of its input (keys in order), from 0.0 -- the floats a dict of running sums
        # gives, so the ranking and its ties are those of the per-event loop.
        index = np.frombuffer(b"".join(used), dtype=np.int64)
        totals = np.zeros(len(self._slots.owners), dtype=np.float64)
        np.add.at(totals, index, np.repeat(np.array(list(compress(weights, kept))), list(compress(sizes, kept))))
        hit = totals.nonzero()[0]  # every weight is an IDF >= 1: the events hit are the non-zero totals
        if len(hit) > config.max_candidates:
            # keep every event scoring at least the max_candidates-th best (ties included), rank those exactly
            cut = np.partition(totals[hit], len(hit) - config.max_candidates)[len(hit) - config.max_candidates]
            hit = hit[totals[hit] >= cut]
        return hit.tolist(), (-totals[hit]).tolist()

    def _kernel_hits(self, postings: list[array[int]], weights: list[float]) -> tuple[list[int], list[float]]:
        """:meth:`_python_hits` by the C kernel: the same hit totals (added in key order from 0.0) and cut."""
        assert self._kernel is not None
        config = self.config
        owners = self._slots.owners
        if len(self._totals) < len(owners):
            self._totals = np.zeros(max(len(owners), 2 * len(self._totals)), dtype=np.float64)
        return self._kernel.hits(postings, weights, self._totals, config.max_posting, config.max_candidates)

    # --- state changes ----------------------------------------------------------------------------

    def _new_event_id(self, article_id: str) -> str:
        event_id = f"evt_{article_id[:24]}"
        if event_id in self._events:
            digest = hashlib.blake2b(article_id.encode("utf-8"), digest_size=12).hexdigest()
            event_id = f"evt_{digest}"
        return event_id

    def _attach(self, features: _Features, event_id: str) -> None:
        event = self._events.get(event_id)
        if event is None:
            event = self._events[event_id] = _Event(event_id)
            self._slots.take(event)
        vector = None
        if features.embedding is not None:  # decoded and made integral once, when the article was scored
            values, fixed, _ = self._vector_of(features.embedding)
            assert values is not None
            vector = (values, fixed)
        keyed = self._keyed_of(features)
        keyed.look_up(self._terms, self._cues)  # those of scoring (nothing was counted since), or looked up now
        term_ids = self._terms.add(keyed.terms, keyed.term_ids)
        cue_ids = self._cues.add(keyed.cues, keyed.cue_ids)
        self._keyed = None  # its frequencies are stale now
        new_terms, new_cues = event.add(features, vector, (keyed, term_ids, cue_ids))
        if event.vec_sum is not None:
            self._vectors.put(event_id, event.vec_sum, event.vec_norm)
        self._article_event[features.article_id] = event_id
        self._post(event.slot, new_terms, new_cues)
        assert event.last is not None
        heapq.heappush(self._by_last, (event.last, event_id))

    def _merge_into(self, survivor: _Event, absorbed: _Event) -> None:
        self._unpost(absorbed)
        self._slots.release(absorbed)
        self._vectors.remove(absorbed.event_id)
        del self._events[absorbed.event_id]
        new_terms = list(filterfalse(survivor.term_sum.__contains__, absorbed.term_sum))
        new_cues = list(filterfalse(survivor.cue_counts.__contains__, absorbed.cue_counts))
        survivor.absorb(absorbed)
        if survivor.vec_sum is not None:
            self._vectors.put(survivor.event_id, survivor.vec_sum, survivor.vec_norm)
        for article_id in absorbed.members:
            self._article_event[article_id] = survivor.event_id
        self._post(survivor.slot, new_terms, new_cues)
        assert survivor.last is not None
        heapq.heappush(self._by_last, (survivor.last, survivor.event_id))

    def _post(self, slot: int, terms: list[str], cues: list[str]) -> None:
        """Add the event of ``slot`` to the postings of its new ``terms`` and ``cues``."""
        # C-level iterators instead of a loop per key (a new event posts every one of its few hundred terms):
        # the slot joins the postings that exist, and each missing key gets a posting of its own.
        for postings, keys in ((self._term_postings, terms), (self._cue_postings, cues)):
            found = list(map(postings.get, keys))
            held = list(map(operator.is_not, found, repeat(None)))
            deque(map(array.append, compress(found, held), repeat(slot)), maxlen=0)
            missing = list(compress(keys, map(operator.not_, held)))
            # each missing key gets its own copy of a one-slot array (array * 1 copies without parsing a tuple)
            alone = array("q", (slot,))
            postings.update(zip(missing, map(alone.__mul__, repeat(1, len(missing))), strict=True))

    def _unpost(self, event: _Event) -> None:
        for postings, keys in ((self._term_postings, event.term_sum), (self._cue_postings, event.cue_counts)):
            for key in keys:
                posting = postings.get(key)
                if posting is not None and event.slot in posting:
                    posting.remove(event.slot)
                    if not posting:
                        del postings[key]

    def _drop_event(self, event: _Event) -> None:
        self._unpost(event)
        self._slots.release(event)
        self._vectors.remove(event.event_id)
        del self._events[event.event_id]
        for article_id in event.members:
            del self._article_event[article_id]
        self._terms.subtract(event.term_docs)
        self._cues.subtract(event.cue_counts)

    # --- profiles ---------------------------------------------------------------------------------

    def _profile(self, event: _Event) -> EventProfile:
        assert event.first is not None and event.last is not None
        config = self.config
        members = sorted(event.members.values(), key=lambda m: (m.published_at, m.article_id))
        # every IDF once; a member's top terms are all among the event's terms
        idf = self._idfs(event.term_sum, self._terms)
        if len(members) == 1:
            representative = members[0]  # the most central of one; no centrality to compute
        else:
            centroid = dict(zip(event.term_sum, map(operator.mul, event.term_sum.values(), idf.values()), strict=True))
            weights = list(centroid.values())
            centroid_norm = math.sqrt(math.fsum(map(operator.mul, weights, weights))) or 1.0

            def centrality(member: _Member) -> float:
                vector = {t: w * idf[t] for t, w in member.top_terms}
                values = list(vector.values())
                norm = math.sqrt(math.fsum(map(operator.mul, values, values))) or 1.0
                shared = map(centroid.get, vector, repeat(0.0))
                return math.fsum(map(operator.mul, values, shared)) / (norm * centroid_norm)

            # most central; ties go to the earliest article
            representative = max(members, key=lambda m: (centrality(m), -m.published_at.timestamp(), m.article_id))
        # Keywords: terms that several articles use, weighted by rarity, shown as a readable word.
        min_support = min(2, len(members))
        term_sum = event.term_sum
        # the first keyword_count of sorted(key=(-weight * idf, term)): what heapq.nsmallest gives, by a C-level sort
        ranked_terms = sorted(
            [(-term_sum[t] * idf[t], t) for t, docs in event.term_docs.items() if docs >= min_support]
        )[: config.keyword_count]
        keywords = _unique(event.surfaces[t][2] if t in event.surfaces else t for _, t in ranked_terms)
        return EventProfile(
            event_id=event.event_id,
            article_ids=tuple(m.article_id for m in members),
            representative_article_id=representative.article_id,
            keywords=keywords,
            places=_top_entities(event, "place", config.entity_count),
            people=_top_entities(event, "person", config.entity_count),
            organisations=_top_entities(event, "organisation", config.entity_count),
            languages=_by_frequency(m.language for m in members if m.language),
            sources=_by_frequency(m.source for m in members),
            first_published_at=event.first,
            last_published_at=event.last,
        )


def _cosine_of(dot: float, article_norm: float, event_norm: float) -> float:
    """``dot / (article_norm * event_norm)``; 0 without overlap or for a zero vector."""
    if not dot:
        return 0.0
    return dot / (article_norm * event_norm) if event_norm else 0.0


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _by_frequency(values: Iterable[str]) -> tuple[str, ...]:
    counts = Counter(values)
    return tuple(sorted(counts, key=lambda v: (-counts[v], v)))


def _top_entities(event: _Event, kind: str, limit: int) -> tuple[str, ...]:
    counts = {key: count for (entity_kind, key), count in event.entity_counts.items() if entity_kind == kind}
    ranked = sorted(counts, key=lambda k: (-counts[k], k))[:limit]
    return _unique(event.displays[k][-1] for k in ranked)
