"""Vectors as stored: float32 little-endian bytes (SQLite BLOBs, sqlite-vec, the knowledge
stores' writes), pgvector's text and binary forms, and cosine similarity without numpy."""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Sequence

from ...errors import UserError

__all__ = [
    "check_vector",
    "cosine",
    "norm",
    "pack",
    "pg_decode",
    "pg_encode",
    "to_floats",
    "unpack",
    "vector_literal",
]

_BIG = sys.byteorder == "big"


def pack(vec: Sequence[float]) -> bytes:
    """Little-endian float32 bytes (the layout sqlite-vec reads)."""
    a = array("f", vec)
    if _BIG:  # pragma: no cover - every platform we run on is little-endian
        a.byteswap()
    return a.tobytes()


def unpack(data: bytes) -> array[float]:
    """The float32 values of :func:`pack`'s bytes."""
    a = array("f")
    a.frombytes(data)
    if _BIG:  # pragma: no cover
        a.byteswap()
    return a


def to_floats(vec: Sequence[float] | bytes) -> list[float]:
    """A vector given as floats or as :func:`pack` bytes, as a list of floats."""
    return unpack(vec).tolist() if isinstance(vec, bytes | bytearray) else [float(x) for x in vec]


def check_vector(vec: Sequence[float], what: str = "an embedding") -> list[float]:
    """``vec`` as floats; :class:`~vivace.errors.UserError` when it is empty or holds
    something that is not a finite number (pgvector refuses NaN and infinity, and a cosine
    with them means nothing)."""
    try:
        out = [float(x) for x in vec]
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a sequence of numbers") from None
    if not out:
        raise UserError(f"{what} needs at least one dimension")
    if not all(map(math.isfinite, out)):
        raise UserError(f"{what} holds NaN or infinity")
    return out


def norm(vec: Sequence[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vec))


def cosine(a: Sequence[float], b: Sequence[float], a_norm: float | None = None) -> float:
    """Cosine similarity (0.0 when either vector is zero or the sizes differ)."""
    if len(a) != len(b):
        return 0.0
    na = norm(a) if a_norm is None else a_norm
    nb = norm(b)
    if na == 0.0 or nb == 0.0:
        return 0.0
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def vector_literal(vec: Sequence[float] | bytes) -> str:
    """pgvector's text form, ``[1,2,3]`` (9 significant digits: float32 round-trips)."""
    return "[" + ",".join(map("{:.9g}".format, to_floats(vec))) + "]"


def pg_encode(data: bytes) -> bytes:
    """:func:`pack` bytes -> pgvector's binary format (for an asyncpg type codec)."""
    a = unpack(data)
    if not _BIG:
        a.byteswap()
    return struct.pack(">HH", len(a), 0) + a.tobytes()


def pg_decode(data: bytes) -> bytes:
    """pgvector's binary format -> :func:`pack` bytes."""
    (n, _) = struct.unpack_from(">HH", data)
    a = array("f")
    a.frombytes(data[4 : 4 + 4 * n])
    if not _BIG:
        a.byteswap()
    return a.tobytes()
