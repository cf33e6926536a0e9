"""When to poll a feed next: pure functions over what its last poll saw, so the policy is unit-tested alone.

Polling every feed on every run wastes the publishers' bandwidth and ours, and one fixed interval is both too
slow for a wire service and too fast for a blog that posts monthly. Like mature feed readers (Miniflux's
entry-frequency mode, NewsBlur), the interval follows how often the feed actually publishes, clamped to
``[min, max]``; it is never shorter than what the feed or its server asks (RSS ``<ttl>``, ``skipHours``,
``skipDays``, ``Cache-Control: max-age``, ``Expires``, ``Retry-After``); failures back off exponentially;
random jitter spreads polls so feeds added together do not stay in lockstep; and a feed that fails
permanently (404, 410, not a feed) ``disable_after`` times in a row is disabled with its reason until an
operator enables it again.

Nothing here reads a clock, a database or the network: callers pass ``now``, the state and a ``random.Random``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

#: How far back published dates count towards a feed's publishing rate.
WINDOW = timedelta(days=7)
#: Polls per average gap between two entries. An hourly feed is then polled every 5 minutes, so a new entry
#: waits a few minutes for its poll instead of half an hour on average.
POLLS_PER_ENTRY = 12
#: Jitter as a fraction of the interval: the next poll lands in ``[interval * (1 - f), interval * (1 + f)]``.
JITTER = 0.1
PERMANENT_STATUSES = frozenset({404, 410})
PERMANENT_REASONS = frozenset({"not_a_feed"})
_DAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}
_TTL = re.compile(rb"<ttl>\s*(\d{1,7})\s*</ttl>", re.IGNORECASE)
_SKIP_HOURS = re.compile(rb"<skipHours>(.*?)</skipHours>", re.IGNORECASE | re.DOTALL)
_SKIP_DAYS = re.compile(rb"<skipDays>(.*?)</skipDays>", re.IGNORECASE | re.DOTALL)
_HOUR = re.compile(rb"<hour>\s*(\d{1,2})\s*</hour>", re.IGNORECASE)
_DAY = re.compile(rb"<day>\s*([A-Za-z]+)\s*</day>", re.IGNORECASE)
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """The bounds one feed's interval lives in (the feed list's ``poll_interval_minutes`` is a feed's minimum)."""

    min_interval: timedelta
    max_interval: timedelta
    disable_after: int = 5
    jitter: float = JITTER

    def clamp(self, interval: timedelta) -> timedelta:
        return min(self.max_interval, max(self.min_interval, interval))

    def for_feed(self, poll_interval_minutes: int | None) -> Limits:
        """This feed's limits: its own minimum when the feed list sets one (the maximum grows to fit it)."""
        if not poll_interval_minutes:
            return self
        low = timedelta(minutes=poll_interval_minutes)
        return replace(self, min_interval=low, max_interval=max(self.max_interval, low))


@dataclass(frozen=True)
class ServerHints:
    """What the feed document and the HTTP response ask of pollers.

    ``ttl``, ``skip_hours`` and ``skip_days`` come from the document (kept across 304 answers, which carry no
    body); ``max_age``, ``expires`` and ``retry_after`` from the response headers.
    """

    ttl: timedelta | None = None
    skip_hours: frozenset[int] = frozenset()
    skip_days: frozenset[int] = frozenset()  # weekday numbers, Monday = 0
    max_age: timedelta | None = None
    expires: datetime | None = None
    retry_after: timedelta | None = None

    def not_before(self, now: datetime) -> datetime | None:
        """The earliest moment the server wants to be asked again, or None if it asked nothing."""
        times = [now + d for d in (self.ttl, self.max_age, self.retry_after) if d is not None]
        if self.expires is not None and self.expires > now:
            times.append(self.expires)
        return max(times) if times else None

    def document_part(self) -> ServerHints:
        """Only what the document said: what a 304 answer inherits from the last full response."""
        return ServerHints(ttl=self.ttl, skip_hours=self.skip_hours, skip_days=self.skip_days)

    def with_document(self, document: ServerHints) -> ServerHints:
        return replace(self, ttl=document.ttl, skip_hours=document.skip_hours, skip_days=document.skip_days)

    def to_json(self) -> dict[str, Any]:
        """The document part as JSON for the schedule table (header hints matter for one decision only)."""
        out: dict[str, Any] = {}
        if self.ttl is not None:
            out["ttl_minutes"] = self.ttl.total_seconds() / 60
        if self.skip_hours:
            out["skip_hours"] = sorted(self.skip_hours)
        if self.skip_days:
            out["skip_days"] = sorted(self.skip_days)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ServerHints:
        data = data or {}
        ttl = data.get("ttl_minutes")
        return cls(
            ttl=timedelta(minutes=float(ttl)) if ttl is not None else None,
            skip_hours=frozenset(int(h) for h in data.get("skip_hours", ())),
            skip_days=frozenset(int(d) for d in data.get("skip_days", ())),
        )


def parse_hints(headers: Mapping[str, str], content: bytes | None, now: datetime) -> ServerHints:
    """Read every polling hint from a response's headers (lower-case keys) and, if given, its body."""
    hints = ServerHints(
        max_age=_max_age(headers.get("cache-control")),
        expires=_http_date(headers.get("expires")),
        retry_after=retry_after_delay(headers.get("retry-after"), now),
    )
    return hints.with_document(document_hints(content)) if content else hints


def document_hints(content: bytes) -> ServerHints:
    """RSS ``<ttl>`` (minutes), ``<skipHours>`` (0-23, UTC) and ``<skipDays>`` of a feed document."""
    ttl_match = _TTL.search(content)
    hours: set[int] = set()
    days: set[int] = set()
    block = _SKIP_HOURS.search(content)
    if block:
        hours = {int(h) % 24 for h in _HOUR.findall(block.group(1)) if 0 <= int(h) <= 24}
    block = _SKIP_DAYS.search(content)
    if block:
        days = {_DAYS[d.decode().lower()] for d in _DAY.findall(block.group(1)) if d.decode().lower() in _DAYS}
    ttl = int(ttl_match.group(1)) if ttl_match else 0
    return ServerHints(
        ttl=timedelta(minutes=ttl) if ttl > 0 else None, skip_hours=frozenset(hours), skip_days=frozenset(days)
    )


def retry_after_delay(value: str | float | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as a delay: seconds, or an HTTP date; None when absent, unparsable or past."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return timedelta(seconds=value) if value > 0 else None
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text)) if int(text) > 0 else None
    moment = _http_date(text)
    return moment - now if moment is not None and moment > now else None


def _max_age(value: str | None) -> timedelta | None:
    if not value or "no-store" in value.lower():
        return None
    match = _MAX_AGE.search(value)
    return timedelta(seconds=int(match.group(1))) if match and int(match.group(1)) > 0 else None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def entry_frequency_interval(
    published: Iterable[datetime], now: datetime, limits: Limits, window: timedelta = WINDOW
) -> timedelta:
    """The interval a feed's publishing rate calls for: its average gap between entries over ``window``,
    divided by :data:`POLLS_PER_ENTRY`, clamped. The gap runs from the oldest recent entry to now, so a
    feed that stopped publishing slows down as its silence grows. No entry in the window: the maximum."""
    recent = [p for p in published if now - window <= p <= now]
    if not recent:
        return limits.max_interval
    gap = (now - min(recent)) / len(recent)
    return limits.clamp(gap / POLLS_PER_ENTRY)


def backoff(failures: int, limits: Limits) -> timedelta:
    """Wait after ``failures`` failed polls in a row: the minimum doubled per failure, up to the maximum."""
    if failures <= 0:
        return limits.min_interval
    return min(limits.max_interval, limits.min_interval * (2 ** min(failures, 30)))


def jittered(interval: timedelta, rng: random.Random, fraction: float = JITTER) -> timedelta:
    """``interval`` moved by a random factor in ``[1 - fraction, 1 + fraction]``."""
    return interval * rng.uniform(1 - fraction, 1 + fraction)


def skip_forward(moment: datetime, skip_hours: frozenset[int], skip_days: frozenset[int]) -> datetime:
    """The first moment at or after ``moment`` outside the feed's skipHours/skipDays (UTC); a feed that
    skips every hour of the week is polled anyway (its hints are contradictory, not a request for silence)."""
    if not skip_hours and not skip_days:
        return moment
    current = moment.astimezone(UTC)
    for _ in range(24 * 8):
        if current.hour not in skip_hours and current.weekday() not in skip_days:
            return current
        current = current.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return moment


def is_permanent(reason: str | None, http_status: int | None) -> bool:
    """Failures that repeating will not fix: the feed is gone (404, 410) or the URL is not a feed."""
    return http_status in PERMANENT_STATUSES or reason in PERMANENT_REASONS


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of a feed showed, as the schedule sees it."""

    status: str  # ok | not_modified | failed
    new_entries: int = 0
    published: tuple[datetime, ...] = ()
    hints: ServerHints = field(default_factory=ServerHints)
    reason: str | None = None  # why it failed
    http_status: int | None = None


@dataclass(frozen=True)
class FeedSchedule:
    """A feed's schedule state, as stored in ``feed_schedule``."""

    interval: timedelta | None = None  # the base interval; None = never polled
    next_poll_at: datetime | None = None
    consecutive_failures: int = 0
    permanent_failures: int = 0
    last_new_entries_at: datetime | None = None
    disabled_reason: str | None = None
    document_hints: ServerHints = field(default_factory=ServerHints)


def plan_next(
    state: FeedSchedule,
    outcome: PollOutcome,
    now: datetime,
    limits: Limits,
    rng: random.Random,
    *,
    anchor: datetime | None = None,
) -> FeedSchedule:
    """The state after a poll: base interval, failure counts, and when to poll next (None = disabled).

    ``anchor`` (default ``now``): the moment the interval counts from. A scheduled run passes its own start,
    so that a feed polled late in a run is due by the same run of the next period, not one period later
    (an interval equal to the run period would otherwise double: a feed polled two minutes into a run would
    be due two minutes after the next run began, and wait for the run after it). What the feed or server
    asks (``ttl``, ``max-age``, ``Retry-After``, ...) still counts from ``now``, the poll itself.
    """
    if outcome.status == "failed":
        failures = state.consecutive_failures + 1
        permanent = state.permanent_failures + 1 if is_permanent(outcome.reason, outcome.http_status) else 0
        base = state.interval or limits.min_interval
        hints = outcome.hints.with_document(state.document_hints)
        if permanent >= limits.disable_after:
            status = f" (HTTP {outcome.http_status})" if outcome.http_status else ""
            return replace(
                state,
                interval=base,
                next_poll_at=None,
                consecutive_failures=failures,
                permanent_failures=permanent,
                disabled_reason=f"{outcome.reason}{status}: failed permanently {permanent} times in a row",
            )
        wait = backoff(failures, limits)
        new_state = replace(state, interval=base, consecutive_failures=failures, permanent_failures=permanent)
    else:
        document = outcome.hints.document_part() if outcome.status == "ok" else state.document_hints
        hints = outcome.hints.with_document(document)
        last_new = now if outcome.new_entries > 0 else state.last_new_entries_at
        if outcome.published:
            base = entry_frequency_interval(outcome.published, now, limits)
        elif outcome.new_entries > 0:  # undated entries: arrivals are the only evidence of its rate
            base = limits.clamp((state.interval or limits.min_interval) / 2)
        else:  # nothing new: let the silence since the last new entry stretch the interval
            base = state.interval or limits.min_interval
            if last_new is not None:
                base = max(base, (now - last_new) / POLLS_PER_ENTRY)
            elif state.interval is not None:  # never a new entry: no evidence of activity, back off
                base = base * 2
            base = limits.clamp(base)
        wait = base
        new_state = FeedSchedule(
            interval=base,
            consecutive_failures=0,
            permanent_failures=0,
            last_new_entries_at=last_new,
            document_hints=document,
        )
    start = anchor if anchor is not None and anchor <= now else now
    moment = start + jittered(wait, rng, limits.jitter)
    floor = hints.not_before(now)
    if floor is not None and floor > moment:
        moment = floor
    moment = skip_forward(moment, hints.skip_hours, hints.skip_days)
    return replace(new_state, next_poll_at=moment)


def enable(state: FeedSchedule, now: datetime) -> FeedSchedule:
    """An operator's re-enable: failures forgotten, due at once."""
    return replace(state, disabled_reason=None, consecutive_failures=0, permanent_failures=0, next_poll_at=now)
