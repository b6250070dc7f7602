"""Ranking user memories: cosine similarity with an embedding, or keyword overlap. (The
vector formats and the message index shared with the knowledge stores: :mod:`.vectors`.)"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .records import UserMemory
from .vectors.codec import cosine, norm, pack, unpack

__all__ = ["keyword_score", "pack", "rank_memories", "unpack", "words"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


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
