"""Memory: the working memory of a session or a user, and a user's long-term memories.

A principal bound to a user (a JWT ``sub``) only reaches its own user's memory (another
``user_id`` is 403) and its own sessions' working memory (others' read as 404).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ..errors import HTTPError, json_response
from ..ids import body_id, path_id, query_id
from ..routing import Op, Query, parse_json, query_int
from ..schemas import (
    ID_SCHEMA,
    Deleted,
    MemoryList,
    UserMemoryIn,
    UserMemoryOut,
    UserMemoryPatch,
    WorkingMemory,
)
from ..state import principal, require_storage
from .sessions import owned_session

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["ROUTES"]


def _user(request: Request) -> str:
    """The ``user_id`` of the path, if the caller may act as that user (else 403)."""
    require_storage(request)
    user_id = principal(request).user_for(path_id(request, "user_id"))
    assert user_id is not None
    return user_id


async def get_session_working_memory(request: Request) -> Response:
    session_id = path_id(request, "session_id")
    await owned_session(request, session_id)
    memory = require_storage(request).memory
    return json_response({"content": await memory.get_working_memory("session", session_id)})


async def put_session_working_memory(request: Request) -> Response:
    session_id = path_id(request, "session_id")
    body: WorkingMemory = await parse_json(request, WorkingMemory)
    await owned_session(request, session_id)
    return await _put_working_memory(request, "session", session_id, body)


async def get_user_working_memory(request: Request) -> Response:
    user_id = _user(request)
    memory = require_storage(request).memory
    return json_response({"content": await memory.get_working_memory("user", user_id)})


async def put_user_working_memory(request: Request) -> Response:
    user_id = _user(request)
    body: WorkingMemory = await parse_json(request, WorkingMemory)
    return await _put_working_memory(request, "user", user_id, body)


async def _put_working_memory(
    request: Request, scope: str, owner: str, body: WorkingMemory
) -> Response:
    memory = require_storage(request).memory
    if body.content is None:
        await memory.delete_working_memory(scope, owner)
    else:
        await memory.set_working_memory(scope, owner, body.content)
    return json_response({"content": body.content})


async def list_memories(request: Request) -> Response:
    user_id = _user(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    agent_id = query_id(request, "agent_id")
    memory = require_storage(request).memory
    items = await memory.list_user_memories(user_id, agent_id=agent_id, limit=limit)
    return json_response({"memories": [m.to_dict() for m in items]})


async def add_memory(request: Request) -> Response:
    from ...storage.records import UserMemory

    user_id = _user(request)
    body: UserMemoryIn = await parse_json(request, UserMemoryIn)
    body_id("agent_id", body.agent_id)
    item = UserMemory(
        memory_id=uuid.uuid4().hex,
        user_id=user_id,
        content=body.content,
        agent_id=body.agent_id,
        topics=list(body.topics),
    )
    saved = await require_storage(request).memory.add_user_memory(item)
    return json_response(saved.to_dict(), 201)


async def patch_memory(request: Request) -> Response:
    user_id = _user(request)
    memory_id = path_id(request, "memory_id")
    body: UserMemoryPatch = await parse_json(request, UserMemoryPatch)
    saved = await require_storage(request).memory.update_user_memory(
        memory_id, user_id=user_id, content=body.content, topics=body.topics
    )
    return json_response(saved.to_dict())


async def delete_memory(request: Request) -> Response:
    user_id = _user(request)
    memory_id = path_id(request, "memory_id")
    if not await require_storage(request).memory.delete_user_memory(memory_id, user_id=user_id):
        raise HTTPError(404, "memory_not_found", "no such memory", param="memory_id")
    return json_response({"deleted": True})


_S = "sessions"  # the scope
_M = "memory"  # the tag
_NF: dict[int, Any] = {400: None, 404: None}
_BODY_ERRORS: dict[int, Any] = {400: None, 404: None, 413: None, 415: None, 422: None}
_USER_ERRORS: dict[int, Any] = {400: None, 403: None, 404: None}

ROUTES = [
    Op(
        "GET",
        "/sessions/{session_id}/working-memory",
        get_session_working_memory,
        "A session's working memory",
        _M,
        _S,
        responses={200: WorkingMemory, **_NF},
    ),
    Op(
        "PUT",
        "/sessions/{session_id}/working-memory",
        put_session_working_memory,
        "Replace a session's working memory (null clears it)",
        _M,
        _S,
        body=WorkingMemory,
        responses={200: WorkingMemory, **_BODY_ERRORS},
    ),
    Op(
        "GET",
        "/users/{user_id}/working-memory",
        get_user_working_memory,
        "A user's working memory",
        _M,
        _S,
        responses={200: WorkingMemory, **_USER_ERRORS},
    ),
    Op(
        "PUT",
        "/users/{user_id}/working-memory",
        put_user_working_memory,
        "Replace a user's working memory (null clears it)",
        _M,
        _S,
        body=WorkingMemory,
        responses={200: WorkingMemory, **_BODY_ERRORS, 403: None},
    ),
    Op(
        "GET",
        "/users/{user_id}/memories",
        list_memories,
        "A user's long-term memories",
        _M,
        _S,
        responses={200: MemoryList, **_USER_ERRORS},
        query=[
            Query("agent_id", ID_SCHEMA),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ],
    ),
    Op(
        "POST",
        "/users/{user_id}/memories",
        add_memory,
        "Add a memory",
        _M,
        _S,
        body=UserMemoryIn,
        responses={201: UserMemoryOut, **_BODY_ERRORS, 403: None},
    ),
    Op(
        "PATCH",
        "/users/{user_id}/memories/{memory_id}",
        patch_memory,
        "Edit a memory",
        _M,
        _S,
        body=UserMemoryPatch,
        responses={200: UserMemoryOut, **_BODY_ERRORS, 403: None},
    ),
    Op(
        "DELETE",
        "/users/{user_id}/memories/{memory_id}",
        delete_memory,
        "Delete a memory",
        _M,
        _S,
        responses={200: Deleted, **_USER_ERRORS},
    ),
]
