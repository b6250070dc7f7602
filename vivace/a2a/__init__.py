"""A2A (agent-to-agent protocol 1.0): serve an agent (:mod:`vivace.a2a.server`) and use a
remote A2A agent as a tool or team member (:class:`A2AAgent`). Needs
``pip install 'vivace[a2a]'`` (the official ``a2a-sdk``), imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import A2AAgent

__all__ = ["A2AAgent"]


def __getattr__(name: str) -> Any:
    if name == "A2AAgent":
        from .client import A2AAgent

        globals()[name] = A2AAgent
        return A2AAgent
    raise AttributeError(f"module 'vivace.a2a' has no attribute {name!r}")
