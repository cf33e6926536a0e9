"""The clusterer's per-article bookkeeping done by C-level passes gives what the per-key loops gave.

* ``_keep_earliest_distinct`` (distinct keys) leaves a table exactly as ``_keep_earliest`` does: same keys, same
  order, same values;
* an article opening an event fills its tables as adding it to an empty event one key at a time would;
* the terms of every article share the vocabulary's one string per live term, as ``sys.intern`` made them.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from transform.clustering import (
    StoryClusterer,
    _add_counts,
    _Event,
    _Features,
    _keep_earliest,
    _keep_earliest_distinct,
    _Vocabulary,
)
from transform.documents import ArticleDoc


def test_keep_earliest_of_distinct_keys_equals_the_loop() -> None:
    rng = random.Random(5)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for _ in range(300):
        words = [f"w{i}" for i in range(rng.randint(0, 30))]

        def candidate(word: str) -> tuple[datetime, str, str]:
            return (start + timedelta(hours=rng.randint(0, 3)), f"a{rng.randint(0, 3)}", word + rng.choice("xyz"))

        held = {w: candidate(w) for w in rng.sample(words, rng.randint(0, len(words)))}
        keys = rng.sample(words, rng.randint(0, len(words)))
        offered = [candidate(k) for k in keys]
        expected, table = dict(held), dict(held)
        _keep_earliest(expected, keys, offered)
        _keep_earliest_distinct(table, keys, offered)
        assert list(table.items()) == list(expected.items())


def _features(article_id: str, terms: dict[str, int], hour: int) -> _Features:
    return _Features(
        article_id=article_id,
        source="Wire",
        language="en",
        published_at=datetime(2025, 1, 1, hour, tzinfo=UTC),
        terms=terms,
        cues=frozenset({"e:paris", "n:12"}),
        entity_kinds=(("place", "paris", "Paris"), ("place", "paris", "PARIS"), ("person", "paris", "Paris")),
        surfaces={term: term.upper() for term in terms},
        novelty=False,
    )


def test_an_article_opening_an_event_fills_it_as_the_general_update_does() -> None:
    features = _features("a1", {"quake": 2000, "city": 1000, "dead": 1693}, 3)
    event = _Event("e1")
    event.add(features)
    # the general path, from empty tables
    term_sum: Counter[str] = Counter()
    _add_counts(term_sum, features.terms)
    term_docs: Counter[str] = Counter()
    term_docs.update(features.terms.keys())
    cue_counts: Counter[str] = Counter()
    cue_counts.update(features.cues)
    surfaces: dict[str, tuple[datetime, str, str]] = {}
    _keep_earliest(surfaces, features.surfaces, [(features.published_at, "a1", w) for w in features.surfaces.values()])
    assert list(event.term_sum.items()) == list(term_sum.items())
    assert list(event.term_docs.items()) == list(term_docs.items())
    assert list(event.cue_counts.items()) == list(cue_counts.items())
    assert list(event.surfaces.items()) == list(surfaces.items())
    # one key offered several times (a place twice, a person): the smallest candidate wins, "Paris" over "PARIS"
    assert event.displays["paris"] == (False, features.published_at, "a1", "Paris")
    assert event.entity_counts == Counter({("place", "paris"): 2, ("person", "paris"): 1})
    # a second, earlier article: its surfaces win where they are earlier, the counts add up
    second = _features("a0", {"quake": 1000, "aftershock": 1000}, 1)
    event.add(second)
    assert event.term_sum == Counter({"quake": 3000, "city": 1000, "dead": 1693, "aftershock": 1000})
    assert event.term_docs["quake"] == 2 and event.term_docs["city"] == 1
    assert event.surfaces["quake"] == (second.published_at, "a0", "QUAKE")
    assert event.surfaces["city"] == (features.published_at, "a1", "CITY")


def _doc(article_id: str, text: str, hour: int) -> ArticleDoc:
    return ArticleDoc(
        article_id=article_id,
        title="Earthquake strikes the coastal city",
        text=text,
        language="en",
        published_at=datetime(2025, 1, 1, hour, tzinfo=UTC),
        source="Wire",
        url=f"https://wire.example/{article_id}",
    )


def test_articles_share_the_vocabularys_string_of_each_live_term() -> None:
    clusterer = StoryClusterer()
    body = "A strong earthquake struck the coastal city on Monday, rescuers searched collapsed buildings."
    first, second = _doc("a1", body, 1), _doc("a2", body + " Aftershocks followed.", 2)
    clusterer.assign(first)
    held = {term: term for term in clusterer._terms.frequencies()}  # the vocabulary's own strings
    clusterer.assign(second)
    terms = clusterer._features_of(second).terms
    shared = [term for term in terms if term in held]
    assert shared and all(term is held[term] for term in shared)
    # a string equal to a live term but another object maps to the vocabulary's; an unknown one to itself
    vocabulary = clusterer._terms
    copy = "".join(list(shared[0]))
    assert copy is not held[shared[0]] and next(iter(vocabulary.canonical([copy]))) is held[shared[0]]
    unknown = "".join(["zz", "unknown"])
    assert next(iter(vocabulary.canonical([unknown]))) is unknown


def test_a_term_no_live_article_has_is_forgotten_by_the_canonical_table() -> None:
    vocabulary = _Vocabulary()
    term = "".join(["harb", "our"])
    vocabulary.add([term, "quay"])
    assert next(iter(vocabulary.canonical(["".join(["harb", "our"])]))) is term
    vocabulary.subtract(Counter({term: 1}))
    other = "".join(["harb", "our"])
    assert next(iter(vocabulary.canonical([other]))) is other
