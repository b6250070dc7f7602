"""The workflow storage domain: what the engine needs from a database, and its records.

One row per run (:class:`WorkflowRunRecord`) and one row per executed step
(:class:`StepRecord`, keyed by ``(run_id, path)``). The engine writes a step's row when the
step ends (completed, suspended, failed): O(size of that step's output and state change),
never a rewrite of the run. The run row is written when the run starts and when it stops
(suspended, completed, failed...), plus lease renewals.

:class:`WorkflowRunStore` is the interface; :class:`InMemoryWorkflowRunStore` keeps rows as
JSON text (so the same serialization rules apply as in SQL); the SQL backends implement the
same interface on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "ResumeOutcome",
    "StepRecord",
    "WorkflowRunRecord",
    "WorkflowRunStore",
    "WorkflowStatus",
]

WorkflowStatus = Literal[
    "running", "suspended", "waiting", "completed", "failed", "cancelled", "bailed"
]
FINAL_STATUSES = frozenset(("completed", "failed", "cancelled", "bailed"))
PARKED_STATUSES = frozenset(("suspended", "waiting"))
ACTIVE_STATUSES = frozenset(("running", "suspended", "waiting"))
DEFAULT_LEASE = 30.0


@dataclass(slots=True)
class StepRecord:
    """One executed step of a run (JSON-ready fields).

    ``status``: ``running`` (written before a ``rerun=False`` step starts), ``completed``,
    ``suspended`` (waiting for resume data or an event), ``resumed`` (resume data arrived,
    not yet run), ``failed``. ``seq`` orders records by when they ended; ``state_delta`` is
    ``{"set": {...}, "del": [...]}`` of the shared state keys this step changed. ``resume``
    holds the data of each resume of the step, in order.
    """

    path: str
    status: str
    output: Any = None
    state_delta: dict[str, Any] | None = None
    seq: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    attempts: int = 1
    error: dict[str, Any] | None = None
    payload: Any = None
    kind: str | None = None
    event: str | None = None
    resume: list[Any] | None = None
    usage: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepRecord:
        return cls(**{f.name: d.get(f.name, f.default) for f in fields(cls)})


@dataclass(slots=True)
class WorkflowRunRecord:
    """One workflow run as stored (JSON-ready fields).

    ``state`` is the shared state as of ``state_seq`` (written when the run stops); steps
    with a larger ``seq`` carry the changes after it. ``suspended`` lists the parked steps
    (``{"path", "kind", "event", "payload"}``). ``owner`` and ``lease_expires_at`` say which
    worker runs it and until when; a ``running`` run whose lease expired belongs to a dead
    worker and is recovered. ``origin_run_id`` links a time-travel run to its source.
    """

    run_id: str
    workflow: str
    status: str = "running"
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    state: Any = None
    state_seq: int = -1
    seq: int = 0
    suspended: list[dict[str, Any]] = field(default_factory=list)
    user_id: str | None = None
    parent_run_id: str | None = None
    origin_run_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    owner: str | None = None
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    engine: str = "local"
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.created_at:
            self.created_at = time.time()
        if not self.updated_at:
            self.updated_at = self.created_at

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkflowRunRecord:
        data = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        return cls(**data)


@dataclass(slots=True)
class ResumeOutcome:
    """What :meth:`WorkflowRunStore.resume_step` did: ``claimed`` (the caller now owns the
    run and continues it) or ``queued`` (the run is running elsewhere; its worker picks the
    data up before it parks)."""

    claimed: bool
    run: WorkflowRunRecord
    steps: list[StepRecord]


class WorkflowRunStore(ABC):
    """Workflow runs and their steps. Every method may raise
    :class:`~vivace.errors.StorageError`; the engine is the only writer."""

    @abstractmethod
    async def create_run(self, run: WorkflowRunRecord, *, lease: float = DEFAULT_LEASE) -> bool:
        """Insert a new ``running`` run owned by ``run.owner`` with a lease. Returns False
        (and writes nothing) when the run id exists."""

    @abstractmethod
    async def save_step(self, run_id: str, step: StepRecord) -> None:
        """Insert or replace one step row (one small transaction)."""

    @abstractmethod
    async def finish_run(
        self,
        run: WorkflowRunRecord,
        *,
        owner: str | None,
        steps: Sequence[StepRecord] = (),
    ) -> list[StepRecord]:
        """Write the run row's final fields (status, output, error, state, seq, suspended)
        with ``steps`` in one transaction, if ``owner`` still owns the run.

        When ``run.status`` is ``suspended``/``waiting`` and one of its parked steps was
        resumed meanwhile, nothing is parked: the run stays ``running`` and the resumed step
        rows are returned (the caller continues). Returns ``[]`` otherwise."""

    @abstractmethod
    async def load_run(self, run_id: str) -> tuple[WorkflowRunRecord, list[StepRecord]] | None:
        """A run and its step rows (ordered by ``seq``), or None."""

    @abstractmethod
    async def get_run(self, run_id: str) -> WorkflowRunRecord | None:
        """One run row, or None."""

    @abstractmethod
    async def resume_step(
        self,
        run_id: str,
        path: str,
        data: Any,
        *,
        owner: str,
        lease: float = DEFAULT_LEASE,
        event: str | None = None,
    ) -> ResumeOutcome:
        """Record resume ``data`` for the parked step ``path`` (or, with ``event``, for the
        step waiting for that event, ``path`` ignored) exactly once, in one transaction.

        If the run is parked it is claimed for ``owner`` (``running``, new lease). Raises
        :class:`~vivace.workflows.errors.StepNotSuspended` when the step is not parked
        (never suspended, already resumed by anyone, or the run is finished) and
        :class:`~vivace.workflows.errors.WorkflowRunNotFound` for an unknown run."""

    @abstractmethod
    async def heartbeat(
        self, owner: str, run_ids: Collection[str], *, lease: float = DEFAULT_LEASE
    ) -> set[str]:
        """Extend the leases of ``owner``'s running runs; returns the ones with a cancel
        request."""

    @abstractmethod
    async def claim_expired(
        self,
        owner: str,
        *,
        workflows: Collection[str] | None = None,
        lease: float = DEFAULT_LEASE,
        limit: int = 100,
    ) -> list[WorkflowRunRecord]:
        """Take over ``running`` runs whose lease expired (their worker died): each is
        claimed by exactly one caller (new owner and lease) and returned."""

    @abstractmethod
    async def request_cancel(self, run_id: str) -> str | None:
        """Cancel a parked run now (returns ``cancelled``), or flag a running one for its
        worker (returns ``running``). Returns the status unchanged for a finished run, None
        for an unknown one."""

    @abstractmethod
    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        statuses: Collection[str] | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[WorkflowRunRecord]:
        """Runs, newest first. A ``running`` run with an expired lease is listed as
        ``running`` (recovery takes it)."""

    @abstractmethod
    async def delete_run(self, run_id: str) -> bool:
        """Delete a run and its steps."""

    @abstractmethod
    async def prune(self, before: float) -> int:
        """Delete finished runs last updated before ``before`` (epoch seconds)."""


# -- in memory -------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    from .typecheck import dump_json

    return dump_json(value)


class InMemoryWorkflowRunStore(WorkflowRunStore):
    """Runs and steps in this process, kept as JSON text (same rules as the SQL backends)."""

    def __init__(self) -> None:
        self._runs: dict[str, str] = {}
        self._steps: dict[str, dict[str, str]] = {}
        self._lock = asyncio.Lock()

    def _run(self, run_id: str) -> WorkflowRunRecord | None:
        text = self._runs.get(run_id)
        return None if text is None else WorkflowRunRecord.from_dict(json.loads(text))

    def _put(self, run: WorkflowRunRecord) -> None:
        self._runs[run.run_id] = _dumps(run.to_dict())

    def _step_rows(self, run_id: str) -> list[StepRecord]:
        rows = [StepRecord.from_dict(json.loads(t)) for t in self._steps.get(run_id, {}).values()]
        rows.sort(key=lambda r: r.seq)
        return rows

    async def create_run(self, run: WorkflowRunRecord, *, lease: float = DEFAULT_LEASE) -> bool:
        if run.run_id in self._runs:
            return False
        now = time.time()
        run.lease_expires_at = None if run.engine == "dbos" else now + lease
        run.updated_at = now
        self._put(run)
        self._steps[run.run_id] = {}
        return True

    async def save_step(self, run_id: str, step: StepRecord) -> None:
        text = _dumps(step.to_dict())
        steps = self._steps.get(run_id)
        if steps is None:
            steps = self._steps[run_id] = {}
        steps[step.path] = text

    async def finish_run(
        self,
        run: WorkflowRunRecord,
        *,
        owner: str | None,
        steps: Sequence[StepRecord] = (),
    ) -> list[StepRecord]:
        current = self._run(run.run_id)
        if current is not None and owner is not None and current.owner not in (None, owner):
            return []
        for s in steps:
            await self.save_step(run.run_id, s)
        if run.status in PARKED_STATUSES:
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
        self._put(run)
        return []

    async def load_run(self, run_id: str) -> tuple[WorkflowRunRecord, list[StepRecord]] | None:
        run = self._run(run_id)
        if run is None:
            return None
        return run, self._step_rows(run_id)

    async def get_run(self, run_id: str) -> WorkflowRunRecord | None:
        return self._run(run_id)

    async def resume_step(
        self,
        run_id: str,
        path: str,
        data: Any,
        *,
        owner: str,
        lease: float = DEFAULT_LEASE,
        event: str | None = None,
    ) -> ResumeOutcome:
        from .errors import WorkflowRunNotFound

        run = self._run(run_id)
        if run is None:
            raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
        rows = self._steps.get(run_id, {})
        target = _find_parked(
            run, [StepRecord.from_dict(json.loads(t)) for t in rows.values()], path, event
        )
        if target is None:
            raise _not_parked(run, path, event)
        target.status = "resumed"
        target.resume = [*(target.resume or []), data]
        rows[target.path] = _dumps(target.to_dict())
        claimed = run.status in PARKED_STATUSES
        if claimed:
            run.status = "running"
            run.owner = owner
            run.lease_expires_at = None if run.engine == "dbos" else time.time() + lease
            run.updated_at = time.time()
            self._put(run)
        return ResumeOutcome(claimed, run, self._step_rows(run_id))

    async def heartbeat(
        self, owner: str, run_ids: Collection[str], *, lease: float = DEFAULT_LEASE
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
        lease: float = DEFAULT_LEASE,
        limit: int = 100,
    ) -> list[WorkflowRunRecord]:
        now = time.time()
        out = []
        for run_id in list(self._runs):
            run = self._run(run_id)
            if run is None or run.status != "running":
                continue
            if run.lease_expires_at is None or run.lease_expires_at > now:
                continue
            if workflows is not None and run.workflow not in workflows:
                continue
            run.owner = owner
            run.lease_expires_at = now + lease
            self._put(run)
            out.append(run)
            if len(out) >= limit:
                break
        return out

    async def request_cancel(self, run_id: str) -> str | None:
        run = self._run(run_id)
        if run is None:
            return None
        if run.status in PARKED_STATUSES:
            run.status = "cancelled"
            run.error = {
                "type": "WorkflowCancelled",
                "code": "workflow_cancelled",
                "message": "cancelled by request",
            }
            run.suspended = []
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
            if run is not None and run.status in FINAL_STATUSES and run.updated_at < before:
                await self.delete_run(run_id)
                n += 1
        return n


def _find_parked(
    run: WorkflowRunRecord, steps: list[StepRecord], path: str, event: str | None
) -> StepRecord | None:
    """The parked step a resume targets (shared by every backend)."""
    if run.status in FINAL_STATUSES:
        return None
    for s in steps:
        if s.status != "suspended":
            continue
        if event is not None:
            if s.kind == "event" and s.event == event:
                return s
        elif s.path == path:
            return s
    return None


def _not_parked(run: WorkflowRunRecord, path: str, event: str | None) -> Exception:
    from .errors import StepNotSuspended

    what = (
        f"no step of run {run.run_id!r} waits for event {event!r}"
        if event
        else (f"step {path!r} of run {run.run_id!r} is not suspended")
    )
    return StepNotSuspended(
        f"{what} (the run's status is {run.status})",
        run_id=run.run_id,
        step=event if event else path,
        status=run.status,
    )
