"""The run event stream: one JSON-serializable event type per thing that happens in a run.

Every event has ``type``, ``run_id`` and ``seq`` (0, 1, 2... within the run, no gaps), so a
consumer that reconnects can ask for "everything after seq N", and the run's trace context:
``trace_id``, ``span_id`` (the run's span) and ``parent_run_id`` (set when another run, a
workflow step or a team started this one), so a client error or a log line leads to the
trace. ``event.to_dict()`` gives the JSON form.

============================  =========================================================
type                          fields
============================  =========================================================
``run_started``               agent, session_id, user_id, input (message dict)
``run_resumed``               decisions ({call_id: "approved" | "rejected"})
``model_request_started``     step, model
``reasoning_delta``           text
``text_delta``                text
``model_request_completed``   step, usage, finish_reason
``tool_call_started``         call_id, name, arguments
``tool_call_completed``       call_id, name, result, is_error
``run_paused``                pending (calls waiting for approval), paused (resume state)
``run_completed``             output, usage
``run_failed``                status (failed/blocked), error {type, code, message}
``run_cancelled``             reason
``nested_event``              path, call_id, event (an event of a run this run started)
============================  =========================================================

An agent used as a tool, a team member or a remote agent runs as a child run; its events
reach the parent's stream as ``nested_event`` events, each numbered in the parent's sequence
and carrying the child's own event untouched (its run id, seq and trace). ``path`` names the
members from the parent down (``["researcher"]``, or ``["writers", "editor"]`` for a member
of a member), ``call_id`` is the parent's tool call that started that branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

NO_TRACE: tuple[None, None, None] = (None, None, None)

__all__ = [
    "EVENT_TYPES",
    "ModelRequestCompleted",
    "ModelRequestStarted",
    "NestedEvent",
    "ReasoningDelta",
    "RunCancelled",
    "RunCompleted",
    "RunEvent",
    "RunFailed",
    "RunPaused",
    "RunResumed",
    "RunStarted",
    "TextDelta",
    "ToolCallCompleted",
    "ToolCallStarted",
    "event_from_dict",
]


@dataclass(slots=True)
class RunEvent:
    """Base of all run events."""

    run_id: str
    seq: int
    trace: tuple[str | None, str | None, str | None] = field(
        default=NO_TRACE, init=False, repr=False, compare=False
    )
    """``(trace_id, span_id, parent_run_id)``, set by the run for every event it emits."""
    type: ClassVar[str] = "event"

    @property
    def trace_id(self) -> str | None:
        """The trace this run belongs to (32 hex digits)."""
        return self.trace[0]

    @property
    def span_id(self) -> str | None:
        """The run's span id (16 hex digits)."""
        return self.trace[1]

    @property
    def parent_run_id(self) -> str | None:
        """The run that started this one, if any."""
        return self.trace[2]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for name in self.__dataclass_fields__:
            out[name] = getattr(self, name)
        trace = out.pop("trace")
        out["trace_id"], out["span_id"], out["parent_run_id"] = trace
        return out


@dataclass(slots=True)
class RunStarted(RunEvent):
    agent: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    input: dict[str, Any] | None = None
    type: ClassVar[str] = "run_started"


@dataclass(slots=True)
class RunResumed(RunEvent):
    decisions: dict[str, str] = field(default_factory=dict)
    type: ClassVar[str] = "run_resumed"


@dataclass(slots=True)
class ModelRequestStarted(RunEvent):
    step: int = 0
    model: str = ""
    type: ClassVar[str] = "model_request_started"


@dataclass(slots=True)
class ModelRequestCompleted(RunEvent):
    step: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str = "stop"
    type: ClassVar[str] = "model_request_completed"


@dataclass(slots=True)
class TextDelta(RunEvent):
    text: str = ""
    type: ClassVar[str] = "text_delta"


@dataclass(slots=True)
class ReasoningDelta(RunEvent):
    text: str = ""
    type: ClassVar[str] = "reasoning_delta"


@dataclass(slots=True)
class ToolCallStarted(RunEvent):
    call_id: str = ""
    name: str = ""
    arguments: Any = None
    type: ClassVar[str] = "tool_call_started"


@dataclass(slots=True)
class ToolCallCompleted(RunEvent):
    call_id: str = ""
    name: str = ""
    result: Any = None
    is_error: bool = False
    type: ClassVar[str] = "tool_call_completed"


@dataclass(slots=True)
class RunPaused(RunEvent):
    pending: list[dict[str, Any]] = field(default_factory=list)
    paused: dict[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "run_paused"


@dataclass(slots=True)
class RunCompleted(RunEvent):
    output: Any = None
    usage: dict[str, int] = field(default_factory=dict)
    type: ClassVar[str] = "run_completed"


@dataclass(slots=True)
class RunFailed(RunEvent):
    status: str = "failed"
    error: dict[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "run_failed"


@dataclass(slots=True)
class RunCancelled(RunEvent):
    reason: str = "cancelled"
    type: ClassVar[str] = "run_cancelled"


@dataclass(slots=True)
class NestedEvent(RunEvent):
    """An event of a child run (a member, a subagent), forwarded through this run's stream."""

    path: list[str] = field(default_factory=list)
    call_id: str | None = None
    event: RunEvent | None = None
    type: ClassVar[str] = "nested_event"

    def to_dict(self) -> dict[str, Any]:
        inner = self.event
        trace_id, span_id, parent_run_id = self.trace
        return {
            "type": "nested_event",
            "run_id": self.run_id,
            "seq": self.seq,
            "path": self.path,
            "call_id": self.call_id,
            "event": inner.to_dict() if inner is not None else None,
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_run_id": parent_run_id,
        }


EVENT_TYPES: dict[str, type[RunEvent]] = {
    cls.type: cls
    for cls in (
        RunStarted,
        RunResumed,
        ModelRequestStarted,
        ModelRequestCompleted,
        TextDelta,
        ReasoningDelta,
        ToolCallStarted,
        ToolCallCompleted,
        RunPaused,
        RunCompleted,
        RunFailed,
        RunCancelled,
        NestedEvent,
    )
}


def event_from_dict(d: dict[str, Any]) -> RunEvent:
    """Rebuild an event from its ``to_dict()`` form."""
    data = dict(d)
    cls = EVENT_TYPES.get(data.pop("type", None))
    if cls is None:
        raise ValueError(f"unknown event type: {d.get('type')!r}")
    trace = (data.pop("trace_id", None), data.pop("span_id", None), data.pop("parent_run_id", None))
    if cls is NestedEvent and isinstance(data.get("event"), dict):
        data["event"] = event_from_dict(data["event"])
    event = cls(**data)
    if trace != NO_TRACE:
        event.trace = trace
    return event
