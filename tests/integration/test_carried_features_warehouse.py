"""Features carried in the article messages change nothing in the warehouse, only who computes them.

The same records go through the transform three times, on DuckDB and on PostgreSQL: without ``features`` (as
shard tasks that extract inline send them), with the features the extraction workers compute
(``pipeline.enrich``), and with features that must not be used (another feature version, another title
weight, another language, a malformed structure, a string that is not JSON). Every table the transform writes
(articles, duplicates, events with their versions, memberships, stored features, batch records, dead letters
but for the undecodable record's bytes) must be identical, before and after a rebuild; the transform's count of
carried features shows which run really used them.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_transform_equivalence import ALL_TIME, ORDER, labelled_messages, snapshot, with_traffic_noise

from bench.transform import run_batches, stream_messages, with_carried_features
from ingest.extract import ExtractedArticle
from newswire.warehouse import Warehouse
from pipeline.enrich import feature_enricher
from transform.clustering import FEATURES_VERSION, ClusteringConfig
from transform.rebuild import rebuild_events

# One worker runs the module under xdist, so the corpora made once per process (streams) serve every test.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("carried_features")]

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouses(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """Three empty warehouses of one backend."""
    if request.param == "duckdb":
        yield [f"duckdb:///{tmp_path / f'w{n}.duckdb'}" for n in range(3)]
        return
    schemas = [f"nwcarried_{uuid.uuid4().hex[:12]}" for _ in range(3)]
    yield [f"{PG_DSN}?schema={schema}" for schema in schemas]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def as_extracted(m: dict[str, Any]) -> ExtractedArticle:
    """What an extraction worker would have made the message from (for features made under other settings)."""
    return ExtractedArticle(
        text=m["text"], title=m["title"], author=None, published_at=None, language=m["language"], site_name=None,
        description=None, categories=(), tags=(), image=None, canonical_url=None, og_url=None,
    )  # fmt: skip


def with_features(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return with_carried_features(messages, ClusteringConfig())


@functools.cache
def streams(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """One corpus as the three runs read it: without features, with usable ones, with unusable ones. Made once
    per process (embedding the labelled corpus and extracting features cost more than a backend's run); the
    runs only read them (records are encoded from them)."""
    plain = labelled_messages() if name == "labelled" else stream_messages(1000, embeddings=False)
    carried = with_features(plain)
    return plain, carried, with_unusable_features(carried)


def with_unusable_features(carried_messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message carries features the transform must refuse, in turn: another feature version, another
    title weight, computed under another language, a malformed structure in three ways, and a string that is
    not JSON at all (cut short). ``carried_messages``: the messages with their usable features."""
    spoiled = []
    for number, m in enumerate(carried_messages):
        carried = m["features"]
        assert isinstance(carried, str)
        features = json.loads(carried)
        kind = number % 7
        if kind == 0:
            features["v"] = FEATURES_VERSION - 1
        elif kind == 1:
            features = json.loads(feature_enricher(ClusteringConfig(title_weight=3))(as_extracted(m)))
        elif kind == 2:
            language = "de" if m["language"] != "de" else "fr"
            features = json.loads(feature_enricher()(as_extracted({**m, "language": language})))
        elif kind == 3:
            features["tf"] = features["tf"][:-1]
        elif kind == 4:
            features["cues"] = {"not": "a list"}
        elif kind == 5:
            del features["surfaces"]
        spoiled.append({**m, "features": carried[: len(carried) // 2] if kind == 6 else json.dumps(features)})
    return spoiled


def assert_same_warehouse(first: str, second: str) -> dict[str, int]:
    """Every table equal but for wall-clock columns, and but for the dead letters' payloads: those keep the
    undecodable record's bytes, which include the features when it carried some."""
    one, two = snapshot(first), snapshot(second)
    for table in ORDER:
        left, right = one[table], two[table]
        if table == "dead_letters":
            left, right = ([{k: v for k, v in row.items() if k != "payload"} for row in rows] for rows in (left, right))
        assert len(left) == len(right), table
        for expected, got in zip(left, right, strict=True):
            assert got == expected, table
    return {table: len(rows) for table, rows in one.items()}


def run(url: str, messages: list[dict[str, Any]], config: ClusteringConfig, batch: int) -> dict[str, Any]:
    warehouse = Warehouse(url)
    warehouse.migrate()
    stats = run_batches(warehouse, with_traffic_noise(messages), batch_size=batch, config=config)["stats"]
    return stats  # type: ignore[no-any-return]


def rebuild(url: str, config: ClusteringConfig, windows: list[tuple[datetime, datetime]]) -> None:
    for start, end in windows:
        rebuild_events(Warehouse(url), None, start, end, config=config)


def check(
    urls: list[str],
    corpus: str,
    config: ClusteringConfig,
    batch: int,
    windows: list[tuple[datetime, datetime]],
) -> dict[str, int]:
    plain, carried, unusable = urls
    stats = [run(url, messages, config, batch) for url, messages in zip(urls, streams(corpus), strict=True)]
    assert stats[0]["features_carried"] == 0 and stats[2]["features_carried"] == 0
    assert stats[1]["features_carried"] == stats[1]["new_articles"] > 0  # every new article used its features
    for other in stats[1:]:
        assert {k: v for k, v in other.items() if k != "features_carried"} == {
            k: v for k, v in stats[0].items() if k != "features_carried"
        }
    assert_same_warehouse(plain, carried)
    assert_same_warehouse(plain, unusable)
    for url in urls:
        rebuild(url, config, windows)
    assert_same_warehouse(plain, carried)
    return assert_same_warehouse(plain, unusable)


def test_labelled_corpus_with_and_without_carried_features_gives_one_warehouse(warehouses: list[str]) -> None:
    from newswire.embedding import DEFAULT_MODEL

    counts = check(warehouses, "labelled", ClusteringConfig(embedding_model=DEFAULT_MODEL), 53, [ALL_TIME])
    assert counts["articles"] > 300 and counts["events"] > 50 and counts["article_features"] > 300


def test_synthetic_stream_with_and_without_carried_features_gives_one_warehouse(warehouses: list[str]) -> None:
    windows = [(datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)), ALL_TIME]
    counts = check(warehouses, "synthetic", ClusteringConfig(embedding_model="none"), 250, windows)
    assert counts["articles"] >= 900 and counts["article_duplicates"] > 50 and counts["events"] > 150


def test_a_batch_decodes_each_carried_string_once_for_the_lookup_and_the_clustering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each article looked up (a new article, or a near-duplicate found by lookup) has its carried string decoded
    and its title and text hashed once, not once for the shingles and again for the features; and every new
    article still uses the features it carries."""
    import transform.carried

    _, messages, _ = streams("labelled")
    decoded: list[str] = []
    decode = transform.carried._DECODER.decode
    digests: list[str] = []
    digest = transform.carried.input_digest

    class CountingDecoder:
        def decode(self, value: str) -> Any:
            decoded.append(value)
            return decode(value)

    def counting_digest(title: str, text: str, language: str | None) -> str:
        digests.append(text)
        return digest(title, text, language)

    monkeypatch.setattr(transform.carried, "_DECODER", CountingDecoder())
    monkeypatch.setattr(transform.carried, "input_digest", counting_digest)
    stats = run(f"duckdb:///{tmp_path / 'once.duckdb'}", messages, ClusteringConfig(embedding_model="none"), 100)
    looked_up = stats["new_articles"] + stats["duplicate_methods"].get("minhash", 0)
    assert stats["features_carried"] == stats["new_articles"] > 300
    assert stats["duplicate_methods"].get("minhash", 0) > 0  # some near-duplicates found by lookup
    assert len(decoded) == len(digests) == looked_up
    # each article's string once: a string is decoded at most as often as messages carry it (syndicated copies
    # whose content hash differs carry the same title, text and language, hence the same string)
    carried_by = Counter(m["features"] for m in messages)
    assert all(count <= carried_by[value] for value, count in Counter(decoded).items())
