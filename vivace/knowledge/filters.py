"""Metadata filters: declared per knowledge base, validated once, pushed down to the store.

A filter is a mapping of field to condition::

    {"lang": "en"}                      # equality
    {"year": {"gte": 2020, "lt": 2024}} # ranges: gt, gte, lt, lte
    {"team": {"in": ["core", "docs"]}}  # one of
    {"source": "docs/install.md"}       # the built-in field ``source``

Conditions on several fields must all hold. A chunk without the field never matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidFilter

__all__ = ["FIELD_TYPES", "Condition", "compile_filters", "field_schema", "matches"]

FIELD_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_NAMES = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
}
_OPS = ("eq", "in", "gt", "gte", "lt", "lte")


@dataclass(slots=True, frozen=True)
class Condition:
    """One validated condition: ``field`` ``op`` ``value`` (a tuple for ``in``)."""

    field: str
    op: str
    value: Any


def normalize_declared(declared: Mapping[str, Any] | None) -> dict[str, str]:
    """``{"year": int, "lang": "string"}`` -> ``{"year": "integer", "lang": "string"}``."""
    out: dict[str, str] = {}
    for name, t in (declared or {}).items():
        kind = FIELD_TYPES.get(t) or (
            FIELD_TYPES.get(_NAMES.get(t)) if isinstance(t, str) else None
        )
        if kind is None:
            raise InvalidFilter(
                f"filter field {name!r}: type must be str, int, float or bool, not {t!r}",
                field=name,
            )
        if not name or name == "source" or not isinstance(name, str):
            raise InvalidFilter(f"filter field name {name!r} is reserved or empty", field=name)
        out[name] = kind
    return out


def _check(field: str, kind: str | None, value: Any) -> Any:
    if kind is None:  # undeclared: any JSON scalar
        if value is None or not isinstance(value, str | int | float | bool):
            raise InvalidFilter(
                f"filter {field!r}: values must be strings, numbers or booleans", field=field
            )
        return value
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise InvalidFilter(
            f"filter {field!r} is a {kind}; {value!r} is a {type(value).__name__}", field=field
        )
    return float(value) if kind == "number" else value


def compile_filters(
    filters: Mapping[str, Any] | None, declared: Mapping[str, str], *, strict: bool
) -> list[Condition]:
    """Validate ``filters`` against the declared fields (``strict``: only declared fields and
    ``source``) and return their conditions."""
    if not filters:
        return []
    if not isinstance(filters, Mapping):
        raise InvalidFilter("filters must be an object of field -> condition")
    out: list[Condition] = []
    for field, cond in filters.items():
        if field == "source":
            kind: str | None = "string"
        else:
            kind = declared.get(field)
            if kind is None and strict:
                known = ", ".join(["source", *declared]) or "source"
                raise InvalidFilter(f"unknown filter field {field!r}; known: {known}", field=field)
        if isinstance(cond, Mapping):
            if not cond:
                raise InvalidFilter(f"filter {field!r}: empty condition", field=field)
            for op, value in cond.items():
                if op not in _OPS:
                    raise InvalidFilter(
                        f"filter {field!r}: unknown operator {op!r} (use {', '.join(_OPS)})",
                        field=field,
                    )
                if op == "in":
                    if not isinstance(value, list | tuple) or not value:
                        raise InvalidFilter(
                            f"filter {field!r}: 'in' takes a non-empty list", field=field
                        )
                    out.append(Condition(field, "in", tuple(_check(field, kind, v) for v in value)))
                else:
                    v = _check(field, kind, value)
                    if op != "eq" and (kind in ("string", "boolean") or isinstance(v, str | bool)):
                        raise InvalidFilter(f"filter {field!r}: ranges need numbers", field=field)
                    out.append(Condition(field, op, v))
        elif isinstance(cond, list | tuple):
            out.append(Condition(field, "in", tuple(_check(field, kind, v) for v in cond)))
        else:
            out.append(Condition(field, "eq", _check(field, kind, cond)))
    return out


def _value(source: str, metadata: Mapping[str, Any], field: str) -> Any:
    return source if field == "source" else metadata.get(field)


def matches(conds: list[Condition], source: str, metadata: Mapping[str, Any]) -> bool:
    """Whether a chunk passes every condition (the in-memory store's pushdown)."""
    for c in conds:
        v = _value(source, metadata, c.field)
        if v is None:
            return False
        if isinstance(c.value, tuple):
            if not any(_eq(v, x) for x in c.value):
                return False
            continue
        if c.op == "eq":
            if not _eq(v, c.value):
                return False
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        if (
            (c.op == "gt" and not v > c.value)
            or (c.op == "gte" and not v >= c.value)
            or (c.op == "lt" and not v < c.value)
            or (c.op == "lte" and not v <= c.value)
        ):
            return False
    return True


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def field_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one declared field's condition (for the search tool)."""
    base: dict[str, Any] = {"type": kind}
    variants: list[dict[str, Any]] = [
        base,
        {
            "type": "object",
            "properties": {"in": {"type": "array", "items": base, "minItems": 1}},
            "required": ["in"],
            "additionalProperties": False,
        },
    ]
    if kind in ("integer", "number"):
        variants.append(
            {
                "type": "object",
                "properties": {op: base for op in ("gt", "gte", "lt", "lte")},
                "minProperties": 1,
                "additionalProperties": False,
            }
        )
    return {"anyOf": variants}
