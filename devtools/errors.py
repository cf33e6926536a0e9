"""The development tools' errors (the project's tree is drawn in :mod:`newswire.errors`)."""

from __future__ import annotations

from newswire.errors import NewswireError


class StackError(NewswireError):
    """The stack could not be started, or is not in the state the command needs."""

    default_reason = "stack"


class DagRunError(NewswireError):
    """A DAG run in-process (demo, tests) could not be parsed or did not succeed."""

    default_reason = "dag_run"
