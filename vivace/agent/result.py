"""What a run returns: :class:`RunResult`, and for a paused run the :class:`PausedRun` state
plus the :class:`Approve` / :class:`Reject` decisions that resume it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import RunError, VivaceError
from ..messages import Message, ToolCallPart, ToolResultPart, part_from_dict
from ..models.base import Usage
from ..storage.records import RunStatus

__all__ = ["Approval", "Approve", "PausedRun", "Reject", "RunResult", "RunStatus"]

OutputT = TypeVar("OutputT", covariant=True)


@dataclass(slots=True)
class Approve:
    """Approve a paused tool call, optionally with edited ``arguments``."""

    arguments: dict[str, Any] | None = None


@dataclass(slots=True)
class Reject:
    """Reject a paused tool call; ``reason`` is sent to the model as the tool's error."""

    reason: str = "rejected by the user"


Approval = Approve | Reject | bool
"""A decision for one pending call: ``True``/``Approve(...)`` or ``False``/``Reject(...)``."""


@dataclass(slots=True)
class PausedRun:
    """Everything needed to resume a paused run, in any process. JSON via ``to_dict``.

    ``messages`` is the model context so far (history + this run); ``new_from`` is where this
    run's own messages start; ``seq`` is the next event sequence number, so the resumed run's
    events continue the same gap-free stream. ``pending`` are the calls waiting for a decision
    (with those of child runs, see ``suspended``); ``results`` the results already computed
    for the other calls of the same model turn.
    """

    run_id: str
    agent_name: str | None
    session_id: str | None
    user_id: str | None
    messages: list[Message]
    new_from: int
    pending: list[ToolCallPart]
    results: list[ToolResultPart]
    usage: Usage = field(default_factory=Usage)
    step: int = 0
    session_state: dict[str, Any] = field(default_factory=dict)
    tool_failures: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    seq: int = 0
    trace_id: str | None = None
    span_id: str | None = None
    parent_run_id: str | None = None
    suspended: dict[str, Any] = field(default_factory=dict)
    """Tool calls that paused themselves (an agent used as a tool whose run paused), by call
    id: ``{"name", "arguments", "state", "pending": [ids in pending]}``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "agent_name": self.agent_name,
            "session_id": self.session_id,
            "user_id": self.user_id,
            "messages": [m.to_dict() for m in self.messages],
            "new_from": self.new_from,
            "pending": [p.to_dict() for p in self.pending],
            "results": [r.to_dict() for r in self.results],
            "usage": self.usage.to_dict(),
            "step": self.step,
            "session_state": self.session_state,
            "tool_failures": self.tool_failures,
            "retries": self.retries,
            "seq": self.seq,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_run_id": self.parent_run_id,
            "suspended": self.suspended,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PausedRun:
        return cls(
            run_id=d["run_id"],
            agent_name=d.get("agent_name"),
            session_id=d.get("session_id"),
            user_id=d.get("user_id"),
            messages=[Message.from_dict(m) for m in d.get("messages", ())],
            new_from=int(d.get("new_from", 0)),
            pending=[part_from_dict(p) for p in d.get("pending", ())],  # type: ignore[misc]
            results=[part_from_dict(p) for p in d.get("results", ())],  # type: ignore[misc]
            usage=Usage.from_dict(d.get("usage", {})),
            step=int(d.get("step", 0)),
            session_state=dict(d.get("session_state") or {}),
            tool_failures=dict(d.get("tool_failures") or {}),
            retries=int(d.get("retries", 0)),
            seq=int(d.get("seq", 0)),
            trace_id=d.get("trace_id"),
            span_id=d.get("span_id"),
            parent_run_id=d.get("parent_run_id"),
            suspended=dict(d.get("suspended") or {}),
        )


class RunResult(Generic[OutputT]):
    """The outcome of a run; ``RunResult[T].output`` is a ``T`` (the agent's output type).

    ``status`` is ``completed``, ``paused``, ``failed``, ``cancelled`` or ``blocked`` (a guardrail).
    Reading ``output`` of a run that failed, was cancelled or blocked raises its typed error;
    of a paused run it is ``None`` (see ``pending`` and ``paused``). ``trace_id``,
    ``span_id`` and ``parent_run_id`` are the run's trace context (as on its events).
    """

    __slots__ = (
        "_citations",
        "_output",
        "error",
        "messages",
        "parent_run_id",
        "paused",
        "run_id",
        "session_id",
        "session_state",
        "span_id",
        "status",
        "trace_id",
        "usage",
        "user_id",
    )

    def __init__(
        self,
        run_id: str,
        status: RunStatus,
        output: Any = None,
        messages: list[Message] | None = None,
        usage: Usage | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        error: VivaceError | None = None,
        paused: PausedRun | None = None,
        session_state: dict[str, Any] | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.status: RunStatus = status
        self._output = output
        self.messages = messages if messages is not None else []
        self.usage = usage if usage is not None else Usage()
        self.session_id = session_id
        self.user_id = user_id
        self.error = error
        self.paused = paused
        self.session_state = session_state
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_run_id = parent_run_id

    @property
    def output(self) -> OutputT:
        """The final answer: ``str``, or a validated instance of the agent's ``output_type``."""
        if self.status in ("failed", "cancelled", "blocked"):
            raise self.error or RunError(f"run {self.run_id} ended with status {self.status}")
        return self._output

    @property
    def citations(self) -> list[dict[str, Any]]:
        """The knowledge-base passages the run retrieved (``knowledge_base``, ``source``,
        ``position``, ``score``, ``text``, ``metadata``), in retrieval order; empty when it
        used no knowledge base. Set by the knowledge capability before the terminal event."""
        return getattr(self, "_citations", None) or []

    @citations.setter
    def citations(self, value: list[dict[str, Any]]) -> None:
        self._citations = value

    @property
    def cost(self) -> float | None:
        """What the run's model requests cost in USD (None when no price is known)."""
        return getattr(self.usage, "cost", None)

    @property
    def pending(self) -> list[ToolCallPart]:
        """The tool calls waiting for approval (paused runs)."""
        return self.paused.pending if self.paused else []

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (output dumped with pydantic when it is a model)."""
        from ..tools.tool import result_to_content

        out = {
            "run_id": self.run_id,
            "session_id": self.session_id,
            "user_id": self.user_id,
            "status": self.status,
            "output": result_to_content(self._output),
            "messages": [m.to_dict() for m in self.messages],
            "usage": self.usage.to_dict(),
            "error": self.error.to_dict() if self.error else None,
            "paused": self.paused.to_dict() if self.paused else None,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_run_id": self.parent_run_id,
        }
        citations = getattr(self, "_citations", None)
        if citations:
            out["citations"] = citations
        return out

    def __repr__(self) -> str:
        return f"<RunResult {self.run_id} {self.status}>"
