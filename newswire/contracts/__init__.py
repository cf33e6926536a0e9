"""Topic contracts: the only thing ``ingest`` and ``transform`` (and downstream services) share.

Each topic has a name, a key, a schema version and a JSON Schema kept in ``schemas/``. Producers validate
before sending, so a bug on our side is caught at the source rather than in every consumer; consumers
validate on receipt and dead-letter what does not match, so one bad message never stops a partition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import msgspec
from jsonschema import Draft202012Validator, FormatChecker

from newswire.contracts.compiled import Check, compile_schema
from newswire.errors import ContractError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Topic:
    """A Kafka topic and its contract."""

    name: str
    key: str
    schema_file: str
    description: str
    #: Topic-level configs asked for at creation; a broker that refuses them gets the topic without them.
    configs: tuple[tuple[str, str], ...] = ()


ARTICLES = Topic(
    name="newswire.articles",
    key="article_id",
    schema_file="article.v1.json",
    description="One message per fetched article (extracted body and metadata).",
)
EVENTS = Topic(
    name="newswire.events",
    key="event_id",
    schema_file="event.v1.json",
    description="Latest version of each deduplicated event record.",
    # Compacted by key: a new consumer reading from the beginning gets at least the latest version of every
    # event, however old. (The embedded broker accepts the setting but never compacts.)
    configs=(("cleanup.policy", "compact"),),
)
DEAD_LETTERS = Topic(
    name="newswire.dead-letters",
    key="dead_letter_id",
    schema_file="dead_letter.v1.json",
    description="Items that could not be processed, with stage, reason and retry data.",
)
ALL_TOPICS: tuple[Topic, ...] = (ARTICLES, EVENTS, DEAD_LETTERS)


def topic_by_name(name: str) -> Topic:
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(f"unknown topic {name!r}; known: {', '.join(t.name for t in ALL_TOPICS)}")


def schema_for(topic: Topic) -> dict[str, Any]:
    """The topic's JSON Schema as a dict (also served to users by ``newswire schema``)."""
    text = resources.files(__package__).joinpath("schemas", topic.schema_file).read_text("utf-8")
    return json.loads(text)


@cache
def _validator(topic: Topic) -> Draft202012Validator:
    return Draft202012Validator(schema_for(topic), format_checker=FormatChecker())


# Compiled predicates by topic name: looked up once per message, and a frozen dataclass (the key of a
# functools.cache) is hashed field by field at every lookup.
_COMPILED: dict[str, Check] = {}


def _compiled(topic: Topic) -> Check:
    check = _COMPILED.get(topic.name)
    if check is None:
        check = _COMPILED[topic.name] = compile_schema(schema_for(topic), _validator(topic).format_checker)
    return check


def reset_validators() -> None:
    """Compile the validators afresh at their next use, forgetting the format checks they remember (a
    benchmark that encoded its input in-process starts the transform as a process that never saw it)."""
    _COMPILED.clear()


def validate(topic: Topic, message: dict[str, Any]) -> None:
    """Raise :class:`ContractError` when ``message`` breaks the topic's schema.

    The compiled predicate (:mod:`newswire.contracts.compiled`) decides; ``jsonschema`` runs only for a
    message it rejects, to say where and why.
    """
    if _compiled(topic)(message):
        return
    errors = sorted(_validator(topic).iter_errors(message), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise ContractError("schema_violation", f"{topic.name} at {where}: {first.message}")


# Compact UTF-8 JSON with keys sorted at every level, non-ASCII text unescaped: the bytes
# ``json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True)`` gives for every message the
# contracts describe (strings, integers, booleans, null, arrays, objects), in one C call instead of the json
# module's per-value Python encoder. A float is written in its shortest form (``1e16`` for ``1e+16``: the same
# number); non-finite floats, which JSON has no text for, become ``null``.
_ENCODER = msgspec.json.Encoder(order="sorted")
_DECODER = msgspec.json.Decoder()


# Declared properties whose schema constrains the value, by topic name: their values are JSON values once the
# message validates. What else a message holds (undeclared properties, a declared one without a schema such as
# a dead letter's ``payload``) may be anything.
_TYPED: dict[str, frozenset[str]] = {}
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_UNCONSTRAINING = frozenset({"description", "$comment", "title", "examples"})


def _typed_properties(topic: Topic) -> frozenset[str]:
    properties = schema_for(topic).get("properties", {})
    typed = _TYPED[topic.name] = frozenset(k for k, s in properties.items() if set(s) - _UNCONSTRAINING)
    return typed


def _plain(value: Any) -> bool:
    """Whether ``value`` is made only of str, int, float, bool, None, lists and dicts with string keys (exact
    types): what msgspec and the json module write alike."""
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return True
    if kind is list:
        return all(_plain(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    return False


def encode(topic: Topic, message: dict[str, Any]) -> bytes:
    """Validate and serialise a message for ``topic`` (compact UTF-8 JSON, keys sorted).

    msgspec writes some values the json module refused (``datetime``, ``bytes``, ``set``) and refuses keys it
    converted, so what the schema leaves open is checked first (cheap: a message rarely has any). A message with
    anything but plain JSON values there is written by the json module, as every message was before msgspec:
    the same ``TypeError`` for a value JSON has no text for, and non-string keys written as the json module
    converts them (``1`` as ``"1"``, ``True`` as ``"true"``; keys of mixed types it cannot sort: ``TypeError``).
    """
    validate(topic, message)
    typed = _TYPED.get(topic.name) or _typed_properties(topic)
    if not typed.issuperset(message):
        try:
            plain = all(_plain(message[key]) for key in message.keys() - typed)
        except RecursionError:
            plain = False
        if not plain:
            return json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return _ENCODER.encode(message)


def encoded_part(value: Any) -> bytes:
    """The bytes a plain JSON value (str, int, float, bool, None, lists, string-keyed dicts) takes inside a
    message :func:`encode` writes: the same encoder, so a caller can size a list's items once each (an event's
    members) instead of encoding the whole message again for every count it tries."""
    return _ENCODER.encode(value)


def _loads(value: bytes) -> Any:
    """``json.loads(value.decode("utf-8"))``, parsed by msgspec when it can.

    msgspec accepts a subset of what the json module does and returns the same values for it (strict UTF-8,
    standard JSON); whatever it refuses (``NaN``, out-of-range numbers, a lone surrogate escape, a byte-order
    mark, invalid input) is parsed again by the json module, so the same documents decode and the same errors
    (and dead-letter texts) come out as before.
    """
    try:
        return _DECODER.decode(value)
    except msgspec.DecodeError:
        return json.loads(value.decode("utf-8"))


def decode(topic: Topic, value: bytes | None) -> dict[str, Any]:
    """Parse and validate a received message; raise :class:`ContractError` with a dead-letter reason."""
    if value is None:
        raise ContractError("empty_message", f"{topic.name}: message has no value")
    try:
        message = _loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("invalid_json", f"{topic.name}: {exc}") from None
    except RecursionError:  # nesting thousands deep: a poison record, not a reason to stop the consumer
        raise ContractError("invalid_json", f"{topic.name}: JSON nested too deeply") from None
    if not isinstance(message, dict):
        raise ContractError("schema_violation", f"{topic.name}: message is not a JSON object")
    version = message.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ContractError("unsupported_schema_version", f"{topic.name}: schema_version {version!r}")
    validate(topic, message)
    return message


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 text for a datetime (naive values are taken as UTC), the format every contract uses."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    """Inverse of :func:`iso`."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
