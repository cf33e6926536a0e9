"""Event content digests: equal records get equal digests, and an upgrade from the earlier digest form re-versions
no unchanged event (which would publish it again)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from transform.eventrecords import DIGEST_PREFIX, build_event_record, digest, digests, legacy_digest

MOMENT = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)


def _record(**changes: Any) -> dict[str, Any]:
    member = {
        "article_id": "a1",
        "url": "https://x/1",
        "source": "Le Monde",
        "title": "Séisme à Taïwan",
        "language": "fr",
        "published_at": MOMENT,
        "fetched_at": MOMENT + timedelta(minutes=1),
        "description": "",
        "text": "Un séisme « fort » a frappé 台湾 ce matin.",
    }
    record = build_event_record(
        "evt_1",
        [member],
        representative_id="a1",
        keywords=["séisme", "台湾"],
        entities={"places": ["Taïwan"], "people": []},
    )
    return {**record, **changes}


def test_legacy_digest_is_the_value_events_were_saved_under_before() -> None:
    # computed by the digest of main before DIGEST_PREFIX (json.dumps, sorted keys), for this very record
    assert legacy_digest(_record()) == "f5c0b7768add4f57ee8eb98bfc5f7ed5"


def test_equal_records_get_equal_digests_whatever_their_key_order_or_time_zone() -> None:
    record = _record()
    assert digest(record).startswith(DIGEST_PREFIX)
    reordered = dict(reversed(record.items()))
    reordered["entities"] = dict(reversed(record["entities"].items()))
    reordered["articles"] = [dict(reversed(a.items())) for a in record["articles"]]
    assert digest(reordered) == digest(record)
    elsewhere = record["first_seen_at"].astimezone(timezone(timedelta(hours=8)))
    assert digest({**record, "first_seen_at": elsewhere}) == digest(record)
    assert digest({**record, "first_seen_at": record["first_seen_at"].replace(tzinfo=None)}) == digest(record)
    assert digest({**record, "first_seen_at": elsewhere + timedelta(microseconds=1)}) != digest(record)
    assert digest({**record, "version": 7, "updated_at": MOMENT}) == digest(record)  # not content
    assert digest({**record, "keywords": ["台湾", "séisme"]}) != digest(record)
    assert digest({**record, "article_count": 2}) != digest(record)


def test_an_unchanged_record_keeps_its_stored_legacy_digest_and_a_changed_one_gets_a_new_form_digest() -> None:
    unchanged, changed, fresh, current = _record(), _record(event_id="evt_2"), _record(event_id="evt_3"), _record()
    changed["keywords"] = ["autre"]
    current["event_id"] = "evt_4"
    stored = {
        "evt_1": {"content_digest": legacy_digest(unchanged)},
        "evt_2": {"content_digest": legacy_digest({**changed, "keywords": ["séisme", "台湾"]})},
        "evt_4": {"content_digest": digest(current)},
    }
    out = dict((record["event_id"], value) for record, value in digests([unchanged, changed, fresh, current], stored))
    assert out["evt_1"] == stored["evt_1"]["content_digest"]  # save_events sees it unchanged: no new version
    assert out["evt_2"] == digest(changed) != stored["evt_2"]["content_digest"]
    assert out["evt_3"] == digest(fresh)
    assert out["evt_4"] == digest(current) == stored["evt_4"]["content_digest"]
