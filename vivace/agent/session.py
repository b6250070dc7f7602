"""Where a run meets storage: load the session before the loop, persist the run after it.

Two storage round trips per run: ``begin_run`` (session upsert, ownership check, windowed
history, state, run marked ``running`` with a lease - one transaction) and ``finish_run``
(the run record and the session-state keys this run changed - one transaction). The final
event of a run is emitted only after the run is persisted, so whoever sees ``run_completed``
can continue the session on any worker.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .. import trace_hook
from ..errors import RunNotFound, VivaceError
from ..identifiers import new_id
from ..storage.errors import StateConflict, StateNotSerializableError, StateTooLargeError
from ..storage.lease import keep_alive
from ..storage.records import HistoryWindow, RunRecord
from ..tools.tool import result_to_content

if TYPE_CHECKING:
    from ..storage import SessionContext, Storage
    from .agent import Agent
    from .result import PausedRun, RunResult

__all__ = ["SessionBinding", "claim_paused", "find_paused", "load_paused", "resolve_storage"]


def resolve_storage(spec: Any) -> Storage:
    """The agent's ``storage``: a Storage object, or a URL opened once per process
    (``"sqlite:///.vivace/vivace.db"``, ``"postgresql://..."``, ``"memory://"``)."""
    if not isinstance(spec, str):
        return spec
    from ..storage import shared_storage

    return shared_storage(spec)


class SessionBinding:
    """The storage side of one run: its record and the session context it started from."""

    __slots__ = ("context", "lease", "record", "storage")

    def __init__(self, storage: Storage, record: RunRecord, context: SessionContext) -> None:
        self.storage = storage
        self.record = record
        self.context = context
        self.lease: Any = None

    @classmethod
    async def begin(
        cls,
        agent: Agent,
        storage: Storage,
        run_id: str,
        session_id: str | None,
        user_id: str | None,
        input_message: dict[str, Any] | None,
        *,
        trace_id: str | None = None,
        span_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> SessionBinding:
        """Start a new run in its session (created on first use), with the storage's run
        lease and the run's trace context."""
        now = time.time()
        record = RunRecord(
            run_id=run_id,
            session_id=session_id or new_id(),
            agent_id=agent.id,
            user_id=user_id,
            status="running",
            input=input_message,
            created_at=now,
            updated_at=now,
            trace_id=trace_id,
            span_id=span_id,
            parent_run_id=parent_run_id,
        )
        window = HistoryWindow(last_runs=agent.history_runs) if agent.history_runs else None
        hook = trace_hook.HOOK
        if hook is None:
            context = await storage.sessions.begin_run(
                record, history=window, lease=storage.run_lease
            )
            return cls(storage, record, context)
        # before the run's own span: that span will start with this one
        with hook.span(
            "storage begin_run",
            _span_attrs(storage, "begin_run", record),
            trace_id=trace_id,
            parent_span_id=span_id,
            parent_pending=True,
        ) as span:
            context = await storage.sessions.begin_run(
                record, history=window, lease=storage.run_lease
            )
            if span is not None:
                span.attributes["vivace.storage.history_messages"] = len(context.history)
        return cls(storage, record, context)

    async def keep_alive(self) -> None:
        """Start renewing the run's lease (stopped by :meth:`finish`)."""
        self.lease = keep_alive(
            self.storage.sessions, self.record.run_id, lease=self.storage.run_lease
        )
        await self.lease.__aenter__()

    async def finish(self, result: RunResult) -> None:
        """Persist ``result`` and its session-state changes in one transaction.

        State that cannot be stored (not JSON, too large, or keys another run changed since
        this run read them: ``StateConflict``) fails the run instead - the run is recorded as
        failed with that error, the session state is left as it was, and
        ``result.session_state`` is the stored state.
        """
        try:
            if self.lease is not None:
                await self.lease.__aexit__(None, None, None)
        finally:
            self.lease = None
        record = self.record
        _fill(record, result)
        state = self.context.state
        replaced = result.session_state is not state and result.session_state is not None
        delta = state.delta(result.session_state if replaced else None)
        try:
            hook = trace_hook.HOOK
            if hook is None:
                result.session_state = await self.storage.sessions.finish_run(record, state=delta)
            else:
                with hook.span(
                    "storage finish_run",
                    _span_attrs(self.storage, "finish_run", record),
                    trace_id=record.trace_id,
                    parent_span_id=record.span_id,
                ):
                    result.session_state = await self.storage.sessions.finish_run(
                        record, state=delta
                    )
        except (StateNotSerializableError, StateTooLargeError, StateConflict) as exc:
            result.status = "failed"
            result.error = exc
            result.paused = None
            _fill(record, result)
            result.session_state = await self.storage.sessions.finish_run(record)

    async def fail(self, result: RunResult) -> None:
        """Rewrite an already persisted run with its new, failed outcome (no state changes)."""
        _fill(self.record, result)
        await self.storage.sessions.finish_run(self.record)


_SYSTEMS = {"SQLiteStorage": "sqlite", "PostgresStorage": "postgresql", "InMemoryStorage": "memory"}


def _span_attrs(storage: Storage, operation: str, record: RunRecord) -> dict[str, Any]:
    """A storage span's attributes (OpenTelemetry's database names where they fit)."""
    return {
        "db.system.name": _SYSTEMS.get(type(storage).__name__, type(storage).__name__),
        "db.operation.name": operation,
        "vivace.span_type": "storage",
        "vivace.run_id": record.run_id,
        "gen_ai.conversation.id": record.session_id,
    }


def _fill(record: RunRecord, result: RunResult) -> None:
    record.status = result.status
    record.messages = result.messages
    record.output = result_to_content(result._output) if result.status == "completed" else None
    record.usage = result.usage.to_dict()
    record.error = result.error.to_dict() if isinstance(result.error, VivaceError) else None
    record.paused = result.paused.to_dict() if result.paused is not None else None
    record.updated_at = time.time()


async def find_paused(agent: Agent, run_id: str, user_id: str | None = None) -> PausedRun:
    """The paused state of ``run_id``: from the agent's storage, else from this process
    (either way only for the run's own user: :func:`~vivace.storage.may_act`)."""
    if agent.storage is not None:
        return await load_paused(agent, run_id, user_id)
    from ..storage import may_act
    from .registry import recall_paused

    paused = recall_paused(run_id)
    if paused is not None and may_act(paused.user_id, user_id):
        return paused
    raise RunNotFound(f"no paused run {run_id!r} (pass the PausedRun itself, or configure storage)")


async def load_paused(agent: Agent, run_id: str, user_id: str | None = None) -> PausedRun:
    """The paused state of ``run_id`` from the agent's storage (no claim yet).

    Raises :class:`RunNotFound` for an unknown run and for another user's run (the same rule
    as ``resume_run``: :func:`~vivace.storage.may_act`; ``user_id=None`` acts only on runs
    without a user), and :class:`~vivace.storage.RunStateError` for a run that is not
    paused (e.g. another resumer claimed it first).
    """
    from ..storage import RunStateError, may_act
    from .result import PausedRun

    storage = resolve_storage(agent.storage)
    record = await storage.sessions.get_run(run_id)
    if record is None or not may_act(record.user_id, user_id):
        raise RunNotFound(f"no paused run {run_id!r}", run_id=run_id)
    if record.status != "paused" or record.paused is None:
        raise RunStateError(
            f"run {run_id!r} is {record.status}, not paused", run_id=run_id, status=record.status
        )
    return PausedRun.from_dict(record.paused)


async def claim_paused(agent: Agent, paused: PausedRun) -> tuple[SessionBinding, PausedRun] | None:
    """Claim a paused run in storage so exactly one worker resumes it.

    Returns the binding for persisting the resumed run, and the paused state with the
    session's *current* state (other runs may have changed it while this one waited).
    Returns None when the run is not in storage (a paused state passed by value to an agent
    whose storage never saw it).
    """
    storage = resolve_storage(agent.storage)
    hook = trace_hook.HOOK
    if hook is None:
        claimed = await _claim(storage, paused)
    else:
        attrs: dict[str, Any] = {
            "db.system.name": _SYSTEMS.get(type(storage).__name__, type(storage).__name__),
            "db.operation.name": "resume_run",
            "vivace.span_type": "storage",
            "vivace.run_id": paused.run_id,
        }
        with hook.span(
            "storage resume_run", attrs, trace_id=paused.trace_id, parent_span_id=paused.span_id
        ):
            claimed = await _claim(storage, paused)
    if claimed is None:
        return None
    record, context = claimed
    paused.session_state = context.state
    return SessionBinding(storage, record, context), paused


async def _claim(storage: Storage, paused: PausedRun) -> tuple[RunRecord, SessionContext] | None:
    from ..errors import NotFound

    try:
        record = await storage.sessions.resume_run(
            paused.run_id, user_id=paused.user_id, lease=storage.run_lease
        )
    except NotFound:
        return None
    context = await storage.sessions.load_context(
        record.session_id, user_id=record.user_id, agent_id=record.agent_id, history=None
    )
    return record, context
