"""Hooks and guardrails around the run, each model request and each tool call.

Subclass :class:`Hooks` and override what you need; methods may be sync or async. A method
that returns a value replaces what it was given (``None`` keeps it). Raising
:class:`~vivace.errors.GuardrailTripped` ends the run cleanly with status ``blocked``.

Hooks are :class:`~vivace.agent.capability.Capability` objects that only hook: the run calls
them exactly like memory, knowledge or any other capability.
"""

from __future__ import annotations

from .capability import HOOK_NAMES, Capability, call_hooks

__all__ = ["HOOK_NAMES", "Hooks", "call_hooks"]


class Hooks(Capability):
    """Base class for hooks (``before_run``, ``after_run``, ``before_model_request``,
    ``after_model_request``, ``before_tool_call``, ``after_tool_call``). Every method is
    optional."""
