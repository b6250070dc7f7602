"""``/health``, ``/agents`` and the runs of an agent (JSON, SSE, reconnect, cancel, resume)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import HTTPError, from_vivace_error, json_response
from ..routing import Op, Query, parse_json, validation_error
from ..schemas import (
    AgentInfo,
    AgentList,
    CancelOut,
    Health,
    ResumeRequest,
    RunOut,
    RunRequest,
)
from ..sse import KEEPALIVE, RunInfo, frame

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ...agent import Agent, RunResult
    from ..app import VivaceApp
    from ..auth import Principal
    from ..sse import EventLog

__all__ = ["agent_info", "event_stream", "operations"]

KEEPALIVE_SECONDS = 15.0

_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {
        "input": {"type": "string", "description": "the message text"},
        "session_id": {"type": "string"},
        "user_id": {"type": "string"},
        "stream": {"type": "boolean"},
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
    },
    "required": ["input"],
}


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


async def event_stream(
    log: EventLog, run_id: str, after: int, keepalive: float = KEEPALIVE_SECONDS
) -> AsyncIterator[bytes]:
    """SSE frames of the run's events with ``seq > after``, with keep-alive comments."""
    it = log.subscribe(run_id, after).__aiter__()
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                yield KEEPALIVE
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield frame(event, event.get("type"), event.get("seq"))
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


def sse_response(body: AsyncIterator[bytes], headers: dict[str, str]) -> Response:
    from starlette.responses import StreamingResponse

    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no", **headers},
    )


def _result_out(result: RunResult | None, run_id: str, log: EventLog) -> dict[str, Any]:
    if result is not None:
        return result.to_dict()
    return {  # the run ended without a result (cancelled early or an internal failure)
        "run_id": run_id,
        "session_id": None,
        "user_id": None,
        "status": "failed",
        "output": None,
        "messages": [],
        "usage": {},
        "error": {"type": "InternalError", "code": "internal_error", "message": "run ended early"},
        "paused": None,
    }


def operations(server: VivaceApp) -> list[Op]:
    allowed = server.allowed_media_types
    info_cache: dict[str, dict[str, Any]] = {}

    async def health(request: Request, principal: Principal) -> Response:
        from ... import __version__

        return json_response({"status": "ok", "version": __version__})

    def _info(agent: Agent) -> dict[str, Any]:
        info = info_cache.get(agent.id)
        if info is None:
            info = info_cache[agent.id] = agent_info(agent)
        return info

    async def list_agents(request: Request, principal: Principal) -> Response:
        return json_response({"agents": [_info(a) for a in server.agents.values()]})

    async def get_agent(request: Request, principal: Principal) -> Response:
        return json_response(_info(server.agent(request.path_params["agent_id"])))

    async def _run_request(request: Request) -> tuple[RunRequest, list[Any] | str]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            return await _multipart(request)
        from ..inputs import parts_from_json

        req: RunRequest = await parse_json(request, RunRequest)
        if isinstance(req.input, str):
            return req, req.input
        return req, parts_from_json(req.input, allowed)

    async def _multipart(request: Request) -> tuple[RunRequest, list[Any] | str]:
        from pydantic import ValidationError
        from starlette.datastructures import UploadFile

        from ..inputs import part_from_upload

        form = await request.form(max_files=64, max_fields=64, max_part_size=server.max_body_bytes)
        fields: dict[str, Any] = {}
        files: list[UploadFile] = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.append(value)
            elif key in ("input", "message"):
                fields["input"] = value
            elif key in ("session_id", "user_id"):
                fields[key] = value or None
            elif key == "stream":
                fields["stream"] = value.lower() in ("1", "true", "yes", "on")
            elif key == "max_steps":
                fields["max_steps"] = value
            else:
                raise HTTPError(400, "unknown_field", f"unknown form field {key!r}", param=key)
        try:
            req = RunRequest.model_validate(fields)
        except ValidationError as exc:
            raise validation_error(exc) from None
        assert isinstance(req.input, str)
        if not files:
            return req, req.input
        from ...messages import TextPart

        parts: list[Any] = [TextPart(req.input)] if req.input else []
        for f in files:
            data = await f.read()
            parts.append(part_from_upload(f.filename, f.content_type, data, allowed))
        return req, parts

    async def create_run(request: Request, principal: Principal) -> Response:
        agent = server.agent(request.path_params["agent_id"])
        req, run_input = await _run_request(request)
        user_id = principal.user_for(req.user_id)
        run_id = uuid.uuid4().hex
        options: dict[str, Any] = {"run_id": run_id}
        if req.session_id is not None:
            options["session_id"] = req.session_id
        if user_id is not None:
            options["user_id"] = user_id
        if req.session_state is not None:
            options["session_state"] = req.session_state
        if req.model_settings is not None:
            options["model_settings"] = req.model_settings
        if req.max_steps is not None:
            options["max_steps"] = req.max_steps
        # a client that waits for JSON gets no deltas, so the model need not stream either
        stream = agent.astream(run_input, stream_model=bool(req.stream), **options)
        task = server.runs.start(RunInfo(run_id, agent.id, user_id, req.session_id), stream)
        headers = {"x-vivace-run-id": run_id}
        if req.session_id is not None:
            headers["x-vivace-session-id"] = req.session_id
        if req.stream:
            return sse_response(event_stream(server.log, run_id, -1), headers)
        result = await asyncio.shield(task)
        return json_response(_result_out(result, run_id, server.log), headers=headers)

    def _owned_run(request: Request, principal: Principal) -> RunInfo:
        agent_id = request.path_params["agent_id"]
        server.agent(agent_id)
        run_id = request.path_params["run_id"]
        info = server.log.info(run_id)
        if info is None or info.agent_id != agent_id or not principal.can_see(info.user_id):
            raise HTTPError(
                404,
                "run_not_found",
                f"no run {run_id!r} of agent {agent_id!r} here",
                param="run_id",
            )
        return info

    async def run_events(request: Request, principal: Principal) -> Response:
        info = _owned_run(request, principal)
        raw = request.headers.get("last-event-id") or request.query_params.get("after")
        after = -1
        if raw is not None and raw != "":
            try:
                after = int(raw)
            except ValueError:
                raise HTTPError(
                    400, "invalid_last_event_id", "Last-Event-ID must be an integer"
                ) from None
            if after < -1:
                raise HTTPError(400, "invalid_last_event_id", "Last-Event-ID must be >= -1")
        oldest = getattr(server.log, "oldest_seq", None)
        if oldest is not None and after + 1 < oldest(info.run_id):
            raise HTTPError(410, "events_expired", "those events are no longer kept")
        return sse_response(
            event_stream(server.log, info.run_id, after), {"x-vivace-run-id": info.run_id}
        )

    async def cancel_run(request: Request, principal: Principal) -> Response:
        from ...errors import VivaceError

        agent_id = request.path_params["agent_id"]
        run_id = request.path_params["run_id"]
        server.agent(agent_id)
        # a run of another worker (several workers): ask it through storage
        sessions = None if server.runs.is_live(run_id) else server.runs.sessions_for(agent_id)
        if sessions is None:
            info = _owned_run(request, principal)
            if not server.runs.cancel(info.run_id):
                raise HTTPError(409, "run_not_running", "the run is not running", param="run_id")
            return json_response({"run_id": info.run_id, "cancelled": True})
        try:
            record = await sessions.get_run(run_id)
            if (
                record is None
                or record.agent_id != agent_id
                or not principal.can_see(record.user_id)
            ):
                raise HTTPError(
                    404,
                    "run_not_found",
                    f"no run {run_id!r} of agent {agent_id!r} here",
                    param="run_id",
                )
            if record.status != "running" or not await sessions.request_cancel(run_id):
                raise HTTPError(409, "run_not_running", "the run is not running", param="run_id")
        except VivaceError as exc:
            raise from_vivace_error(exc) from None
        return json_response({"run_id": run_id, "cancelled": True})

    async def resume_run(request: Request, principal: Principal) -> Response:
        from ...agent.result import Approve, Reject
        from ...errors import VivaceError

        agent = server.agent(request.path_params["agent_id"])
        run_id = request.path_params["run_id"]
        req: ResumeRequest = await parse_json(request, ResumeRequest)
        owner = await _paused_owner(agent, run_id)
        if owner is None or not principal.can_see(owner):
            raise HTTPError(404, "run_not_found", f"no paused run {run_id!r}", param="run_id")
        approvals: dict[str, Any] = {}
        for call_id, d in req.approvals.items():
            if isinstance(d, bool):
                approvals[call_id] = d
            elif d.approve:
                approvals[call_id] = Approve(d.arguments)
            else:
                approvals[call_id] = Reject(d.reason) if d.reason else Reject()
        from ...agent.loop import check_approvals
        from ...agent.session import find_paused

        try:  # a missing run or invalid approvals: an HTTP error before the run starts
            paused = await find_paused(agent, run_id, owner or None)
            check_approvals(agent, paused, approvals)
        except VivaceError as exc:
            raise from_vivace_error(exc) from None
        stream = agent.aresume_stream(paused, approvals)
        info = RunInfo(run_id, agent.id, owner or None)
        task = server.runs.start(info, stream)
        headers = {"x-vivace-run-id": run_id}
        if req.stream:
            return sse_response(event_stream(server.log, run_id, -1), headers)
        result = await asyncio.shield(task)
        return json_response(_result_out(result, run_id, server.log), headers=headers)

    async def _paused_owner(agent: Agent, run_id: str) -> str | None:
        """The user id owning a paused run of ``agent`` ("" for none), None when unknown."""
        from ...errors import VivaceError

        storage = agent.storage
        sessions = getattr(storage, "sessions", None)
        if sessions is not None:
            try:
                record = await sessions.get_run(run_id)
            except VivaceError as exc:
                raise from_vivace_error(exc) from None
            if record is None or record.status != "paused":
                return None
            if record.agent_id not in (None, agent.id):
                return None
            return record.user_id or ""
        from ...agent.registry import recall_paused

        paused = recall_paused(run_id)  # the caller checks the owner against the principal
        if paused is None or paused.agent_name not in (None, agent.name):
            return None
        return paused.user_id or ""

    run_errors = {400: None, 404: None, 413: None, 415: None, 422: None}
    id_schema = {"type": "string", "minLength": 1, "maxLength": 256}
    return [
        Op("GET", "/health", health, "Liveness", "health", None, responses={200: Health}),
        Op("GET", "/agents", list_agents, "List agents", "agents", responses={200: AgentList}),
        Op(
            "GET",
            "/agents/{agent_id}",
            get_agent,
            "An agent with its tools",
            "agents",
            responses={200: AgentInfo, 404: None},
        ),
        Op(
            "POST",
            "/agents/{agent_id}/runs",
            create_run,
            "Start a run (JSON result, or SSE with stream=true)",
            "runs",
            body=RunRequest,
            multipart=_MULTIPART_SCHEMA,
            responses={200: RunOut, **run_errors},
            sse=True,
        ),
        Op(
            "GET",
            "/agents/{agent_id}/runs/{run_id}/events",
            run_events,
            "Re-attach to a run's event stream (Last-Event-ID)",
            "runs",
            responses={200: None, 400: None, 404: None, 410: None},
            sse=True,
            query=[Query("after", {"type": "integer", "minimum": -1}, "resume after this seq")],
            headers=[Query("Last-Event-ID", {"type": "string"}, "the last seq received")],
        ),
        Op(
            "POST",
            "/agents/{agent_id}/runs/{run_id}/cancel",
            cancel_run,
            "Cancel a running run",
            "runs",
            responses={200: CancelOut, 404: None, 409: None},
        ),
        Op(
            "POST",
            "/agents/{agent_id}/runs/{run_id}/resume",
            resume_run,
            "Resume a paused run with approvals",
            "runs",
            body=ResumeRequest,
            responses={200: RunOut, 400: None, 404: None, 415: None, 422: None},
            sse=True,
            path_schemas={"run_id": id_schema},
        ),
    ]
