"""Clustering features computed where the text is extracted, carried to the transform in the article message.

Tokenising, term counting and entity extraction are most of the transform's own cost per article, and they
depend only on the article's title, text and language. Ingest's extraction workers, one per core, run them
beside trafilatura (``pipeline.enrich`` injects :func:`carried_features` into the workers: ``ingest`` never
imports ``transform``), and the message's optional ``features`` field carries the result. The transform
uses them (:func:`read_carried`) only when they describe exactly the article it clusters:

* the same ``FEATURES_VERSION`` and ``title_weight`` as its configuration;
* an input digest equal to that of the title, text and language the transform itself sees (a page without
  a title of its own gets the feed entry's; a language may come from the feed, not the page): features of
  other inputs would be other features;
* a well-formed structure.

Anything else, or no field at all, and the transform computes the features from the text as it always did.
What the carried features replace is :func:`transform.clustering.text_features`; the outlet's own names are
removed, and the embedding joined, by the transform, so the stored features and every assignment are those of
a transform that computed everything itself.

The field is one opaque string, the compact JSON of the features: a batch, and the consumer's fetch, hold
every message at once, and most of a message's Python objects would otherwise be its features (hundreds of
terms and counts, entities, surfaces), including those of the replays and duplicates that are never
clustered. A string is one object; the transform decodes it for a new article about to be looked up and
clustered, once (:func:`read_carried`: one msgspec decode into :class:`_Carried`, checking types, arities and
positive counts, and one input digest of the title and text), and that one :class:`Carried` serves both its
readers: the near-duplicate lookup (:meth:`Carried.shingles`, every new article, duplicates included) and the
clustering (:meth:`Carried.features`, the articles that are not duplicates). Only what a schema cannot say (no
term listed twice, the version, weight and digests) is checked in Python. A string that is not the expected
JSON is ignored like any unusable value, never a reason to dead-letter the article.

The body's near-duplicate shingles (:func:`transform.neardup.shingle_list`, in text order) travel in the same
string (``sh``: little-endian ``uint64`` values in base64, under the near-duplicate ``SIGNATURE_VERSION`` ``sv``,
with ``shd``, their digest keyed by the input digest), so that the transform neither tokenises nor hashes the
body of an article it compares. A text of more than :data:`MAX_CARRIED_SHINGLES` shingles carries none (each
takes about eleven bytes of the message, and a long text in a script without spaces has about one per
character): the transform computes them, as for any message without them, and the message stays far below the
producer's request size limit. With them goes their MinHash (``mh``: ``mp`` values, the near-duplicate index's
size, little-endian ``uint64`` in base64; ``mhd``, its digest together with the shingles' bytes, keyed by the input
digest), the LSH lookup's key, which the transform would otherwise compute from the shingles for every new article.

Trust model. The input digest ``in`` and the shingles digest ``shd`` are checksums, not signatures: whoever
can write the articles topic can compute both, so they catch stale, mismatched, spliced and garbled values, not
forgeries, and only recomputing from the text proves anything against a forger.

* Terms, cues, entities: trusted when current (``v``, ``tw``, ``in`` match): a wrong carried term changes which
  story an article joins, as a wrong title in the message would.
* Shingles: used only when ``sv``, ``in`` and ``shd`` match (``shd`` ties the shingles to the very input ``in``
  describes: shingles of another message pasted beside this one's digest, as a bug could, are refused). A
  near-duplicate verdict sends the article down the duplicate path, so a match found with carried shingles is
  always confirmed from the text (``StoryState.near_duplicate``). Shingles that match nothing are indexed and
  exported as the article's signature unconfirmed: a deliberate forger could still plant a signature that a
  later genuine copy of another text matches. Closing that too means tokenising every body (about half of
  computing the shingles outright, which is what carrying them saves), so it is left to the topic's access
  control, as for the terms.
* Their MinHash: used only with the shingles, and only when ``mp`` and ``mhd`` match too (``mhd`` ties it to
  those very shingles and input). A wrong MinHash under a right digest can hide a candidate from the LSH lookup
  (a copy missed, or a later copy of this article missed), never make a duplicate: every candidate is scored on
  the exact shingles, and a match is confirmed from the text as above. Like the shingles, it is then stored in
  the article's signature unconfirmed.

Inside, the encoding is compact (terms and their counts as two lists, not the stored ``{term: weight}`` map)
since it travels with every article; it is an internal transport that other consumers of the topic may ignore.
Every ordered collection is a list, whose order is part of the stored features (terms and surfaces).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import unicodedata
from functools import cache
from typing import Annotated, Any

import msgspec
import numpy as np

from transform.clustering import FEATURES_VERSION, TextFeatures, text_features
from transform.documents import base_language
from transform.minhash import MinHasher
from transform.neardup import DEFAULT_NUM_PERM, SIGNATURE_VERSION, shingle_list

__all__ = [
    "FIELD",
    "MAX_CARRIED_SHINGLES",
    "Carried",
    "carried_features",
    "input_digest",
    "read_carried",
]

FIELD = "features"  # the article message's field

# The most shingles a message carries: beyond it (a long text), ``sh`` is left out and the transform computes them.
MAX_CARRIED_SHINGLES = 4096


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


def shingles_digest(digest: str, raw: bytes) -> str:
    """The carried shingles' bytes hashed under the input digest they were computed for: what ties ``sh`` to the
    title, text and language the ``in`` digest covers, so that shingles spliced from another message, cut short
    or garbled on the way are refused like shingles of another input (not a forgery by whoever computes it)."""
    return hashlib.blake2b(raw, digest_size=16, key=digest.encode("ascii")[:64]).hexdigest()


def carried_features(title: str | None, text: str | None, language: str | None, *, title_weight: int) -> str:
    """The ``features`` field for an article of this title, text and (declared or detected) language: the
    compact JSON of the features with what they are valid for (``v``, ``tw``, ``in``)."""
    title, text, language = title or "", text or "", base_language(language)
    features = text_features(title, text, language, title_weight)
    payload: dict[str, Any] = {
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
    shingles = shingle_list(text)
    if shingles.size <= MAX_CARRIED_SHINGLES:
        raw = shingles.astype("<u8").tobytes()
        payload["sv"] = SIGNATURE_VERSION
        payload["sh"] = base64.b64encode(raw).decode("ascii")
        payload["shd"] = shingles_digest(payload["in"], raw)
        if shingles.size:
            minhash = _minhasher(DEFAULT_NUM_PERM).signature(np.unique(shingles)).astype("<u8").tobytes()
            payload["mp"] = DEFAULT_NUM_PERM
            payload["mh"] = base64.b64encode(minhash).decode("ascii")
            payload["mhd"] = shingles_digest(payload["in"], minhash + raw)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


@cache
def _minhasher(num_perm: int) -> MinHasher:
    """One :class:`MinHasher` per size for the process (its permutations are drawn once)."""
    return MinHasher(num_perm)


class _Carried(msgspec.Struct, frozen=True):
    """The whole carried string as it encodes the features and shingles; msgspec refuses any other shape while it
    decodes (``bool`` is no ``int`` to it, and unknown keys are ignored as the JSON reader did).

    Every field but the input digest has a default, so that one decode serves both readers: a string without
    features may still carry usable shingles and the other way round. A field present with the wrong type fails
    the whole decode, so neither is used (the transform then computes both, which gives the same result).
    """

    digest: str = msgspec.field(name="in")
    v: int | None = None
    tw: int | None = None
    terms: list[str] | None = None
    tf: list[Annotated[int, msgspec.Meta(gt=0)]] | None = None
    cues: list[str] | None = None
    entities: list[tuple[str, str, str]] | None = None
    surfaces: list[tuple[str, str]] | None = None
    novelty: bool | None = None
    sv: int | None = None
    sh: str | None = None
    shd: str | None = None
    mp: int | None = None
    mh: str | None = None
    mhd: str | None = None


_DECODER = msgspec.json.Decoder(_Carried)


class Carried:
    """One message's carried string, decoded once and checked once against the article it came with.

    :func:`read_carried` makes it for an article's title, text and language; :meth:`shingles` (near-duplicate
    lookup, for every new article) and :meth:`features` (clustering, for the articles that are not duplicates)
    then read the same decoded value, where each used to decode the string and hash the title and text again.
    """

    __slots__ = ("_digest_ok", "_shingles_raw", "_value")

    def __init__(self, value: _Carried, digest_ok: bool) -> None:
        self._value = value
        self._digest_ok = digest_ok
        self._shingles_raw: bytes | None = None  # the bytes of the shingles :meth:`shingles` accepted

    def shingles(self) -> np.ndarray | None:
        """The body's near-duplicate shingles it carries, or None (none, another signature version, another
        input, malformed)."""
        carried = self._value
        if not self._digest_ok or carried.sh is None or carried.sv != SIGNATURE_VERSION:
            return None
        try:
            raw = base64.b64decode(carried.sh, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) % 8 or carried.shd != shingles_digest(carried.digest, raw):
            return None
        self._shingles_raw = raw
        return np.frombuffer(raw, dtype="<u8").astype(np.uint64)

    def minhash(self, num_perm: int) -> np.ndarray | None:
        """The MinHash of the carried shingles (:meth:`shingles`, called first and accepted) with ``num_perm``
        values, or None (none carried, another size, not of these very shingles and input, malformed)."""
        carried, shingles = self._value, self._shingles_raw
        if shingles is None or carried.mh is None or carried.mp != num_perm:
            return None
        try:
            raw = base64.b64decode(carried.mh, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != num_perm * 8 or carried.mhd != shingles_digest(carried.digest, raw + shingles):
            return None
        return np.frombuffer(raw, dtype="<u8").astype(np.uint64)

    def features(self, title_weight: int) -> TextFeatures | None:
        """The text features it carries for ``title_weight``, or None (stale, another input, malformed)."""
        carried = self._value
        if not self._digest_ok or carried.v != FEATURES_VERSION or carried.tw != title_weight:
            return None
        terms, tf = carried.terms, carried.tf
        if (
            terms is None
            or tf is None
            or carried.cues is None
            or carried.entities is None
            or carried.surfaces is None
            or carried.novelty is None
            or len(terms) != len(tf)
        ):
            return None  # a field missing: the features are unusable, as a failed decode made them
        counts = dict(zip(terms, tf, strict=True))
        if len(counts) != len(terms):
            return None  # a term listed twice
        return TextFeatures(
            counts=counts,
            cues=frozenset(carried.cues),
            entity_kinds=tuple(carried.entities),
            surfaces=dict(carried.surfaces),  # [term, word] pairs, in their order
            novelty=carried.novelty,
        )


def read_carried(value: Any, *, title: str, text: str, language: str | None) -> Carried | None:
    """``value`` (the message's ``features`` string) decoded once, with its input digest checked once against
    this title, text and (normalised) language; None when it is not a well-formed carried string at all."""
    if not isinstance(value, str):
        return None
    try:
        carried = _DECODER.decode(value)
    except (ValueError, RecursionError):  # not JSON, not of this shape, nested thousands deep, lone surrogates
        return None
    return Carried(carried, carried.digest == input_digest(title, text, language))
