"""The compiled validators accept and reject exactly what ``jsonschema`` does with the published schemas."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from newswire import contracts
from newswire.contracts.compiled import UnsupportedSchema, compile_schema
from newswire.errors import ContractError

VALID: dict[str, dict[str, Any]] = {
    contracts.ARTICLES.name: {
        "schema_version": 1,
        "article_id": "0123456789abcdef0123456789abcdef",
        "url": "https://example.org/a?utm_source=rss",
        "canonical_url": "https://example.org/a",
        "feed_url": "https://example.org/feed.xml",
        "feed_name": "Example",
        "source": "Example Daily",
        "title": "Title",
        "text": "Body text.",
        "description": None,
        "author": "A. Writer",
        "content_hash": "f" * 32,
        "fetched_at": "2026-11-24T10:00:00Z",
        "published_at": "2026-11-24T09:00:00+01:00",
        "language": "en",
        "categories": ["world"],
        "tags": [],
        "embedding": {"model": "use-multilingual-v3@x", "dtype": "float16", "dim": 2, "vector": "AAAA"},
        "features": '{"v":2,"tw":2,"in":"00","terms":["fire"],"tf":[1],"novelty":false}',
    },
    contracts.EVENTS.name: {
        "schema_version": 1,
        "event_id": "e1",
        "version": 3,
        "title": "T",
        "summary": "S",
        "first_seen_at": "2026-11-24T10:00:00Z",
        "last_seen_at": "2026-11-24T11:00:00Z",
        "earliest_published_at": None,
        "article_count": 2,
        "source_count": 1,
        "sources": ["Example"],
        "languages": ["en"],
        "keywords": ["fire"],
        "entities": {"places": ["Lyon"], "people": [], "organisations": [], "other": ["x"]},
        "articles": [
            {"article_id": "a", "url": "https://example.org/a", "source": "Example", "title": None},
            {"article_id": "b", "url": "u", "source": "", "published_at": "2026-11-24T09:00:00Z"},
        ],
        "articles_truncated": True,  # revision 1.1
        "merged_into": None,
        "updated_at": "2026-11-24T11:00:00Z",
    },
    contracts.DEAD_LETTERS.name: {
        "schema_version": 1,
        "dead_letter_id": "d1",
        "stage": "publish",  # revision 1.1
        "reason": "message_too_large",  # revision 1.1
        "message": "bad",
        "retryable": False,
        "url": None,
        "feed_url": None,
        "attempts": 1,
        "payload": {"omitted": "message_too_large", "record_bytes": 70000},  # a topic copy sent without it
        "created_at": "2026-11-24T10:00:00Z",
    },
}

# Values of every JSON type, including the ones jsonschema treats specially (1.0 is an integer, true is not).
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    1.5,
    8193,
    "",
    "x",
    "not a url",
    "https://example.org/b",
    "2026-11-24T10:00:00Z",
    "2026-13-40T10:00:00Z",
    "yesterday",
    "0123456789abcdef0123456789abcdef",
    "0123456789ABCDEF0123456789ABCDEF",
    "float16",
    "decode",
    "publish",
    "invalid_json",
    "message_too_large",
    "ab=c",
    [],
    ["x"],
    [1],
    [None],
    {},
    {"a": 1},
    {"article_id": "a", "url": "u", "source": "s"},
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _drop(doc: Any, path: tuple[Any, ...]) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return out


def _variants(doc: dict[str, Any]) -> Iterator[Any]:
    """The valid document, then every single-field change: each value replaced by each odd value, each field
    and array item removed, an unknown field added at every object."""
    yield doc
    yield from ODD_VALUES  # not an object at all
    for path in _paths(doc):
        for value in ODD_VALUES:
            yield _set(doc, path, value)
        yield _drop(doc, path)
    for path in [(), *(p for p in _paths(doc) if isinstance(_get(doc, p), dict))]:
        for value in ("x", 1, ["x"], [1]):
            yield _set(doc, (*path, "zz_extra"), value) if path else {**doc, "zz_extra": value}


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@pytest.mark.parametrize("topic", contracts.ALL_TOPICS, ids=lambda t: t.name)
def test_compiled_validator_agrees_with_jsonschema_on_valid_and_invalid_documents(topic: contracts.Topic) -> None:
    reference = Draft202012Validator(contracts.schema_for(topic), format_checker=FormatChecker())
    compiled = compile_schema(contracts.schema_for(topic), reference.format_checker)
    seen = {True: 0, False: 0}
    for doc in _variants(VALID[topic.name]):
        expected = reference.is_valid(doc)
        assert compiled(doc) is expected, doc
        seen[expected] += 1
    assert seen[True] > 5 and seen[False] > 50  # both sides really exercised


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_compiled_validator_agrees_on_random_field_values(data: st.DataObject) -> None:
    topic = data.draw(st.sampled_from(contracts.ALL_TOPICS))
    doc = VALID[topic.name]
    path = data.draw(st.sampled_from(list(_paths(doc))))
    changed = _set(doc, path, data.draw(json_values))
    reference = Draft202012Validator(contracts.schema_for(topic), format_checker=FormatChecker())
    assert compile_schema(contracts.schema_for(topic), reference.format_checker)(changed) is reference.is_valid(changed)


def test_an_unknown_keyword_is_refused_rather_than_ignored() -> None:
    with pytest.raises(UnsupportedSchema):
        compile_schema({"type": "object", "dependentRequired": {"a": ["b"]}})


def test_validate_still_reports_jsonschemas_error_text() -> None:
    bad = {**VALID[contracts.ARTICLES.name], "article_id": "short"}
    with pytest.raises(ContractError, match="at article_id: 'short' does not match"):
        contracts.validate(contracts.ARTICLES, bad)


def test_remembered_format_answers_stay_right_and_bounded() -> None:
    from newswire.contracts.compiled import _FormatMemo

    checker = FormatChecker()
    memo = _FormatMemo(checker, limit=8)
    values = [
        "2026-11-24T10:00:00Z",
        "2026-13-40T10:00:00Z",
        "yesterday",
        5,
        None,
        *(f"2026-11-{d:02}T10:00:00Z" for d in range(1, 30)),
    ]
    for _ in range(3):
        for value in values:
            assert memo(value, "date-time") is checker.conforms(value, "date-time")
            assert memo(value, "uri") is checker.conforms(value, "uri")
    assert len(memo._seen) <= 8


def test_the_compiled_source_is_straight_line_code() -> None:
    from newswire.contracts.compiled import schema_source

    source = schema_source(contracts.schema_for(contracts.ARTICLES), FormatChecker())
    assert source.startswith("def check(v):")
    assert "lambda" not in source and "all(" not in source  # no per-field calls left but the format checks
