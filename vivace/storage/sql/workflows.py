"""SQL workflow snapshots, with their table."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from .. import _logic as L
from .._json import dumps
from ..base import WorkflowStore
from ..records import WorkflowSnapshot
from ._engine import Engine
from .schema import ID, Time, metadata

__all__ = ["SQLWorkflows", "workflow_snapshots"]

workflow_snapshots = sa.Table(
    "vivace_workflow_snapshots",
    metadata,
    sa.Column("workflow", ID, primary_key=True),
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("status", sa.String(64)),
    sa.Column("snapshot", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_vivace_wf_updated", "updated_at"),
    info={"since": 1},
)
_wf = workflow_snapshots


class SQLWorkflows(WorkflowStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def save_snapshot(self, snapshot: WorkflowSnapshot) -> None:
        L.check_id("workflow", snapshot.workflow)
        L.check_id("run_id", snapshot.run_id)
        now = time.time()
        ins = self.engine.insert(_wf).values(
            workflow=snapshot.workflow,
            run_id=snapshot.run_id,
            status=snapshot.status,
            snapshot=dumps(snapshot.snapshot, "workflow snapshot"),
            created_at=snapshot.created_at,
            updated_at=now,
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[_wf.c.workflow, _wf.c.run_id],
            set_={k: ins.excluded[k] for k in ("status", "snapshot", "updated_at")},
        )
        async with self.engine.tx(True) as conn:
            await conn.execute(stmt)

    @staticmethod
    def _from(m: Any) -> WorkflowSnapshot:
        return WorkflowSnapshot(
            m["workflow"],
            m["run_id"],
            json.loads(m["snapshot"]),
            m["status"],
            m["created_at"],
            m["updated_at"],
        )

    async def load_snapshot(self, workflow: str, run_id: str) -> WorkflowSnapshot | None:
        L.check_id("workflow", workflow)
        L.check_id("run_id", run_id)
        async with self.engine.tx(False) as conn:
            row = (
                await conn.execute(
                    sa.select(_wf).where(_wf.c.workflow == workflow, _wf.c.run_id == run_id)
                )
            ).first()
        return self._from(row._mapping) if row is not None else None

    async def list_snapshots(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[WorkflowSnapshot]:
        L.check_opt_id("workflow", workflow)
        q = sa.select(_wf)
        if workflow is not None:
            q = q.where(_wf.c.workflow == workflow)
        if status is not None:
            q = q.where(_wf.c.status == status)
        q = q.order_by(_wf.c.updated_at.desc()).limit(limit)
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [self._from(r._mapping) for r in rows]

    async def delete_snapshot(self, workflow: str, run_id: str) -> bool:
        L.check_id("workflow", workflow)
        L.check_id("run_id", run_id)
        async with self.engine.tx(True) as conn:
            res = await conn.execute(
                sa.delete(_wf).where(_wf.c.workflow == workflow, _wf.c.run_id == run_id)
            )
        return bool(res.rowcount)

    async def prune(self, before: float) -> int:
        async with self.engine.tx(True) as conn:
            res = await conn.execute(sa.delete(_wf).where(_wf.c.updated_at < before))
        return int(res.rowcount or 0)
