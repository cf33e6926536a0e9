"""The poll-interval policy (ingest/schedule_policy.py): entry frequency, server hints, backoff, clamps, jitter,
disabling."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from ingest.schedule_policy import (
    POLLS_PER_ENTRY,
    FeedSchedule,
    Limits,
    PollOutcome,
    ServerHints,
    backoff,
    document_hints,
    enable,
    entry_frequency_interval,
    is_permanent,
    jittered,
    parse_hints,
    plan_next,
    retry_after_delay,
    skip_forward,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a Monday
LIMITS = Limits(timedelta(minutes=5), timedelta(hours=24), disable_after=3, jitter=0.0)
MIN, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def plan(state: FeedSchedule, outcome: PollOutcome, limits: Limits = LIMITS, seed: int = 1) -> FeedSchedule:
    return plan_next(state, outcome, NOW, limits, random.Random(seed))


# -- entry frequency ---------------------------------------------------------------------------------------


def test_a_feed_publishing_every_two_hours_is_polled_a_dozen_times_per_entry() -> None:
    published = [NOW - i * 2 * HOUR for i in range(1, 13)]  # 12 entries over the last 24 h
    assert entry_frequency_interval(published, NOW, LIMITS) == 2 * HOUR / POLLS_PER_ENTRY


def test_an_hourly_feed_is_polled_at_the_minimum_interval() -> None:
    assert entry_frequency_interval([NOW - i * HOUR for i in range(1, 30)], NOW, LIMITS) == 5 * MIN


def test_a_feed_without_recent_entries_gets_the_maximum_and_silence_stretches_the_interval() -> None:
    assert entry_frequency_interval([NOW - 30 * DAY], NOW, LIMITS) == DAY
    assert entry_frequency_interval([], NOW, LIMITS) == DAY
    recent = entry_frequency_interval([NOW - 1 * DAY, NOW - 2 * DAY], NOW, LIMITS)
    older = entry_frequency_interval([NOW - 5 * DAY, NOW - 6 * DAY], NOW, LIMITS)
    assert recent < older


def test_entries_dated_in_the_future_do_not_count() -> None:
    assert entry_frequency_interval([NOW + HOUR] * 50, NOW, LIMITS) == DAY


def test_an_ok_poll_sets_the_interval_from_the_entries_dates() -> None:
    after = plan(
        FeedSchedule(), PollOutcome("ok", new_entries=3, published=(NOW - HOUR, NOW - 2 * HOUR, NOW - 3 * HOUR))
    )
    assert after.interval == HOUR / POLLS_PER_ENTRY * 1 or after.interval == 5 * MIN
    assert after.next_poll_at == NOW + after.interval and after.last_new_entries_at == NOW


def test_a_not_modified_poll_keeps_the_interval_until_silence_outgrows_it() -> None:
    state = FeedSchedule(interval=10 * MIN, last_new_entries_at=NOW - 30 * MIN)
    assert plan(state, PollOutcome("not_modified")).interval == 10 * MIN
    quiet = FeedSchedule(interval=10 * MIN, last_new_entries_at=NOW - 2 * DAY)
    assert plan(quiet, PollOutcome("not_modified")).interval == 2 * DAY / POLLS_PER_ENTRY


def test_a_feed_that_never_had_an_entry_doubles_its_interval_up_to_the_maximum() -> None:
    state = plan(FeedSchedule(), PollOutcome("ok"))  # first poll of an empty feed: the minimum
    assert state.interval == 5 * MIN
    seen = []
    for _ in range(10):
        state = plan(state, PollOutcome("not_modified"))
        seen.append(state.interval)
    assert seen[:3] == [10 * MIN, 20 * MIN, 40 * MIN] and seen[-1] == DAY


def test_undated_new_entries_halve_the_interval_down_to_the_minimum() -> None:
    assert (
        plan(FeedSchedule(interval=HOUR, last_new_entries_at=NOW - HOUR), PollOutcome("ok", new_entries=2)).interval
        == 30 * MIN
    )
    assert plan(FeedSchedule(interval=6 * MIN), PollOutcome("ok", new_entries=2)).interval == 5 * MIN


# -- clamps and the feed list's own minimum ----------------------------------------------------------------


def test_clamps_and_a_feeds_own_minimum() -> None:
    assert LIMITS.clamp(MIN) == 5 * MIN and LIMITS.clamp(3 * DAY) == DAY
    own = LIMITS.for_feed(60)
    assert own.min_interval == HOUR and own.max_interval == DAY
    assert LIMITS.for_feed(3000).max_interval == timedelta(minutes=3000)
    assert LIMITS.for_feed(None) is LIMITS
    busy = PollOutcome("ok", new_entries=1, published=tuple(NOW - i * MIN for i in range(1, 60)))
    assert plan(FeedSchedule(), busy, own).interval == HOUR


# -- server hints ------------------------------------------------------------------------------------------

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><ttl>90</ttl>
<skipHours><hour>0</hour><hour>1</hour><hour>2</hour></skipHours>
<skipDays><day>Saturday</day><day>Sunday</day><day>Caturday</day></skipDays>
<item><title>a</title></item></channel></rss>"""


def test_document_hints_read_ttl_skip_hours_and_skip_days() -> None:
    hints = document_hints(RSS)
    assert hints.ttl == 90 * MIN
    assert hints.skip_hours == {0, 1, 2} and hints.skip_days == {5, 6}
    assert document_hints(b"<rss><channel><ttl>0</ttl></channel></rss>").ttl is None


def test_header_hints_cache_control_expires_and_retry_after() -> None:
    headers = {
        "cache-control": "public, max-age=1800",
        "expires": "Mon, 07 Dec 2026 14:00:00 GMT",
        "retry-after": "120",
    }
    hints = parse_hints(headers, None, NOW)
    assert hints.max_age == 30 * MIN and hints.expires == NOW + 2 * HOUR and hints.retry_after == 2 * MIN
    assert hints.not_before(NOW) == NOW + 2 * HOUR
    assert parse_hints({"cache-control": "no-store, max-age=600"}, None, NOW).max_age is None
    assert parse_hints({"expires": "not a date"}, None, NOW).expires is None
    assert retry_after_delay("Mon, 07 Dec 2026 12:10:00 GMT", NOW) == 10 * MIN
    assert retry_after_delay("Mon, 07 Dec 2026 11:00:00 GMT", NOW) is None
    assert retry_after_delay(90.0, NOW) == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("hints", "earliest"),
    [
        (ServerHints(ttl=3 * HOUR), NOW + 3 * HOUR),
        (ServerHints(max_age=2 * HOUR), NOW + 2 * HOUR),
        (ServerHints(expires=NOW + 5 * HOUR), NOW + 5 * HOUR),
        (ServerHints(retry_after=HOUR), NOW + HOUR),
    ],
)
def test_each_server_signal_delays_the_next_poll_past_the_feed_rate(hints: ServerHints, earliest: datetime) -> None:
    busy = (NOW - MIN, NOW - 2 * MIN, NOW - 3 * MIN)
    after = plan(FeedSchedule(), PollOutcome("ok", new_entries=3, published=busy, hints=hints))
    assert after.interval == 5 * MIN  # the rate says 5 minutes ...
    assert after.next_poll_at == earliest  # ... the server says later


def test_a_hint_shorter_than_the_interval_changes_nothing() -> None:
    after = plan(
        FeedSchedule(interval=HOUR, last_new_entries_at=NOW - HOUR),
        PollOutcome("not_modified", hints=ServerHints(max_age=MIN)),
    )
    assert after.next_poll_at == NOW + HOUR


def test_skip_hours_and_days_move_the_poll_to_the_next_allowed_hour() -> None:
    friday_late = datetime(2026, 12, 11, 23, 30, tzinfo=UTC)
    moved = skip_forward(friday_late, frozenset({23, 0, 1}), frozenset({5, 6}))
    assert moved == datetime(2026, 12, 14, 2, 0, tzinfo=UTC)  # Monday 02:00
    assert skip_forward(NOW, frozenset(range(24)), frozenset()) == NOW  # contradictory: ignored
    assert skip_forward(NOW, frozenset({3}), frozenset()) == NOW


def test_a_304_keeps_the_documents_skip_hours_from_the_last_full_response() -> None:
    first = plan(FeedSchedule(), PollOutcome("ok", hints=parse_hints({}, RSS, NOW)))
    assert first.document_hints.skip_hours == {0, 1, 2}
    late = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    again = plan_next(first, PollOutcome("not_modified"), late, LIMITS, random.Random(1))
    assert again.document_hints == first.document_hints
    assert again.next_poll_at is not None and again.next_poll_at.hour == 3  # ttl 90 min lands in 0-2 h: 03:00
    restored = ServerHints.from_json(first.document_hints.to_json())
    assert restored == first.document_hints


# -- failures ----------------------------------------------------------------------------------------------


def test_backoff_doubles_per_failure_up_to_the_maximum() -> None:
    assert [backoff(n, LIMITS) for n in (0, 1, 2, 3)] == [5 * MIN, 10 * MIN, 20 * MIN, 40 * MIN]
    assert backoff(20, LIMITS) == DAY and backoff(10_000, LIMITS) == DAY


def test_transient_failures_back_off_and_a_success_resets_them() -> None:
    state = FeedSchedule(interval=HOUR, last_new_entries_at=NOW - HOUR)
    for n in (1, 2, 3, 4):
        state = plan(state, PollOutcome("failed", reason="timeout"))
        assert state.consecutive_failures == n and state.permanent_failures == 0
        assert state.next_poll_at == NOW + backoff(n, LIMITS) and state.disabled_reason is None
    assert state.interval == HOUR  # the feed's own rate is kept for when it recovers
    ok = plan(state, PollOutcome("not_modified"))
    assert ok.consecutive_failures == 0 and ok.next_poll_at == NOW + HOUR


def test_a_failure_with_retry_after_waits_at_least_that_long() -> None:
    after = plan(
        FeedSchedule(),
        PollOutcome("failed", reason="http_status", http_status=503, hints=ServerHints(retry_after=3 * HOUR)),
    )
    assert after.next_poll_at == NOW + 3 * HOUR


@pytest.mark.parametrize(
    ("reason", "status", "permanent"),
    [
        ("http_status", 404, True),
        ("http_status", 410, True),
        ("not_a_feed", 200, True),
        ("http_status", 503, False),
        ("timeout", None, False),
        ("invalid_xml", 200, False),
    ],
)
def test_permanent_failures_are_404_410_and_not_a_feed(reason: str, status: int | None, permanent: bool) -> None:
    assert is_permanent(reason, status) is permanent


def test_permanent_failures_disable_the_feed_after_n_in_a_row_and_enable_resets_it() -> None:
    gone = PollOutcome("failed", reason="http_status", http_status=410)
    state = FeedSchedule()
    state = plan(plan(state, gone), gone)
    assert state.disabled_reason is None and state.permanent_failures == 2
    disabled = plan(state, gone)
    assert disabled.next_poll_at is None
    assert (
        disabled.disabled_reason is not None
        and "HTTP 410" in disabled.disabled_reason
        and "3 times" in disabled.disabled_reason
    )
    back = enable(disabled, NOW)
    assert back.disabled_reason is None and back.next_poll_at == NOW
    assert back.permanent_failures == 0 and back.consecutive_failures == 0


def test_a_transient_failure_between_permanent_ones_restarts_the_count() -> None:
    gone = PollOutcome("failed", reason="http_status", http_status=404)
    state = plan(plan(FeedSchedule(), gone), gone)
    state = plan(state, PollOutcome("failed", reason="timeout"))
    assert state.permanent_failures == 0 and state.consecutive_failures == 3
    assert plan(state, gone).disabled_reason is None


# -- jitter ------------------------------------------------------------------------------------------------


def test_jitter_stays_within_its_bounds_and_spreads_polls() -> None:
    rng = random.Random(7)
    values = [jittered(HOUR, rng, 0.1) for _ in range(2000)]
    assert all(54 * MIN <= v <= 66 * MIN for v in values)
    assert max(values) - min(values) > 10 * MIN  # actually spread, not a constant
    jittery = Limits(5 * MIN, DAY, jitter=0.1)
    moments = {
        plan(
            FeedSchedule(interval=HOUR, last_new_entries_at=NOW - HOUR), PollOutcome("not_modified"), jittery, seed=s
        ).next_poll_at
        for s in range(20)
    }
    assert len(moments) == 20
    assert all(NOW + 54 * MIN <= m <= NOW + 66 * MIN for m in moments if m is not None)


def test_a_scheduled_runs_start_anchors_the_interval_but_not_what_the_server_asks() -> None:
    run_start = NOW - 3 * MIN  # the feed was polled three minutes into its run
    state = FeedSchedule(interval=5 * MIN, last_new_entries_at=NOW)
    anchored = plan_next(state, PollOutcome("not_modified"), NOW, LIMITS, random.Random(1), anchor=run_start)
    assert anchored.next_poll_at == run_start + 5 * MIN  # due by the next run, not 3 minutes after it began
    asked = PollOutcome("not_modified", hints=ServerHints(max_age=4 * MIN))
    floored = plan_next(state, asked, NOW, LIMITS, random.Random(1), anchor=run_start)
    assert floored.next_poll_at == NOW + 4 * MIN  # max-age counts from the response, not from the run
    future = plan_next(state, PollOutcome("not_modified"), NOW, LIMITS, random.Random(1), anchor=NOW + HOUR)
    assert future.next_poll_at == NOW + 5 * MIN  # an anchor after the poll is ignored
