"""Vectors and text matching without numpy: float32 packing, cosine, keyword scores, and
ranking user memories by either."""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Sequence
from typing import Any

from .records import UserMemory

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def pack(vec: Sequence[float]) -> bytes:
    """Little-endian float32 bytes (the layout sqlite-vec reads)."""
    a = array("f", vec)
    if a.itemsize != 4:  # pragma: no cover - every supported platform has 4-byte floats
        raise RuntimeError("float32 arrays are required")
    import sys

    if sys.byteorder != "little":  # pragma: no cover
        a.byteswap()
    return a.tobytes()


def unpack(data: bytes) -> array[float]:
    a = array("f")
    a.frombytes(data)
    import sys

    if sys.byteorder != "little":  # pragma: no cover
        a.byteswap()
    return a


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


def vector_literal(vec: Sequence[float]) -> str:
    """pgvector's text form: ``[1,2,3]``."""
    return "[" + ",".join(repr(float(x)) for x in vec) + "]"


def words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def keyword_score(query_words: set[str], text: str) -> float:
    """Fraction of the query's words found in ``text`` (0.0 to 1.0)."""
    if not query_words:
        return 0.0
    return len(query_words & words(text)) / len(query_words)


def rank_memories(
    rows: list[dict[str, Any]], query: str, embedding: Sequence[float] | None, limit: int
) -> list[UserMemory]:
    """Rank memory dicts (with an ``embedding`` list or None) against a query: cosine
    similarity with ``embedding`` when given, else keyword overlap with ``query``."""
    scored: list[tuple[float, float, dict[str, Any]]] = []
    if embedding is not None:
        qn = norm(embedding)
        for d in rows:
            if d.get("embedding") is not None:
                scored.append((cosine(embedding, d["embedding"], qn), d["created_at"], d))
    else:
        qw = words(query)
        for d in rows:
            s = keyword_score(qw, d["content"] + " " + " ".join(d.get("topics") or ()))
            if s > 0 or not qw:
                scored.append((s, d["created_at"], d))
    scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
    out = []
    for s, _, d in scored[:limit]:
        m = UserMemory.from_dict(d)
        m.score = s
        out.append(m)
    return out
