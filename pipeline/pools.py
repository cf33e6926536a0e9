"""The Airflow pool of the tasks that fetch from the web, shared by the DAG files and whatever creates the pool.

Kept apart from :mod:`pipeline.assets` because creating the pool (``newswire up``, docker-compose's
``airflow-init``) must not import Airflow in the supervising process.
"""

#: Ingest shards and archive tasks draw from it: its slots bound how many of them fetch at once across DAGs.
FETCH_POOL = "newswire_fetch"
