"""Hostile values for property-based tests, and valid-looking ones drawn from a JSON schema (the served OpenAPI
document, the protocol's schema), so that every field of every request and message gets both."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

DEEP = 200  # levels of nesting in the deepest value (the parsers' own limits are far above)

HOSTILE_TEXT = [
    "\ud800",  # a lone high surrogate: legal as a JSON escape, not as text
    "a\udfffb",
    "\x00",
    "nul\x00inside",
    "",
    " ",
    "\t\n",
    "\u202eevil",
    "\ufeff",
    "²",  # str.isdigit says yes, int says no
    "١٢٣",  # int says yes
    "1_000",
    " 12 ",
    "-1",
    "%00",
    "../../etc/passwd",
    "'; DROP TABLE participants; --",
    "x" * 5000,
    "€" * 3000,
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "2026-12-01T08:00:00",  # naive
    "2026-02-30T00:00:00Z",
    "2026-12-01T08:00:00+24:00",
    "00000000-0000-0000-0000-000000000000",
    "admin",
]
# The values that have broken request handling before: drawn more often than the rest.
WORST = [
    "\ud800",
    "nul\x00inside",
    "²",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T00:00:00+00:00",
]
HOSTILE_SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    -(2**63) - 1,
    10**30,
    1.5,
    -0.0,
    1e308,
    [],
    {},
    [None],
    {"": None},
    {"\ud800": 1},
]


def _deep(n: int) -> Any:
    value: Any = []
    for _ in range(n):
        value = [value]
    return value


def hostile() -> st.SearchStrategy[Any]:
    """A value no field should crash on: bad text, out-of-range times and numbers, wrong types, deep nesting."""
    return st.one_of(
        st.sampled_from(WORST),
        st.sampled_from(WORST),
        st.sampled_from(HOSTILE_TEXT),
        st.sampled_from(HOSTILE_SCALARS),
        # Any code point, lone surrogates and NUL included.
        st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.just(_deep(DEEP)),
    )


# Values that pass validation, by field name, so that one hostile field among valid ones reaches the code behind
# validation (the database, token minting) instead of stopping at the first wrong field.
GOOD: dict[str, Any] = {
    "title": "Workshop",
    "name": "Room",
    "display_name": "Ana",
    "organisation": "Org",
    "country": "PT",
    "timezone": "Europe/Brussels",
    "email": "ana@example.org",
    "starts_at": "2026-12-01T08:00:00+00:00",
    "ends_at": "2026-12-02T08:00:00+00:00",
    "rooms": ["A", "B"],
    "text": "hello",
    "sdp": "v=0",
    "protocol": [1],
    "exp": "4102444800",
    "by": "admin",
    "sig": "0" * 64,
    "limit": "10",
}


def from_schema(
    schema: dict[str, Any], defs: dict[str, Any], ids: list[str], *, field: str = "", depth: int = 0
) -> st.SearchStrategy[Any]:
    """A value shaped by a JSON schema, valid as far as the schema and GOOD tell."""
    if field in GOOD:
        return st.just(GOOD[field])
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[1]], defs, ids, field=field, depth=depth)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return st.one_of([from_schema(s, defs, ids, field=field, depth=depth) for s in schema[key]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return st.just(GOOD["starts_at"])
        if fmt == "uuid" or field.endswith("_id") or field == "to":
            return st.one_of(st.sampled_from(ids), st.uuids().map(str)) if ids else st.uuids().map(str)
        low = schema.get("minLength", 0)
        return st.text(st.characters(codec="utf-8", exclude_categories=["C"]), min_size=low, max_size=max(low, 20))
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -(2**31)), max_value=schema.get("maximum", 2**31))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs, ids, depth=depth + 1) if depth < 3 else st.nothing()
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=max(schema.get("minItems", 0), 2))
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not props:
            keys = st.sampled_from(ids) if ids else st.uuids().map(str)
            return st.dictionaries(keys, from_schema(extra, defs, ids, depth=depth + 1), max_size=2)
        required = set(schema.get("required", ()))
        fields = {k: from_schema(v, defs, ids, field=k, depth=depth + 1) for k, v in props.items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    return hostile()


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def one_hostile(draw: st.DrawFn, valid: st.SearchStrategy[Any], *, whole: bool = True) -> Any:
    """A valid value with one place (a field, an item, the whole unless `whole` is false) made hostile, or a field
    added that is."""
    value = draw(valid)
    paths = _paths(value) if whole else _paths(value)[1:] or [()]
    path = draw(st.sampled_from(paths))
    if isinstance(value, dict) and draw(st.integers(0, 7)) == 0:
        return {**value, draw(st.sampled_from(["\ud800", "x\x00", "extra", ""])): draw(hostile())}
    return _replace(value, path, draw(hostile()))


def hostile_cursor() -> st.SearchStrategy[str]:
    """Well-formed base64url around a crafted key: what a client that read our cursors might forge."""
    key = st.lists(st.one_of(st.sampled_from(HOSTILE_TEXT), st.uuids().map(str), hostile()), min_size=0, max_size=3)
    return key.map(lambda k: base64.urlsafe_b64encode(dumps(k).encode()).decode().rstrip("="))


def dumps(value: Any) -> str:
    """JSON as a hostile client would send it: lone surrogates become `\\ud800` escapes (ensure_ascii)."""
    return json.dumps(value)


def examples(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """`n` values drawn by Hypothesis (generation only). The async tests send them one by one: a fixed budget per
    operation or message type covers each of them evenly, with one app and one database for all."""
    out: list[Any] = []

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    """Log records that carry a traceback or an error: nothing a client sends may produce one."""
    return [f"{r.name}: {r.getMessage()}" for r in records if r.exc_info or r.levelno >= logging.ERROR]
