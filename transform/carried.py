"""Clustering features computed where the text is extracted, carried to the transform in the article message.

Tokenising, term counting and entity extraction are most of the transform's own cost per article, and they
depend only on the article's title, text and language. Ingest's extraction workers, one per core, run them
beside trafilatura (``pipeline.enrich`` injects :func:`carried_features` into the workers: ``ingest`` never
imports ``transform``), and the message's optional ``features`` field carries the result. The transform
uses them (:func:`parse_carried`) only when they describe exactly the article it clusters:

* the same ``FEATURES_VERSION`` and ``title_weight`` as its configuration;
* an input digest equal to that of the title, text and language the transform itself sees (a page without
  a title of its own gets the feed entry's; a language may come from the feed, not the page): features of
  other inputs would be other features;
* a well-formed structure.

Anything else, or no field at all, and the transform computes the features from the text as it always did.
What the carried features replace is :func:`transform.clustering.text_features`; the outlet's own names are
removed, and the embedding joined, by the transform, so the stored features and every assignment are those of
a transform that computed everything itself.

The field is one opaque string, the compact JSON of the features, decoded only by :func:`parse_carried`: a
batch, and the consumer's fetch, hold every message at once, and most of a message's Python objects would
otherwise be its features (hundreds of terms and counts, entities, surfaces), including those of the replays
and duplicates that are never clustered. A string is one object; the transform decodes it for a new article
about to be clustered, once. A string that is not the expected JSON is ignored like any unusable value, never
a reason to dead-letter the article.

Inside, the encoding is compact (terms and their counts as two lists, not the stored ``{term: weight}`` map)
since it travels with every article; it is an internal transport that other consumers of the topic may ignore.
Every ordered collection is a list, whose order is part of the stored features (terms and surfaces).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from itertools import chain
from typing import Any

from transform.clustering import FEATURES_VERSION, TextFeatures, text_features
from transform.documents import base_language

__all__ = ["FIELD", "carried_features", "input_digest", "parse_carried"]

FIELD = "features"  # the article message's field


def input_digest(title: str, text: str, language: str | None) -> str:
    """What the features are a function of, hashed: lengths first, so no two inputs share an encoding."""
    digest = hashlib.blake2b(digest_size=16)
    # Tokenising follows the interpreter's Unicode tables: ingest and transform on two Pythons with different
    # tables could tokenise the same text apart, so their features never match.
    digest.update(unicodedata.unidata_version.encode("ascii"))
    for part in (title, text, language or ""):
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def carried_features(title: str | None, text: str | None, language: str | None, *, title_weight: int) -> str:
    """The ``features`` field for an article of this title, text and (declared or detected) language: the
    compact JSON of the features with what they are valid for (``v``, ``tw``, ``in``)."""
    title, text, language = title or "", text or "", base_language(language)
    features = text_features(title, text, language, title_weight)
    payload = {
        "v": FEATURES_VERSION,
        "tw": title_weight,
        "in": input_digest(title, text, language),
        "terms": list(features.counts),
        "tf": list(features.counts.values()),
        "cues": sorted(features.cues),
        "entities": [list(item) for item in features.entity_kinds],
        "surfaces": [[term, word] for term, word in features.surfaces.items()],
        "novelty": features.novelty,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def parse_carried(value: Any, *, title: str, text: str, language: str | None, title_weight: int) -> TextFeatures | None:
    """The text features ``value`` (the message's ``features`` string) carries for exactly this title, text and
    (normalised) language; None when there are none, or they are stale, of other inputs or malformed (the
    caller then computes them). Decodes the string: call it only for an article about to be clustered."""
    if not isinstance(value, str):
        return None
    try:
        value = json.loads(value)
    except (ValueError, RecursionError):  # not JSON, or nested thousands deep
        return None
    if not isinstance(value, Mapping) or value.get("v") != FEATURES_VERSION or value.get("tw") != title_weight:
        return None
    if value.get("in") != input_digest(title, text, language):
        return None
    try:
        return _parse(value)
    except (KeyError, TypeError, ValueError):
        return None


def _only(values: Any, kind: type) -> bool:
    """Whether ``values`` is a list of exactly ``kind`` items (``bool`` is not an ``int`` here); the type set is
    built in C, which matters at a few hundred terms per article."""
    return isinstance(values, list) and set(map(type, values)) <= {kind}


def _parse(value: Mapping[str, Any]) -> TextFeatures:
    terms, counts = value["terms"], value["tf"]
    if not (_only(terms, str) and _only(counts, int) and len(terms) == len(counts)):
        raise ValueError("terms must be strings, with as many integer counts")
    if counts and min(counts) <= 0:
        raise ValueError("counts must be positive")
    by_term = dict(zip(terms, counts, strict=True))
    if len(by_term) != len(terms):
        raise ValueError("a term is listed twice")
    cues = value["cues"]
    if not _only(cues, str):
        raise ValueError("cues must be strings")
    entities, surfaces = value["entities"], value["surfaces"]
    for items, width, what in (
        (entities, 3, "entities: [kind, key, display]"),
        (surfaces, 2, "surfaces: [term, word]"),
    ):
        # lists of `width` strings each, checked with set operations built in C rather than a loop per item
        if not (
            _only(items, list) and set(map(len, items)) <= {width} and _only(list(chain.from_iterable(items)), str)
        ):
            raise ValueError(f"malformed {what}")
    novelty = value["novelty"]
    if type(novelty) is not bool:
        raise ValueError("novelty must be a boolean")
    return TextFeatures(
        counts=by_term,
        cues=frozenset(cues),
        entity_kinds=tuple(map(tuple, entities)),
        surfaces=dict(surfaces),  # [term, word] pairs, in their order
        novelty=novelty,
    )
