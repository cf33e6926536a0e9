"""Run the project's DAGs in-process with a private Airflow home (demo, tests, one-shot jobs).

Airflow reads its configuration from the environment when it is first imported, so :func:`configure` must
run before anything imports ``airflow``; it points Airflow at a SQLite metadata DB under ``NEWSWIRE_HOME``
and at this repository's ``dags/`` folder, and keeps example DAGs out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from devtools import DAGS_FOLDER
from devtools.errors import DagRunError


def configure(home: Path, *, log_level: str = "WARNING") -> Path:
    """Set Airflow's environment for a local, self-contained installation under ``home/airflow``."""
    airflow_home = (home / "airflow").resolve()
    airflow_home.mkdir(parents=True, exist_ok=True)
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(airflow_home):
        raise RuntimeError("configure() must run before airflow is imported")
    os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", log_level)
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{airflow_home / 'airflow.db'}")
    return airflow_home


def init_metadata_db() -> None:
    """Create or upgrade Airflow's metadata DB (idempotent)."""
    from airflow.utils.db import initdb

    initdb()


def load_dag(dag_id: str) -> Any:
    """Parse ``dags/`` and return one DAG, failing loudly on import errors."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        details = "\n".join(f"{path}: {err}" for path, err in bag.import_errors.items())
        raise DagRunError(f"DAG import errors:\n{details}")
    if dag_id not in bag.dags:
        raise KeyError(f"DAG {dag_id!r} not found in {DAGS_FOLDER}; found {sorted(bag.dags)}")
    return bag.dags[dag_id]


def run_dag(dag_id: str, run_conf: dict[str, Any] | None = None, logical_date: Any = None) -> Any:
    """``dag.test()`` one DAG and return its DagRun; raise if the run did not succeed."""
    dag = load_dag(dag_id)
    kwargs: dict[str, Any] = {"run_conf": run_conf or {}}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    dag_run = dag.test(**kwargs)
    state = str(getattr(dag_run, "state", "unknown"))
    if "success" not in state:
        raise DagRunError(f"DAG {dag_id} finished in state {state}")
    return dag_run
