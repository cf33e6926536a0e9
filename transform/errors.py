"""The transform stage's errors (the whole tree is drawn in :mod:`newswire.errors`).

Most are raised when the stage's own state is used inconsistently or a stored value no longer matches the
code that reads it; the ``Stale*`` ones tell the caller to recompute rather than restore.
"""

from __future__ import annotations

from newswire.errors import NewswireError


class ClusteringError(NewswireError):
    """Story clustering was used inconsistently (e.g. an article restored into two events)."""

    default_reason = "clustering"


class UnknownEvent(ClusteringError, KeyError):
    """The event id is not (or no longer) held by the clusterer: never created, merged away or evicted."""

    default_reason = "unknown_event"


class StaleFeatures(ClusteringError):
    """Stored features were made by another version or ``title_weight``: use ``restore(doc, event_id)``."""

    default_reason = "stale_features"


class NearDuplicateError(NewswireError):
    """The near-duplicate index was configured or used inconsistently."""

    default_reason = "near_duplicate"


class StaleSignature(NearDuplicateError):
    """A stored signature was made by another version or configuration: rebuild it with ``add(doc)``."""

    default_reason = "stale_signature"


class InvalidArticleDoc(NewswireError):
    """An :class:`~transform.documents.ArticleDoc` was built with values the quality core cannot reason about."""

    default_reason = "invalid_article"


class EventRecordError(NewswireError):
    """An event record cannot be built (an event without member articles)."""

    default_reason = "event_record"


class RebuildError(NewswireError):
    """The window to rebuild is not a valid interval."""

    default_reason = "rebuild"
