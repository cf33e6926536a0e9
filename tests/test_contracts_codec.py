"""``contracts.encode``/``decode`` parse and write through msgspec: the bytes and the outcomes stay those of the
json module (what producers sent and consumers accepted before), valid or not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newswire import contracts
from newswire.errors import ContractError
from tests.test_contracts_compiled import VALID


def _json_module_bytes(message: Any) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _json_module_decode(topic: contracts.Topic, raw: bytes) -> tuple[str, Any]:
    """What ``decode`` did with the json module alone: ("ok", message) or ("error", reason, text)."""
    try:
        message = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ("error", ("invalid_json", f"{topic.name}: {exc}"))
    except RecursionError:
        return ("error", ("invalid_json", f"{topic.name}: JSON nested too deeply"))
    if not isinstance(message, dict):
        return ("error", ("schema_violation", f"{topic.name}: message is not a JSON object"))
    if message.get("schema_version") != contracts.SCHEMA_VERSION:
        return ("error", ("unsupported_schema_version", None))
    try:
        contracts.validate(topic, message)
    except ContractError as exc:
        return ("error", (exc.reason, exc.details))
    return ("ok", message)


def _decode(topic: contracts.Topic, raw: bytes) -> tuple[str, Any]:
    try:
        return ("ok", contracts.decode(topic, raw))
    except ContractError as exc:
        details = None if exc.reason == "unsupported_schema_version" else exc.details
        return ("error", (exc.reason, details))


# Text with every character class JSON escapes or a UTF-8 encoder could get wrong.
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",))
    | st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "\u2028"])
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("topic", contracts.ALL_TOPICS, ids=lambda t: t.name)
def test_encoded_bytes_are_the_json_modules(topic: contracts.Topic) -> None:
    message = {**VALID[topic.name], "zz_extra": {"é": ["漢字", "😀", "tab\there", 'quote"', 2**63, -1]}, "a": None}
    assert contracts.encode(topic, message) == _json_module_bytes(message)


@settings(max_examples=300, deadline=None)
@given(extra=_VALUES, name=_TEXT)
def test_encoded_bytes_are_the_json_modules_for_any_extra_field(extra: Any, name: str) -> None:
    message = {**VALID[contracts.ARTICLES.name], f"x_{name}": extra}  # never one of the schema's own properties
    contracts.validate(contracts.ARTICLES, message)  # additional properties are open: every such message is valid
    assert contracts.encode(contracts.ARTICLES, message) == _json_module_bytes(message)


@settings(max_examples=200, deadline=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_is_written_as_the_same_number(value: float) -> None:
    message = {**VALID[contracts.ARTICLES.name], "score": value}
    assert json.loads(contracts.encode(contracts.ARTICLES, message)) == json.loads(_json_module_bytes(message))


@settings(max_examples=300, deadline=None)
@given(extra=_VALUES, cut=st.integers(0, 400), junk=st.binary(max_size=3))
def test_decode_accepts_and_rejects_what_the_json_module_did(extra: Any, cut: int, junk: bytes) -> None:
    raw = _json_module_bytes({**VALID[contracts.ARTICLES.name], "zz": extra})
    for candidate in (raw, raw[:cut], raw[:cut] + junk + raw[cut:]):
        assert _decode(contracts.ARTICLES, candidate) == _json_module_decode(contracts.ARTICLES, candidate)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":"\\ud800"}',  # a lone surrogate escape: the json module accepts it
        b'{"a":NaN}',
        b'{"a":1e400}',
        b'{"a":123456789012345678901234567890}',
        b'\xef\xbb\xbf{"a":1}',  # a byte-order mark
        b'{"a":"\xed\xa0\x80"}',  # an encoded surrogate: not UTF-8
        b'{"a":1,"a":2}',
        b"[" * 100_000 + b"]" * 100_000,
        b"",
        b"  ",
    ],
)
def test_decode_edge_cases_match_the_json_module(raw: bytes) -> None:
    for topic in contracts.ALL_TOPICS:
        candidate = raw if not raw.startswith(b'{"a"') else raw[:-1] + b"," + _json_module_bytes(VALID[topic.name])[1:]
        assert _decode(topic, candidate) == _json_module_decode(topic, candidate)


@pytest.mark.parametrize(
    "extra",
    [
        datetime(2026, 1, 2, tzinfo=UTC),
        {1, 2},
        b"raw",
        {"nested": [1, {"deeper": datetime(2026, 1, 2, tzinfo=UTC)}]},
        Decimal("1.5"),
        {1: "a", "b": 2},  # keys of mixed types: the json module cannot sort them
    ],
    ids=["datetime", "set", "bytes", "nested-datetime", "decimal", "mixed-keys"],
)
def test_values_json_has_no_text_for_raise_the_json_modules_type_error(extra: Any) -> None:
    """msgspec would write some of these (an ISO date, an array, base64): what the schema leaves open is still
    refused as the json module refused it."""
    for topic in contracts.ALL_TOPICS:
        message = {**VALID[topic.name], "zz_extra": extra}
        with pytest.raises(TypeError):
            _json_module_bytes(message)
        with pytest.raises(TypeError):
            contracts.encode(topic, message)


def test_a_dead_letters_open_payload_is_checked_like_an_undeclared_property() -> None:
    message = {**VALID[contracts.DEAD_LETTERS.name], "payload": {"when": datetime(2026, 1, 2, tzinfo=UTC)}}
    contracts.validate(contracts.DEAD_LETTERS, message)  # the schema says nothing of it
    with pytest.raises(TypeError):
        contracts.encode(contracts.DEAD_LETTERS, message)


@pytest.mark.parametrize(
    "extra",
    [{1: "a", 2: "b"}, {"outer": [{True: None}, {None: 1.5}, {2.5: 3}]}, (1, "tuple"), {10: 1, 9: 2}],
    ids=["int-keys", "nested-odd-keys", "tuple", "numeric-order"],
)
def test_non_string_keys_are_written_as_the_json_module_converts_them(extra: Any) -> None:
    """The json module wrote ``{1: "a"}`` as ``{"1":"a"}`` (msgspec refuses int keys): the same bytes as before."""
    for topic in contracts.ALL_TOPICS:
        message = {**VALID[topic.name], "zz_extra": extra}
        assert contracts.encode(topic, message) == _json_module_bytes(message)
