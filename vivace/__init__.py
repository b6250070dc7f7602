"""Vivace: a production agent runtime for Python.

Agents, typed tools, a model router over the providers' real wire protocols, durable
storage and a stateless server. The public API is re-exported here and loaded lazily, so
``import vivace`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "vivace.agent",
    "Approve": "vivace.agent",
    "Hooks": "vivace.agent",
    "PausedRun": "vivace.agent",
    "Reject": "vivace.agent",
    "RunResult": "vivace.agent",
    "RunStream": "vivace.agent",
    "RunContext": "vivace.tools",
    "Tool": "vivace.tools",
    "Toolkit": "vivace.tools",
    "ModelRetry": "vivace.tools",
    "tool": "vivace.tools",
    "Message": "vivace.messages",
    "TextPart": "vivace.messages",
    "ImagePart": "vivace.messages",
    "AudioPart": "vivace.messages",
    "VideoPart": "vivace.messages",
    "FilePart": "vivace.messages",
    "Model": "vivace.models",
    "ModelResponse": "vivace.models",
    "Usage": "vivace.models",
    "GuardrailTripped": "vivace.errors",
    "VivaceError": "vivace.errors",
    "Capability": "vivace.agent",
    "Toolset": "vivace.tools",
    "Workflow": "vivace.workflows",
    "step": "vivace.workflows",
    "Team": "vivace.teams",
    "KnowledgeBase": "vivace.knowledge",
}

__all__ = [
    "Agent",
    "Approve",
    "AudioPart",
    "Capability",
    "FilePart",
    "GuardrailTripped",
    "Hooks",
    "ImagePart",
    "KnowledgeBase",
    "Message",
    "Model",
    "ModelResponse",
    "ModelRetry",
    "PausedRun",
    "Reject",
    "RunContext",
    "RunResult",
    "RunStream",
    "Team",
    "TextPart",
    "Tool",
    "Toolkit",
    "Toolset",
    "Usage",
    "VideoPart",
    "VivaceError",
    "Workflow",
    "__version__",
    "cancel",
    "step",
    "tool",
]

if TYPE_CHECKING:
    from .agent import Agent, Approve, Capability, Hooks, PausedRun, Reject, RunResult, RunStream
    from .errors import GuardrailTripped, VivaceError
    from .knowledge import KnowledgeBase
    from .messages import AudioPart, FilePart, ImagePart, Message, TextPart, VideoPart
    from .models import Model, ModelResponse, Usage
    from .teams import Team
    from .tools import ModelRetry, RunContext, Tool, Toolkit, Toolset, tool
    from .workflows import Workflow, step


def cancel(run_id: str) -> bool:
    """Cancel a run that is running in this process (see :meth:`Agent.cancel`)."""
    from .agent.registry import cancel_run

    return cancel_run(run_id)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vivace' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
