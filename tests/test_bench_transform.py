"""The in-process transform benchmark (``python -m bench.transform``): one small run of every phase.

No speed assertions: what is checked is that the run really processed the stream (every message accounted
for, events written and sent) and that the rebuild phase re-assigned every stored article.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.transform import main


def test_small_run_covers_transform_and_rebuild(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert main(["--articles", "120", "--batch", "50", "--no-embeddings", "--rebuild", "--json", str(out)]) == 0
    report = json.loads(out.read_text("utf-8"))
    stats = report["stats"]
    assert stats["messages"] == report["articles"] == 120
    assert stats["new_articles"] + stats["duplicates"] + stats["replays"] + stats["dead_letters"] == 120
    assert stats["new_articles"] > 80 and report["events_sent"] > 20 and report["articles_per_s"] > 0
    assert report["rebuild"]["articles"] == stats["new_articles"]
