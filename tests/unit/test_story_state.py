"""StoryState eviction: by arrival time, so memory is bounded and late articles still find their story."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from transform.documents import ArticleDoc
from transform.stories import StoryState

STORIES = Path(__file__).parents[1] / "fixtures" / "stories" / "part1.jsonl"


def story_docs() -> list[ArticleDoc]:
    docs = [json.loads(line) for line in STORIES.read_text().splitlines() if line.strip()]
    first_story = docs[0]["story_id"]
    return [
        ArticleDoc(
            article_id=d["doc_id"],
            title=d["title"],
            text=d["text"],
            language=d["language"],
            published_at=datetime.fromisoformat(d["published_at"].replace("Z", "+00:00")),
            source=d["outlet"],
            url=d["url"],
        )
        for d in docs
        if d["story_id"] == first_story and d["kind"] in ("original", "followup")
    ]


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
