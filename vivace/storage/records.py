"""Plain records the storage layer reads and writes.

Every record is a slotted dataclass with ``to_dict``/``from_dict`` (JSON-safe). Timestamps
are Unix epoch seconds (floats). Nothing here imports a database driver.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..messages import Message
from ._json import canon
from .state import SessionState, StateDelta

__all__ = [
    "RUN_STATUSES",
    "WORKFLOW_FINAL",
    "WORKFLOW_PARKED",
    "WORKFLOW_STATUSES",
    "HistoryWindow",
    "MessageHit",
    "ResumeOutcome",
    "RunRecord",
    "RunStatus",
    "ScoreRecord",
    "ScoreStats",
    "SessionContext",
    "SessionRecord",
    "SpanRecord",
    "StepRecord",
    "TraceMetricsRow",
    "TraceSummary",
    "UserMemory",
    "WorkflowRunRecord",
]

RunStatus = Literal[
    "running", "completed", "paused", "failed", "cancelled", "blocked", "incomplete"
]
"""A run's status. ``incomplete``: it was ``running`` when its process died (its lease ran
out without a heartbeat)."""
RUN_STATUSES: frozenset[str] = frozenset(
    ("running", "completed", "paused", "failed", "cancelled", "blocked", "incomplete")
)


@dataclass(slots=True)
class RunRecord:
    """One agent run as stored.

    ``messages`` are the run's *new* messages in order (user input, assistant turns, tool
    results). ``input`` is the run input as JSON (e.g. the user message dict). ``usage`` is the
    token usage as a plain dict (``Usage.to_dict()``). ``paused`` is the paused-run state
    (opaque JSON to storage). ``lease_expires_at`` is set while the run is ``running``: a
    running run whose lease has expired reads back as ``incomplete``. ``trace_id``,
    ``span_id`` and ``parent_run_id`` place the run in its trace (a subagent's or workflow
    step's run names the run it belongs to).
    """

    run_id: str
    session_id: str
    agent_id: str | None = None
    user_id: str | None = None
    status: RunStatus = "running"
    input: Any = None
    messages: list[Message] = field(default_factory=list)
    output: Any = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    paused: dict[str, Any] | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    lease_expires_at: float | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_run_id: str | None = None

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"unknown run status: {self.status!r}")
        if not self.created_at:
            self.created_at = time.time()
        if not self.updated_at:
            self.updated_at = self.created_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "user_id": self.user_id,
            "status": self.status,
            "input": self.input,
            "messages": [m.to_dict() for m in self.messages],
            "output": self.output,
            "usage": self.usage,
            "error": self.error,
            "paused": self.paused,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "metadata": self.metadata,
            "lease_expires_at": self.lease_expires_at,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_run_id": self.parent_run_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        return cls(
            run_id=d["run_id"],
            session_id=d["session_id"],
            agent_id=d.get("agent_id"),
            user_id=d.get("user_id"),
            status=d.get("status", "running"),
            input=d.get("input"),
            messages=[Message.from_dict(m) for m in d.get("messages") or ()],
            output=d.get("output"),
            usage=dict(d["usage"]) if d.get("usage") is not None else None,
            error=d.get("error"),
            paused=d.get("paused"),
            created_at=d.get("created_at") or 0.0,
            updated_at=d.get("updated_at") or 0.0,
            metadata=dict(d.get("metadata") or {}),
            lease_expires_at=d.get("lease_expires_at"),
            trace_id=d.get("trace_id"),
            span_id=d.get("span_id"),
            parent_run_id=d.get("parent_run_id"),
        )


@dataclass(slots=True)
class SessionRecord:
    """A conversation: its owner, name, ``state`` dict and metadata."""

    session_id: str
    agent_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.created_at:
            self.created_at = time.time()
        if not self.updated_at:
            self.updated_at = self.created_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "user_id": self.user_id,
            "name": self.name,
            "state": self.state,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionRecord:
        return cls(
            session_id=d["session_id"],
            agent_id=d.get("agent_id"),
            user_id=d.get("user_id"),
            name=d.get("name"),
            state=dict(d.get("state") or {}),
            created_at=d.get("created_at") or 0.0,
            updated_at=d.get("updated_at") or 0.0,
            metadata=dict(d.get("metadata") or {}),
        )


@dataclass(slots=True, frozen=True)
class HistoryWindow:
    """Which past messages a run sees.

    Limits combine (all that are set apply): the last ``last_runs`` runs, at most
    ``last_messages`` messages, at most ``max_tokens`` estimated tokens (4 characters of JSON
    per token). With none set, every past run is included. Only runs whose status is in
    ``statuses`` count (completed runs by default). A window never starts with an orphan tool
    result: it starts at a user message.
    """

    last_runs: int | None = None
    last_messages: int | None = None
    max_tokens: int | None = None
    statuses: tuple[str, ...] = ("completed",)

    def __post_init__(self) -> None:
        for name in ("last_runs", "last_messages", "max_tokens"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"HistoryWindow.{name} must be a non-negative int or None")

    def run_limit(self) -> int | None:
        """How many of the latest runs to read at most (each run has at least one message)."""
        limits = [v for v in (self.last_runs, self.last_messages) if v is not None]
        return min(limits) if limits else None


@dataclass(slots=True)
class SessionContext:
    """What a run needs from its session, read in one go.

    ``session`` is None for a new session. ``history`` is the windowed past messages, oldest
    first; ``history_run_ids`` names the runs they come from (e.g. to exclude them from
    semantic recall). ``state`` is the run's own :class:`SessionState` (a mutable dict with
    atomic updates): hand it to the run context, then pass it to ``finish_run(record,
    state=ctx.state)``.
    """

    session: SessionRecord | None
    history: list[Message]
    state: SessionState
    history_run_ids: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        session: SessionRecord | None,
        history: list[Message],
        history_run_ids: list[str] | None = None,
    ) -> SessionContext:
        stored = session.state if session is not None else {}
        baseline = {k: canon(v) for k, v in stored.items()}
        # the session keeps its own copy; the run mutates ``state``
        copy = json.loads(json.dumps(stored)) if stored else {}
        return cls(session, history, SessionState.loaded(copy, baseline), history_run_ids or [])

    def delta(self, state: dict[str, Any] | None = None) -> StateDelta:
        """The run's state changes for ``finish_run(record, state=...)`` (see
        :meth:`SessionState.delta`)."""
        return self.state.delta(state)

    def state_changes(
        self, state: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """The top-level keys the run set (with their new values) and the keys it deleted,
        compared with the state as loaded - to write blindly, without conflict checks
        (prefer :meth:`delta`). Values that are not JSON-serializable count as changed
        (``finish_run`` then rejects them).
        """
        return self.state.changes(state)


@dataclass(slots=True)
class UserMemory:
    """A long-term fact about a user (``topics`` are free tags)."""

    memory_id: str
    user_id: str
    content: str
    agent_id: str | None = None
    topics: list[str] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    score: float | None = None  # set by searches

    def __post_init__(self) -> None:
        if not self.created_at:
            self.created_at = time.time()
        if not self.updated_at:
            self.updated_at = self.created_at

    def to_dict(self) -> dict[str, Any]:
        out = {
            "memory_id": self.memory_id,
            "user_id": self.user_id,
            "content": self.content,
            "agent_id": self.agent_id,
            "topics": list(self.topics),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.score is not None:
            out["score"] = self.score
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UserMemory:
        return cls(
            memory_id=d["memory_id"],
            user_id=d["user_id"],
            content=d["content"],
            agent_id=d.get("agent_id"),
            topics=list(d.get("topics") or ()),
            created_at=d.get("created_at") or 0.0,
            updated_at=d.get("updated_at") or 0.0,
            score=d.get("score"),
        )


@dataclass(slots=True)
class MessageHit:
    """A message found by semantic search: its position and similarity."""

    id: int
    session_id: str
    run_id: str | None
    user_id: str | None
    message: Message
    score: float


WORKFLOW_STATUSES: frozenset[str] = frozenset(
    ("running", "suspended", "waiting", "completed", "failed", "cancelled", "bailed")
)
"""A workflow run's status (``suspended``/``waiting``: parked, resumable)."""
WORKFLOW_FINAL: frozenset[str] = frozenset(("completed", "failed", "cancelled", "bailed"))
WORKFLOW_PARKED: frozenset[str] = frozenset(("suspended", "waiting"))


@dataclass(slots=True)
class StepRecord:
    """One executed step of a workflow run (``output``, ``payload`` and ``resume`` hold the
    step's values; the backends store them as JSON).

    ``status``: ``running`` (written before a ``rerun=False`` step starts), ``completed``,
    ``suspended`` (waiting for resume data or an event), ``resumed`` (resume data arrived,
    not yet run), ``failed``, ``override`` (time travel: the input to use). ``seq`` orders
    records by when they ended; ``state_delta`` is ``{"set": {...}, "del": [...]}`` (or
    ``{"replace": state}``) of the shared state this step changed. ``resume`` holds the data of
    each resume of the step, in order.
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
        return {
            "path": self.path,
            "status": self.status,
            "output": self.output,
            "state_delta": self.state_delta,
            "seq": self.seq,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
            "error": self.error,
            "payload": self.payload,
            "kind": self.kind,
            "event": self.event,
            "resume": self.resume,
            "usage": self.usage,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepRecord:
        return cls(
            d["path"],
            d["status"],
            d.get("output"),
            d.get("state_delta"),
            int(d.get("seq") or 0),
            float(d.get("started_at") or 0.0),
            float(d.get("finished_at") or 0.0),
            int(d.get("attempts") or 1),
            d.get("error"),
            d.get("payload"),
            d.get("kind"),
            d.get("event"),
            d.get("resume"),
            d.get("usage"),
        )


@dataclass(slots=True)
class WorkflowRunRecord:
    """One workflow run as stored.

    ``state`` is the shared state as of ``state_seq`` (written when the run stops); steps
    with a larger ``seq`` carry the changes after it. ``suspended`` lists the parked steps
    (``{"path", "kind", "event", "payload"}``). ``owner`` and ``lease_expires_at`` say which
    worker runs it and until when; a ``running`` run whose lease expired belongs to a dead
    worker and is recovered. ``origin_run_id`` links a time-travel run to its source;
    ``engine`` is ``local`` or ``dbos`` (DBOS runs have no lease: DBOS recovers them).
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
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkflowRunRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(slots=True)
class ResumeOutcome:
    """What :meth:`~vivace.storage.WorkflowStore.resume_step` did: ``claimed`` (the caller now
    owns the run and continues it) or not (the run is running elsewhere; its worker picks the
    data up before it parks). ``run`` and ``steps`` are the run as it is now."""

    claimed: bool
    run: WorkflowRunRecord
    steps: list[StepRecord]


@dataclass(slots=True)
class SpanRecord:
    """One tracing span. ``end_time`` is None while open; ``attributes`` is JSON."""

    span_id: str
    trace_id: str
    name: str
    parent_id: str | None = None
    kind: str | None = None
    start_time: float = 0.0
    end_time: float | None = None
    status: str | None = None
    run_id: str | None = None
    session_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.start_time:
            self.start_time = time.time()

    def to_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "trace_id": self.trace_id,
            "name": self.name,
            "parent_id": self.parent_id,
            "kind": self.kind,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "status": self.status,
            "run_id": self.run_id,
            "session_id": self.session_id,
            "attributes": self.attributes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpanRecord:
        return cls(
            span_id=d["span_id"],
            trace_id=d["trace_id"],
            name=d["name"],
            parent_id=d.get("parent_id"),
            kind=d.get("kind"),
            start_time=d.get("start_time") or 0.0,
            end_time=d.get("end_time"),
            status=d.get("status"),
            run_id=d.get("run_id"),
            session_id=d.get("session_id"),
            attributes=dict(d.get("attributes") or {}),
        )


@dataclass(slots=True)
class ScoreRecord:
    """An evaluation result (a scorer's ``score`` for a run or trace)."""

    score_id: str
    scorer: str
    score: float
    run_id: str | None = None
    trace_id: str | None = None
    reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.created_at:
            self.created_at = time.time()

    def to_dict(self) -> dict[str, Any]:
        return {
            "score_id": self.score_id,
            "scorer": self.scorer,
            "score": self.score,
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "reason": self.reason,
            "metadata": self.metadata,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreRecord:
        return cls(
            score_id=d["score_id"],
            scorer=d["scorer"],
            score=float(d["score"]),
            run_id=d.get("run_id"),
            trace_id=d.get("trace_id"),
            reason=d.get("reason"),
            metadata=dict(d.get("metadata") or {}),
            created_at=d.get("created_at") or 0.0,
        )


@dataclass(slots=True)
class TraceSummary:
    """One row of the trace list: the trace's root span (a run, a workflow run...) and the
    totals of its model requests (tokens and cost are counted on those, so a subagent's run
    is not counted twice)."""

    trace_id: str
    name: str
    start_time: float
    duration_ms: float
    status: str
    error: bool = False
    agent: str | None = None
    workflow: str | None = None
    model: str | None = None
    run_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    spans: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def cursor(self) -> tuple[float, str]:
        """Where the next page starts (``list_traces(before=...)``)."""
        return (self.start_time, self.trace_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "name": self.name,
            "agent": self.agent,
            "workflow": self.workflow,
            "model": self.model,
            "run_id": self.run_id,
            "session_id": self.session_id,
            "user_id": self.user_id,
            "status": self.status,
            "error": self.error,
            "start_time": self.start_time,
            "duration_ms": round(self.duration_ms, 3),
            "spans": self.spans,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 10),
        }


@dataclass(slots=True)
class TraceMetricsRow:
    """Runs, errors, tool calls, tokens, cost and latency percentiles (milliseconds) of one
    time bucket x agent x model x workflow. Runs and their latency are keyed by the run's
    model; tool calls by no model."""

    time: float
    agent: str | None = None
    model: str | None = None
    workflow: str | None = None
    runs: int = 0
    errors: int = 0
    tool_calls: int = 0
    model_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    """``run_p50``, ``run_p95``, ``run_p99``, ``model_p50``... ``tool_p99`` (None: none)."""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "time": self.time,
            "agent": self.agent,
            "model": self.model,
            "workflow": self.workflow,
            "runs": self.runs,
            "errors": self.errors,
            "tool_calls": self.tool_calls,
            "model_requests": self.model_requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": round(self.cost_usd, 10),
        }
        for name in ("run", "model", "tool"):
            for q in (50, 95, 99):
                v = self.latency_ms.get(f"{name}_p{q}")
                d[f"{name}_p{q}_ms"] = None if v is None else round(v, 3)
        return d


@dataclass(slots=True)
class ScoreStats:
    """Count, mean, min and max of one scorer's scores (in one time bucket, when asked)."""

    scorer: str
    count: int
    mean: float
    min: float
    max: float
    time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "scorer": self.scorer,
            "count": self.count,
            "mean": self.mean,
            "min": self.min,
            "max": self.max,
        }
