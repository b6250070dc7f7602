"""In-memory workflow snapshots."""

from __future__ import annotations

import json
import time

from .. import _logic as L
from .._json import dumps
from ..base import WorkflowStore
from ..records import WorkflowSnapshot

__all__ = ["MemoryWorkflows"]


class MemoryWorkflows(WorkflowStore):
    def __init__(self) -> None:
        self._snaps: dict[tuple[str, str], str] = {}

    async def save_snapshot(self, snapshot: WorkflowSnapshot) -> None:
        L.check_id("workflow", snapshot.workflow)
        L.check_id("run_id", snapshot.run_id)
        key = (snapshot.workflow, snapshot.run_id)
        d = snapshot.to_dict()
        old = self._snaps.get(key)
        if old is not None:
            d["created_at"] = json.loads(old)["created_at"]
        d["updated_at"] = time.time()
        self._snaps[key] = dumps(d, "workflow snapshot")

    async def load_snapshot(self, workflow: str, run_id: str) -> WorkflowSnapshot | None:
        L.check_id("workflow", workflow)
        L.check_id("run_id", run_id)
        text = self._snaps.get((workflow, run_id))
        return WorkflowSnapshot.from_dict(json.loads(text)) if text else None

    async def list_snapshots(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[WorkflowSnapshot]:
        L.check_opt_id("workflow", workflow)
        snaps = [WorkflowSnapshot.from_dict(json.loads(t)) for t in self._snaps.values()]
        snaps = [
            s
            for s in snaps
            if (workflow is None or s.workflow == workflow)
            and (status is None or s.status == status)
        ]
        snaps.sort(key=lambda s: s.updated_at, reverse=True)
        return snaps[:limit]

    async def delete_snapshot(self, workflow: str, run_id: str) -> bool:
        L.check_id("workflow", workflow)
        L.check_id("run_id", run_id)
        return self._snaps.pop((workflow, run_id), None) is not None

    async def prune(self, before: float) -> int:
        old = [k for k, t in self._snaps.items() if json.loads(t)["updated_at"] < before]
        for k in old:
            del self._snaps[k]
        return len(old)
