"""In-memory workflow runs and steps (kept as JSON text, like the SQL backends)."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from typing import Any

from ..base import CANCELLED_BY_REQUEST, WorkflowStore, claim_parked, mark_resumed
from ..records import (
    WORKFLOW_FINAL,
    WORKFLOW_PARKED,
    ResumeOutcome,
    StepRecord,
    WorkflowRunRecord,
)

__all__ = ["MemoryWorkflows", "wf_dumps"]


def wf_dumps(value: Any) -> str:
    """JSON text of a workflow value (step outputs may be models, dataclasses, datetimes)."""
    import pydantic_core

    return pydantic_core.to_json(value).decode()


class MemoryWorkflows(WorkflowStore):
    """Workflow runs in this process (see :class:`~vivace.storage.WorkflowStore`)."""

    def __init__(self) -> None:
        self._runs: dict[str, str] = {}
        self._steps: dict[str, dict[str, str]] = {}

    def _run(self, run_id: str) -> WorkflowRunRecord | None:
        text = self._runs.get(run_id)
        return None if text is None else WorkflowRunRecord.from_dict(json.loads(text))

    def _put(self, run: WorkflowRunRecord) -> None:
        self._runs[run.run_id] = wf_dumps(run.to_dict())

    def _step_rows(self, run_id: str) -> list[StepRecord]:
        rows = [StepRecord.from_dict(json.loads(t)) for t in self._steps.get(run_id, {}).values()]
        rows.sort(key=lambda r: r.seq)
        return rows

    async def create_run(self, run: WorkflowRunRecord, *, lease: float = 30.0) -> bool:
        if run.run_id in self._runs:
            return False
        now = time.time()
        run.lease_expires_at = None if run.engine == "dbos" else now + lease
        run.updated_at = now
        self._put(run)
        self._steps[run.run_id] = {}
        return True

    async def save_step(self, run_id: str, step: StepRecord) -> None:
        self._steps.setdefault(run_id, {})[step.path] = wf_dumps(step.to_dict())

    async def finish_run(
        self, run: WorkflowRunRecord, *, owner: str | None, steps: Sequence[StepRecord] = ()
    ) -> list[StepRecord]:
        current = self._run(run.run_id)
        if current is not None and owner is not None and current.owner not in (None, owner):
            return []
        for s in steps:
            await self.save_step(run.run_id, s)
        if run.status in WORKFLOW_PARKED:
            parked = {p["path"] for p in run.suspended}
            resumed = [
                s for s in self._step_rows(run.run_id) if s.path in parked and s.status == "resumed"
            ]
            if resumed:
                return resumed
        run.updated_at = time.time()
        if run.status != "running":
            run.lease_expires_at = None
        if current is not None:
            run.cancel_requested = current.cancel_requested and run.status == "running"
            run.owner = current.owner
        self._put(run)
        return []

    async def load_run(self, run_id: str) -> tuple[WorkflowRunRecord, list[StepRecord]] | None:
        run = self._run(run_id)
        return None if run is None else (run, self._step_rows(run_id))

    async def get_run(self, run_id: str) -> WorkflowRunRecord | None:
        return self._run(run_id)

    async def resume_step(
        self,
        run_id: str,
        path: str,
        data: Any,
        *,
        owner: str,
        lease: float = 30.0,
        event: str | None = None,
    ) -> ResumeOutcome:
        from ...errors import WorkflowRunNotFound

        run = self._run(run_id)
        if run is None:
            raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
        target = mark_resumed(run, self._step_rows(run_id), path, event, data)
        await self.save_step(run_id, target)
        claimed = claim_parked(run, owner, lease)
        if claimed:
            self._put(run)
        return ResumeOutcome(claimed, run, self._step_rows(run_id))

    async def heartbeat(
        self, owner: str, run_ids: Collection[str], *, lease: float = 30.0
    ) -> set[str]:
        out = set()
        now = time.time()
        for run_id in run_ids:
            run = self._run(run_id)
            if run is None or run.status != "running" or run.owner != owner:
                continue
            run.lease_expires_at = now + lease
            self._put(run)
            if run.cancel_requested:
                out.add(run_id)
        return out

    async def claim_expired(
        self,
        owner: str,
        *,
        workflows: Collection[str] | None = None,
        lease: float = 30.0,
        limit: int = 100,
    ) -> list[WorkflowRunRecord]:
        now = time.time()
        out = []
        for run_id in list(self._runs):
            run = self._run(run_id)
            if run is None or run.status != "running" or run.lease_expires_at is None:
                continue
            if run.lease_expires_at > now:
                continue
            if workflows is not None and run.workflow not in workflows:
                continue
            run.owner, run.lease_expires_at = owner, now + lease
            self._put(run)
            out.append(run)
            if len(out) >= limit:
                break
        return out

    async def request_cancel(self, run_id: str) -> str | None:
        run = self._run(run_id)
        if run is None:
            return None
        if run.status in WORKFLOW_PARKED:
            run.status, run.error, run.suspended = "cancelled", dict(CANCELLED_BY_REQUEST), []
            run.updated_at = time.time()
            self._put(run)
            return "cancelled"
        if run.status == "running":
            run.cancel_requested = True
            self._put(run)
        return run.status

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        statuses: Collection[str] | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[WorkflowRunRecord]:
        runs = [r for r in (self._run(i) for i in self._runs) if r is not None]
        runs = [
            r
            for r in runs
            if (workflow is None or r.workflow == workflow)
            and (statuses is None or r.status in statuses)
            and (user_id is None or r.user_id == user_id)
        ]
        runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return runs[offset : offset + limit]

    async def delete_run(self, run_id: str) -> bool:
        self._steps.pop(run_id, None)
        return self._runs.pop(run_id, None) is not None

    async def prune(self, before: float) -> int:
        n = 0
        for run_id in list(self._runs):
            run = self._run(run_id)
            if run is not None and run.status in WORKFLOW_FINAL and run.updated_at < before:
                await self.delete_run(run_id)
                n += 1
        return n
