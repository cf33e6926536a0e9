from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import FormatChecker

from newswire import contracts
from newswire.errors import ContractError


def article(**overrides: Any) -> dict[str, Any]:
    message = {
        "schema_version": 1,
        "article_id": "0" * 32,
        "url": "https://example.org/a?utm_source=rss",
        "canonical_url": "https://example.org/a",
        "feed_url": "https://example.org/feed.xml",
        "feed_name": "Example",
        "source": "Example Daily",
        "title": "Title",
        "text": "Body text.",
        "content_hash": "f" * 32,
        "fetched_at": "2026-11-24T10:00:00Z",
        "published_at": None,
        "language": "en",
        "categories": [],
        "tags": [],
    }
    message.update(overrides)
    return message


def test_valid_message_round_trips() -> None:
    raw = contracts.encode(contracts.ARTICLES, article())
    assert contracts.decode(contracts.ARTICLES, raw) == article()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not utf8", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "schema_violation"),
        (None, "empty_message"),
        (json.dumps(article(schema_version=2)).encode(), "unsupported_schema_version"),
        (json.dumps(article(article_id="short")).encode(), "schema_violation"),
        (json.dumps(article(fetched_at="yesterday")).encode(), "schema_violation"),
        (json.dumps(article(canonical_url="not a url")).encode(), "schema_violation"),
        (json.dumps({k: v for k, v in article().items() if k != "text"}).encode(), "schema_violation"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(ContractError) as err:
        contracts.decode(contracts.ARTICLES, raw)
    assert err.value.reason == reason


def test_producers_cannot_send_what_consumers_would_reject() -> None:
    with pytest.raises(ContractError, match="text"):
        contracts.encode(contracts.ARTICLES, article(text=""))


def _formats(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["format"]} if isinstance(node.get("format"), str) else set()
        return found.union(*(_formats(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_formats(v) for v in node))
    return set()


def test_every_format_the_contracts_use_has_a_checker_installed() -> None:
    # jsonschema skips a format silently when the package that checks it is missing: a dropped dependency
    # would let malformed timestamps and URLs through without any test noticing.
    used = set().union(*(_formats(contracts.schema_for(t)) for t in contracts.ALL_TOPICS))
    assert used >= {"date-time", "uri"}
    assert used <= set(FormatChecker().checkers)


def test_every_topic_has_a_draft_2020_12_schema_with_a_version() -> None:
    for topic in contracts.ALL_TOPICS:
        schema = contracts.schema_for(topic)
        assert schema["$schema"].endswith("2020-12/schema")
        assert schema["properties"]["schema_version"] == {"const": contracts.SCHEMA_VERSION}
        assert topic.key in schema["required"]


def test_iso_round_trip_is_utc() -> None:
    from datetime import datetime, timedelta, timezone

    paris = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    text = contracts.iso(paris)
    assert text == "2026-03-01T11:00:00Z"
    assert contracts.parse_iso(text) == paris


# -- dead-letter stages and reasons: one list, in the code and in the schema ------------------------------------


def _schema_enum(field: str) -> list[str]:
    import json
    from importlib import resources

    schema = json.loads(resources.files("newswire.contracts").joinpath("schemas/dead_letter.v1.json").read_text())
    return schema["properties"][field]["enum"]


def test_dead_letter_schema_enums_equal_the_python_enums() -> None:
    from newswire.deadletters import DeadLetterReason, DeadLetterStage

    assert _schema_enum("stage") == [s.value for s in DeadLetterStage]
    assert _schema_enum("reason") == [r.value for r in DeadLetterReason]


def test_every_reason_an_error_can_dead_letter_with_is_in_the_enum() -> None:
    """The errors that become dead letters, their class defaults and every ``reason`` their raise sites pass."""
    import ast
    from pathlib import Path

    from ingest import errors as ingest_errors
    from newswire.deadletters import DeadLetterReason

    classes = [ingest_errors.FetchError, ingest_errors.FeedParseError, ingest_errors.ExtractionError]
    defaults = {
        sub.default_reason
        for cls in classes
        for sub in [cls, *cls.__subclasses__()]
        for sub in [sub, *sub.__subclasses__()]
    }
    root = Path(__file__).resolve().parent.parent
    raised: set[str] = set()
    modules = ["http", "netguard", "robots", "feeds", "jsonfeed", "extract", "extract_workers", "poll", "errors"]
    for path in [root / "ingest" / f"{m}.py" for m in modules] + [root / "newswire" / "contracts" / "__init__.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "reason" and isinstance(node.value, ast.Constant):
                raised.add(node.value.value)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ContractError" and node.args:
                raised.add(node.args[0].value)
    skipped = {"no_identity", "same_url", "same_canonical_url", "robots"}  # outcomes, never dead letters
    known = {r.value for r in DeadLetterReason}
    assert len(defaults) >= 15 and len(raised) > 10
    assert (defaults | raised) - skipped - known == set()


def test_message_types_name_exactly_the_schema_properties() -> None:
    """The TypedDicts of newswire.contracts.messages keep the schemas' keys, and which of them are required."""
    from newswire import contracts
    from newswire.contracts.messages import ArticleMessage, DeadLetterMessage, EventMessage

    for topic, kind in (
        (contracts.ARTICLES, ArticleMessage),
        (contracts.EVENTS, EventMessage),
        (contracts.DEAD_LETTERS, DeadLetterMessage),
    ):
        schema = contracts.schema_for(topic)
        assert set(kind.__annotations__) == set(schema["properties"]), topic.name
        assert kind.__required_keys__ == set(schema["required"]), topic.name
