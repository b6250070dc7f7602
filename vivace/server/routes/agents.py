"""``/health`` and the agents: list them, describe one (with its tools' JSON schemas)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import json_response
from ..ids import path_id
from ..routing import Op
from ..schemas import AgentInfo, AgentList, Health
from ..state import agent, agents, settings

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ...agent import Agent

__all__ = ["ROUTES", "agent_info"]


def _model_name(model: Any) -> str | list[str] | None:
    if model is None or isinstance(model, str):
        return model
    if isinstance(model, list | tuple):
        return [m if isinstance(m, str) else str(getattr(m, "id", m)) for m in model]
    return str(getattr(model, "id", type(model).__name__))


def agent_info(agent: Agent) -> dict[str, Any]:
    """The public description of an agent (tools with their JSON schemas)."""
    from ...errors import VivaceError
    from ...tools.tool import as_tool
    from ...tools.toolset import Toolset

    tools: list[dict[str, Any]] = []
    for item in agent.tools or ():
        # a toolset's tools listed per run are not known here
        items = list(item.static_tools() or ()) if isinstance(item, Toolset) else [as_tool(item)]
        for t in items:
            try:
                d = t.definition()
                description, parameters = d.description, d.parameters
            except VivaceError:
                description, parameters = "", {}
            tools.append(
                {
                    "name": t.name,
                    "description": description,
                    "parameters": parameters,
                    "requires_approval": t.requires_approval,
                }
            )
    return {
        "id": agent.id,
        "name": agent.name,
        "description": agent.description,
        "model": _model_name(agent.model),
        "tools": tools,
    }


def _info(request: Request, a: Agent) -> dict[str, Any]:
    cache = settings(request).cache.setdefault("agent_info", {})
    info = cache.get(a.id)
    if info is None:
        info = cache[a.id] = agent_info(a)
    return info


async def health(request: Request) -> Response:
    from ... import __version__

    return json_response({"status": "ok", "version": __version__})


async def list_agents(request: Request) -> Response:
    return json_response({"agents": [_info(request, a) for a in agents(request).values()]})


async def get_agent(request: Request) -> Response:
    return json_response(_info(request, agent(request, path_id(request, "agent_id"))))


ROUTES = [
    Op("GET", "/health", health, "Liveness", "health", None, responses={200: Health}),
    Op("GET", "/agents", list_agents, "List agents", "agents", responses={200: AgentList}),
    Op(
        "GET",
        "/agents/{agent_id}",
        get_agent,
        "An agent with its tools",
        "agents",
        responses={200: AgentInfo, 400: None, 404: None},
    ),
]
