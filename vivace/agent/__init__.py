"""The agent: construction, the run loop, events, results, hooks and approvals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .agent import Agent, RunStream, SyncRunStream

if TYPE_CHECKING:
    from .capability import Capability
    from .hooks import Hooks
    from .result import Approval, Approve, PausedRun, Reject, RunResult, RunStatus

__all__ = [
    "Agent",
    "Approval",
    "Approve",
    "Capability",
    "Hooks",
    "PausedRun",
    "Reject",
    "RunResult",
    "RunStatus",
    "RunStream",
    "SyncRunStream",
]

_LAZY = {
    "Capability": ".capability",
    "Hooks": ".hooks",
    "Approval": ".result",
    "Approve": ".result",
    "PausedRun": ".result",
    "Reject": ".result",
    "RunResult": ".result",
    "RunStatus": ".result",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vivace.agent' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
