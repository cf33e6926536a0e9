"""The DAGs import cleanly and run to success in-process (dag.test), through the demo entry point.

Airflow reads its configuration at import time, so each check runs in a subprocess with its own
AIRFLOW_HOME under a temporary NEWSWIRE_HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from ports import free_block

REPO = Path(__file__).resolve().parent.parent
EXPECTED = tomllib.loads((REPO / "devtools" / "corpus" / "EXPECTED.toml").read_text())
pytestmark = pytest.mark.airflow


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWIRE_", "AIRFLOW"))}
    env["NEWSWIRE_HOME"] = str(home)
    return env


INSPECT = """
import json
from devtools import local_airflow
from pathlib import Path
local_airflow.configure(Path({home!r}))
local_airflow.init_metadata_db()
out = {{}}
for dag_id in ("newswire_ingest", "newswire_transform"):
    dag = local_airflow.load_dag(dag_id)
    out[dag_id] = {{
        "tasks": sorted(dag.task_ids),
        "schedule": str(getattr(dag.timetable, "expression", None) or dag.timetable.asset_condition),
        "retries": {{t.task_id: t.retries for t in dag.tasks}},
        "pools": {{t.task_id: t.pool for t in dag.tasks}},
        "catchup": dag.catchup,
    }}
print(json.dumps(out))
"""


def test_dags_import_and_are_wired_as_documented(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-c", INSPECT.format(home=str(home))],
        capture_output=True,
        text=True,
        env=_env(home),
        cwd=tmp_path,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    dags = json.loads(proc.stdout.strip().splitlines()[-1])
    ingest, transform = dags["newswire_ingest"], dags["newswire_transform"]
    assert ingest["tasks"] == ["claim_feeds", "ingest_shard", "summarize"]
    assert ingest["schedule"] == "*/5 * * * *" and ingest["catchup"] is False
    assert ingest["retries"]["ingest_shard"] == 3 and ingest["pools"]["ingest_shard"] == "newswire_fetch"
    assert transform["tasks"] == ["transform_articles"]
    assert "newswire_articles" in transform["schedule"]


def test_demo_runs_both_dags_and_a_second_demo_finds_nothing_new(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_block(10)

    def demo() -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            env=_env(home),
            cwd=tmp_path,
            timeout=400,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        return proc.stdout

    def number(out: str, label: str) -> int:
        line = next(line for line in out.splitlines() if line.strip().startswith(label))
        return int(line.split()[len(label.split())])

    first = demo()
    counts = EXPECTED["counts"]
    assert number(first, "entries seen") == counts["entries"]
    assert (
        number(first, "new articles")
        == counts["entries"] - counts["url_duplicates"] - counts["robots_skips"] - counts["dead_letters"]
    )
    assert number(first, "dead letters") == counts["dead_letters"]
    assert f"articles {counts['distinct_articles']}," in first

    second = demo()
    assert number(second, "new articles") == 0
    assert number(second, "entries seen") == 0
    assert "(9 not modified, 0 failed)" in second
    assert f"articles {counts['distinct_articles']}," in second
