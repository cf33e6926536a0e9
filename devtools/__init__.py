"""Development tooling: the local stack, the sample sites and the demo. Not part of the runtime.

The Docker image copies neither this package nor its corpus (``tests/test_deploy.py`` checks the image's wheel),
and the runtime never imports it; ``newswire up/down/status/demo`` import it when asked and say so when it is
missing. It works from a checkout: the DAG folder and the corpus are found next to it.

* :mod:`devtools.stack`: ``newswire up/down/status``, a supervisor of the Airflow components and the broker;
* :mod:`devtools.stack_executor`: what the LocalExecutor and CeleryExecutor stacks differ in;
* :mod:`devtools.local_airflow`: run the DAGs in-process with a private Airflow home (demo, tests);
* :mod:`devtools.demo`: ``make demo``;
* :mod:`devtools.devserver`: the sample sites (``corpus/``) served from loopback, one server per outlet.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO_ROOT / "dags"
#: The sample sites, feeds and expected results (``corpus/README.md``).
CORPUS = Path(__file__).resolve().parent / "corpus"
