"""In-memory evaluation scores."""

from __future__ import annotations

import json

from .. import _logic as L
from .._json import dumps
from .._spans import earlier, score_stats_of
from ..base import ScoreStore
from ..records import ScoreRecord, ScoreStats

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
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[ScoreRecord]:
        L.check_opt_id("run_id", run_id)
        L.check_opt_id("trace_id", trace_id)
        out = [
            s
            for s in self._filtered(scorer, since, until)
            if (run_id is None or s.run_id == run_id)
            and (trace_id is None or s.trace_id == trace_id)
            and (before is None or earlier((s.created_at, s.score_id), before))
        ]
        out.sort(key=lambda s: (s.created_at, s.score_id), reverse=True)
        return out[:limit]

    def _filtered(
        self, scorer: str | None, since: float | None, until: float | None
    ) -> list[ScoreRecord]:
        out = [ScoreRecord.from_dict(json.loads(t)) for t in self._scores.values()]
        return [
            s
            for s in out
            if (scorer is None or s.scorer == scorer)
            and (since is None or s.created_at >= since)
            and (until is None or s.created_at < until)
        ]

    async def score_stats(
        self,
        *,
        scorer: str | None = None,
        since: float | None = None,
        until: float | None = None,
        bucket: float | None = None,
    ) -> list[ScoreStats]:
        return score_stats_of(self._filtered(scorer, since, until), bucket=bucket)

    async def prune(self, before: float) -> int:
        old = [k for k, t in self._scores.items() if json.loads(t)["created_at"] < before]
        for k in old:
            del self._scores[k]
        return len(old)
