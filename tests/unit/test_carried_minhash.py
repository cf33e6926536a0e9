"""The MinHash carried with the near-duplicate shingles (computed by the extraction workers) is the one the index
computes; the transform then computes none, and finds, indexes and exports the same; a MinHash not of the very
shingles and input it came with, of another size, or malformed is refused and computed instead.

Uses the labelled corpus; every payload goes through the topic's own encoding, as the transform receives it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from bench.quality import load_corpus
from bench.transform import article_message
from newswire import contracts
from transform.carried import Carried, carried_features, read_carried, shingles_digest
from transform.clustering import ClusteringConfig
from transform.documents import ArticleDoc
from transform.minhash import MinHasher
from transform.neardup import DEFAULT_NUM_PERM, NearDuplicateError, NearDuplicateIndex, shingle_list
from transform.stories import StoryState

CORPUS = [item.doc for item in load_corpus()]


def _carried(doc: ArticleDoc) -> str:
    payload = carried_features(doc.title, doc.text, doc.language, title_weight=2)
    decoded = contracts.decode(
        contracts.ARTICLES, contracts.encode(contracts.ARTICLES, {**article_message(doc), "features": payload})
    )["features"]
    assert isinstance(decoded, str)
    return decoded


def _read(payload: Any, doc: ArticleDoc) -> Carried:
    carried = read_carried(payload, title=doc.title, text=doc.text, language=doc.language)
    assert carried is not None
    return carried


def _minhash(payload: Any, doc: ArticleDoc, num_perm: int = DEFAULT_NUM_PERM) -> np.ndarray | None:
    """The carried MinHash as the transform reads it: after the shingles, and only when they are accepted."""
    carried = read_carried(payload, title=doc.title, text=doc.text, language=doc.language)
    if carried is None or carried.shingles() is None:
        return None
    return carried.minhash(num_perm)


def _changed(payload: str, **change: Any) -> str:
    return json.dumps({**json.loads(payload), **change}, ensure_ascii=False, separators=(",", ":"))


def _lookup_then_assign(state: StoryState, doc: ArticleDoc) -> Any:
    near = state.near_duplicate(doc, read_carried(doc.carried, title=doc.title, text=doc.text, language=doc.language))
    return near, state.assign(doc).event_id


def test_the_carried_minhash_is_the_one_the_index_computes_from_the_shingles() -> None:
    hasher = MinHasher(DEFAULT_NUM_PERM)
    for doc in CORPUS:
        carried = _minhash(_carried(doc), doc)
        assert carried is not None and carried.dtype == np.uint64
        assert np.array_equal(carried, hasher.signature(np.unique(shingle_list(doc.text))))


def test_story_state_computes_no_minhash_when_the_message_carries_it(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = CORPUS[:80]
    reference = StoryState(ClusteringConfig(embedding_model="none"))
    expected = [_lookup_then_assign(reference, doc) for doc in docs]
    assert any(near is not None for near, _ in expected)  # copies among them: their matches are confirmed

    computed: list[int] = []
    signature = MinHasher.signature

    def record(self: MinHasher, shingles: np.ndarray) -> np.ndarray:
        computed.append(shingles.size)
        return signature(self, shingles)

    monkeypatch.setattr(MinHasher, "signature", record)
    state = StoryState(ClusteringConfig(embedding_model="none"))
    carrying = [ArticleDoc(**{**doc.__dict__, "carried": _carried(doc)}) for doc in docs]
    computed.clear()  # carried_features computed theirs, as the workers do
    assert [_lookup_then_assign(state, doc) for doc in carrying] == expected
    assert computed == []
    assert [state.exported[d.article_id] for d in docs] == [reference.exported[d.article_id] for d in docs]


def test_a_message_without_a_minhash_still_uses_its_shingles_and_computes_the_minhash() -> None:
    doc = next(d for d in CORPUS if len(d.text) > 500)
    payload = _changed(_carried(doc), mh=None, mhd=None)
    carried = _read(payload, doc)
    assert carried.shingles() is not None and carried.minhash(DEFAULT_NUM_PERM) is None


@pytest.mark.parametrize(
    "change",
    [
        {"mh": "not base64!"},
        {"mh": base64.b64encode(b"1234567").decode("ascii")},  # a partial value
        {"mh": 12},
        {"mp": DEFAULT_NUM_PERM // 2},
        {"mp": None},
        {"mhd": None},
        {"mhd": "0" * 32},
    ],
)
def test_malformed_or_unmatched_minhashes_are_refused(change: dict[str, Any]) -> None:
    doc = CORPUS[1]
    payload = _carried(doc)
    assert _minhash(_changed(payload), doc) is not None  # re-encoding alone keeps it usable
    assert _minhash(_changed(payload, **change), doc) is None


def test_a_minhash_of_another_size_or_without_accepted_shingles_is_not_used() -> None:
    doc = CORPUS[3]
    payload = _carried(doc)
    assert _minhash(payload, doc, num_perm=DEFAULT_NUM_PERM * 2) is None
    assert _read(payload, doc).minhash(DEFAULT_NUM_PERM) is None  # shingles() not asked (or refused) first
    assert _minhash(_changed(payload, sh=None), doc) is None


def test_a_minhash_spliced_from_another_message_or_beside_other_shingles_is_refused() -> None:
    """``mhd`` covers the MinHash, the shingles and the input: another message's ``mh`` (with or without its
    ``mhd``), or this message's ``mh`` beside another message's shingles (their ``shd`` recomputed), is not used."""
    doc, other = CORPUS[4], CORPUS[5]
    mine, theirs = json.loads(_carried(doc)), json.loads(_carried(other))
    assert _minhash(_changed(_carried(doc), mh=theirs["mh"]), doc) is None
    assert _minhash(_changed(_carried(doc), mh=theirs["mh"], mhd=theirs["mhd"]), doc) is None
    raw = base64.b64decode(theirs["sh"])
    other_shingles = _changed(_carried(doc), sh=theirs["sh"], shd=shingles_digest(mine["in"], raw))
    carried = _read(other_shingles, doc)
    assert carried.shingles() is not None  # the forged shingles pass on their own digest
    assert carried.minhash(DEFAULT_NUM_PERM) is None  # but this message's MinHash is not theirs


def test_a_forged_minhash_with_its_shingles_never_makes_a_duplicate() -> None:
    """Another indexed article's shingles and MinHash, both digests recomputed for this input: the lookup finds the
    forged match, the text refutes it, and the article is looked up, assigned and exported as if it carried none."""
    original = CORPUS[0]
    docs = [ArticleDoc(**{**d.__dict__, "published_at": original.published_at}) for d in CORPUS[1:40]]
    alone = NearDuplicateIndex()
    alone.add(original)
    docs = [d for d in docs if alone.find(d) is None]
    source = json.loads(_carried(original))
    forged = []
    for doc in docs:
        digest = json.loads(_carried(doc))["in"]
        raw_sh, raw_mh = base64.b64decode(source["sh"]), base64.b64decode(source["mh"])
        payload = _changed(
            _carried(doc),
            sh=source["sh"],
            shd=shingles_digest(digest, raw_sh),
            mh=source["mh"],
            mhd=shingles_digest(digest, raw_mh + raw_sh),
        )
        assert _minhash(payload, doc) is not None  # every digest is right: the forgery passes as carried
        forged.append(ArticleDoc(**{**doc.__dict__, "carried": payload}))
    assert len(forged) > 20

    config = ClusteringConfig(embedding_model="none")
    reference, state = StoryState(config), StoryState(config)
    for target in (reference, state):
        _lookup_then_assign(target, original)
    expected = [_lookup_then_assign(reference, doc) for doc in docs]
    got = [_lookup_then_assign(state, doc) for doc in forged]
    assert got == expected
    assert all(near is None or near.duplicate_of != original.article_id for near, _ in got)
    assert [state.exported[d.article_id] for d in docs] == [reference.exported[d.article_id] for d in docs]


def test_priming_refuses_a_minhash_of_another_shape_or_before_its_shingles() -> None:
    index, doc = NearDuplicateIndex(), CORPUS[0]
    values = MinHasher(DEFAULT_NUM_PERM).signature(np.unique(shingle_list(doc.text)))
    with pytest.raises(NearDuplicateError):
        index.prime_minhash(doc, values)  # no shingles primed for it
    index.prime_shingles(doc, shingle_list(doc.text))
    for wrong in (values.astype(np.int64), values[:-1], values.reshape(2, -1)):
        with pytest.raises(NearDuplicateError):
            index.prime_minhash(doc, wrong)
    index.prime_minhash(doc, values)
