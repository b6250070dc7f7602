"""The storage domains: small async interfaces every backend implements.

One :class:`Storage` object serves all domains: ``storage.sessions``, ``storage.memory``,
``storage.workflows``, ``storage.traces``, ``storage.scores`` and ``storage.events``. Backends:
:class:`~vivace.storage.InMemoryStorage`, :class:`~vivace.storage.SQLiteStorage`,
:class:`~vivace.storage.PostgresStorage`, and :class:`~vivace.storage.CompositeStorage`
routing each domain to its own backend.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from ._logic import CANCEL_KEY, DEFAULT_LEASE, DEFAULT_MAX_STATE_BYTES

if TYPE_CHECKING:
    from types import TracebackType

    from ..messages import Message
    from .records import (
        HistoryWindow,
        MessageHit,
        ResumeOutcome,
        RunRecord,
        ScoreRecord,
        ScoreStats,
        SessionContext,
        SessionRecord,
        SpanRecord,
        StepRecord,
        TraceMetricsRow,
        TraceSummary,
        UserMemory,
        WorkflowRunRecord,
    )
    from .state import SessionState, StateDelta

__all__ = [
    "CANCEL_KEY",
    "DOMAINS",
    "EventStore",
    "MemoryStore",
    "MessageEmbedding",
    "ScoreStore",
    "SessionStore",
    "Storage",
    "TraceStore",
    "WorkflowStore",
]

DOMAINS = ("sessions", "memory", "workflows", "traces", "scores", "events")
PRUNE_KEYS = ("sessions", "runs", "memory", "workflows", "traces", "scores", "events")
Scope = Literal["session", "user", "summary"]
"""Owner kinds of working-memory records: a session, a user, or a session's summary."""


@dataclass(slots=True)
class MessageEmbedding:
    """A message and its embedding, to index for semantic recall."""

    session_id: str
    message: Message
    embedding: Sequence[float]
    run_id: str | None = None
    user_id: str | None = None


class SessionStore(ABC):
    """Sessions and their runs. Every method may raise :class:`~vivace.errors.StorageError`.

    The run loop needs two calls per run: :meth:`begin_run` (or :meth:`load_context` then
    :meth:`start_run`) and :meth:`finish_run`. Every id given is checked with
    :func:`vivace.identifiers.check_identifier` (:class:`~vivace.errors.InvalidIdentifier`,
    nothing written). ``lease=None`` means the storage's ``run_lease``.
    """

    run_lease: float = DEFAULT_LEASE
    """Seconds a ``running`` run stays ``running`` without a heartbeat (the storage option)."""
    max_state_bytes: int = DEFAULT_MAX_STATE_BYTES

    # -- the run loop's seam ------------------------------------------------------------------

    @abstractmethod
    async def load_context(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        history: HistoryWindow | None = None,
    ) -> SessionContext:
        """Read a session, its windowed history and state in one transaction.

        ``session`` is None when the session does not exist yet. A session owned by another
        user raises :class:`~vivace.storage.SessionOwnershipError`. ``history=None`` reads no
        history. ``state`` is a :class:`~vivace.storage.SessionState`.
        """

    @abstractmethod
    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float | None = None,
    ) -> SessionContext:
        """:meth:`load_context` and :meth:`start_run` fused into one transaction (the fast path).

        Creates the session on first use (race-free), checks ownership, marks the run
        ``running`` with a lease, and returns the session context as it was before this run.
        """

    @abstractmethod
    async def start_run(self, record: RunRecord, *, lease: float | None = None) -> None:
        """Persist ``record`` as ``running`` (creating its session if new) with a lease of
        ``lease`` seconds. Call :meth:`heartbeat` before it expires or the run reads back as
        ``incomplete`` (how a killed process shows)."""

    @abstractmethod
    async def heartbeat(self, run_id: str, *, lease: float | None = None) -> bool:
        """Extend a running run's lease; False when the run is not running any more."""

    @abstractmethod
    async def finish_run(
        self,
        record: RunRecord,
        *,
        state: SessionState | StateDelta | None = None,
        state_changes: Mapping[str, Any] | None = None,
        state_deletes: Collection[str] = (),
    ) -> dict[str, Any]:
        """Atomically write the run (any final status, incl. ``paused``) and apply its session
        state changes under a lock on the session row. Returns the new state.

        ``state``: the run's :class:`~vivace.storage.SessionState` (``context.state``) or its
        :class:`~vivace.storage.StateDelta`. A key the run set or deleted that another run
        changed since this run read it raises :class:`~vivace.storage.StateConflict`; atomic
        updates (``increment``...) apply to the current values. ``state_changes`` /
        ``state_deletes`` write keys blindly instead. Only the keys a run changed are
        written. Conflicting, oversized or non-JSON state raises (nothing is written).
        """

    @abstractmethod
    async def resume_run(
        self, run_id: str, *, user_id: str | None = None, lease: float | None = None
    ) -> RunRecord:
        """Claim a ``paused`` run to continue it (it becomes ``running`` with a lease).

        Exactly one caller wins: a second claim raises :class:`~vivace.storage.RunStateError`.
        Only the run's own user may claim it (:func:`~vivace.storage.may_act`; else
        :class:`~vivace.storage.SessionOwnershipError`). Raises
        :class:`~vivace.errors.NotFound` for an unknown run.
        """

    # -- cancellation across processes ----------------------------------------------------------

    @abstractmethod
    async def request_cancel(self, run_id: str) -> bool:
        """Ask a ``running`` run to stop, wherever it runs: sets ``cancel_requested_at`` (epoch
        seconds) in the run's ``metadata``. The process running the run sees it with
        :meth:`cancel_requested` and cancels it. Returns False (nothing written) when the run
        is unknown or not ``running`` (finished, paused, or ``incomplete``: its lease expired).
        The flag goes away when the run is written finished (its record replaces the row)."""

    @abstractmethod
    async def cancel_requested(self, run_id: str) -> bool:
        """True when the run is ``running`` and :meth:`request_cancel` was called for it
        (one read by primary key)."""

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        """The subset of ``run_ids`` that :meth:`cancel_requested` is True for (one read on the
        SQL backends, however many runs)."""
        return {r for r in run_ids if await self.cancel_requested(r)}

    # -- reading and managing -------------------------------------------------------------------

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""

    @abstractmethod
    async def list_runs(
        self,
        session_id: str | None = None,
        *,
        parent_run_id: str | None = None,
        statuses: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs in the order they started (the last ``limit`` when given): a session's, the
        children of ``parent_run_id`` (in any session), or both filters at once."""

    @abstractmethod
    async def get_session(
        self, session_id: str, *, user_id: str | None = None
    ) -> SessionRecord | None:
        """One session, or None. With ``user_id``, another user's session is None too
        (indistinguishable from a missing one)."""

    @abstractmethod
    async def create_session(self, record: SessionRecord) -> SessionRecord:
        """Create a session; when it exists (same owner) return the stored one."""

    @abstractmethod
    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[SessionRecord]:
        """Sessions, most recently updated first."""

    @abstractmethod
    async def rename_session(
        self, session_id: str, name: str, *, user_id: str | None = None
    ) -> SessionRecord:
        """Set a session's name (raises NotFound)."""

    @abstractmethod
    async def update_state(
        self,
        session_id: str,
        *,
        changes: Mapping[str, Any] | None = None,
        deletes: Collection[str] = (),
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Change session state keys outside a run (raises NotFound). Returns the new state."""

    @abstractmethod
    async def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        """Delete a session with its runs (and its memory on the same backend)."""

    @abstractmethod
    async def prune_runs(self, before: float) -> int:
        """Delete finished runs last updated before ``before`` (epoch seconds)."""

    @abstractmethod
    async def prune_sessions(self, before: float) -> int:
        """Delete sessions (with their runs) last updated before ``before``."""


class MemoryStore(ABC):
    """Working memory, long-term user memories and message embeddings."""

    @abstractmethod
    async def get_working_memory(self, scope: Scope, owner_id: str) -> str | None:
        """The working memory text of a session or user (``owner_id``), or None."""

    @abstractmethod
    async def set_working_memory(self, scope: Scope, owner_id: str, content: str) -> None:
        """Replace the working memory text."""

    @abstractmethod
    async def delete_working_memory(self, scope: Scope, owner_id: str) -> bool: ...

    @abstractmethod
    async def add_user_memory(
        self, memory: UserMemory, *, embedding: Sequence[float] | None = None
    ) -> UserMemory: ...

    @abstractmethod
    async def get_user_memory(self, memory_id: str, *, user_id: str) -> UserMemory | None: ...

    @abstractmethod
    async def list_user_memories(
        self, user_id: str, *, agent_id: str | None = None, limit: int = 100
    ) -> list[UserMemory]:
        """A user's memories, newest first."""

    @abstractmethod
    async def search_user_memories(
        self,
        user_id: str,
        query: str,
        *,
        limit: int = 5,
        embedding: Sequence[float] | None = None,
    ) -> list[UserMemory]:
        """Best matches first: cosine similarity with ``embedding`` when given (memories
        stored with embeddings), otherwise keyword overlap with ``query``."""

    @abstractmethod
    async def update_user_memory(
        self,
        memory_id: str,
        *,
        user_id: str,
        content: str | None = None,
        topics: Sequence[str] | None = None,
        embedding: Sequence[float] | None = None,
    ) -> UserMemory:
        """Change a memory (raises NotFound, also for another user's memory)."""

    @abstractmethod
    async def delete_user_memory(self, memory_id: str, *, user_id: str) -> bool: ...

    @abstractmethod
    async def add_message_embeddings(self, items: Sequence[MessageEmbedding]) -> None:
        """Index messages for semantic recall (in order: order defines neighbours)."""

    @abstractmethod
    async def search_messages(
        self,
        embedding: Sequence[float],
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        top_k: int = 4,
        threshold: float | None = None,
        exclude_run_ids: Collection[str] = (),
    ) -> list[MessageHit]:
        """The ``top_k`` most similar messages (cosine), best first, within a session or a
        user's sessions, at or above ``threshold``."""

    @abstractmethod
    async def message_neighbours(
        self, hit: MessageHit, *, before: int, after: int
    ) -> list[MessageHit]:
        """Up to ``before``/``after`` indexed messages around ``hit`` in its session, in order."""

    async def build_vector_indexes(self) -> list[int]:
        """Build the message-search indexes an upgraded database lacks (PostgreSQL with
        pgvector: one HNSW index per embedding size); the sizes indexed now. Other backends
        have nothing to build."""
        return []

    @abstractmethod
    async def delete_session_data(self, session_id: str) -> None:
        """Delete a session's working memory and message embeddings."""

    @abstractmethod
    async def prune(self, before: float) -> int:
        """Delete message embeddings and user memories last updated before ``before``."""


class WorkflowStore(ABC):
    """Workflow runs and their steps (the engine in :mod:`vivace.workflows` is the writer).

    One row per run (:class:`~vivace.storage.WorkflowRunRecord`) and one row per executed
    step (:class:`~vivace.storage.StepRecord`, keyed by ``(run_id, path)``). A step's row is
    written when the step ends: O(size of that step's output and state change), never a
    rewrite of the run. The run row is written when the run starts and when it stops, plus
    lease renewals. Every method may raise :class:`~vivace.errors.StorageError`.
    """

    @abstractmethod
    async def create_run(self, run: WorkflowRunRecord, *, lease: float = DEFAULT_LEASE) -> bool:
        """Insert a new run (``running``, owned by ``run.owner``, with a lease unless its
        engine is ``dbos``). Returns False (and writes nothing) when the run id exists."""

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
        with ``steps`` in one transaction, if ``owner`` (None: anyone) still owns the run.

        When ``run.status`` is ``suspended``/``waiting`` and one of its parked steps was
        resumed meanwhile, the run is not parked (it stays ``running``) and the resumed step
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
        step waiting for that event) exactly once, in one transaction. A parked run is claimed
        for ``owner`` (``running``, new lease). Raises
        :class:`~vivace.errors.StepNotSuspended` when the step is not parked (never
        suspended, already resumed by anyone, or the run is finished) and
        :class:`~vivace.errors.WorkflowRunNotFound` for an unknown run."""

    @abstractmethod
    async def heartbeat(
        self, owner: str, run_ids: Collection[str], *, lease: float = DEFAULT_LEASE
    ) -> set[str]:
        """Extend the leases of ``owner``'s running runs (one statement for all); returns
        those with a cancel request."""

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
        """Cancel a parked run now (returns ``cancelled``) or flag a running one for its
        worker (returns ``running``); a finished run's status is returned unchanged, None
        for an unknown run."""

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
        """Runs, newest first."""

    @abstractmethod
    async def delete_run(self, run_id: str) -> bool:
        """Delete a run and its steps."""

    @abstractmethod
    async def prune(self, before: float) -> int:
        """Delete finished runs (with their steps) last updated before ``before``."""


def find_parked(
    run: WorkflowRunRecord, steps: Sequence[StepRecord], path: str, event: str | None
) -> StepRecord | None:
    """The parked step a resume targets (every backend decides the same way)."""
    from .records import WORKFLOW_FINAL

    if run.status in WORKFLOW_FINAL:
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


def mark_resumed(
    run: WorkflowRunRecord,
    steps: Sequence[StepRecord],
    path: str,
    event: str | None,
    data: Any,
) -> StepRecord:
    """The parked step a resume targets, marked ``resumed`` with ``data`` appended to its
    resume data (raises :class:`~vivace.errors.StepNotSuspended` when none is parked)."""
    target = find_parked(run, steps, path, event)
    if target is None:
        raise not_parked(run, path, event)
    target.status = "resumed"
    target.resume = [*(target.resume or []), data]
    return target


def claim_parked(run: WorkflowRunRecord, owner: str, lease: float) -> bool:
    """Take a parked run back to ``running`` for ``owner`` (True); a run that is already
    running (another step of it resumed first) is left as it is (False)."""
    from .records import WORKFLOW_PARKED

    if run.status not in WORKFLOW_PARKED:
        return False
    now = time.time()
    run.status, run.owner, run.updated_at = "running", owner, now
    run.lease_expires_at = None if run.engine == "dbos" else now + lease
    return True


def not_parked(run: WorkflowRunRecord, path: str, event: str | None) -> Exception:
    """The typed error for a resume of a step that is not parked."""
    from ..errors import StepNotSuspended

    what = (
        f"no step of run {run.run_id!r} waits for event {event!r}"
        if event
        else f"step {path!r} of run {run.run_id!r} is not suspended"
    )
    return StepNotSuspended(
        f"{what} (the run's status is {run.status})",
        run_id=run.run_id,
        step=event if event else path,
        status=run.status,
    )


CANCELLED_BY_REQUEST = {
    "type": "WorkflowCancelled",
    "code": "workflow_cancelled",
    "message": "cancelled by request",
}


class TraceStore(ABC):
    """Tracing spans."""

    @abstractmethod
    async def write_spans(self, spans: Sequence[SpanRecord]) -> None:
        """Insert or replace spans (an open span can be written again when it ends)."""

    @abstractmethod
    async def get_trace(self, trace_id: str) -> list[SpanRecord]:
        """A trace's spans by start time."""

    @abstractmethod
    async def list_spans(
        self,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
        limit: int = 100,
    ) -> list[SpanRecord]:
        """Spans, newest first."""

    @abstractmethod
    async def list_traces(
        self,
        *,
        agent: str | None = None,
        model: str | None = None,
        workflow: str | None = None,
        status: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[TraceSummary]:
        """Traces, newest first: one row per trace, its root span (the earliest span without
        a parent in this process) with the totals of its model requests.

        ``agent``, ``model``, ``workflow``, ``user_id``, ``status`` (the root run's status,
        else ``failed``/``completed`` from its span) and the time range (``since`` <= start <
        ``until``) filter on the root; ``session_id`` and ``run_id`` select the traces with a
        span of that session or run (a subagent's run is in its parent's trace). Pages:
        ``before=row.cursor`` of the last row continues after it."""

    @abstractmethod
    async def trace_metrics(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        bucket: float = 86400.0,
        agent: str | None = None,
        model: str | None = None,
        workflow: str | None = None,
    ) -> list[TraceMetricsRow]:
        """Runs, errors, tool calls, tokens, cost and p50/p95/p99 latency per ``bucket``
        seconds x agent x model x workflow, oldest first (spans started in the range)."""

    @abstractmethod
    async def prune(self, before: float) -> int: ...


class ScoreStore(ABC):
    """Evaluation scores."""

    @abstractmethod
    async def add_score(self, score: ScoreRecord) -> None: ...

    @abstractmethod
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
        """Newest first (``since`` <= ``created_at`` < ``until``). Pages:
        ``before=(last.created_at, last.score_id)`` continues after the last row."""

    @abstractmethod
    async def score_stats(
        self,
        *,
        scorer: str | None = None,
        since: float | None = None,
        until: float | None = None,
        bucket: float | None = None,
    ) -> list[ScoreStats]:
        """Count, mean, min and max of the scores per scorer (and per ``bucket`` seconds of
        ``created_at`` when given), by time then scorer."""

    @abstractmethod
    async def prune(self, before: float) -> int: ...


class EventStore(ABC):
    """A run's event stream as the server logged it (for SSE reconnects on any worker).

    Events are JSON objects with an integer ``seq`` (0, 1, 2... per run); ``(run_id, seq)`` is
    unique, so writing an event twice stores it once.
    """

    @abstractmethod
    async def append(
        self, run_id: str, events: Sequence[Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        """Store ``events`` (one transaction). Events whose ``(run_id, seq)`` is already
        stored are skipped (a retried write is harmless). ``replace=True`` first drops the
        run's stored events (a new segment: a resumed run numbers its events from 0 again).
        Returns how many events were inserted."""

    async def append_many(self, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> int:
        """Store the events of several runs, ``[(run_id, events), ...]``, as :meth:`append`
        would (without ``replace``), in one transaction where the backend can (the server's
        event log writes the events of all its live runs at once). Returns how many were
        inserted."""
        n = 0
        for run_id, events in batches:
            n += await self.append(run_id, events)
        return n

    @abstractmethod
    async def read(
        self, run_id: str, *, after: int = -1, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` events with ``seq > after``, in ``seq`` order."""

    @abstractmethod
    async def delete(self, run_id: str) -> int:
        """Drop a run's events; returns how many."""

    @abstractmethod
    async def prune(self, before: float) -> int:
        """Delete events written before ``before`` (epoch seconds)."""


class Storage(ABC):
    """One object serving every storage domain. Use ``async with`` or call :meth:`close`."""

    sessions: SessionStore
    memory: MemoryStore
    workflows: WorkflowStore
    traces: TraceStore
    scores: ScoreStore
    events: EventStore

    @property
    def run_lease(self) -> float:
        """Seconds a ``running`` run stays ``running`` without a heartbeat; a run whose
        process died reads ``running`` until then, ``incomplete`` after (the ``run_lease``
        option of every backend)."""
        return self.sessions.run_lease

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Create or upgrade tables now instead of on first use (no-op by default)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (no-op by default)."""

    async def prune(self, older_than: Mapping[str, timedelta | float]) -> dict[str, int]:
        """Delete records older than a per-domain age; returns deleted counts per key.

        Keys: ``sessions`` (with their runs and memory), ``runs``, ``memory`` (message
        embeddings and user memories), ``workflows``, ``traces``, ``scores``, ``events``
        (the server's logged run events). Ages are ``timedelta`` or seconds.
        """
        unknown = set(older_than) - set(PRUNE_KEYS)
        if unknown:
            from ..errors import UserError

            raise UserError(f"unknown prune keys: {sorted(unknown)} (known: {list(PRUNE_KEYS)})")
        now = time.time()
        out: dict[str, int] = {}
        for key, age in older_than.items():
            seconds = age.total_seconds() if isinstance(age, timedelta) else float(age)
            before = now - seconds
            if key == "sessions":
                out[key] = await self.sessions.prune_sessions(before)
            elif key == "runs":
                out[key] = await self.sessions.prune_runs(before)
            elif key == "memory":
                out[key] = await self.memory.prune(before)
            elif key == "workflows":
                out[key] = await self.workflows.prune(before)
            elif key == "traces":
                out[key] = await self.traces.prune(before)
            elif key == "events":
                out[key] = await self.events.prune(before)
            else:
                out[key] = await self.scores.prune(before)
        return out

    async def __aenter__(self) -> Storage:
        await self.setup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
