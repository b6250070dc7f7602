"""An MCP server as a toolset: :class:`MCPToolset` (stdio, streamable HTTP, SSE).

.. code-block:: python

    from vivace import Agent
    from vivace.mcp import MCPToolset

    time = MCPToolset("mcp-server-time")                     # a command: stdio
    docs = MCPToolset(url="http://127.0.0.1:3001/mcp")       # streamable HTTP
    agent = Agent(model="openai/gpt-4o", tools=[time, docs])

Uses the official ``mcp`` SDK (``pip install 'vivace[mcp]'``), imported on first connection.
The connection opens lazily at first use, is shared by every run using the toolset, and
lists tools once per connection (again when the server says its tools changed). Each call
has a timeout; when the server dies or restarts, the call in flight becomes a tool error the
model can recover from and the next call reconnects (with backoff). :meth:`MCPToolset.aclose`
(or ``async with``) ends the connection and the server's subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import trace_hook
from ..errors import ToolDefinitionError, VivaceError
from ..tools.tool import ModelRetry, ToolTimeout
from ..tools.toolset import SchemaTool, Toolset
from ..trace_hook import CLIENT

if TYPE_CHECKING:
    from ..messages import Message
    from ..models.base import ToolDefinition
    from ..tools.context import RunContext
    from ..tools.tool import BaseTool

__all__ = ["MCPConnectionError", "MCPToolset"]

TRANSPORTS = ("stdio", "http", "sse")


class MCPConnectionError(VivaceError):
    """The MCP server could not be reached (or started) after the reconnect attempts."""

    code = "mcp_connection_error"


def _import_mcp() -> Any:
    try:
        import mcp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ToolDefinitionError(
            "MCP needs the official SDK: pip install 'vivace[mcp]'", missing=str(exc)
        ) from None
    return mcp


class _Connection:
    """One live client session, owned by a background task (the SDK's transports must be
    entered and left in one task); any task may send requests through it."""

    __slots__ = ("client", "closing", "error", "ready", "task", "tools")

    def __init__(self) -> None:
        self.client: Any = None
        self.error: BaseException | None = None
        self.ready = asyncio.Event()
        self.closing = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.tools: list[BaseTool] | None = None

    @property
    def alive(self) -> bool:
        client = self.client
        if client is None or self.task is None or self.task.done():
            return False
        # the SDK's dispatcher marks itself closed when the transport ends (server gone)
        session = getattr(client, "_session", None)
        return not getattr(getattr(session, "_dispatcher", None), "_closed", False)


class MCPToolset(Toolset):
    """The tools of an MCP server.

    Args:
        command: The server's command for stdio (``"mcp-server-time"``, ``"npx"``...).
        args: Its arguments.
        url: The server's URL for streamable HTTP (``.../mcp``) or SSE (``.../sse``).
        transport: ``"stdio"``, ``"http"`` or ``"sse"`` (default: stdio with a command, SSE
            for a URL ending in ``/sse``, else streamable HTTP).
        env: Extra environment variables for a stdio server. cwd: its working directory.
        headers: HTTP headers (e.g. ``{"Authorization": "Bearer ..."}``).
        name: A name for errors and logs (default: the command or URL).
        prefix: Prefix the tool names (``prefix_toolname``) to keep two servers apart.
        timeout: Seconds one tool call may take (then the model gets a timeout error).
        connect_timeout: Seconds to connect (start the server and hand-shake).
        reconnects: Connection attempts per call when the server is down (with backoff).
        backoff: First wait between attempts in seconds (doubles each time).
        requires_approval: True for every tool, or the names of the tools that need it.
        include: Only these tool names (default all).
        instructions: Text appended to the agent's instructions when this toolset is used.
    """

    def __init__(
        self,
        command: str | None = None,
        args: Sequence[str] = (),
        *,
        url: str | None = None,
        transport: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        prefix: str | None = None,
        timeout: float | None = 60.0,
        connect_timeout: float = 30.0,
        reconnects: int = 3,
        backoff: float = 0.2,
        requires_approval: bool | Collection[str] = False,
        include: Collection[str] | None = None,
        instructions: str | None = None,
    ) -> None:
        if (command is None) == (url is None):
            raise ToolDefinitionError("MCPToolset needs a command (stdio) or a url, not both")
        if transport is None:
            sse = url is not None and url.rstrip("/").endswith("/sse")
            transport = "stdio" if command else ("sse" if sse else "http")
        if transport not in TRANSPORTS:
            raise ToolDefinitionError(f"transport must be one of {TRANSPORTS}, not {transport!r}")
        if (transport == "stdio") != (command is not None):
            raise ToolDefinitionError(f"transport {transport!r} does not match the target")
        self.command = command
        self.args = list(args)
        self.url = url
        self.transport = transport
        self.env = dict(env) if env else None
        self.cwd = cwd
        self.headers = dict(headers) if headers else None
        self.name = name or (command if command else url) or "mcp"
        self.prefix = prefix
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.reconnects = reconnects
        self.backoff = backoff
        self.requires_approval = requires_approval
        self.include = set(include) if include is not None else None
        self.instructions = instructions
        self._conn: _Connection | None = None
        self._lock: asyncio.Lock | None = None
        self.connections = 0  # how many connections were opened (reconnects included)

    def __repr__(self) -> str:
        return f"<MCPToolset {self.name} ({self.transport})>"

    # -- connection ------------------------------------------------------------------------

    def _target(self) -> Any:
        if self.transport == "stdio":
            from mcp.client.stdio import StdioServerParameters

            env = None
            if self.env:
                from mcp.client.stdio import get_default_environment

                env = {**get_default_environment(), **self.env}
            return StdioServerParameters(
                command=self.command or "", args=self.args, env=env, cwd=self.cwd
            )
        url = self.url or ""
        if self.transport == "sse":
            from mcp.client.sse import sse_client

            return sse_client(url, headers=self.headers)
        if not self.headers:
            return url
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        return streamable_http_client(url, http_client=httpx2.AsyncClient(headers=self.headers))

    async def _own(self, conn: _Connection) -> None:
        """The connection's life: enter the client, wait until asked to close."""
        mcp = _import_mcp()

        async def on_message(message: Any) -> None:
            method = getattr(getattr(message, "root", message), "method", None)
            if method == "notifications/tools/list_changed":
                conn.tools = None

        try:
            stderr = open(os.devnull, "w") if self.transport == "stdio" else None  # noqa: SIM115
            try:
                if stderr is not None:
                    target = self._target()
                    from mcp.client.stdio import stdio_client

                    transport: Any = stdio_client(target, errlog=stderr)
                else:
                    transport = self._target()
                client = mcp.Client(transport, message_handler=on_message)
                async with client:
                    conn.client = client
                    conn.ready.set()
                    await conn.closing.wait()
            finally:
                if stderr is not None:
                    stderr.close()
        except BaseException as exc:
            conn.error = exc
            if not isinstance(exc, asyncio.CancelledError | Exception):
                raise
        finally:
            conn.client = None
            conn.ready.set()

    async def _connection(self) -> _Connection:
        """The live connection, opened (or reopened, with backoff) when needed."""
        conn = self._conn
        if conn is not None and conn.alive:
            return conn
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        async with lock:
            conn = self._conn
            if conn is not None:
                if conn.alive:
                    return conn
                self._drop(conn)  # its server is gone: let its task clean up
            last: BaseException | None = None
            for attempt in range(max(1, self.reconnects)):
                if attempt:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                conn = _Connection()
                conn.task = asyncio.get_running_loop().create_task(self._own(conn))
                try:
                    await asyncio.wait_for(conn.ready.wait(), self.connect_timeout)
                except TimeoutError:
                    conn.closing.set()
                    conn.task.cancel()
                    last = TimeoutError(f"no answer within {self.connect_timeout}s")
                    continue
                if conn.alive:
                    self._conn = conn
                    self.connections += 1
                    return conn
                last = conn.error
            raise MCPConnectionError(
                f"cannot connect to MCP server {self.name}: {_describe(last)}", server=self.name
            )

    async def aclose(self) -> None:
        """Close the connection (a stdio server's process ends with it)."""
        conn, self._conn = self._conn, None
        if conn is None or conn.task is None:
            return
        conn.closing.set()
        try:
            await asyncio.wait_for(asyncio.shield(conn.task), 10)
        except (TimeoutError, asyncio.CancelledError):
            conn.task.cancel()
            with contextlib.suppress(BaseException):
                await conn.task

    async def __aenter__(self) -> MCPToolset:
        await self._connection()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- tools -------------------------------------------------------------------------------

    async def tools_for_run(self, ctx: RunContext[Any]) -> list[BaseTool]:
        conn = await self._connection()
        tools = conn.tools
        if tools is None:
            tools = conn.tools = [self._tool(d) for d in await self._definitions(conn)]
        return tools

    async def list_tools(self, ctx: RunContext[Any] | None = None) -> list[ToolDefinition]:
        """The server's tools as definitions (schemas as the server gives them)."""
        return [t.definition() for t in await self.tools_for_run(ctx)]  # type: ignore[arg-type]

    async def _definitions(self, conn: _Connection) -> list[ToolDefinition]:
        from ..models.base import ToolDefinition

        hook = trace_hook.HOOK
        if hook is None:
            listed = await self._request(conn, conn.client.list_tools())
        else:
            with hook.span("tools/list", self._span_attrs("tools/list"), kind=CLIENT):
                listed = await self._request(conn, conn.client.list_tools())
        out = []
        for t in listed.tools:
            if self.include is not None and t.name not in self.include:
                continue
            schema = t.input_schema or {"type": "object", "properties": {}}
            out.append(ToolDefinition(t.name, t.description or t.title or t.name, dict(schema)))
        return out

    def _tool(self, d: ToolDefinition) -> BaseTool:
        remote = d.name
        if self.prefix:
            from ..models.base import ToolDefinition

            d = ToolDefinition(f"{self.prefix}_{d.name}", d.description, d.parameters, d.strict)
        approval = self.requires_approval
        needs = approval if isinstance(approval, bool) else remote in approval

        async def handler(arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
            return await self.call_tool(remote, arguments, ctx)

        return SchemaTool(d, handler, requires_approval=needs)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], ctx: RunContext[Any] | None = None
    ) -> Any:
        """Call a tool of the server: its structured result, else its text (an MCP error
        result is raised as a tool error the model sees)."""
        hook = trace_hook.HOOK
        if hook is None:
            return await self._call_tool(name, arguments)
        with hook.span(f"tools/call {name}", self._span_attrs("tools/call", name), kind=CLIENT):
            return await self._call_tool(name, arguments)

    def _span_attrs(self, method: str, tool: str | None = None) -> dict[str, Any]:
        """Attributes of an MCP client span (OpenTelemetry's MCP conventions)."""
        attrs: dict[str, Any] = {
            "mcp.method.name": method,
            "network.transport": "pipe" if self.transport == "stdio" else "tcp",
            "vivace.span_type": "mcp",
            "vivace.mcp.server": self.name,
        }
        if tool is not None:
            attrs["gen_ai.operation.name"] = "execute_tool"
            attrs["gen_ai.tool.name"] = tool
        return attrs

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        conn = await self._connection()
        try:
            result = await self._request(
                conn, conn.client.call_tool(name, arguments), timeout=self.timeout, what=name
            )
        except _Lost as lost:
            raise ModelRetry(
                f"the MCP server {self.name} stopped during the call to {name!r} ({lost}); "
                "it is restarted on the next call"
            ) from None
        return _tool_result(result)

    async def _request(
        self, conn: _Connection, aw: Any, timeout: float | None = None, what: str = "request"
    ) -> Any:
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        try:
            if timeout is None:
                return await aw
            async with asyncio.timeout(timeout):  # no extra task per call, unlike wait_for
                return await aw
        except TimeoutError:
            raise ToolTimeout(
                f"MCP server {self.name} did not answer {what!r} within {timeout}s"
            ) from None
        except MCPError as exc:
            if exc.error.code == CONNECTION_CLOSED or not conn.alive:
                self._drop(conn)
                raise _Lost(str(exc)) from None
            raise ModelRetry(f"MCP server {self.name}: {exc}") from None
        except Exception as exc:
            if not isinstance(exc, (OSError, EOFError, *_anyio_closed())):
                raise
            self._drop(conn)
            raise _Lost(_describe(exc)) from None

    def _drop(self, conn: _Connection) -> None:
        conn.closing.set()
        if self._conn is conn:
            self._conn = None

    # -- resources and prompts -----------------------------------------------------------------

    async def list_resources(self) -> list[dict[str, Any]]:
        """The server's resources: ``[{"uri", "name", "description", "mime_type"}]``."""
        conn = await self._connection()
        listed = await self._request(conn, conn.client.list_resources(), self.timeout)
        return [
            {
                "uri": str(r.uri),
                "name": r.name,
                "description": r.description,
                "mime_type": r.mime_type,
            }
            for r in listed.resources
        ]

    async def read_resource(self, uri: str) -> str | bytes | list[str | bytes]:
        """A resource's contents: text (or bytes for a blob); a list when it has several."""
        import base64

        conn = await self._connection()
        hook = trace_hook.HOOK
        if hook is None:
            result = await self._request(conn, conn.client.read_resource(uri), self.timeout)
        else:
            attrs = {**self._span_attrs("resources/read"), "mcp.resource.uri": uri}
            with hook.span("resources/read", attrs, kind=CLIENT):
                result = await self._request(conn, conn.client.read_resource(uri), self.timeout)
        items: list[str | bytes] = []
        for c in result.contents:
            text = getattr(c, "text", None)
            items.append(text if text is not None else base64.b64decode(getattr(c, "blob", "")))
        return items[0] if len(items) == 1 else items

    async def list_prompts(self) -> list[dict[str, Any]]:
        """The server's prompts: ``[{"name", "description", "arguments": [...]}]``."""
        conn = await self._connection()
        listed = await self._request(conn, conn.client.list_prompts(), self.timeout)
        return [
            {
                "name": p.name,
                "description": p.description,
                "arguments": [
                    {"name": a.name, "description": a.description, "required": bool(a.required)}
                    for a in p.arguments or ()
                ],
            }
            for p in listed.prompts
        ]

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> list[Message]:
        """A prompt rendered by the server, as messages (text parts)."""
        from ..messages import Message, TextPart

        conn = await self._connection()
        hook = trace_hook.HOOK
        if hook is None:
            result = await self._request(
                conn, conn.client.get_prompt(name, arguments), self.timeout
            )
        else:
            attrs = {**self._span_attrs("prompts/get"), "gen_ai.prompt.name": name}
            with hook.span(f"prompts/get {name}", attrs, kind=CLIENT):
                result = await self._request(
                    conn, conn.client.get_prompt(name, arguments), self.timeout
                )
        out = []
        for m in result.messages:
            text = getattr(m.content, "text", None)
            out.append(Message(m.role, [TextPart(text if text is not None else str(m.content))]))
        return out


class _Lost(Exception):
    """Internal: the connection broke during a request."""


def _anyio_closed() -> tuple[type[BaseException], ...]:
    import anyio

    return (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _tool_result(result: Any) -> Any:
    texts = []
    other = []
    for c in result.content or ():
        if getattr(c, "type", None) == "text":
            texts.append(c.text)
        else:
            other.append(c.model_dump(mode="json", by_alias=True, exclude_none=True))
    if result.is_error:
        raise ModelRetry("\n".join(texts) or "the MCP tool failed")
    if result.structured_content is not None:
        return result.structured_content
    if not other:
        return "\n".join(texts)
    return [*({"type": "text", "text": t} for t in texts), *other]
