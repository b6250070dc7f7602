"""The workflow event stream, in the same shape as agent events.

Every event has ``type``, ``run_id`` (the workflow run), ``seq`` (0, 1, 2... within the run,
no gaps, continued across resumes) and the trace context (``trace_id``, ``span_id``,
``parent_run_id``); step events carry the step's ``path`` (``outer.loop[3].inner.step``).
``event.to_dict()`` gives the JSON form.

=======================  ==========================================================
type                     fields
=======================  ==========================================================
``workflow_started``     workflow, input
``workflow_resumed``     step, data (the resume data or the event sent)
``step_started``         path, kind, attempt
``step_completed``       path, output, duration (seconds)
``step_failed``          path, error, attempt
``step_retrying``        path, attempt (the next one), delay, error
``step_suspended``       path, payload, kind (``suspend``, ``approval``, ``event``, ``sleep``)
``step_skipped``         path (a branch that was not taken)
``workflow_suspended``   status (``suspended``/``waiting``), suspended ([{path, payload, kind}])
``workflow_completed``   status (``completed``/``bailed``), output
``workflow_failed``      error (with its ``step`` path)
``workflow_cancelled``   reason
agent events             an agent step's own events (``text_delta``, ``tool_call_started``...),
                         with ``path``, ``agent_run_id`` and ``agent_seq`` added
=======================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "AgentStepEvent",
    "StepCompleted",
    "StepFailed",
    "StepRetrying",
    "StepSkipped",
    "StepStarted",
    "StepSuspended",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowEvent",
    "WorkflowFailed",
    "WorkflowResumed",
    "WorkflowStarted",
    "WorkflowSuspended",
]

_NO_TRACE: tuple[str | None, str | None, str | None] = (None, None, None)


@dataclass(slots=True)
class WorkflowEvent:
    """Base of all workflow events."""

    run_id: str
    seq: int
    trace: tuple[str | None, str | None, str | None] = field(
        default=_NO_TRACE, init=False, repr=False, compare=False
    )
    type: ClassVar[str] = "event"

    @property
    def trace_id(self) -> str | None:
        return self.trace[0]

    @property
    def span_id(self) -> str | None:
        return self.trace[1]

    @property
    def parent_run_id(self) -> str | None:
        return self.trace[2]

    @property
    def terminal(self) -> bool:
        """Whether this event ends the run's stream."""
        return False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for name in self.__dataclass_fields__:
            out[name] = getattr(self, name)
        trace = out.pop("trace")
        out["trace_id"], out["span_id"], out["parent_run_id"] = trace
        return out


@dataclass(slots=True)
class WorkflowStarted(WorkflowEvent):
    workflow: str = ""
    input: Any = None
    type: ClassVar[str] = "workflow_started"


@dataclass(slots=True)
class WorkflowResumed(WorkflowEvent):
    step: str | None = None
    data: Any = None
    type: ClassVar[str] = "workflow_resumed"


@dataclass(slots=True)
class StepStarted(WorkflowEvent):
    path: str = ""
    kind: str = "function"
    attempt: int = 1
    type: ClassVar[str] = "step_started"


@dataclass(slots=True)
class StepCompleted(WorkflowEvent):
    path: str = ""
    output: Any = None
    duration: float = 0.0
    type: ClassVar[str] = "step_completed"


@dataclass(slots=True)
class StepFailed(WorkflowEvent):
    path: str = ""
    error: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    type: ClassVar[str] = "step_failed"


@dataclass(slots=True)
class StepRetrying(WorkflowEvent):
    path: str = ""
    attempt: int = 2
    delay: float = 0.0
    error: dict[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "step_retrying"


@dataclass(slots=True)
class StepSuspended(WorkflowEvent):
    path: str = ""
    payload: Any = None
    kind: str = "suspend"
    type: ClassVar[str] = "step_suspended"


@dataclass(slots=True)
class StepSkipped(WorkflowEvent):
    path: str = ""
    type: ClassVar[str] = "step_skipped"


@dataclass(slots=True)
class WorkflowSuspended(WorkflowEvent):
    status: str = "suspended"
    suspended: list[dict[str, Any]] = field(default_factory=list)
    type: ClassVar[str] = "workflow_suspended"

    @property
    def terminal(self) -> bool:
        return True


@dataclass(slots=True)
class WorkflowCompleted(WorkflowEvent):
    status: str = "completed"
    output: Any = None
    type: ClassVar[str] = "workflow_completed"

    @property
    def terminal(self) -> bool:
        return True


@dataclass(slots=True)
class WorkflowFailed(WorkflowEvent):
    error: dict[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "workflow_failed"

    @property
    def terminal(self) -> bool:
        return True


@dataclass(slots=True)
class WorkflowCancelled(WorkflowEvent):
    reason: str = "cancelled"
    type: ClassVar[str] = "workflow_cancelled"

    @property
    def terminal(self) -> bool:
        return True


@dataclass(slots=True)
class AgentStepEvent(WorkflowEvent):
    """An agent step's own event, forwarded into the workflow stream.

    ``type`` is the agent event's type; ``to_dict()`` gives the agent event's fields with the
    workflow's ``run_id``/``seq``, the step ``path``, and the agent run's ``agent_run_id``,
    ``agent_seq`` and trace (its ``span_id``, and ``parent_run_id`` = the workflow run).
    """

    path: str = ""
    event: Any = None

    @property
    def type(self) -> str:  # type: ignore[override]
        return str(self.event.type)

    def to_dict(self) -> dict[str, Any]:
        inner = self.event.to_dict()
        inner["agent_run_id"] = inner.pop("run_id")
        inner["agent_seq"] = inner.pop("seq")
        inner["run_id"] = self.run_id
        inner["seq"] = self.seq
        inner["path"] = self.path
        return inner


EVENT_TYPES: dict[str, type[WorkflowEvent]] = {
    cls.type: cls
    for cls in (
        WorkflowStarted,
        WorkflowResumed,
        StepStarted,
        StepCompleted,
        StepFailed,
        StepRetrying,
        StepSuspended,
        StepSkipped,
        WorkflowSuspended,
        WorkflowCompleted,
        WorkflowFailed,
        WorkflowCancelled,
    )
}
