"""StoryState eviction: by arrival time, so memory is bounded and late articles still find their story."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from transform.documents import ArticleDoc
from transform.stories import StoryState

STORIES = Path(__file__).parents[1] / "fixtures" / "stories" / "part1.jsonl"


def _records() -> list[dict]:
    return [json.loads(line) for line in STORIES.read_text().splitlines() if line.strip()]


def _doc(d: dict) -> ArticleDoc:
    return ArticleDoc(
        article_id=d["doc_id"],
        title=d["title"],
        text=d["text"],
        language=d["language"],
        published_at=datetime.fromisoformat(d["published_at"].replace("Z", "+00:00")),
        source=d["outlet"],
        url=d["url"],
    )


def story_docs() -> list[ArticleDoc]:
    records = _records()
    first_story = records[0]["story_id"]
    return [_doc(d) for d in records if d["story_id"] == first_story and d["kind"] in ("original", "followup")]


def test_late_article_joins_its_story_and_old_arrivals_are_evicted() -> None:
    docs = story_docs()
    assert len(docs) >= 3
    state = StoryState()
    first = state.assign(docs[0])
    for doc in docs[1:-1]:
        state.assign(doc)
    # The story is months old by the wall clock; evicting by publication time would drop it here.
    assert state.evict() == 0
    late = state.assign(docs[-1])
    assert late.event_id == first.event_id

    later = datetime.now(UTC) + state.horizon + timedelta(days=1)
    assert state.evict(later) >= 1
    assert len(state.clusterer) == 0 and len(state.neardup) == 0


def all_docs() -> list[ArticleDoc]:
    return [_doc(d) for d in _records()]


def test_max_articles_bounds_the_state_whatever_the_horizon_holds() -> None:
    docs = all_docs()[:60]
    capped, unbounded = StoryState(max_articles=20), StoryState()
    latest_events = set()
    for index, doc in enumerate(docs):
        unbounded.assign(doc)
        unbounded.evict()
        event_id = capped.assign(doc).event_id
        capped.evict()
        if index >= len(docs) - 20:
            latest_events.add(event_id)
    assert len(unbounded.neardup) == len(docs)
    # Only the latest 20 arrivals stay, and exactly the events they are in.
    assert len(capped.neardup) == 20
    assert set(capped._arrivals) == {d.article_id for d in docs[-20:]}
    assert len(capped.clusterer) == len(latest_events) < len(unbounded.clusterer)
