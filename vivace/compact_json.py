"""Compact JSON for storage rows, server answers and model request bodies.

:func:`compact_encoder` writes with orjson, several times faster than the standard library's
C encoder (see docs/benchmarks.md). What orjson refuses - an integer beyond 64 bits, a dict
key that is not a string, an unpaired surrogate, nesting deeper than 254, a value that
contains itself, a value ``default`` rejects - goes to the standard encoder, which writes
what :func:`json.dumps` writes (an unpaired surrogate as its JSON escape, so the text is
valid UTF-8 everywhere) or raises what it raises. No
circular-reference table is kept between calls (a table shared between calls, and threads,
could report cycles that are not there): a value that contains itself raises
:class:`ValueError` through Python's recursion limit.

Where the text differs from ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``:
non-finite floats (NaN, infinities), which JSON has no literal for, are written as ``null``
(or rejected, ``finite_only=True``); ``uuid.UUID`` values are written as their text and
enums as their value (orjson's own types: ``default`` is not asked); a float may be written
in another of its shortest forms (``1e-7`` for ``1e-07``). Dataclasses and datetimes go to
``default``, as with the standard library.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["compact_bytes_encoder", "compact_encoder", "escape_lone_surrogates"]

_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def compact_encoder(
    default: Callable[[Any], Any] | None = None, *, finite_only: bool = False
) -> Callable[[Any], str]:
    """A function ``value -> str``: compact JSON (``","``/``":"``, non-ASCII kept as is,
    an unpaired surrogate written as its escape).

    ``default`` turns values JSON has no type for into ones it has (else :class:`TypeError`).
    NaN and infinities are written as ``null``; ``finite_only=True`` raises
    :class:`ValueError` for them instead. A value nested deeper than the recursion limit (or
    one that contains itself) raises :class:`ValueError`.
    """
    encode = _encoder(default, finite_only)

    def dumps(value: Any) -> str:
        out = encode(value)
        return out if type(out) is str else out.decode()

    return dumps


def compact_bytes_encoder(
    default: Callable[[Any], Any] | None = None, *, finite_only: bool = False
) -> Callable[[Any], bytes]:
    """:func:`compact_encoder` as UTF-8 bytes, for a request or response body."""
    encode = _encoder(default, finite_only)

    def dumps(value: Any) -> bytes:
        out = encode(value)
        return out.encode() if type(out) is str else out

    return dumps


def _encoder(default: Callable[[Any], Any] | None, finite_only: bool) -> Callable[[Any], Any]:
    """``value -> bytes`` (orjson) or ``str`` (the standard encoder, for what orjson refuses:
    the only one of the two that writes unpaired surrogates, escaped here)."""
    to_json = default or _no_default
    slow = _standard_encoder(to_json)
    fast = orjson.dumps

    def encode(value: Any) -> bytes | str:
        try:
            raw: bytes = fast(value, to_json, _OPTIONS)
        except TypeError:  # orjson refuses it: the standard encoder decides
            if not finite_only:
                try:
                    value = _finite(value)
                except RecursionError:
                    raise ValueError("the value nests too deeply (or contains itself)") from None
            return escape_lone_surrogates(slow(value))
        if finite_only and b"null" in raw:  # a NaN or infinity would be written as null
            return escape_lone_surrogates(slow(value))
        return raw

    return encode


_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_lone_surrogates(json_text: str) -> str:
    """``json_text`` with unpaired surrogates (from a broken decoder: UTF-8 has no bytes for
    them) written as JSON escapes, which mean the same character; the rest stays as is."""
    if json_text.isascii() or _SURROGATE.search(json_text) is None:
        return json_text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)


def replace_lone_surrogates(text: str) -> str:
    """``text`` with unpaired surrogates replaced by U+FFFD, for a wire that must be UTF-8
    and has no escapes (protobuf strings); the rest stays as is."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def _standard_encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """The standard library's C encoder, built once (``json.dumps`` builds one per call),
    without a circular-reference table; non-finite floats raise :class:`ValueError`."""
    options: dict[str, Any] = {
        "separators": (",", ":"),
        "ensure_ascii": False,
        "allow_nan": False,
        "check_circular": False,
        "default": default,
    }
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python implementation)
        encode: Any = json.JSONEncoder(**options).encode
        join = False
    else:
        encode = make(
            None,  # no circular-reference table: see the module docstring
            default,
            json.encoder.encode_basestring,
            None,
            ":",
            ",",
            False,
            False,
            False,
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


def _finite(value: Any) -> Any:
    """``value`` with its non-finite floats as ``None`` (what orjson writes for them), for
    the standard encoder."""
    t = type(value)
    if t is float:
        return value if math.isfinite(value) else None
    if t is dict:
        return {k: _finite(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [_finite(v) for v in value]
    return value


def _no_default(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
