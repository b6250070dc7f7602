"""MCP over streamable HTTP at ``/mcp``: the app's agents (each a tool that runs it), its
``tools`` and its workflows, behind the server's auth (scope ``runs``).

The official ``mcp`` SDK's session manager answers the requests, **stateless**: every POST
stands alone (no ``mcp-session-id``), so any worker answers any request and nothing about a
client is kept in the process - as for the rest of the server. Only ``POST`` is served: the
server-to-client ``GET`` stream and the session ``DELETE`` are a 405, as the MCP spec lets a
server without sessions answer. A tool call's progress
(model steps, tool calls) streams as ``notifications/progress`` on the POST's own SSE reply
before the result. The manager is built and started (in a task) at the first MCP request and
stopped by the app's lifespan: the SDK costs nothing until an MCP client comes.

An agent run started by an MCP call belongs to the caller (a token's user), like any run.
When the auth checks JWTs from an issuer (``JWTAuth(issuer=...)``), the protected-resource
metadata (RFC 9728) at ``/.well-known/oauth-protected-resource/mcp`` names it as the
authorization server, and a 401 on ``/mcp`` points to that document
(``WWW-Authenticate: Bearer ..., resource_metadata="..."``), as MCP clients expect.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..auth import oauth_issuer, with_params
from ..errors import HTTPError, json_response
from ..routing import Delegate, Doc, Op, Query, sse_event
from ..state import settings

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["MCP_PATH", "ROUTES"]

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource" + MCP_PATH


class MCPMount:
    """The SDK's session manager, running in its own task until :meth:`aclose`."""

    __slots__ = ("_stop", "_task", "manager")

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.get_running_loop().create_future()

        async def run() -> None:
            try:
                async with self.manager.run():
                    ready.set_result(None)
                    await self._stop.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                raise

        self._task = asyncio.create_task(run(), name="vivace-mcp-session-manager")
        await ready

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


async def _build(request: Request) -> MCPMount:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

    from ...mcp.server import build_mcp_server

    state = request.app.state
    workflows = getattr(state, "workflows", None) or {}
    server = build_mcp_server(
        state.agents,
        state.tools,
        list(workflows.values()) if isinstance(workflows, dict) else list(workflows),
        name=settings(request).title,
        user_of=_user_of,
    )
    manager = StreamableHTTPSessionManager(
        server,
        stateless=True,
        # the server's own checks apply (auth, body limit); Host checks belong to the proxy
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    mount = MCPMount(manager)
    await mount.start()
    return mount


def _user_of(request: Any) -> str | None:
    """The user an MCP request acts as: its credentials' (``None`` for keys and open auth)."""
    state = getattr(request, "state", None)
    principal = getattr(state, "principal", None)
    return principal.user_id if principal is not None else None


async def mcp_endpoint(request: Request) -> Response:
    if request.method == "POST":  # in the server's shape (the SDK answers a bare-text 400)
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise HTTPError(
                415, "unsupported_media_type", "send application/json", param="content-type"
            )
    mount = await request.app.state.mounts.get("mcp", lambda: _build(request))
    return Delegate(mount.manager.handle_request)  # type: ignore[return-value]


def _metadata_url(request: Request) -> str | None:
    if oauth_issuer(request.app.state.auth) is None:
        return None
    return str(request.base_url).rstrip("/") + METADATA_PATH


def _mcp_challenge(request: Request, given: str) -> str:
    """The 401 challenge on ``/mcp``: the server's, plus ``resource_metadata`` when there is
    an authorization server to discover (RFC 9728, MCP authorization)."""
    url = _metadata_url(request)
    if url is None:
        return given
    return with_params(given, resource_metadata=url)


async def resource_metadata(request: Request) -> Response:
    issuer = oauth_issuer(request.app.state.auth)
    if issuer is None:
        raise HTTPError(404, "route_not_found", "no authorization server is configured")
    base = str(request.base_url).rstrip("/")
    return json_response(
        {
            "resource": base + MCP_PATH,
            "authorization_servers": [issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["runs"],
            "resource_name": settings(request).title,
        }
    )


# -- OpenAPI ------------------------------------------------------------------------------------

_ID: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
JSONRPC_MESSAGE: dict[str, Any] = {
    "type": "object",
    "description": "A JSON-RPC 2.0 message (MCP: tools/list, tools/call, ping...).",
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": _ID,
        "method": {"type": "string"},
        "params": {"type": "object"},
        "result": {},
        "error": {"type": "object"},
    },
    "required": ["jsonrpc"],
}
JSONRPC_ERROR: dict[str, Any] = {
    "type": "object",
    "description": "A JSON-RPC 2.0 error (the SDK's transport refused the request).",
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": {"anyOf": [*_ID["anyOf"], {"type": "null"}]},
        "error": {
            "type": "object",
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        },
    },
    "required": ["error"],
}
_TRANSPORT_ERROR = Doc({"application/json": JSONRPC_ERROR})
_HEADERS = [
    Query(
        "mcp-protocol-version", {"type": "string"}, "the MCP protocol version (after initialize)"
    ),
    Query("mcp-session-id", {"type": "string"}, "unused: the endpoint is stateless"),
]
RESOURCE_METADATA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resource": {"type": "string"},
        "authorization_servers": {"type": "array", "items": {"type": "string"}},
        "bearer_methods_supported": {"type": "array", "items": {"type": "string"}},
        "scopes_supported": {"type": "array", "items": {"type": "string"}},
        "resource_name": {"type": "string"},
    },
    "required": ["resource"],
}

ROUTES = [
    Op(
        "POST",
        MCP_PATH,
        mcp_endpoint,
        "MCP (streamable HTTP): send a JSON-RPC message; SSE reply (progress, then the result)",
        "mcp",
        body_schema=JSONRPC_MESSAGE,
        headers=_HEADERS,
        responses={
            200: Doc(
                {
                    "application/json": JSONRPC_MESSAGE,
                    "text/event-stream": sse_event(JSONRPC_MESSAGE),
                },
                "The reply: JSON, or SSE whose events are JSON-RPC messages",
            ),
            202: Doc(description="A notification or a response, accepted"),
            400: _TRANSPORT_ERROR,
            404: _TRANSPORT_ERROR,
            406: _TRANSPORT_ERROR,
            413: None,
            415: None,
        },
        challenge=_mcp_challenge,
    ),
    Op(
        "GET",
        METADATA_PATH,
        resource_metadata,
        "OAuth protected-resource metadata of /mcp (RFC 9728; with a JWT issuer)",
        "mcp",
        None,
        responses={200: RESOURCE_METADATA, 404: None},
    ),
]
