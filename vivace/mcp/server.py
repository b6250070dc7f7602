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


class _Traced:
    """An agent run's outcome and the ``_meta`` naming the run and its trace."""

    __slots__ = ("error", "meta", "value")

    def __init__(self, value: Any, meta: dict[str, Any], error: VivaceError | None = None):
        self.value, self.meta, self.error = value, meta, error


def _agent_entry(agent: Agent[Any, Any]) -> _Entry:
    async def call(arguments: dict[str, Any], progress: Any, user_id: str | None = None) -> Any:
        from ..agent.events import ModelRequestStarted, NestedEvent, ToolCallStarted

        task = arguments.get("task")
        if not isinstance(task, str) or not task:
            raise UserError('"task" must be a non-empty string')
        session_id = arguments.get("session_id") or None
        if session_id is not None and not isinstance(session_id, str):
            raise UserError('"session_id" must be a string')
        stream = agent.astream(task, stream_model=False, session_id=session_id, user_id=user_id)
        steps = 0
        async for e in stream:
            kind = type(e)
            if kind is ModelRequestStarted:
                steps += 1
                await progress(f"step {steps}: asking the model")
            elif kind is ToolCallStarted:
                await progress(f"calling {e.name}")  # type: ignore[attr-defined]
            elif kind is NestedEvent and type(e.event) is ModelRequestStarted:  # type: ignore[attr-defined]
                await progress(f"{'/'.join(e.path)} is working")  # type: ignore[attr-defined]
        result = stream.result
        assert result is not None
        meta = {"run_id": result.run_id, "trace_id": result.trace_id}
        if result.status == "completed":
            return _Traced(result.output, meta)
        if result.status == "paused":
            names = ", ".join(c.name for c in result.pending)
            error: VivaceError = UserError(
                f"the run {result.run_id} paused for an approval of {names} (approve it through "
                "the Vivace server's API)"
            )
        else:
            error = result.error or VivaceError(f"the run ended with status {result.status}")
        return _Traced(None, meta, error)

    text = agent.description or f"Run the {agent.id} agent on a task and get its answer."
    return _Entry(tool_name(agent.id), text, AGENT_SCHEMA, call)


def _tool_entry(t: BaseTool) -> _Entry:
    if t.requires_approval:
        raise UserError(
            f"tool {t.name!r} requires an approval, which MCP cannot ask for: serve it through "
            "an agent (its run pauses for the approval) instead"
        )
    d = t.definition()

    async def call(arguments: dict[str, Any], progress: Any, user_id: str | None = None) -> Any:
        return await t.call(t.validate(arguments), None)

    return _Entry(d.name, d.description, d.parameters, call)


def _workflow_entry(workflow: Any) -> _Entry:
    from ..workflows import Workflow

    if isinstance(workflow, Workflow):
        return _typed_workflow_entry(workflow)
    name = getattr(workflow, "name", None) or getattr(workflow, "id", None) or "workflow"

    async def call(arguments: dict[str, Any], progress: Any, user_id: str | None = None) -> Any:
        result = await workflow.arun(arguments.get("input"))
        return getattr(result, "output", result)

    text = getattr(workflow, "description", None) or f"Run the {name} workflow."
    return _Entry(tool_name(str(name)), text, WORKFLOW_SCHEMA, call)


def _typed_workflow_entry(wf: Any) -> _Entry:
    """A :class:`~vivace.workflows.Workflow`: its input type's JSON Schema (an object input as
    the arguments, anything else as ``{"input": ...}``), validated; the run is the caller's."""
    from ..workflows.typecheck import json_schema, to_jsonable, validate

    given = json_schema(wf.input_type) if wf.input_type is not None else None
    wrapped = not (given is not None and given.get("type") == "object")
    schema: dict[str, Any] = (
        {"type": "object", "properties": {"input": given or {}}, "required": ["input"]}
        if wrapped or given is None
        else given
    )

    async def call(arguments: dict[str, Any], progress: Any, user_id: str | None = None) -> Any:
        value = arguments.get("input") if wrapped else arguments
        if wf.input_type is not None:
            value = validate(wf.input_type, value)
        result = await wf.arun(value, user_id=user_id)
        if result.status in ("suspended", "waiting"):
            steps = ", ".join(str(getattr(x, "path", x)) for x in result.suspended or ())
            raise UserError(
                f"the workflow run {result.run_id} is {result.status} at {steps or 'a step'} "
                "(resume it through the Vivace server's API)"
            )
        return to_jsonable(result.output)

    text = wf.description or f"Run the {wf.id} workflow."
    return _Entry(tool_name(wf.id), text, schema, call)


def check_served(agents: Any, tools: Sequence[Any] = (), workflows: Sequence[Any] = ()) -> None:
    """Raise ``UserError`` unless these can be served over MCP together (distinct tool names,
    no tool that needs an approval, no toolset listed per run). Imports no SDK."""
    _entries(agents, tools, workflows)


def _entries(agents: Any, tools: Sequence[Any], workflows: Sequence[Any]) -> dict[str, _Entry]:
    from ..agent.loop import collect_tools

    out: dict[str, _Entry] = {}

    def add(entry: _Entry) -> None:
        if entry.name in out:
            raise UserError(f"two MCP tools are named {entry.name!r}: rename one")
        out[entry.name] = entry

    for a in agents.values() if isinstance(agents, Mapping) else agents:
        entry = _agent_entry(a)
        base, n = entry.name, 1
        while entry.name in out:  # agent ids that differ only in characters tools cannot have
            n += 1
            entry.name = f"{base[:60]}_{n}"
        add(entry)
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
    user_of: Any = None,
) -> Any:
    """An MCP server (the SDK's low-level ``Server``) exposing ``agents``, ``tools`` and
    ``workflows`` as MCP tools. Serve it with :func:`run_stdio` or :func:`mcp_http_app`.

    ``user_of(request)`` names the user an HTTP request acts as (the agents' runs are theirs:
    their sessions, their memory); ``None``: runs belong to no user.
    """
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

        sent = 0

        async def progress(message: str) -> None:
            # the value counts the notifications: the spec says it MUST increase with each
            nonlocal sent
            sent += 1
            await ctx.session.report_progress(sent, None, message)

        user_id = user_of(ctx.request) if user_of is not None else None
        try:
            value = await entry.call(dict(params.arguments or {}), progress, user_id)
        except VivaceError as exc:
            if exc.code == "session_ownership_error":  # the same answer as for no session
                return _error(f"no session {(params.arguments or {}).get('session_id')!r}")
            return _error(exc.message or type(exc).__name__)
        except Exception as exc:
            return _error(f"{type(exc).__name__}: {exc}")
        meta = None
        if type(value) is _Traced:  # an agent's run: its result names the run and trace
            meta = value.meta
            if value.error is not None:
                return _error(value.error.message or type(value.error).__name__, meta)
            value = value.value
        content, structured = _content(value)
        return types.CallToolResult(content=content, structured_content=structured, _meta=meta)

    return Server(
        name,
        version=__version__,
        instructions=instructions,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def _error(message: str, meta: dict[str, Any] | None = None) -> Any:
    import mcp_types as types

    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True, _meta=meta
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
