"""A2A 1.0 per agent: the agent card at ``/a2a/{agent_id}/.well-known/agent-card.json`` and
the JSON-RPC endpoint at ``POST /a2a/{agent_id}/`` (an A2A client's base URL is
``.../a2a/{agent_id}/``), both behind the server's auth (scope ``runs``); an app with one
agent also serves its card at ``/.well-known/agent-card.json``.

Requests are answered by the official ``a2a-sdk`` request handler (built for an agent on its
first A2A request). The runs it starts are the server's runs: driven by their own task, their
events in the event log (``GET /agents/{id}/runs/{run_id}/events`` replays an A2A task's run),
cancelled from any worker. With storage, tasks are the stored runs
(:class:`vivace.a2a.tasks.RunTaskStore`): ``GetTask``/``ListTasks``/answering an
input-required task work on every worker and after a restart. The caller's credentials bind
the runs to its user; other users' tasks read as unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import HTTPError, json_response
from ..ids import path_id
from ..protocol_runs import ServerRuns
from ..routing import Doc, Op, sse_event
from ..state import agent, agents, principal

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ...agent import Agent

__all__ = ["ROUTES"]

CARD = "/.well-known/agent-card.json"


class A2AMount:
    """The SDK's request handler and JSON-RPC dispatcher of one agent."""

    __slots__ = ("dispatcher", "handler")

    def __init__(self, handler: Any, dispatcher: Any) -> None:
        self.handler = handler
        self.dispatcher = dispatcher

    async def aclose(self) -> None:
        close = getattr(self.handler, "aclose", None)
        if close is not None:
            await close()


def _user_of(call_context: Any) -> str | None:
    who = call_context.state.get("vivace.principal") if call_context is not None else None
    return who.user_id if who is not None else None


def _can_see(call_context: Any, owner: str | None) -> bool:
    who = call_context.state.get("vivace.principal")
    return who is None or bool(who.can_see(owner))


def _card(request: Request, a: Agent[Any, Any]) -> Any:
    from ...a2a.server import agent_card
    from ..auth import OpenAuth

    return agent_card(
        a, _base_url(request, a), bearer=not isinstance(request.app.state.auth, OpenAuth)
    )


def _base_url(request: Request, a: Agent[Any, Any]) -> str:
    return f"{str(request.base_url).rstrip('/')}/a2a/{quote(a.id, safe='')}/"


async def _mount(request: Request, a: Agent[Any, Any]) -> A2AMount:
    from a2a.auth.user import User
    from a2a.server.context import ServerCallContext
    from a2a.server.routes import ServerCallContextBuilder
    from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher

    from ...a2a.server import request_handler, task_store

    class Caller(User):
        """The server's principal as the SDK's user (its in-memory task store, used without
        storage, keys tasks by ``user_name``: a token's user sees only its own)."""

        def __init__(self, name: str) -> None:
            self._name = name

        @property
        def is_authenticated(self) -> bool:
            return True

        @property
        def user_name(self) -> str:
            return self._name

    class ContextBuilder(ServerCallContextBuilder):
        def build(self, request: Request) -> ServerCallContext:
            who = principal(request)
            return ServerCallContext(
                user=Caller(who.user_id or ""),
                state={"headers": dict(request.headers), "vivace.principal": who},
            )

    store = task_store(a, can_see=_can_see, user_of=_user_of) if a.storage is not None else None
    handler = request_handler(
        a, _card(request, a), host=ServerRuns(request.app.state), store=store, user_of=_user_of
    )
    return A2AMount(handler, JsonRpcDispatcher(handler, context_builder=ContextBuilder()))


async def agent_card_route(request: Request) -> Response:
    from a2a.server.request_handlers.response_helpers import agent_card_to_dict

    a = agent(request, path_id(request, "agent_id"))
    return json_response(agent_card_to_dict(_card(request, a)))


async def root_card(request: Request) -> Response:
    from a2a.server.request_handlers.response_helpers import agent_card_to_dict

    served = agents(request)
    if len(served) != 1:
        cards = ", ".join(f"/a2a/{quote(i, safe='')}{CARD}" for i in served) or "none"
        raise HTTPError(
            404, "agent_not_found", f"this server has {len(served)} agents; their cards: {cards}"
        )
    return json_response(agent_card_to_dict(_card(request, next(iter(served.values())))))


async def jsonrpc(request: Request) -> Response:
    a = agent(request, path_id(request, "agent_id"))
    mount = await request.app.state.mounts.get(f"a2a:{a.id}", lambda: _mount(request, a))
    response: Response = await mount.dispatcher.handle_requests(request)
    return response


# -- OpenAPI ------------------------------------------------------------------------------------

_METHODS = [
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
]
_ID: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
A2A_REQUEST: dict[str, Any] = {
    "type": "object",
    "description": "An A2A 1.0 JSON-RPC request (send the header A2A-Version: 1.0).",
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": _ID,
        "method": {"enum": _METHODS},
        "params": {"type": "object"},
    },
    "required": ["jsonrpc", "method"],
}
A2A_RESPONSE: dict[str, Any] = {
    "type": "object",
    "description": "A JSON-RPC response: result, or error (A2A errors: -32001 task not found, "
    "-32002 not cancelable, -32009 version not supported...)",
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": _ID,
        "result": {},
        "error": {
            "type": "object",
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
            "required": ["code"],
        },
    },
}
AGENT_CARD: dict[str, Any] = {
    "type": "object",
    "description": "An A2A 1.0 agent card",
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "version": {"type": "string"},
        "supportedInterfaces": {"type": "array", "items": {"type": "object"}},
        "capabilities": {"type": "object"},
        "defaultInputModes": {"type": "array", "items": {"type": "string"}},
        "defaultOutputModes": {"type": "array", "items": {"type": "string"}},
        "skills": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["name", "supportedInterfaces", "skills"],
}
_RPC_RESPONSES: dict[int, Any] = {
    200: Doc(
        {"application/json": A2A_RESPONSE, "text/event-stream": sse_event(A2A_RESPONSE)},
        "The JSON-RPC response (SSE for SendStreamingMessage and SubscribeToTask: one "
        "response per event)",
    ),
    400: None,
    404: None,
    413: None,
}

ROUTES = [
    Op(
        "GET",
        "/a2a/{agent_id}" + CARD,
        agent_card_route,
        "The A2A agent card of an agent",
        "a2a",
        responses={200: AGENT_CARD, 400: None, 404: None},
    ),
    Op(
        "POST",
        "/a2a/{agent_id}/",
        jsonrpc,
        "A2A JSON-RPC: SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask...",
        "a2a",
        body_schema=A2A_REQUEST,
        responses=_RPC_RESPONSES,
    ),
    Op(
        "POST",
        "/a2a/{agent_id}",
        jsonrpc,
        "A2A JSON-RPC (without the trailing slash)",
        "a2a",
        body_schema=A2A_REQUEST,
        responses=_RPC_RESPONSES,
        in_schema=False,
    ),
    Op(
        "GET",
        CARD,
        root_card,
        "The A2A agent card of the app's only agent",
        "a2a",
        responses={200: AGENT_CARD, 404: None},
    ),
]
