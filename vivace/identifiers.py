"""The one rule for ids and names that cross a boundary (HTTP, headers, storage).

Any text a person can type is a valid id - Chinese, emoji, spaces, punctuation - so long as it
has no control characters (C0 ``\\x00``-``\\x1f``, DEL, C1 ``\\x80``-``\\x9f``), no unpaired
surrogates (not encodable as UTF-8), is not empty, is not ``.`` or ``..`` (URL clients remove
those path segments, so such an id could never be addressed) and is at most
:data:`MAX_ID_LENGTH` characters. The server checks at the edge (400 naming the field, before any run starts) and
every storage backend checks the same way, so the Python API and HTTP agree.
"""

from __future__ import annotations

import os
import re

from .errors import InvalidIdentifier

__all__ = [
    "MAX_ID_LENGTH",
    "check_identifier",
    "check_optional_identifier",
    "is_identifier",
    "new_id",
]

MAX_ID_LENGTH = 256

_DOTS = (".", "..")
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def new_id() -> str:
    """A random id (runs, sessions): 32 hex digits laid out as a UUID4 (``uuid.uuid4().hex``
    costs about twice as much: it builds a ``UUID`` object to read one attribute)."""
    r = bytearray(os.urandom(16))
    r[6] = r[6] & 0x0F | 0x40  # version 4
    r[8] = r[8] & 0x3F | 0x80  # RFC 4122 variant
    return r.hex()


def is_identifier(value: object) -> bool:
    """Whether ``value`` is a str that :func:`check_identifier` accepts."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and _BAD.search(value) is None
        and value not in _DOTS
    )


def check_identifier(field: str, value: object) -> str:
    """Return ``value`` if it is a valid id, else raise :class:`InvalidIdentifier` naming ``field``."""
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:
        # printable ASCII (the usual id) has nothing to look for: C1 controls and surrogates
        # are not ASCII
        bad = None if value.isascii() and value.isprintable() else _BAD.search(value)
        if bad is None:
            if value in _DOTS:
                raise InvalidIdentifier(
                    f"{field} must not be {value!r} (a URL path cannot carry it)", field=field
                )
            return value
        raise InvalidIdentifier(
            f"{field} contains a control character or unpaired surrogate "
            f"(U+{ord(bad.group()):04X} at position {bad.start()})",
            field=field,
        )
    if not isinstance(value, str):
        raise InvalidIdentifier(f"{field} must be a string", field=field)
    if not value:
        raise InvalidIdentifier(f"{field} must not be empty", field=field)
    raise InvalidIdentifier(
        f"{field} is longer than {MAX_ID_LENGTH} characters ({len(value)})", field=field
    )


def check_optional_identifier(field: str, value: object) -> str | None:
    """Like :func:`check_identifier`, but ``None`` passes through."""
    return None if value is None else check_identifier(field, value)
