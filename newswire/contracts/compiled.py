"""The published JSON Schemas compiled into straight-line Python predicates, for the per-message hot path.

``jsonschema``'s validator walks the schema for every message, resolving keywords and building error
objects as it goes; the transform decodes every article message, so that walk was a visible share of its
cost. A schema is compiled once here into the source of one Python function (``if`` statements that return
``False`` at the first broken rule, ``for`` loops over arrays and extra properties) and executed once: a
message then costs a few dozen inline tests instead of one Python call per keyword and per field, which is
what the earlier closure-based compiler spent most of its time on.

The schemas stay the contract: compilation covers exactly the keywords the published schemas use, with
``jsonschema``'s semantics (draft 2020-12: ``integer`` accepts 1.0 but not ``true``, ``const``/``enum`` tell
``1`` from ``true``, ``pattern`` searches, formats go through the same :class:`~jsonschema.FormatChecker`),
and any other keyword makes :func:`compile_schema` refuse, so a schema change can never be silently
under-checked. A message the predicate rejects is validated again by ``jsonschema`` for the error message,
so dead-letter reasons and texts do not change; a test proves both accept and reject the same documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import FormatChecker

__all__ = ["Check", "UnsupportedSchema", "compile_schema", "schema_source"]

Check = Callable[[Any], bool]

# Keywords that only annotate (2020-12 does not assert ``contentEncoding`` by default).
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "contentEncoding", "$comment", "examples"})

# The Python test of each JSON type, over a variable named by ``{v}``.
_TYPE_TESTS = {
    "string": "isinstance({v}, str)",
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "boolean": "isinstance({v}, bool)",
    "null": "{v} is None",
    "integer": "_is_integer({v})",
    "number": "_is_number({v})",
}
# Keywords that only constrain one kind of value: their tests run under one guard of that kind.
_STRING_KEYWORDS = ("pattern", "minLength", "maxLength")
_NUMBER_KEYWORDS = ("minimum", "maximum")
_OBJECT_KEYWORDS = ("required", "properties", "additionalProperties")


class UnsupportedSchema(ValueError):
    """The schema uses a keyword this compiler does not implement: validate it with ``jsonschema`` instead."""


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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


class _Emitter:
    """Writes the body of one predicate: lines of Python, and the constants they refer to by name."""

    def __init__(self, format_checker: FormatChecker | None) -> None:
        self.format_checker = format_checker
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {
            "_is_integer": _is_integer,
            "_is_number": _is_number,
            "_equal": _equal,
            "_MISSING": _MISSING,
            "_conforms": _FormatMemo(format_checker) if format_checker is not None else None,
        }
        self._names = 0

    def name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def constant(self, value: Any) -> str:
        name = self.name("_c")
        self.constants[name] = value
        return name

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def fail_unless(self, depth: int, test: str) -> None:
        self.line(depth, f"if not ({test}):")
        self.line(depth + 1, "return False")

    def schema(self, schema: Mapping[str, Any] | bool, v: str, depth: int) -> None:
        """Lines that return ``False`` when the value in variable ``v`` breaks ``schema``, at indent ``depth``."""
        if schema is True:
            return
        if schema is False:
            self.line(depth, "return False")
            return
        if not isinstance(schema, Mapping):
            raise UnsupportedSchema(f"schema must be an object or a boolean, got {type(schema).__name__}")
        handled = {*_STRING_KEYWORDS, *_NUMBER_KEYWORDS, *_OBJECT_KEYWORDS, "type", "const", "enum", "items", "format"}
        for key in schema:
            if key not in handled and key not in _ANNOTATIONS:
                raise UnsupportedSchema(f"keyword {key!r} is not compiled")
        if "items" in schema and "prefixItems" in schema:
            raise UnsupportedSchema("items beside prefixItems")
        if "additionalProperties" in schema and "patternProperties" in schema:
            raise UnsupportedSchema("additionalProperties beside patternProperties")
        known = self._type(schema, v, depth)
        if "const" in schema:
            self._options(v, depth, (schema["const"],))
        if "enum" in schema:
            self._options(v, depth, tuple(schema["enum"]))
        self._guarded(schema, v, depth, known, "str", "isinstance({v}, str)", self._string)
        self._guarded(schema, v, depth, known, "number", "_is_number({v})", self._number)
        self._guarded(schema, v, depth, known, "dict", "isinstance({v}, dict)", self._object)
        if "items" in schema:
            self._guarded(schema, v, depth, known, "list", "isinstance({v}, list)", self._items)
        if "format" in schema:
            fmt = schema["format"]
            # jsonschema ignores a format it has no checker for; a checker sees every kind of value, as there.
            if self.format_checker is not None and fmt in self.format_checker.checkers:
                self.fail_unless(depth, f"_conforms({v}, {fmt!r})")

    def _type(self, schema: Mapping[str, Any], v: str, depth: int) -> str | None:
        """Emit the ``type`` test; return the one Python kind ``v`` is known to have after it, if any."""
        if "type" not in schema:
            return None
        value = schema["type"]
        names = [value] if isinstance(value, str) else list(value)
        if any(name not in _TYPE_TESTS for name in names):
            raise UnsupportedSchema(f"unknown type in {names!r}")
        self.fail_unless(depth, " or ".join(_TYPE_TESTS[name].format(v=v) for name in names))
        kinds = {"string": "str", "object": "dict", "array": "list"}
        return kinds.get(names[0]) if len(names) == 1 else None

    def _options(self, v: str, depth: int, options: tuple[Any, ...]) -> None:
        if all(isinstance(o, str) for o in options):
            # _equal of a string option: true exactly for an equal str.
            self.fail_unless(depth, f"isinstance({v}, str) and {v} in {self.constant(frozenset(options))}")
        elif len(options) == 1 and type(options[0]) in (int, float):
            # _equal of a number: equal to it and not a boolean (1.0 equals 1; true does not).
            self.fail_unless(depth, f"not isinstance({v}, bool) and {v} == {self.constant(options[0])}")
        else:
            self.fail_unless(depth, f"any(_equal({v}, _o) for _o in {self.constant(options)})")

    def _guarded(
        self,
        schema: Mapping[str, Any],
        v: str,
        depth: int,
        known: str | None,
        kind: str,
        guard: str,
        body: Callable[[Mapping[str, Any], str, int], None],
    ) -> None:
        """Emit ``body`` under ``if guard:`` (skipped when the type test already proved the kind)."""
        if known == kind:
            body(schema, v, depth)
            return
        start = len(self.lines)
        self.line(depth, f"if {guard.format(v=v)}:")
        body(schema, v, depth + 1)
        if len(self.lines) == start + 1:  # nothing to check for this kind
            self.lines.pop()

    def _string(self, schema: Mapping[str, Any], v: str, depth: int) -> None:
        if "pattern" in schema:
            self.fail_unless(depth, f"{self.constant(re.compile(schema['pattern']))}.search({v}) is not None")
        if "minLength" in schema:
            self.fail_unless(depth, f"len({v}) >= {self.constant(schema['minLength'])}")
        if "maxLength" in schema:
            self.fail_unless(depth, f"len({v}) <= {self.constant(schema['maxLength'])}")

    def _number(self, schema: Mapping[str, Any], v: str, depth: int) -> None:
        if "minimum" in schema:
            self.fail_unless(depth, f"{v} >= {self.constant(schema['minimum'])}")
        if "maximum" in schema:
            self.fail_unless(depth, f"{v} <= {self.constant(schema['maximum'])}")

    def _object(self, schema: Mapping[str, Any], v: str, depth: int) -> None:
        if "required" in schema:
            self.fail_unless(depth, f"{v}.keys() >= {self.constant(frozenset(schema['required']))}")
        for name, sub in schema.get("properties", {}).items():
            item = self.name("_v")
            start = len(self.lines)
            self.line(depth, f"{item} = {v}.get({name!r}, _MISSING)")
            self.line(depth, f"if {item} is not _MISSING:")
            self.schema(sub, item, depth + 1)
            if len(self.lines) == start + 2:  # the property's schema checks nothing
                del self.lines[start:]
        extra = schema.get("additionalProperties", True)
        if extra is True:
            return
        known = self.constant(frozenset(schema.get("properties", {})))
        if extra is False:
            self.fail_unless(depth, f"{v}.keys() <= {known}")
            return
        key, item = self.name("_k"), self.name("_v")
        start = len(self.lines)
        self.line(depth, f"for {key}, {item} in {v}.items():")
        self.line(depth + 1, f"if {key} not in {known}:")
        self.schema(extra, item, depth + 2)
        if len(self.lines) == start + 2:
            del self.lines[start:]

    def _items(self, schema: Mapping[str, Any], v: str, depth: int) -> None:
        item = self.name("_v")
        start = len(self.lines)
        self.line(depth, f"for {item} in {v}:")
        self.schema(schema["items"], item, depth + 1)
        if len(self.lines) == start + 1:
            self.lines.pop()


_MISSING = object()


class _FormatMemo:
    """``FormatChecker.conforms`` remembered for strings: a format check is a pure function of the text, and
    many values recur from message to message (a feed's URL, a run's fetch times, a URL that is also the
    canonical one), and the checkers themselves (regexes, date arithmetic) do far more work per value than
    a type or length test, so a recurring value is checked once. Bounded: the memo is emptied when it reaches ``limit``
    entries."""

    def __init__(self, checker: FormatChecker, limit: int = 4096) -> None:
        self._checker = checker
        self._limit = limit
        self._seen: dict[tuple[str, str], bool] = {}

    def __call__(self, value: Any, fmt: str) -> bool:
        if not isinstance(value, str):
            return self._checker.conforms(value, fmt)
        key = (fmt, value)
        known = self._seen.get(key)
        if known is None:
            if len(self._seen) >= self._limit:
                self._seen.clear()
            known = self._seen[key] = self._checker.conforms(value, fmt)
        return known


def _emit(schema: Mapping[str, Any] | bool, format_checker: FormatChecker | None) -> _Emitter:
    emitter = _Emitter(format_checker)
    emitter.line(0, "def check(v):")
    emitter.schema(schema, "v", 1)
    emitter.line(1, "return True")
    return emitter


def schema_source(schema: Mapping[str, Any] | bool, format_checker: FormatChecker | None = None) -> str:
    """The Python source :func:`compile_schema` runs for ``schema`` (to read when a parity test fails)."""
    return "\n".join(_emit(schema, format_checker).lines)


def compile_schema(schema: Mapping[str, Any] | bool, format_checker: FormatChecker | None = None) -> Check:
    """A predicate true exactly when ``jsonschema`` (draft 2020-12, with ``format_checker``) finds no error."""
    emitter = _emit(schema, format_checker)
    namespace = dict(emitter.constants)
    # The source is built only from this module's templates, identifiers it numbers and repr() of property
    # and format names; every other schema value (patterns, options, bounds) is a named constant, not text.
    exec(compile("\n".join(emitter.lines), "<compiled schema>", "exec"), namespace)
    check: Check = namespace["check"]
    return check
