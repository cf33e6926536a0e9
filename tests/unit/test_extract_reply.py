"""The parent reads an extraction worker's reply tolerantly (``ingest.extract_workers.ProcessPoolExtractor``).

A reply is ``(status, value, reason, batch, shares, ...)``: later versions append fields. A fork server started
before an upgrade, or a worker of a newer build, must not make every page fail with an unpacking error in the
parent, so the first four fields are read strictly and the rest as far as they are known.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingest import worker_stats
from ingest.extract import ExtractionError
from ingest.extract_workers import ProcessPoolExtractor


class _Worker:
    def __init__(self, reply: tuple[Any, ...]) -> None:
        self.reply = reply

    def receive(self, request: int) -> tuple[Any, ...]:
        assert request == 7
        return self.reply


def _extractor(reply: tuple[Any, ...]) -> tuple[ProcessPoolExtractor, list[int]]:
    """A pool whose only worker answers ``reply``, without starting processes; records the batches released."""
    extractor = ProcessPoolExtractor.__new__(ProcessPoolExtractor)
    released: list[int] = []
    worker = _Worker(reply)
    extractor._send = lambda content, url, content_type, alone: (worker, 7)  # type: ignore[method-assign]
    extractor._release = lambda w, alone, batch=0: released.append(batch)  # type: ignore[method-assign]
    return extractor, released


def test_a_reply_with_fields_a_newer_worker_appended_is_understood(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[dict[str, float]] = []
    monkeypatch.setattr(worker_stats, "record", recorded.append)
    article = object()
    extractor, released = _extractor(("ok", article, None, 3, {"extract": 0.5}, "a field of a later version"))
    assert extractor.extract(b"<html/>", url="https://example.com/a", content_type="text/html") is article
    assert released == [3] and recorded == [{"extract": 0.5}]

    extractor, released = _extractor(("refused", "no body", "no_body", 2, {"extract": 0.1}, 42, None))
    with pytest.raises(ExtractionError) as caught:
        extractor.extract(b"<html/>", url="https://example.com/b", content_type="text/html")
    assert caught.value.reason == "no_body" and released == [2]


def test_a_reply_without_the_shares_of_an_older_worker_is_understood(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[dict[str, float]] = []
    monkeypatch.setattr(worker_stats, "record", recorded.append)
    article = object()
    extractor, released = _extractor(("ok", article, None, 1))
    assert extractor.extract(b"<html/>", url="https://example.com/c", content_type="text/html") is article
    assert released == [1] and recorded == []
