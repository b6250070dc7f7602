"""In-memory evaluation scores."""

from __future__ import annotations

import json

from .. import _logic as L
from .._json import dumps
from ..base import ScoreStore
from ..records import ScoreRecord

__all__ = ["MemoryScores"]


class MemoryScores(ScoreStore):
    def __init__(self) -> None:
        self._scores: dict[str, str] = {}

    async def add_score(self, score: ScoreRecord) -> None:
        L.check_id("score_id", score.score_id)
        L.check_opt_id("run_id", score.run_id)
        L.check_opt_id("trace_id", score.trace_id)
        self._scores[score.score_id] = dumps(score.to_dict(), "score")

    async def list_scores(
        self,
        *,
        run_id: str | None = None,
        trace_id: str | None = None,
        scorer: str | None = None,
        limit: int = 100,
    ) -> list[ScoreRecord]:
        L.check_opt_id("run_id", run_id)
        L.check_opt_id("trace_id", trace_id)
        out = [ScoreRecord.from_dict(json.loads(t)) for t in self._scores.values()]
        out = [
            s
            for s in out
            if (run_id is None or s.run_id == run_id)
            and (trace_id is None or s.trace_id == trace_id)
            and (scorer is None or s.scorer == scorer)
        ]
        out.sort(key=lambda s: s.created_at, reverse=True)
        return out[:limit]

    async def prune(self, before: float) -> int:
        old = [k for k, t in self._scores.items() if json.loads(t)["created_at"] < before]
        for k in old:
            del self._scores[k]
        return len(old)
