"""The published JSON Schemas compiled into plain Python predicates, for the per-message hot path.

``jsonschema``'s validator walks the schema for every message, resolving keywords and building error
objects as it goes; the transform decodes every article message, so that walk was a visible share of its
cost. A schema is compiled once here into nested closures that only answer "valid or not". The schemas stay
the contract: compilation covers exactly the keywords the published schemas use, with ``jsonschema``'s
semantics (draft 2020-12: ``integer`` accepts 1.0 but not ``true``, ``const``/``enum`` tell ``1`` from
``true``, ``pattern`` searches, formats go through the same :class:`~jsonschema.FormatChecker`), and any
other keyword makes :func:`compile_schema` refuse, so a schema change can never be silently under-checked.
A message the predicate rejects is validated again by ``jsonschema`` for the error message, so dead-letter
reasons and texts do not change; a test proves both accept and reject the same documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import FormatChecker

__all__ = ["Check", "UnsupportedSchema", "compile_schema"]

Check = Callable[[Any], bool]

# Keywords that only annotate (2020-12 does not assert ``contentEncoding`` by default).
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "contentEncoding", "$comment", "examples"})


class UnsupportedSchema(ValueError):
    """The schema uses a keyword this compiler does not implement: validate it with ``jsonschema`` instead."""


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": _is_integer,
    "number": _is_number,
}


def _equal(a: Any, b: Any) -> bool:
    """JSON equality as ``jsonschema`` applies it: ``true`` is not ``1``, containers compare element-wise."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def compile_schema(schema: Mapping[str, Any] | bool, format_checker: FormatChecker | None = None) -> Check:
    """A predicate true exactly when ``jsonschema`` (draft 2020-12, with ``format_checker``) finds no error."""
    if schema is True:
        return lambda v: True
    if schema is False:
        return lambda v: False
    if not isinstance(schema, Mapping):
        raise UnsupportedSchema(f"schema must be an object or a boolean, got {type(schema).__name__}")
    checks: list[Check] = []
    properties: dict[str, Check] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "type":
            names = [value] if isinstance(value, str) else list(value)
            if any(name not in _TYPES for name in names):
                raise UnsupportedSchema(f"unknown type in {names!r}")
            tests = tuple(_TYPES[name] for name in names)
            checks.append(tests[0] if len(tests) == 1 else (lambda v, tests=tests: any(t(v) for t in tests)))
        elif key == "const":
            checks.append(lambda v, c=value: _equal(v, c))
        elif key == "enum":
            checks.append(lambda v, options=tuple(value): any(_equal(v, o) for o in options))
        elif key == "required":
            names = tuple(value)
            checks.append(lambda v, names=names: not isinstance(v, dict) or all(n in v for n in names))
        elif key == "properties":
            properties = {name: compile_schema(sub, format_checker) for name, sub in value.items()}
            items = tuple(properties.items())
            checks.append(
                lambda v, items=items: not isinstance(v, dict) or all(check(v[n]) for n, check in items if n in v)
            )
        elif key == "additionalProperties":
            if value is True:
                continue
            known = frozenset(schema.get("properties", {}))
            if "patternProperties" in schema:
                raise UnsupportedSchema("additionalProperties beside patternProperties")
            extra = compile_schema(value, format_checker)
            checks.append(
                lambda v, known=known, extra=extra: (
                    not isinstance(v, dict) or all(extra(item) for name, item in v.items() if name not in known)
                )
            )
        elif key == "items":
            if "prefixItems" in schema:
                raise UnsupportedSchema("items beside prefixItems")
            each = compile_schema(value, format_checker)
            checks.append(lambda v, each=each: not isinstance(v, list) or all(each(item) for item in v))
        elif key == "pattern":
            regex = re.compile(value)
            checks.append(lambda v, regex=regex: not isinstance(v, str) or regex.search(v) is not None)
        elif key == "minLength":
            checks.append(lambda v, n=value: not isinstance(v, str) or len(v) >= n)
        elif key == "maxLength":
            checks.append(lambda v, n=value: not isinstance(v, str) or len(v) <= n)
        elif key == "minimum":
            checks.append(lambda v, n=value: not _is_number(v) or v >= n)
        elif key == "maximum":
            checks.append(lambda v, n=value: not _is_number(v) or v <= n)
        elif key == "format":
            if format_checker is None or value not in format_checker.checkers:
                continue  # jsonschema ignores a format it has no checker for
            checks.append(lambda v, fmt=value, checker=format_checker: checker.conforms(v, fmt))
        else:
            raise UnsupportedSchema(f"keyword {key!r} is not compiled")
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    chain = tuple(checks)
    return lambda v: all(check(v) for check in chain)
