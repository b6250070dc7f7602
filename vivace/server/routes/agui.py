"""AG-UI per agent: ``POST /agents/{agent_id}/agui`` with a ``RunAgentInput``, answered with
the run's AG-UI events as SSE (:mod:`vivace.agui.endpoint`), behind the server's auth (scope
``runs``).

The run is a server run like any other: started before the response (another user's thread
is a 404, a bad ``threadId`` a 400, with nothing stored), driven by its own task, its Vivace
events in the event log (``X-Vivace-Run-Id``; ``GET /agents/{id}/runs/{run_id}/events``).
The ``threadId`` is the session. Frontend tools (the input's ``tools``) pause the run when
called; the next input's tool messages resume it - found in storage, so on any worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import HTTPError
from ..ids import path_id, run_id_header
from ..protocol_runs import ServerRuns
from ..routing import Doc, Op, require_json, sse_event, validation_error
from ..state import agent, principal
from ..streams import sse_response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["ROUTES"]

_STATUS = {"no_interrupt": 409, "tool_clash": 409}


async def agui_run(request: Request) -> Response:
    from ag_ui.encoder import EventEncoder
    from pydantic import ValidationError
    from pydantic_core import from_json

    from ...agui.endpoint import AGUIError, parse_input, start_run
    from ...identifiers import check_identifier

    a = agent(request, path_id(request, "agent_id"))
    require_json(request)
    raw = await request.body()
    try:
        # pydantic's parser, like every other route's: it also refuses unpaired surrogates
        # (text no UTF-8 store or stream can hold), which json.loads lets through
        data = parse_input(from_json(raw or b"null"))
    except ValueError as exc:  # bad JSON (ValidationError is a ValueError too)
        if isinstance(exc, ValidationError):
            raise validation_error(exc) from None
        raise HTTPError(400, "invalid_json", "the body is not valid JSON") from None
    check_identifier("threadId", data.thread_id)
    user_id = principal(request).user_for(None)
    try:
        run = await start_run(a, data, user_id=user_id, host=ServerRuns(request.app.state))
    except AGUIError as exc:
        raise HTTPError(_STATUS.get(exc.code, 400), exc.code, exc.message) from None
    encoder = EventEncoder(accept=request.headers.get("accept") or "text/event-stream")

    async def frames() -> Any:
        async for event in run.events():
            yield encoder.encode(event).encode()

    return sse_response(frames(), run_id_header(run.run_id))


RUN_AGENT_INPUT: dict[str, Any] = {
    "type": "object",
    "description": "An AG-UI RunAgentInput (protocol 1.0)",
    "properties": {
        "threadId": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]+$",
            "description": "the conversation: the session",
        },
        "runId": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "role": {"enum": ["user", "assistant", "system", "developer", "tool"]},
                    "content": {"type": "string"},
                    "toolCallId": {"type": "string"},
                },
                "required": ["id", "role"],
            },
        },
        "state": {},
        "tools": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "parameters": {"type": "object"},
                },
                "required": ["name", "description"],
            },
        },
        "context": {"type": "array", "items": {"type": "object"}},
        "forwardedProps": {},
        "resume": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "interruptId": {"type": "string"},
                    "status": {"enum": ["resolved", "cancelled"]},
                    "payload": {},
                },
                "required": ["interruptId", "status"],
            },
        },
    },
    "required": ["threadId", "runId", "messages"],
}
AGUI_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "An AG-UI event (RUN_STARTED, TEXT_MESSAGE_CONTENT, TOOL_CALL_START...)",
    "properties": {"type": {"type": "string"}},
    "required": ["type"],
}

ROUTES = [
    Op(
        "POST",
        "/agents/{agent_id}/agui",
        agui_run,
        "AG-UI: run the agent on a RunAgentInput and stream AG-UI events",
        "agui",
        body_schema=RUN_AGENT_INPUT,
        responses={
            200: Doc({"text/event-stream": sse_event(AGUI_EVENT)}, "The run's AG-UI events"),
            400: None,
            404: None,
            409: None,
            413: None,
            415: None,
            422: None,
        },
    ),
]
