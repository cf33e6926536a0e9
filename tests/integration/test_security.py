"""Security of our own side: a warehouse role without DDL rights runs the pipeline; no password reaches logs."""

from __future__ import annotations

import logging
import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hostile_server import HostileServer, article_page, ok, rss, rss_item

from ingest.feedlist import FeedSpec
from ingest.stage import ingest_feeds
from newswire.errors import WarehouseUnavailable
from newswire.warehouse import Warehouse
from newswire.warehouse.migrations import MIGRATIONS
from pipeline.cli import main
from transform.stage import run_transform

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("NEWSWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PG = psycopg.conninfo.conninfo_to_dict(PG_DSN)
PG_HOSTPORT = f"{PG.get('host', '127.0.0.1')}:{PG.get('port', 5432)}"
PG_DB = PG.get("dbname", "test")


@pytest.fixture
def feed() -> Iterator[FeedSpec]:
    with HostileServer() as server:
        items = []
        for i in range(3):
            server.route(f"/a/{i}", ok(article_page(f"Least privilege story {i}", f"lp-{i}")))
            items.append(rss_item(title=f"Story {i}", link=server.url(f"/a/{i}")))
        url = server.route("/feed.xml", ok(rss(items).encode(), "application/rss+xml"))
        yield FeedSpec(url=url, name="LP Times", ignore_robots=True)


@pytest.fixture
def roles() -> Iterator[dict[str, str]]:
    """deploy/warehouse-roles.sql applied as written, with names made unique to this test run."""
    suffix = uuid.uuid4().hex[:8]
    names = {"owner": f"nwowner_{suffix}", "app": f"nwapp_{suffix}", "schema": f"nwlp_{suffix}"}
    sql = (REPO / "deploy" / "warehouse-roles.sql").read_text()
    sql = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    sql = sql.replace("newswire_owner", names["owner"]).replace("newswire_app", names["app"])
    sql = re.sub(r"\bnewswire\b", names["schema"], sql)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql)
    try:
        yield names
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{names["schema"]}" CASCADE')
            conn.execute(f'DROP OWNED BY "{names["owner"]}", "{names["app"]}"')
            conn.execute(f'DROP ROLE "{names["owner"]}"')
            conn.execute(f'DROP ROLE "{names["app"]}"')


def url_as(role: str, schema: str) -> str:
    return f"postgresql://{role}@{PG_HOSTPORT}/{PG_DB}?schema={schema}"


def test_pipeline_runs_as_a_role_without_ddl_rights(
    roles: dict[str, str], feed: FeedSpec, broker: str, make_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    owner_url, app_url = url_as(roles["owner"], roles["schema"]), url_as(roles["app"], roles["schema"])
    assert main(["migrate", "--warehouse", owner_url]) == 0  # migrations: the owner only
    assert f"schema version {MIGRATIONS[-1].version}" in capsys.readouterr().out

    with psycopg.connect(app_url.split("?")[0], autocommit=True) as app:
        for ddl in (
            f'CREATE TABLE "{roles["schema"]}".evil (a int)',
            f'ALTER TABLE "{roles["schema"]}".articles ADD COLUMN evil int',
            f'DROP TABLE "{roles["schema"]}".feed_entries',
            "CREATE SCHEMA evil",
            "CREATE TEMPORARY TABLE evil (a int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(ddl)

    settings = make_settings(warehouse_url=app_url)
    assert Warehouse(app_url).migrate() == []  # recognised as current with a read, no DDL attempted
    summary = ingest_feeds(settings, broker, [feed], run_id="least-privilege")
    assert summary.failures == {} and summary.totals()["new"] == 3
    assert run_transform(settings, broker).stats.new_articles == 3
    assert main(["status", "--warehouse", app_url]) == 0
    owners = Warehouse(owner_url).query(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = ?", (roles["schema"],)
    )
    assert owners == [{"tableowner": roles["owner"]}]


def test_app_role_refuses_pending_migrations_with_a_clear_message(
    roles: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    app_url = url_as(roles["app"], roles["schema"])
    with pytest.raises(WarehouseUnavailable, match="run `newswire migrate` as the schema owner"):
        Warehouse(app_url).migrate()
    assert main(["status", "--warehouse", app_url]) == 1
    assert "may not create tables" in capsys.readouterr().err


SECRET = "Sup3r-s3cret-Pa55word"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_passwords_in_warehouse_urls_never_reach_logs_or_output(
    feed: FeedSpec,
    broker: str,
    make_settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = f"nwsecret_{uuid.uuid4().hex[:8]}"
    user = PG.get("user", "postgres")
    url = f"postgresql://{user}:{SECRET}@{PG_HOSTPORT}/{PG_DB}?schema={schema}"  # trust auth: accepted, unused
    caplog.set_level(logging.DEBUG)
    try:
        settings = make_settings(warehouse_url=url)
        ingest_feeds(settings, broker, [feed], run_id="secret-1")
        run_transform(settings, broker)
        feeds_file = tmp_path / "feeds.toml"
        feeds_file.write_text(f'[[feeds]]\nurl = "{feed.url}"\nname = "LP"\nignore_robots = true\n')
        monkeypatch.setenv("NEWSWIRE_ALLOW_PRIVATE_NETWORKS", "true")
        for argv in (
            ["-v", "run", "--feeds", str(feeds_file), "--warehouse", url, "--bootstrap", broker],
            ["-v", "status", "--warehouse", url],
            ["-v", "migrate", "--warehouse", url],
            ["-v", "dead-letters", "list", "--warehouse", url],
        ):
            assert main(argv) == 0
        # Failures are where credentials leak most often: an unreachable server, a malformed URL.
        down = f"postgresql://{user}:{SECRET}@127.0.0.1:{_closed_port()}/{PG_DB}"
        assert main(["-v", "status", "--warehouse", down]) == 1
        assert main(["-v", "status", "--warehouse", f"mysql://{user}:{SECRET}@db/x"]) == 1
        out = capsys.readouterr()
        logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
        everything: dict[str, Any] = {"stdout": out.out, "stderr": out.err, "logs": logged + caplog.text}
        assert "cannot open warehouse" in out.err  # the failures were reported...
        for where, text in everything.items():
            assert SECRET not in text, f"password leaked to {where}"  # ...without the password
        assert "***" in out.out + out.err  # and the URL is still shown, masked
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
