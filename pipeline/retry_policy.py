"""The retry policy of the fetching tasks: exponential backoff, but never sooner than a server's Retry-After.

Airflow 3.3 evaluates a task's ``retry_policy`` in the worker, with the exception in hand, and lets it
override the delay of the next try. Feed failures carry the ``Retry-After`` of a 429/503 answer
(``FeedFailed.retry_after``); every other failure keeps the task's own ``retry_delay`` with exponential
backoff. Only the DAG files import this module (it needs Airflow).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from airflow.sdk import RetryDecision, RetryPolicy

#: A Retry-After longer than this is capped: a feed asking for a day of silence is better retried by the
#: next scheduled run than by a task instance left waiting.
MAX_RETRY_AFTER = timedelta(hours=6)


def backoff_args(base: timedelta, max_delay: timedelta, *, retries: int = 3) -> dict[str, Any]:
    """A DAG's ``default_args``: ``retries`` tries more, waiting ``base`` then doubling up to ``max_delay``."""
    return {
        "retries": retries,
        "retry_delay": base,
        "retry_exponential_backoff": True,
        "max_retry_delay": max_delay,
    }


class RetryAfterPolicy(RetryPolicy):
    """Retry after ``max(Retry-After, exponential backoff)``; defer to Airflow when the server said nothing."""

    def __init__(self, base: timedelta, max_delay: timedelta, cap: timedelta = MAX_RETRY_AFTER) -> None:
        self.base = base
        self.max_delay = max_delay
        self.cap = cap

    def evaluate(self, exception: BaseException, try_number: int, max_tries: int, context: Any = None) -> RetryDecision:
        retry_after = getattr(exception, "retry_after", None)
        if not isinstance(retry_after, int | float) or not math.isfinite(retry_after) or retry_after < 0:
            return RetryDecision.default()
        delay = min(max(timedelta(seconds=retry_after), self.backoff(try_number)), self.cap)
        return RetryDecision.retry(
            delay=delay,
            reason=f"server asked to retry after {retry_after:.0f}s; retrying in {delay.total_seconds():.0f}s",
        )

    def backoff(self, try_number: int) -> timedelta:
        """Airflow's exponential schedule without its jitter: base * 2^(try - 1), at most ``max_delay``."""
        seconds = self.base.total_seconds() * (2 ** max(0, min(try_number - 1, 30)))
        return min(timedelta(seconds=seconds), self.max_delay)

    def serialize(self) -> dict[str, Any]:
        return {
            "__type": "RetryAfterPolicy",
            "base": self.base.total_seconds(),
            "max_delay": self.max_delay.total_seconds(),
            "cap": self.cap.total_seconds(),
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> RetryAfterPolicy:
        return cls(
            timedelta(seconds=data["base"]), timedelta(seconds=data["max_delay"]), timedelta(seconds=data["cap"])
        )
