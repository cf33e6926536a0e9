"""The package layers, checked on every project module's imports (top-level and inside functions alike).

Each package may import only the packages below it; the two stages never import each other::

    dags  >  devtools  >  pipeline  >  ingest | transform  >  newswire

``dags`` imports only ``pipeline`` (and Airflow); no package below ``pipeline`` imports Airflow. A lazy import
inside a function counts: it still makes the lower package depend on the higher one. One exception, by name:
the CLI's development commands (``newswire up/down/status/demo``) load ``devtools`` inside their functions, as
an optional plug-in that the production image does not have.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RANK = {"newswire": 0, "ingest": 1, "transform": 1, "pipeline": 2, "devtools": 3, "dags": 4}
#: Below the top layer nothing needs a scheduler: the stages and the core run in any process.
NO_AIRFLOW = {"newswire", "ingest", "transform"}
#: (file, package) pairs allowed to import upwards, inside functions only.
OPTIONAL_PLUGINS = {("pipeline/cli.py", "devtools")}


def _modules(root: Path = ROOT) -> list[Path]:
    return sorted(p for package in RANK for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """``(line, module, at module level)`` of every absolute import in the file, wherever it stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, id(node) in top))
    return found


def layer_violations(paths: list[Path], root: Path = ROOT) -> list[str]:
    problems = []
    for path in paths:
        package = path.relative_to(root).parts[0]
        for line, module, module_level in _imports(path):
            target = module.split(".")[0]
            where = f"{path.relative_to(root)}:{line} imports {module}"
            if (path.relative_to(root).as_posix(), target) in OPTIONAL_PLUGINS and not module_level:
                continue
            if target == "airflow" and package in NO_AIRFLOW:
                problems.append(f"{where}: only pipeline and above may import Airflow")
            if target not in RANK or target == package:
                continue
            if package == "dags" and target != "pipeline":
                problems.append(f"{where}: DAG files import only airflow.sdk and pipeline")
            elif RANK[target] >= RANK[package]:
                problems.append(f"{where}: {package} (layer {RANK[package]}) may not import {target}")
    return problems


def test_every_module_imports_only_lower_layers() -> None:
    paths = _modules()
    assert len(paths) > 50  # the walk found the project, not an empty folder
    assert layer_violations(paths) == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    # The rule itself, on a tree written for it: each file breaks it once, the allowed imports pass.
    files = {
        "newswire/bad_core.py": "import newswire.errors\ndef f():\n    from ingest.stage import ingest_feeds\n",
        "ingest/bad_stage.py": "from newswire import contracts\nimport transform.store\n",
        "transform/bad_airflow.py": "from airflow.sdk import task\n",
        "pipeline/good.py": "from ingest import stage\nfrom transform import batch\nfrom airflow.sdk import Asset\n",
        "pipeline/cli.py": "def up():\n    from devtools import stack\n",
        "pipeline/bad_plugin.py": "def up():\n    from devtools import stack\n",
        "dags/bad_dag.py": "from pipeline import ingest_tasks\nfrom ingest import shards\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    problems = layer_violations(_modules(tmp_path), tmp_path)
    assert sorted(p.split(":")[0] for p in problems) == [
        "dags/bad_dag.py",
        "ingest/bad_stage.py",
        "newswire/bad_core.py",
        "pipeline/bad_plugin.py",
        "transform/bad_airflow.py",
    ], problems


@pytest.mark.parametrize("dag_file", ["newswire_ingest.py", "newswire_archive.py", "newswire_transform.py"])
def test_parsing_a_dag_file_loads_no_stage_and_no_settings(dag_file: str, tmp_path: Path) -> None:
    """What the dag-processor pays for each parse: Airflow, the adapters, the contracts; no stage code.

    An invalid unrelated setting proves the settings are not loaded (``load_settings`` would raise).
    """
    script = (
        "import runpy, sys\n"
        f"runpy.run_path({str(ROOT / 'dags' / dag_file)!r})\n"
        "from pipeline import ingest_tasks\n"
        "print(ingest_tasks.schedule())\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "NEWSWIRE_TOPIC_PARTITIONS": "not-a-number",
        "NEWSWIRE_INGEST_SCHEDULE": "*/7 * * * *",
    }
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    schedule, modules = proc.stdout.strip().splitlines()[-2:]
    loaded = set(modules.split())
    assert schedule == "*/7 * * * *"
    heavy = {"trafilatura", "feedparser", "kafka", "duckdb", "newswire.embedding", "newswire.warehouse"}
    stages = {m for m in loaded if m.split(".")[0] in {"ingest", "transform"}}
    assert stages == set() and heavy & loaded == set()
