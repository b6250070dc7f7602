"""Capabilities: what plugs into every run of an agent.

A :class:`Capability` contributes instructions, tools (functions, tools or
:class:`~vivace.tools.Toolset`\\ s) and work around the run and its model requests and tool
calls. Memory, hooks and guardrails, knowledge (classic RAG) and tracing are capabilities, so
the run loop knows this one protocol and no feature by name. Every method is optional and may
be sync or async; a method that returns a value replaces what it was given (``None`` keeps
it); raising :class:`~vivace.errors.GuardrailTripped` ends the run with status ``blocked``.

All of a run's work, ``after_run`` included, happens before its terminal event: a consumer
that stops reading at ``run_completed`` has seen everything the run did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..messages import Message, ToolCallPart
    from ..models.base import ModelRequest, ModelResponse
    from ..tools.context import RunContext
    from .result import RunResult

__all__ = [
    "CAPABILITY_METHODS",
    "HOOK_NAMES",
    "Capability",
    "call_hooks",
    "default_capabilities",
    "overridden",
    "set_default_capabilities",
]

HOOK_NAMES = (
    "before_run",
    "after_run",
    "before_model_request",
    "after_model_request",
    "before_tool_call",
    "after_tool_call",
)
CAPABILITY_METHODS = (*HOOK_NAMES, "instructions", "tools")

DEFAULTS: tuple[Any, ...] = ()
"""Capabilities every agent's runs use, before its own (process-wide tracing sets one)."""


def set_default_capabilities(caps: Sequence[Any]) -> None:
    """Give every run of every agent these capabilities (first, before the agent's own)."""
    global DEFAULTS
    DEFAULTS = tuple(caps)


def default_capabilities() -> tuple[Any, ...]:
    return DEFAULTS


class Capability:
    """Base class of capabilities. Override what you need; the rest costs nothing."""

    __slots__ = ()

    def tools(self) -> Sequence[Any]:
        """Functions, tools or toolsets added to every run (listed once per run)."""
        return ()

    def instructions(self, ctx: RunContext[Any], input: Message | None) -> Any:
        """Text appended to the agent's instructions for this run (``input`` is the user's
        message, None for a resumed run); may be async; None adds nothing."""
        return None

    def before_run(self, ctx: RunContext[Any], input: Message) -> Message | None:
        """Inspect or replace the user's input message."""
        return None

    def after_run(self, ctx: RunContext[Any], result: RunResult[Any]) -> Any:
        """See the finished run (any status), after it is persisted and before its terminal
        event. Raising fails the run with that error (it is persisted again as failed)."""
        return None

    def before_model_request(
        self, ctx: RunContext[Any], request: ModelRequest
    ) -> ModelRequest | None:
        """Inspect or replace a model request."""
        return None

    def after_model_request(
        self, ctx: RunContext[Any], response: ModelResponse
    ) -> ModelResponse | None:
        """Inspect or replace a model response."""
        return None

    def before_tool_call(
        self, ctx: RunContext[Any], call: ToolCallPart, arguments: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Inspect or replace a tool call's validated arguments."""
        return None

    def after_tool_call(self, ctx: RunContext[Any], call: ToolCallPart, result: Any) -> Any:
        """Inspect or replace a tool's result."""
        return None


_OVERRIDES: dict[type, frozenset[str]] = {}


def overridden(cap: Any) -> frozenset[str]:
    """The capability methods ``cap``'s class overrides (cached per class)."""
    cls = type(cap)
    names = _OVERRIDES.get(cls)
    if names is None:
        names = frozenset(
            n
            for n in CAPABILITY_METHODS
            if callable(getattr(cls, n, None))
            and getattr(cls, n) is not getattr(Capability, n, None)
        )
        _OVERRIDES[cls] = names
    return names


async def call_hooks(caps: Sequence[Any], name: str, ctx: Any, *args: Any) -> Any:
    """Call ``name`` on every capability that overrides it; return the last replacement (or
    None). Each sees the previous one's replacement of the value it may replace."""
    replaced: Any = None
    current = list(args)
    for cap in caps:
        if name not in overridden(cap):
            continue
        value = getattr(cap, name)(ctx, *current)
        if isinstance(value, Awaitable):  # not inspect: importing it costs ~4 ms
            value = await value
        if value is not None:
            replaced = value
            current[-1 if name in ("before_tool_call", "after_tool_call") else 0] = value
    return replaced
