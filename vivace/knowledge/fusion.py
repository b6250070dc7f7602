"""Reciprocal rank fusion: one ranking from several (vector and full-text)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = ["reciprocal_rank_fusion"]


def reciprocal_rank_fusion(
    rankings: Sequence[tuple[Sequence[Hashable], float]], k: int = 60
) -> list[tuple[Hashable, float]]:
    """``rankings`` are ``(ids best first, weight)``; an id's fused score is the sum over the
    rankings it appears in of ``weight / (k + rank)`` (rank from 1). Best first; ties keep
    the order of first appearance."""
    scores: dict[Hashable, float] = {}
    for ids, weight in rankings:
        if weight == 0:
            continue
        for rank, key in enumerate(ids, 1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])
