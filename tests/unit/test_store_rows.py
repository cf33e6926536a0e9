"""The transform's row builders write the same JSON text as ``json.dumps`` did, with reused encoders: the stored
columns (article categories and tags, event sources, languages, keywords, entities) are compared as text by
the equivalence tests and by readers, so a different spacing or escaping would be a different warehouse."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from transform.store import _json_ascii, _json_list, _json_text, article_row

VALUES: list[Any] = [
    [],
    ["politics"],
    ["Économie", "東京", "😀 emoji", 'quote " and \\ backslash', "tab\tnewline\n", "\x7f\u2028"],
    [{"name": "Genève", "kind": "place"}, ["nested", 1, True, None]],
]


@pytest.mark.parametrize("value", VALUES)
def test_reused_encoders_write_what_json_dumps_wrote(value: Any) -> None:
    assert _json_text(value) == json.dumps(value, ensure_ascii=False)
    assert _json_ascii(value) == json.dumps(value)
    assert _json_list(value) == json.dumps(value or [], ensure_ascii=False)


def test_an_article_row_writes_absent_and_empty_lists_as_the_json_module_did() -> None:
    message = {
        "article_id": "a" * 32,
        "url": "https://example.org/a",
        "canonical_url": "https://example.org/a",
        "title": "T",
        "text": "Body",
        "source": "Example",
        "feed_url": "https://example.org/feed.xml",
        "fetched_at": "2026-01-13T10:00:00Z",
        "content_hash": "b" * 32,
        "tags": ["Économie", "東京"],
    }
    row = article_row(message, load_order=1, now=datetime(2026, 1, 13, tzinfo=UTC))  # type: ignore[arg-type]
    assert row[13] == json.dumps([], ensure_ascii=False)  # categories absent
    assert row[14] == json.dumps(["Économie", "東京"], ensure_ascii=False)
    assert article_row({**message, "categories": [], "tags": None}, load_order=1, now=datetime.now(UTC))[13:15] == (  # type: ignore[arg-type]
        "[]",
        "[]",
    )
