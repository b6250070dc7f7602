"""Metadata conditions as SQL for the SQLite and PostgreSQL stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InvalidFilter
from ..filters import Condition

__all__ = ["pg_conditions", "sqlite_conditions", "sqlite_json_path"]

_SQL_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _check_name(field: str) -> None:
    if '"' in field or "\\" in field or any(ord(ch) < 32 for ch in field):
        raise InvalidFilter(
            f"filter field {field!r} has characters filters cannot name", field=field
        )


def sqlite_json_path(field: str) -> str:
    """The SQL literal of a field's JSON path (``'$."year"'``), inlined rather than bound so
    the per-field expression indexes of the SQLite store match the queries."""
    _check_name(field)
    return "'" + f'$."{field}"'.replace("'", "''") + "'"


def sqlite_conditions(
    conds: Sequence[Condition], table: str, meta_col: str = "metadata"
) -> tuple[str, list[Any]]:
    """``(sql, params)``: the conditions ANDed, on ``table``'s ``source`` and JSON metadata."""
    parts: list[str] = []
    params: list[Any] = []
    for c in conds:
        if c.field == "source":
            col = f"{table}.source"
            typ = None
        else:
            path = sqlite_json_path(c.field)
            col = f"json_extract({table}.{meta_col}, {path})"
            typ = f"json_type({table}.{meta_col}, {path})"
        values = c.value if c.op == "in" else (c.value,)
        kinds = {type(v) for v in values}
        guard = ""
        if typ is not None:
            if bool in kinds:
                guard = f"{typ} IN ('true', 'false') AND "
            elif kinds <= {int, float}:
                guard = f"{typ} IN ('integer', 'real') AND "
            else:
                guard = f"{typ} = 'text' AND "
        if c.op == "in":
            expr = f"{col} IN ({', '.join('?' for _ in values)})"
        else:
            expr = f"{col} {_SQL_OPS[c.op]} ?"
        params += [int(v) if isinstance(v, bool) else v for v in values]
        parts.append(f"({guard}{expr})")
    return " AND ".join(parts), params


def pg_conditions(conds: Sequence[Condition], table: str, start: int) -> tuple[str, list[Any]]:
    """``(sql, params)`` for asyncpg (``$start``, ``$start+1``...), on JSONB metadata."""
    parts: list[str] = []
    params: list[Any] = []
    n = start

    def p(v: Any) -> str:
        nonlocal n
        params.append(v)
        n += 1
        return f"${n - 1}"

    for c in conds:
        values = c.value if c.op == "in" else (c.value,)
        kinds = {type(v) for v in values}
        if c.field == "source":
            col, guard = f"{table}.source", ""
        else:
            _check_name(c.field)
            key = p(c.field)
            raw = f"({table}.metadata -> {key}::text)"
            if bool in kinds:
                col, guard = (
                    f"({table}.metadata ->> {key}::text)::boolean",
                    f"jsonb_typeof{raw} = 'boolean' AND ",
                )
            elif kinds <= {int, float}:
                col, guard = (
                    f"({table}.metadata ->> {key}::text)::float8",
                    f"jsonb_typeof{raw} = 'number' AND ",
                )
            else:
                col, guard = (
                    f"({table}.metadata ->> {key}::text)",
                    f"jsonb_typeof{raw} = 'string' AND ",
                )
        if c.op == "in":
            vals = [
                float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in values
            ]
            cast = (
                "float8[]"
                if kinds <= {int, float} and bool not in kinds
                else ("boolean[]" if bool in kinds else "text[]")
            )
            expr = f"{col} = ANY({p(vals)}::{cast})"
        else:
            v = c.value
            if isinstance(v, int | float) and not isinstance(v, bool):
                expr = f"{col} {_SQL_OPS[c.op]} {p(float(v))}::float8"
            elif isinstance(v, bool):
                expr = f"{col} = {p(v)}::boolean"
            else:
                expr = f"{col} = {p(v)}::text"
        # a CASE keeps the cast from running on rows whose value has another type
        parts.append(
            f"(CASE WHEN {guard}TRUE THEN {expr} ELSE FALSE END)" if guard else f"({expr})"
        )
    return " AND ".join(parts), params
