"""The run context injected into tools, instructions and hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from ..messages import Message

__all__ = ["RunContext"]

DepsT = TypeVar("DepsT")


@dataclass(slots=True)
class RunContext(Generic[DepsT]):
    """What a tool, an instructions callable or a hook knows about the run.

    A tool parameter annotated with ``RunContext`` receives it and is never shown to the model.
    ``session_state`` is the session's mutable state: changes are persisted with the run when
    the agent has storage. ``deps`` are the dependencies passed to the agent or the run.
    """

    run_id: str
    session_id: str | None = None
    user_id: str | None = None
    session_state: dict[str, Any] = field(default_factory=dict)
    deps: DepsT = None  # type: ignore[assignment]
    agent_name: str | None = None
    messages: list[Message] = field(default_factory=list)
    step: int = 0
    tool_call_id: str | None = None
    retry: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def for_tool_call(self, call_id: str, retry: int) -> RunContext[DepsT]:
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
        )
