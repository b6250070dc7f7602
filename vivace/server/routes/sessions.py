"""Sessions: list, read (with messages and runs), rename / change state, delete.

Everything goes through the server's storage; a principal bound to a user (a JWT ``sub``)
only ever sees that user's sessions (others' read as 404, like sessions that do not exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import json_response, session_not_found
from ..ids import path_id, query_id
from ..routing import Op, Query, parse_json, query_int
from ..schemas import ID_SCHEMA, Deleted, SessionList, SessionOut, SessionPatch
from ..state import principal, require_storage

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["ROUTES", "owned_session"]

MAX_OFFSET = 10_000_000


async def storage_call(coro: Any, session_id: str) -> Any:
    """Await a storage call about ``session_id``: not found (or not the caller's) is 404."""
    from ...errors import NotFound

    try:
        return await coro
    except NotFound:
        raise session_not_found(session_id) from None


async def owned_session(request: Request, session_id: str) -> Any:
    """The session record, if it exists and the caller may see it; else 404."""
    storage = require_storage(request)
    who = principal(request)
    owner = None if who.user_id is None or who.admin else who.user_id
    record = await storage_call(storage.sessions.get_session(session_id, user_id=owner), session_id)
    if record is None or not who.can_see(record.user_id):
        raise session_not_found(session_id)
    return record


async def list_sessions(request: Request) -> Response:
    storage = require_storage(request)
    user_id = principal(request).user_for(query_id(request, "user_id"), default_self=False)
    agent_id = query_id(request, "agent_id")
    limit = query_int(request, "limit", 50, 1, 500)
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    records = await storage.sessions.list_sessions(
        agent_id=agent_id, user_id=user_id, limit=limit, offset=offset
    )
    return json_response(
        {"sessions": [r.to_dict() for r in records], "limit": limit, "offset": offset}
    )


async def get_session(request: Request) -> Response:
    session_id = path_id(request, "session_id")
    record = await owned_session(request, session_id)
    runs = await storage_call(require_storage(request).sessions.list_runs(session_id), session_id)
    messages: list[Any] = []
    run_views = []
    for r in runs:
        d = r.to_dict()
        messages.extend(d.pop("messages"))
        d.pop("paused", None)
        run_views.append(d)
    return json_response({**record.to_dict(), "messages": messages, "runs": run_views})


async def patch_session(request: Request) -> Response:
    session_id = path_id(request, "session_id")
    body: SessionPatch = await parse_json(request, SessionPatch)
    record = await owned_session(request, session_id)
    sessions = require_storage(request).sessions
    if body.name is not None:
        record = await storage_call(
            sessions.rename_session(session_id, body.name, user_id=record.user_id), session_id
        )
    if body.state or body.delete_state:
        state = await storage_call(
            sessions.update_state(
                session_id,
                changes=body.state or None,
                deletes=body.delete_state or (),
                user_id=record.user_id,
            ),
            session_id,
        )
        record.state = state
    return json_response(record.to_dict())


async def delete_session(request: Request) -> Response:
    session_id = path_id(request, "session_id")
    record = await owned_session(request, session_id)
    deleted = await storage_call(
        require_storage(request).sessions.delete_session(session_id, user_id=record.user_id),
        session_id,
    )
    return json_response({"deleted": bool(deleted)})


_S = "sessions"
_BODY_ERRORS: dict[int, Any] = {400: None, 404: None, 413: None, 415: None, 422: None}

ROUTES = [
    Op(
        "GET",
        "/sessions",
        list_sessions,
        "List sessions (filter by agent and user, paginated)",
        _S,
        _S,
        responses={200: SessionList, 400: None, 403: None, 404: None},
        query=[
            Query("agent_id", ID_SCHEMA),
            Query("user_id", ID_SCHEMA),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            Query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}),
        ],
    ),
    Op(
        "GET",
        "/sessions/{session_id}",
        get_session,
        "A session with its state, messages and runs",
        _S,
        _S,
        responses={200: SessionOut, 400: None, 404: None},
    ),
    Op(
        "PATCH",
        "/sessions/{session_id}",
        patch_session,
        "Rename a session or change its state",
        _S,
        _S,
        body=SessionPatch,
        responses={200: SessionOut, **_BODY_ERRORS},
    ),
    Op(
        "DELETE",
        "/sessions/{session_id}",
        delete_session,
        "Delete a session with its runs",
        _S,
        _S,
        responses={200: Deleted, 400: None, 404: None},
    ),
]
