"""SQL evaluation scores, with their table."""

from __future__ import annotations

import json

import sqlalchemy as sa

from .. import _logic as L
from .._json import dumps
from ..base import ScoreStore
from ..records import ScoreRecord
from ._engine import Engine
from .schema import ID, Time, metadata

__all__ = ["SQLScores", "scores"]

scores = sa.Table(
    "vivace_scores",
    metadata,
    sa.Column("score_id", ID, primary_key=True),
    sa.Column("scorer", ID, nullable=False),
    sa.Column("score", sa.Float(precision=53), nullable=False),
    sa.Column("run_id", ID),
    sa.Column("trace_id", ID),
    sa.Column("reason", sa.Text),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_vivace_scores_run", "run_id"),
    sa.Index("ix_vivace_scores_created", "created_at"),
    info={"since": 1},
)
_sc = scores


class SQLScores(ScoreStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def add_score(self, score: ScoreRecord) -> None:
        L.check_id("score_id", score.score_id)
        L.check_opt_id("run_id", score.run_id)
        L.check_opt_id("trace_id", score.trace_id)
        d = score.to_dict()
        d["metadata"] = dumps(d["metadata"], "score metadata")
        async with self.engine.tx(True) as conn:
            await conn.execute(sa.insert(_sc).values(**d))

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
        q = sa.select(_sc)
        if run_id is not None:
            q = q.where(_sc.c.run_id == run_id)
        if trace_id is not None:
            q = q.where(_sc.c.trace_id == trace_id)
        if scorer is not None:
            q = q.where(_sc.c.scorer == scorer)
        q = q.order_by(_sc.c.created_at.desc()).limit(limit)
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        out = []
        for r in rows:
            d = dict(r._mapping)
            d["metadata"] = json.loads(d["metadata"])
            out.append(ScoreRecord.from_dict(d))
        return out

    async def prune(self, before: float) -> int:
        async with self.engine.tx(True) as conn:
            res = await conn.execute(sa.delete(_sc).where(_sc.c.created_at < before))
        return int(res.rowcount or 0)
