"""``vivace mcp module:app`` - serve an app's agents (and tools) over MCP on stdio."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["mcp", "served_parts"]


def served_parts(obj: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """``(agents, tools, workflows)`` to serve for a VivaceApp, an Agent, a list of agents or
    an object with ``agents``/``tools``/``workflows`` (and ``storage``: agents without storage
    of their own get copies running on it; the objects passed in are never changed)."""
    from ..agent import Agent

    if isinstance(obj, Agent):
        return [obj], [], []
    if isinstance(obj, list | tuple):
        return [a for a in obj if isinstance(a, Agent)], [], []
    agents = getattr(obj, "agents", None)
    if agents is None:
        raise SystemExit(f"vivace mcp: {obj!r} is not an app, an Agent or a list of agents")
    agents = list(agents.values() if isinstance(agents, dict) else agents)
    storage = getattr(obj, "storage", None)
    if storage is not None:
        import copy

        for i, a in enumerate(agents):
            if a.storage is None:
                agents[i] = a = copy.copy(a)
                a.storage = storage
    workflows = getattr(obj, "workflows", None) or []
    if isinstance(workflows, dict):
        workflows = list(workflows.values())
    return agents, list(getattr(obj, "tools", None) or ()), list(workflows)


def mcp(args: argparse.Namespace) -> int:
    import asyncio

    from ._load import TargetError, load

    try:
        obj = load(args.target)
    except TargetError as exc:
        print(f"vivace mcp: {exc}", file=sys.stderr)
        return 2
    from ..mcp.server import build_mcp_server, run_stdio

    agents, tools, workflows = served_parts(obj)
    server = build_mcp_server(agents, tools, workflows, name=args.name)
    asyncio.run(run_stdio(server))
    return 0
