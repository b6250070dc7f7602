"""Serve Vivace agents, tools and workflows over MCP.

* stdio: ``vivace mcp module:app`` (an MCP client such as Claude Desktop starts it).
* streamable HTTP: :func:`mcp_http_app` - a Starlette app to mount (``vivace serve`` mounts
  it at ``/mcp`` behind the server's auth).

Each agent becomes a tool named after it taking ``{"task", "session_id"?}`` that runs the
agent and returns its output, reporting progress (model steps, tool calls) to clients that
ask for it. Tools (functions, :class:`~vivace.tools.Tool`\\ s, static toolsets) keep their own
names and JSON Schemas. A workflow is anything with a ``name`` and an async
``arun(input)``; it takes ``{"input"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..agent.as_tool import TASK_SCHEMA, tool_name
from ..errors import UserError, VivaceError

if TYPE_CHECKING:
    from ..agent import Agent
    from ..tools import BaseTool

__all__ = ["build_mcp_server", "mcp_http_app", "run_stdio"]

AGENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **TASK_SCHEMA["properties"],
        "session_id": {
            "type": "string",
            "description": "Continue this conversation (optional; omitted: a new session).",
        },
    },
    "required": ["task"],
    "additionalProperties": False,
}
WORKFLOW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"description": "The workflow's input."}},
    "required": ["input"],
}


class _Entry:
    __slots__ = ("call", "description", "name", "schema")

    def __init__(self, name: str, description: str, schema: dict[str, Any], call: Any) -> None:
        self.name = name
        self.description = description
        self.schema = schema
        self.call = call


def _agent_entry(agent: Agent[Any, Any]) -> _Entry:
    async def call(arguments: dict[str, Any], progress: Any) -> Any:
        from ..agent.events import ModelRequestStarted, NestedEvent, ToolCallStarted

        task = arguments.get("task")
        if not isinstance(task, str) or not task:
            raise UserError('"task" must be a non-empty string')
        stream = agent.astream(
            task, stream_model=False, session_id=arguments.get("session_id") or None
        )
        steps = 0
        async for e in stream:
            kind = type(e)
            if kind is ModelRequestStarted:
                steps += 1
                await progress(steps, f"step {steps}: asking the model")
            elif kind is ToolCallStarted:
                await progress(steps, f"calling {e.name}")  # type: ignore[attr-defined]
            elif kind is NestedEvent and type(e.event) is ModelRequestStarted:  # type: ignore[attr-defined]
                await progress(steps, f"{'/'.join(e.path)} is working")  # type: ignore[attr-defined]
        result = stream.result
        assert result is not None
        if result.status == "completed":
            return result.output
        if result.status == "paused":
            names = ", ".join(c.name for c in result.pending)
            raise UserError(
                f"the run {result.run_id} paused for an approval of {names} (approve it through "
                "the Vivace server's API)"
            )
        raise result.error or VivaceError(f"the run ended with status {result.status}")

    text = agent.description or f"Run the {agent.id} agent on a task and get its answer."
    return _Entry(tool_name(agent.id), text, AGENT_SCHEMA, call)


def _tool_entry(t: BaseTool) -> _Entry:
    d = t.definition()

    async def call(arguments: dict[str, Any], progress: Any) -> Any:
        return await t.call(t.validate(arguments), None)

    return _Entry(d.name, d.description, d.parameters, call)


def _workflow_entry(workflow: Any) -> _Entry:
    name = getattr(workflow, "name", None) or getattr(workflow, "id", None) or "workflow"

    async def call(arguments: dict[str, Any], progress: Any) -> Any:
        result = await workflow.arun(arguments.get("input"))
        return getattr(result, "output", result)

    text = getattr(workflow, "description", None) or f"Run the {name} workflow."
    return _Entry(tool_name(str(name)), text, WORKFLOW_SCHEMA, call)


def _entries(agents: Any, tools: Sequence[Any], workflows: Sequence[Any]) -> dict[str, _Entry]:
    from ..agent.loop import collect_tools

    out: dict[str, _Entry] = {}

    def add(entry: _Entry) -> None:
        if entry.name in out:
            raise UserError(f"two MCP tools are named {entry.name!r}: rename one")
        out[entry.name] = entry

    for a in agents.values() if isinstance(agents, Mapping) else agents:
        add(_agent_entry(a))
    found: dict[str, BaseTool] = {}
    dynamic: list[Any] = []
    collect_tools(tools, found, [], dynamic)
    if dynamic:
        raise UserError("toolsets listed per run (MCP, dynamic) cannot be served over MCP")
    for t in found.values():
        add(_tool_entry(t))
    for w in workflows:
        add(_workflow_entry(w))
    return out


def _content(value: Any) -> tuple[list[Any], Any]:
    import mcp_types as types

    from ..tools.tool import result_to_content

    data = result_to_content(value)
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return [types.TextContent(type="text", text=text)], data if isinstance(data, dict) else None


def build_mcp_server(
    agents: Sequence[Agent[Any, Any]] | Mapping[str, Agent[Any, Any]] = (),
    tools: Sequence[Any] = (),
    workflows: Sequence[Any] = (),
    *,
    name: str = "vivace",
    instructions: str | None = None,
) -> Any:
    """An MCP server (the SDK's low-level ``Server``) exposing ``agents``, ``tools`` and
    ``workflows`` as MCP tools. Serve it with :func:`run_stdio` or :func:`mcp_http_app`."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from .. import __version__

    entries = _entries(agents, tools, workflows)
    listing = types.ListToolsResult(
        tools=[
            types.Tool(name=e.name, description=e.description, input_schema=e.schema)
            for e in entries.values()
        ]
    )

    async def on_list_tools(ctx: Any, params: Any) -> Any:
        return listing

    async def on_call_tool(ctx: Any, params: Any) -> Any:
        entry = entries.get(params.name)
        if entry is None:
            known = ", ".join(entries) or "none"
            return _error(f"unknown tool {params.name!r}; tools: {known}")

        async def progress(step: float, message: str) -> None:
            await ctx.session.report_progress(step, None, message)

        try:
            value = await entry.call(dict(params.arguments or {}), progress)
        except VivaceError as exc:
            return _error(exc.message or type(exc).__name__)
        except Exception as exc:
            return _error(f"{type(exc).__name__}: {exc}")
        content, structured = _content(value)
        return types.CallToolResult(content=content, structured_content=structured)

    return Server(
        name,
        version=__version__,
        instructions=instructions,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def _error(message: str) -> Any:
    import mcp_types as types

    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


async def run_stdio(server: Any) -> None:
    """Serve ``server`` over stdin/stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def mcp_http_app(server: Any, *, path: str = "/mcp", json_response: bool = False) -> Any:
    """A Starlette app serving ``server`` over streamable HTTP at ``path``.

    Mounted inside another app, that app's lifespan must run ``server.session_manager.run()``
    (``vivace serve`` does). Host-header checks are left to the hosting server.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    return server.streamable_http_app(
        streamable_http_path=path,
        json_response=json_response,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
