"""SQL evaluation scores, with their table."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from .. import _logic as L
from .._json import dumps
from ..base import ScoreStore
from ..records import ScoreRecord, ScoreStats
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
    sa.Index("ix_vivace_scores_scorer", "scorer", "created_at", info={"since": 5}),
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
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[ScoreRecord]:
        L.check_opt_id("run_id", run_id)
        L.check_opt_id("trace_id", trace_id)
        q = self._where(sa.select(_sc), scorer, since, until)
        if run_id is not None:
            q = q.where(_sc.c.run_id == run_id)
        if trace_id is not None:
            q = q.where(_sc.c.trace_id == trace_id)
        if before is not None:
            t, score_id = before
            q = q.where(
                sa.or_(
                    _sc.c.created_at < t,
                    sa.and_(_sc.c.created_at == t, _sc.c.score_id < score_id),
                )
            )
        q = q.order_by(_sc.c.created_at.desc(), _sc.c.score_id.desc()).limit(limit)
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        out = []
        for r in rows:
            d = dict(r._mapping)
            d["metadata"] = json.loads(d["metadata"])
            out.append(ScoreRecord.from_dict(d))
        return out

    @staticmethod
    def _where(q: Any, scorer: str | None, since: float | None, until: float | None) -> Any:
        if scorer is not None:
            q = q.where(_sc.c.scorer == scorer)
        if since is not None:
            q = q.where(_sc.c.created_at >= since)
        if until is not None:
            q = q.where(_sc.c.created_at < until)
        return q

    async def score_stats(
        self,
        *,
        scorer: str | None = None,
        since: float | None = None,
        until: float | None = None,
        bucket: float | None = None,
    ) -> list[ScoreStats]:
        keys: list[Any] = [_sc.c.scorer]
        if bucket:
            keys.insert(
                0, (sa.func.floor(_sc.c.created_at / bucket) * bucket).label("bucket_start")
            )
        q = self._where(
            sa.select(
                *keys,
                sa.func.count().label("n"),
                sa.func.avg(_sc.c.score).label("mean"),
                sa.func.min(_sc.c.score).label("lo"),
                sa.func.max(_sc.c.score).label("hi"),
            ),
            scorer,
            since,
            until,
        )
        q = q.group_by(*keys).order_by(*keys)
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        out = []
        for r in rows:
            m = r._mapping
            out.append(
                ScoreStats(
                    scorer=m["scorer"],
                    count=int(m["n"]),
                    mean=float(m["mean"]),
                    min=float(m["lo"]),
                    max=float(m["hi"]),
                    time=float(m["bucket_start"]) if bucket else None,
                )
            )
        return out

    async def prune(self, before: float) -> int:
        async with self.engine.tx(True) as conn:
            res = await conn.execute(sa.delete(_sc).where(_sc.c.created_at < before))
        return int(res.rowcount or 0)
