"""``vivace mcp module:app`` - serve an app's agents (and tools) over MCP on stdio."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["mcp"]


def _parts(obj: Any) -> tuple[Any, list[Any], list[Any]]:
    """``(agents, tools, workflows)`` of a VivaceApp, an Agent or a list of them."""
    from ..agent import Agent

    if isinstance(obj, Agent):
        return [obj], [], []
    if isinstance(obj, list | tuple):
        return [a for a in obj if isinstance(a, Agent)], [], []
    agents = getattr(obj, "agents", None)
    if agents is not None:
        return (
            agents,
            list(getattr(obj, "tools", None) or ()),
            list(getattr(obj, "workflows", None) or ()),
        )
    raise SystemExit(f"vivace mcp: {obj!r} is not an app, an Agent or a list of agents")


def mcp(args: argparse.Namespace) -> int:
    import asyncio

    from ._load import TargetError, load

    try:
        obj = load(args.target)
    except TargetError as exc:
        print(f"vivace mcp: {exc}", file=sys.stderr)
        return 2
    from ..mcp.server import build_mcp_server, run_stdio

    agents, tools, workflows = _parts(obj)
    storage = getattr(obj, "storage", None)
    if storage is not None:
        for a in agents.values() if isinstance(agents, dict) else agents:
            if a.storage is None:
                a.storage = storage
    server = build_mcp_server(agents, tools, workflows, name=args.name)
    asyncio.run(run_stdio(server))
    return 0
