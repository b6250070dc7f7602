"""JSON as every backend stores it: compact text, typed errors, one canonical form."""

from __future__ import annotations

import json
from typing import Any

from ..compact_json import compact_encoder, escape_lone_surrogates
from .errors import StateNotSerializableError

__all__ = ["canon", "dumps", "dumps_opt", "loads", "text_in", "text_out"]


def _default(o: Any) -> Any:
    dump = getattr(o, "model_dump", None)
    if dump is not None:  # pydantic models (e.g. structured output)
        return dump(mode="json")
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


_encode = compact_encoder(_default, finite_only=True)


def dumps(value: Any, what: str = "value") -> str:
    """Compact JSON text; non-serializable values raise :class:`StateNotSerializableError`.

    Control characters (NUL included) are escaped by JSON itself, so the text fits every
    database's text type (PostgreSQL's cannot hold NUL)."""
    try:
        text = _encode(value)
    except (TypeError, ValueError) as exc:
        raise StateNotSerializableError(
            f"{what} is not JSON-serializable: {exc}", field=what
        ) from None
    return text  # unpaired surrogates come escaped: valid UTF-8 for every database


def dumps_opt(value: Any, what: str = "value") -> str | None:
    return None if value is None else dumps(value, what)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def canon(value: Any) -> str:
    """The canonical JSON of ``value`` (sorted keys), to compare values. Raises TypeError or
    ValueError for values JSON cannot hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def text_in(text: str | None) -> str | None:
    """Free text (a session name, memory content) as stored: a JSON string, so any character -
    NUL included - round-trips on every database."""
    if text is None:
        return None
    return escape_lone_surrogates(json.dumps(str(text), ensure_ascii=False))


def text_out(stored: str | None) -> str | None:
    """The free text :func:`text_in` stored."""
    return None if stored is None else str(json.loads(stored))
