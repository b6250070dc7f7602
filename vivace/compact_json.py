"""Compact JSON text, encoded by the C encoder straight away.

``json.dumps(value, separators=...)`` builds a ``JSONEncoder`` per call, and even a kept
encoder's ``encode()`` builds a new C encoder (and its circular-reference table) on every
call, a set-up that costs as much as encoding a small value. :func:`compact_encoder`
builds the C encoder once. It keeps no circular-reference table (a table shared between
calls, and threads, could report cycles that are not there): a value that contains itself
raises :class:`ValueError` through Python's recursion limit instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["compact_encoder"]


def compact_encoder(
    default: Callable[[Any], Any] | None = None, *, allow_nan: bool = True
) -> Callable[[Any], str]:
    """A function ``value -> str``: compact JSON (``","``/``":"``, non-ASCII kept as is).

    ``default`` turns values JSON has no type for into ones it has (else :class:`TypeError`);
    ``allow_nan=False`` raises :class:`ValueError` for NaN and infinities. A value nested
    deeper than the recursion limit (or one that contains itself) raises :class:`ValueError`.
    """
    slow = json.JSONEncoder(
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=allow_nan,
        check_circular=False,
        default=default or _no_default,
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python implementation)
        encode: Any = slow.encode
        join = False
    else:
        encode = make(
            None,  # no circular-reference table: see the module docstring
            slow.default,
            json.encoder.encode_basestring,
            None,
            ":",
            ",",
            False,
            False,
            allow_nan,
        )
        join = True

    def dumps(value: Any) -> str:
        try:
            if join:
                return "".join(encode(value, 0))
            return str(encode(value))
        except RecursionError:
            raise ValueError("the value nests too deeply (or contains itself)") from None

    return dumps


def _no_default(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
