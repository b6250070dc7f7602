"""MCP: servers' tools as a toolset (:class:`MCPToolset`) and Vivace agents, tools and
workflows served over MCP (:mod:`vivace.mcp.server`). Needs ``pip install 'vivace[mcp]'``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import MCPConnectionError, MCPToolset

__all__ = ["MCPConnectionError", "MCPToolset"]


def __getattr__(name: str) -> Any:
    if name in ("MCPToolset", "MCPConnectionError"):
        from . import client

        value = getattr(client, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vivace.mcp' has no attribute {name!r}")
