"""Timestamps as the code handles them: aware UTC ``datetime`` objects, whatever form they arrive in."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime | str | None) -> datetime | None:
    """An aware UTC datetime from a datetime or ISO 8601 text (``Z`` accepted); naive values are UTC; empty -> None.

    Airflow hands out pendulum DateTimes (datetime subclasses): the result is a plain datetime, which compares
    and serialises like every other in the code.
    """
    if value is None or value == "":
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return datetime.fromtimestamp(moment.timestamp(), tz=UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
