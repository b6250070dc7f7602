"""The run context injected into tools, instructions, hooks and capabilities."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from ..messages import Message
    from ..storage.state import SessionState

__all__ = ["RunContext", "current_run_context"]

DepsT = TypeVar("DepsT")


def _new_state() -> SessionState:
    from ..storage.state import SessionState

    return SessionState()


@dataclass(slots=True)
class RunContext(Generic[DepsT]):
    """What a tool, an instructions callable or a hook knows about the run.

    A tool parameter annotated with ``RunContext`` receives it and is never shown to the model.
    ``session_state`` is the session's mutable state (a
    :class:`~vivace.storage.state.SessionState`: a dict with ``increment``, ``append`` and
    ``merge`` that never lose a concurrent write): changes are persisted with the run when the
    agent has storage. ``deps`` are the dependencies passed to the agent or the run.

    Trace context: ``trace_id`` (32 hex digits, shared by every run, step and call of one
    trace), ``span_id`` (16 hex digits, this run's span) and ``parent_run_id`` (the run, workflow
    step or team run that started this one). A run started inside a tool call of another run
    (an agent used as a tool) inherits the trace and names that run as its parent.

    For tools that run other runs (an agent as a tool, a team member, a remote agent):
    ``usage`` is the run's usage so far (add a child run's usage to it so the run's total
    includes it); ``emit`` is set while a tool whose class has ``emits_events = True`` runs
    (hand it events to put in this run's stream, numbered in its sequence); ``resume`` is set
    when a tool call that raised :class:`~vivace.tools.ToolSuspended` runs again with the
    decisions: a :class:`~vivace.tools.ToolResume`.
    """

    run_id: str
    session_id: str | None = None
    user_id: str | None = None
    session_state: SessionState = field(default_factory=_new_state)
    deps: DepsT = None  # type: ignore[assignment]
    agent_name: str | None = None
    messages: list[Message] = field(default_factory=list)
    step: int = 0
    tool_call_id: str | None = None
    retry: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None
    span_id: str | None = None
    parent_run_id: str | None = None
    agent: Any = None
    usage: Any = None
    emit: Callable[[Any], None] | None = None
    resume: Any = None

    def for_tool_call(self, call_id: str, retry: int, resume: Any = None) -> RunContext[DepsT]:
        """A shallow copy naming the tool call being executed (shares state and messages)."""
        return RunContext(
            self.run_id,
            self.session_id,
            self.user_id,
            self.session_state,
            self.deps,
            self.agent_name,
            self.messages,
            self.step,
            call_id,
            retry,
            self.metadata,
            self.trace_id,
            self.span_id,
            self.parent_run_id,
            self.agent,
            self.usage,
            self.emit,
            resume,
        )


_CURRENT: ContextVar[RunContext[Any] | None] = ContextVar("vivace_run_context", default=None)


def current_run_context() -> RunContext[Any] | None:
    """The context of the tool call running now (in this task or thread), or None.

    A run started inside a tool call reads it to join the caller's trace as a child run.
    """
    return _CURRENT.get()
