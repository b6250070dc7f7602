"""Hooks and guardrails around the run, each model request and each tool call.

Subclass :class:`Hooks` and override what you need; methods may be sync or async. A method
that returns a value replaces what it was given (``None`` keeps it). Raising
:class:`~vivace.errors.GuardrailTripped` ends the run cleanly with status ``blocked``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..messages import Message, ToolCallPart
    from ..models.base import ModelRequest, ModelResponse
    from ..tools.context import RunContext
    from .result import RunResult

__all__ = ["HOOK_NAMES", "Hooks", "call_hooks"]

HOOK_NAMES = (
    "before_run",
    "after_run",
    "before_model_request",
    "after_model_request",
    "before_tool_call",
    "after_tool_call",
)


class Hooks:
    """Base class for hooks. Every method is optional."""

    def before_run(self, ctx: RunContext[Any], input: Message) -> Message | None:
        """Inspect or replace the user's input message."""
        return None

    def after_run(self, ctx: RunContext[Any], result: RunResult) -> None:
        """See the finished run (any status)."""
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


def _overridden(hook: Any) -> frozenset[str]:
    cls = type(hook)
    names = _OVERRIDES.get(cls)
    if names is None:
        names = frozenset(
            n
            for n in HOOK_NAMES
            if callable(getattr(cls, n, None)) and getattr(cls, n) is not getattr(Hooks, n, None)
        )
        _OVERRIDES[cls] = names
    return names


async def call_hooks(hooks: Any, name: str, ctx: Any, *args: Any) -> Any:
    """Call ``name`` on every hook that defines it; return the last replacement (or None).

    Each hook sees the previous hook's replacement of the first argument.
    """
    if not isinstance(hooks, list | tuple):
        hooks = (hooks,)
    replaced: Any = None
    current = list(args)
    for hook in hooks:
        if name not in _overridden(hook):
            continue
        value = getattr(hook, name)(ctx, *current)
        if inspect.isawaitable(value):
            value = await value
        if value is not None:
            replaced = value
            current[-1 if name in ("before_tool_call", "after_tool_call") else 0] = value
    return replaced
