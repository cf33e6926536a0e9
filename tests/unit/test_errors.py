"""One error hierarchy: every deliberate error is a NewswireError with ``reason`` and ``retryable``, survives
pickling (errors cross process boundaries), and appears in the tree drawn in ``newswire.errors``."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import pytest

import devtools
import ingest
import newswire
import pipeline
import transform
from ingest.canonical import canonicalize_url
from ingest.errors import ExtractionError, FeedFailed, FetchError, HttpStatusError, InvalidUrlError
from newswire import errors
from newswire.errors import (
    ContractError,
    EmbeddingError,
    MessageTooLarge,
    NewswireError,
    TopicLimitTooLow,
    WarehouseUnavailable,
)


def _project_errors() -> set[type[NewswireError]]:
    found: set[type[NewswireError]] = set()
    for package in (newswire, ingest, transform, pipeline, devtools):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name.startswith(("devtools.corpus", "devtools.demo", "devtools.local_airflow")):
                continue  # a script, and modules that configure Airflow on import of what they run
            module = importlib.import_module(info.name)
            found |= {
                obj
                for _, obj in inspect.getmembers(module, inspect.isclass)
                if issubclass(obj, NewswireError) and obj.__module__ == info.name
            }
    return found


def test_every_error_class_is_drawn_in_the_hierarchy() -> None:
    classes = _project_errors()
    assert len(classes) > 30
    missing = sorted(c.__name__ for c in classes if c.__name__ not in (errors.__doc__ or ""))
    assert missing == []


def test_the_one_invalid_url_error_is_a_fetch_error_with_a_fine_reason() -> None:
    with pytest.raises(InvalidUrlError) as caught:
        canonicalize_url("ftp://example.com/x")
    assert isinstance(caught.value, FetchError)
    assert (caught.value.reason, caught.value.retryable, caught.value.url) == (
        "unsupported_scheme",
        False,
        "ftp://example.com/x",
    )


@pytest.mark.parametrize(
    "error",
    [
        ContractError("schema_violation", "newswire.articles at /url: not a uri"),
        ExtractionError("extraction worker died", reason="worker_crashed"),
        EmbeddingError("no such model", reason="unknown_model"),
        WarehouseUnavailable("locked"),
        MessageTooLarge("newswire.articles", 2_000_000, 1_048_576),
        MessageTooLarge("newswire.articles", None, 1_048_576, broker_refused=True),
        TopicLimitTooLow("newswire.dead_letters", 2000, 65536),
        FeedFailed("https://example.com/feed", "http_status", "HTTP 503", True, 30.0, 503),
        HttpStatusError("https://example.com/", 429, retry_after=5.0),
        InvalidUrlError("https://exa mple.com/", "invalid host", reason="invalid_host"),
    ],
)
def test_errors_survive_pickling_whole(error: NewswireError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert (clone.reason, clone.retryable, str(clone)) == (error.reason, error.retryable, str(error))
    assert vars(clone) == vars(error)


def test_defaults_come_from_the_class_and_raise_sites_may_override() -> None:
    assert (WarehouseUnavailable("x").reason, WarehouseUnavailable("x").retryable) == ("warehouse_unavailable", True)
    assert WarehouseUnavailable("x", retryable=False).retryable is False
    assert NewswireError("x", reason="custom").reason == "custom"
