"""Retrieval quality: recall@k and nDCG@k of a knowledge base's search over labeled queries.

``qrels`` map a query id to its relevant document sources (``{"q1": {"doc-a": 1}}``, graded
relevance allowed). Hits are chunks; a document counts at the rank of its best chunk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .knowledge_base import KnowledgeBase

__all__ = ["RetrievalScores", "evaluate", "ndcg_at_k", "recall_at_k"]


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    """The share of the relevant documents found in the first ``k``."""
    rel = {d for d, g in relevant.items() if g > 0}
    if not rel:
        return 0.0
    return len(rel & set(ranked[:k])) / len(rel)


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    """Normalized discounted cumulative gain at ``k`` (gain = the relevance grade)."""
    dcg = sum(relevant.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def dedupe_sources(sources: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(sources))


@dataclass(slots=True)
class RetrievalScores:
    mode: str
    recall: float
    ndcg: float
    queries: int
    k: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            f"recall@{self.k}": self.recall,
            f"ndcg@{self.k}": self.ndcg,
            "queries": self.queries,
        }


async def evaluate(
    kb: KnowledgeBase,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, float]],
    *,
    k: int = 10,
    modes: Sequence[str] = ("vector", "text", "hybrid"),
    chunk_depth: int = 3,
) -> dict[str, RetrievalScores]:
    """Mean recall@k and nDCG@k per search mode (``chunk_depth * k`` chunks are fetched so
    ``k`` distinct documents remain after merging chunks of one document)."""
    out: dict[str, RetrievalScores] = {}
    for mode in modes:
        rs, ns = [], []
        for qid, text in queries.items():
            rel = qrels.get(qid) or {}
            if not rel:
                continue
            hits = await kb.asearch(text, top_k=chunk_depth * k, mode=mode, rerank=False)
            ranked = dedupe_sources([h.source for h in hits])
            rs.append(recall_at_k(ranked, rel, k))
            ns.append(ndcg_at_k(ranked, rel, k))
        n = len(rs)
        out[mode] = RetrievalScores(
            mode, sum(rs) / n if n else 0.0, sum(ns) / n if n else 0.0, n, k
        )
    return out
