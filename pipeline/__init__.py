"""The top layer: the only package that wires the two stages together.

Layers, each importing only the ones below it (``tests/test_layers.py`` checks it on every module)::

    dags/        the Airflow DAG files: a table of contents, each task one call into pipeline.*_tasks
    devtools/    development only: local stack supervisor, sample-site server, demo (not in the image)
    pipeline/    CLI, one-shot passes, Airflow task adapters, assets, retry policy
    ingest/      stage 1: feeds -> articles topic       } import only newswire, never each other
    transform/   stage 2: articles topic -> warehouse   }
    newswire/    the shared core: settings, contracts, errors, warehouse, Kafka clients, dead letters

A separate top-level package rather than ``newswire.pipeline``: one package, one layer, so the rule reads
as an order of package names, and ``import newswire`` can never reach code that imports a stage.
"""
