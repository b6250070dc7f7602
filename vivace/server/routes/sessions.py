"""Sessions (list, get, rename/state, delete) and memory (working memory, user memories).

Everything goes through storage; a principal bound to a user (a JWT ``sub``) only ever sees
that user's records (others' read as 404).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ..errors import HTTPError, from_vivace_error, json_response
from ..routing import Op, Query, parse_json, query_int
from ..schemas import (
    Deleted,
    MemoryList,
    SessionList,
    SessionOut,
    SessionPatch,
    UserMemoryIn,
    UserMemoryOut,
    UserMemoryPatch,
    WorkingMemory,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ..app import VivaceApp
    from ..auth import Principal

__all__ = ["operations"]


def _not_found(session_id: str) -> HTTPError:
    return HTTPError(404, "session_not_found", f"no session {session_id!r}", param="session_id")


def operations(server: VivaceApp) -> list[Op]:
    from ...errors import NotFound, VivaceError

    async def _call(coro: Any, session_id: str | None = None) -> Any:
        """Await a storage call; ownership and not-found errors become 404."""
        try:
            return await coro
        except NotFound:
            raise (
                _not_found(session_id) if session_id else HTTPError(404, "not_found", "not found")
            ) from None
        except VivaceError as exc:
            if exc.code == "session_ownership_error":
                raise (
                    _not_found(session_id)
                    if session_id
                    else HTTPError(404, "not_found", "not found")
                ) from None
            raise from_vivace_error(exc) from None

    async def _session(principal: Principal, session_id: str) -> Any:
        storage = server.require_storage()
        owner = None if principal.user_id is None or principal.admin else principal.user_id
        record = await _call(storage.sessions.get_session(session_id, user_id=owner), session_id)
        if record is None or not principal.can_see(record.user_id):
            raise _not_found(session_id)
        return record

    async def list_sessions(request: Request, principal: Principal) -> Response:
        storage = server.require_storage()
        user_id = principal.user_for(
            request.query_params.get("user_id") or None, default_self=False
        )
        agent_id = request.query_params.get("agent_id") or None
        limit = query_int(request, "limit", 50, 1, 500)
        offset = query_int(request, "offset", 0, 0, 10_000_000)
        records = await _call(
            storage.sessions.list_sessions(
                agent_id=agent_id, user_id=user_id, limit=limit, offset=offset
            )
        )
        return json_response(
            {"sessions": [r.to_dict() for r in records], "limit": limit, "offset": offset}
        )

    async def get_session(request: Request, principal: Principal) -> Response:
        session_id = request.path_params["session_id"]
        record = await _session(principal, session_id)
        storage = server.storage
        runs = await _call(storage.sessions.list_runs(session_id), session_id)
        messages: list[Any] = []
        run_views = []
        for r in runs:
            d = r.to_dict()
            messages.extend(d.pop("messages"))
            d.pop("paused", None)
            run_views.append(d)
        return json_response({**record.to_dict(), "messages": messages, "runs": run_views})

    async def patch_session(request: Request, principal: Principal) -> Response:
        session_id = request.path_params["session_id"]
        body: SessionPatch = await parse_json(request, SessionPatch)
        record = await _session(principal, session_id)
        sessions = server.storage.sessions
        if body.name is not None:
            record = await _call(
                sessions.rename_session(session_id, body.name, user_id=record.user_id),
                session_id,
            )
        if body.state or body.delete_state:
            state = await _call(
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

    async def delete_session(request: Request, principal: Principal) -> Response:
        session_id = request.path_params["session_id"]
        record = await _session(principal, session_id)
        deleted = await _call(
            server.storage.sessions.delete_session(session_id, user_id=record.user_id),
            session_id,
        )
        return json_response({"deleted": bool(deleted)})

    # -- working memory ---------------------------------------------------------------------------

    async def _owner(request: Request, principal: Principal) -> tuple[str, str]:
        if "session_id" in request.path_params:
            session_id = request.path_params["session_id"]
            await _session(principal, session_id)
            return "session", session_id
        server.require_storage()
        user_id = principal.user_for(request.path_params["user_id"])
        assert user_id is not None
        return "user", user_id

    async def get_working_memory(request: Request, principal: Principal) -> Response:
        scope, owner = await _owner(request, principal)
        content = await _call(server.storage.memory.get_working_memory(scope, owner))
        return json_response({"content": content})

    async def put_working_memory(request: Request, principal: Principal) -> Response:
        body: WorkingMemory = await parse_json(request, WorkingMemory)
        scope, owner = await _owner(request, principal)
        memory = server.storage.memory
        if body.content is None:
            await _call(memory.delete_working_memory(scope, owner))
        else:
            await _call(memory.set_working_memory(scope, owner, body.content))
        return json_response({"content": body.content})

    # -- user memories ----------------------------------------------------------------------------

    def _user(request: Request, principal: Principal) -> str:
        server.require_storage()
        user_id = principal.user_for(request.path_params["user_id"])
        assert user_id is not None
        return user_id

    async def list_memories(request: Request, principal: Principal) -> Response:
        user_id = _user(request, principal)
        limit = query_int(request, "limit", 100, 1, 1000)
        agent_id = request.query_params.get("agent_id") or None
        items = await _call(
            server.storage.memory.list_user_memories(user_id, agent_id=agent_id, limit=limit)
        )
        return json_response({"memories": [m.to_dict() for m in items]})

    async def add_memory(request: Request, principal: Principal) -> Response:
        from ...storage.records import UserMemory

        user_id = _user(request, principal)
        body: UserMemoryIn = await parse_json(request, UserMemoryIn)
        memory = UserMemory(
            memory_id=uuid.uuid4().hex,
            user_id=user_id,
            content=body.content,
            agent_id=body.agent_id,
            topics=list(body.topics),
        )
        saved = await _call(server.storage.memory.add_user_memory(memory))
        return json_response(saved.to_dict(), 201)

    async def patch_memory(request: Request, principal: Principal) -> Response:
        user_id = _user(request, principal)
        body: UserMemoryPatch = await parse_json(request, UserMemoryPatch)
        saved = await _call(
            server.storage.memory.update_user_memory(
                request.path_params["memory_id"],
                user_id=user_id,
                content=body.content,
                topics=body.topics,
            )
        )
        return json_response(saved.to_dict())

    async def delete_memory(request: Request, principal: Principal) -> Response:
        user_id = _user(request, principal)
        deleted = await _call(
            server.storage.memory.delete_user_memory(
                request.path_params["memory_id"], user_id=user_id
            )
        )
        if not deleted:
            raise HTTPError(404, "memory_not_found", "no such memory", param="memory_id")
        return json_response({"deleted": True})

    s = "sessions"
    nf = {400: None, 404: None}  # 400: an id the id rule refuses (invalid_identifier)
    body_errors = {400: None, 404: None, 413: None, 415: None, 422: None}
    return [
        Op(
            "GET",
            "/sessions",
            list_sessions,
            "List sessions (filter by agent and user, paginated)",
            s,
            s,
            responses={200: SessionList, 400: None, 404: None},
            query=[
                Query("agent_id", {"type": "string"}),
                Query("user_id", {"type": "string"}),
                Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                Query("offset", {"type": "integer", "minimum": 0}),
            ],
        ),
        Op(
            "GET",
            "/sessions/{session_id}",
            get_session,
            "A session with its state, messages and runs",
            s,
            s,
            responses={200: SessionOut, **nf},
        ),
        Op(
            "PATCH",
            "/sessions/{session_id}",
            patch_session,
            "Rename a session or change its state",
            s,
            s,
            body=SessionPatch,
            responses={200: SessionOut, **body_errors},
        ),
        Op(
            "DELETE",
            "/sessions/{session_id}",
            delete_session,
            "Delete a session with its runs",
            s,
            s,
            responses={200: Deleted, **nf},
        ),
        Op(
            "GET",
            "/sessions/{session_id}/working-memory",
            get_working_memory,
            "A session's working memory",
            "memory",
            s,
            responses={200: WorkingMemory, **nf},
        ),
        Op(
            "PUT",
            "/sessions/{session_id}/working-memory",
            put_working_memory,
            "Replace a session's working memory (null clears it)",
            "memory",
            s,
            body=WorkingMemory,
            responses={200: WorkingMemory, **body_errors},
        ),
        Op(
            "GET",
            "/users/{user_id}/working-memory",
            get_working_memory,
            "A user's working memory",
            "memory",
            s,
            responses={200: WorkingMemory, **nf},
        ),
        Op(
            "PUT",
            "/users/{user_id}/working-memory",
            put_working_memory,
            "Replace a user's working memory (null clears it)",
            "memory",
            s,
            body=WorkingMemory,
            responses={200: WorkingMemory, **body_errors},
        ),
        Op(
            "GET",
            "/users/{user_id}/memories",
            list_memories,
            "A user's long-term memories",
            "memory",
            s,
            responses={200: MemoryList, 400: None, 404: None},
            query=[
                Query("agent_id", {"type": "string"}),
                Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
        ),
        Op(
            "POST",
            "/users/{user_id}/memories",
            add_memory,
            "Add a memory",
            "memory",
            s,
            body=UserMemoryIn,
            responses={201: UserMemoryOut, **body_errors},
        ),
        Op(
            "PATCH",
            "/users/{user_id}/memories/{memory_id}",
            patch_memory,
            "Edit a memory",
            "memory",
            s,
            body=UserMemoryPatch,
            responses={200: UserMemoryOut, **body_errors},
        ),
        Op(
            "DELETE",
            "/users/{user_id}/memories/{memory_id}",
            delete_memory,
            "Delete a memory",
            "memory",
            s,
            responses={200: Deleted, **nf},
        ),
    ]
