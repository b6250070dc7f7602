"""The runs of an agent: start (JSON, SSE, multipart), re-attach to events, cancel, resume."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import HTTPError, json_response
from ..ids import body_id, path_id, run_id_header
from ..launch import launch, resume
from ..routing import Op, Query, parse_json, validation_error
from ..schemas import ID_SCHEMA, CancelOut, ResumeRequest, RunOut, RunRequest
from ..sse import RUN_EVENT_SCHEMA, RunInfo
from ..state import (
    agent,
    event_log,
    live_runs,
    model_override_allowed,
    principal,
    request_trace_id,
    settings,
)
from ..streams import run_event_frames, sse_response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ...agent import Agent

__all__ = ["ROUTES", "read_run_request"]

# an empty form field is an absent one (HTML forms send every field)
_FORM_ID: dict[str, Any] = {"anyOf": [ID_SCHEMA, {"type": "string", "maxLength": 0}]}
MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "input": {"type": "string", "description": "the message text (or field `message`)"},
        "session_id": _FORM_ID,
        "user_id": _FORM_ID,
        "stream": {"type": "boolean"},
        "max_steps": {"type": "integer", "minimum": 1, "maximum": 1000},
        "model": {"type": "string", "maxLength": 256, "description": "as in the JSON body"},
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
    },
    "required": ["input"],
    "additionalProperties": False,
}
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def read_run_request(request: Request) -> tuple[RunRequest, list[Any] | str]:
    """The run request (JSON or a form) and its input (text, or message parts)."""
    allowed = settings(request).allowed_media_types
    if request.headers.get("content-type", "").startswith(_FORM_TYPES):
        req, parts = await _read_form(request, allowed)
    else:
        from ..inputs import parts_from_json

        req = await parse_json(request, RunRequest)
        parts = req.input if isinstance(req.input, str) else parts_from_json(req.input, allowed)
    body_id("session_id", req.session_id)
    body_id("user_id", req.user_id)
    return req, parts


async def _read_form(
    request: Request, allowed: tuple[str, ...]
) -> tuple[RunRequest, list[Any] | str]:
    from pydantic import ValidationError
    from starlette.datastructures import UploadFile

    from ..inputs import part_from_upload

    limit = settings(request).max_body_bytes
    await request.body()  # kept: idempotent requests compare bodies
    form = await request.form(max_files=64, max_fields=64, max_part_size=limit)
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
            flag = value.strip().lower()
            if flag not in ("true", "false"):
                raise HTTPError(
                    422, "validation_error", "stream: must be true or false", param="stream"
                )
            fields["stream"] = flag == "true"
        elif key == "max_steps":
            fields["max_steps"] = value
        elif key == "model":
            fields["model"] = value or None
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


def _input_message(run_input: list[Any] | str) -> dict[str, Any]:
    from ...messages import input_to_message

    return input_to_message(run_input).to_dict()


async def create_run(request: Request) -> Response:
    a = agent(request, path_id(request, "agent_id"))
    req, run_input = await read_run_request(request)
    user_id = principal(request).user_for(req.user_id)
    options: dict[str, Any] = {}
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
    if req.model is not None:
        options["model"] = run_model(request, req.model)
    trace_id = request_trace_id(request)
    if trace_id is not None:  # the run joins the request's trace
        options["trace_id"] = trace_id
    # a client that waits for JSON gets no deltas, so the model need not stream either
    run = await launch(
        request,
        a,
        user_id=user_id,
        session_id=req.session_id,
        body=await request.body(),
        input_message=lambda: _input_message(run_input),
        make_stream=lambda run_id: a.astream(
            run_input, stream_model=req.stream, run_id=run_id, **options
        ),
    )
    if req.stream:
        return sse_response(run_event_frames(run.events()), run.headers())
    return json_response(await run.outcome(), headers=run.headers())


def _owned_run(request: Request) -> RunInfo:
    agent_id = path_id(request, "agent_id")
    agent(request, agent_id)
    run_id = path_id(request, "run_id")
    info = event_log(request).info(run_id)
    if info is None or info.agent_id != agent_id or not principal(request).can_see(info.user_id):
        raise _run_not_found(run_id, agent_id)
    return info


def _run_not_found(run_id: str, agent_id: str) -> HTTPError:
    return HTTPError(
        404, "run_not_found", f"no run {run_id!r} of agent {agent_id!r} here", param="run_id"
    )


def _after(request: Request) -> int | None:
    """The client's position in a run's events: ``Last-Event-ID`` (wins) or ``?after=``."""
    header = _position(request.headers.get("last-event-id"), "Last-Event-ID")
    query = _position(request.query_params.get("after"), "after")
    return header if header is not None else query


def _position(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    try:
        after = int(raw)
    except ValueError:
        raise HTTPError(
            400, "invalid_last_event_id", f"{name} must be an integer", param=name
        ) from None
    if after < -1:
        raise HTTPError(400, "invalid_last_event_id", f"{name} must be >= -1", param=name)
    return after


async def run_events(request: Request) -> Response:
    after = _after(request)
    log = event_log(request)
    prefetch = getattr(log, "prefetch", None)
    if prefetch is not None:  # a run of another worker: a storage-backed log looks it up
        await prefetch(path_id(request, "run_id"))
    info = _owned_run(request)
    start = -1 if after is None else after
    if start + 1 < log.oldest_seq(info.run_id):
        raise HTTPError(410, "events_expired", "those events are no longer kept")
    events = log.subscribe(info.run_id, start)
    return sse_response(run_event_frames(events), run_id_header(info.run_id))


async def cancel_run(request: Request) -> Response:
    agent_id = path_id(request, "agent_id")
    run_id = path_id(request, "run_id")
    agent(request, agent_id)
    runs = live_runs(request)
    # a run of another worker (several workers): ask it through storage
    sessions = None if runs.is_live(run_id) else runs.sessions_for(agent_id)
    if sessions is None:
        info = _owned_run(request)
        if not runs.cancel(info.run_id):
            raise HTTPError(409, "run_not_running", "the run is not running", param="run_id")
        return json_response({"run_id": info.run_id, "cancelled": True})
    record = await sessions.get_run(run_id)
    if (
        record is None
        or record.agent_id != agent_id
        or not principal(request).can_see(record.user_id)
    ):
        raise _run_not_found(run_id, agent_id)
    if record.status != "running" or not await sessions.request_cancel(run_id):
        raise HTTPError(409, "run_not_running", "the run is not running", param="run_id")
    return json_response({"run_id": run_id, "cancelled": True})


async def resume_run(request: Request) -> Response:
    from ...agent.result import Approve, Reject

    a = agent(request, path_id(request, "agent_id"))
    run_id = path_id(request, "run_id")
    after = _after(request)
    req: ResumeRequest = await parse_json(request, ResumeRequest)
    owner = await _paused_owner(a, run_id)
    if owner is None or not principal(request).can_see(owner):
        raise HTTPError(404, "run_not_found", f"no paused run {run_id!r}", param="run_id")
    approvals: dict[str, Any] = {}
    for call_id, d in req.approvals.items():
        if isinstance(d, bool):
            approvals[call_id] = d
        elif d.approve:
            approvals[call_id] = Approve(d.arguments)
        else:
            approvals[call_id] = Reject(d.reason) if d.reason else Reject()
    model = run_model(request, req.model) if req.model is not None else None
    run = await resume(request, a, run_id, owner or None, approvals, model=model)
    if req.stream:  # from the resumption on (the client has the events up to the pause)
        return sse_response(run_event_frames(run.events(after)), run.headers())
    return json_response(await run.outcome(), headers=run.headers())


def run_model(request: Request, model: str) -> str:
    """A run's own model, if this caller may choose it (403 otherwise) and it resolves (a
    model that does not, e.g. an unknown provider or a missing key, is a 400)."""
    from ...models.router import resolve_model

    if not model_override_allowed(request, principal(request)):
        raise HTTPError(
            403,
            "model_override_forbidden",
            "this server does not let these credentials choose the model",
            param="model",
        )
    resolve_model(model)  # typed errors: model_not_found, model_config_error (400)
    return model


async def _paused_owner(a: Agent, run_id: str) -> str | None:
    """The user id owning a paused run of ``a`` ("" for none), None when unknown."""
    from ..launch import sessions_of

    sessions = sessions_of(a)
    if sessions is not None:
        record = await sessions.get_run(run_id)
        if record is None or record.status != "paused":
            return None
        if record.agent_id not in (None, a.id):
            return None
        return record.user_id or ""
    from ...agent.registry import recall_paused

    paused = recall_paused(run_id)  # the caller checks the owner against the principal
    if paused is None or paused.agent_name not in (None, a.name):
        return None
    return paused.user_id or ""


_RUN_ERRORS: dict[int, Any] = {
    400: None,
    403: None,
    404: None,
    409: None,
    413: None,
    415: None,
    422: None,
}
_POSITION = [Query("after", {"type": "integer", "minimum": -1}, "stream the events after this seq")]
_LAST_EVENT_ID = [
    Query("Last-Event-ID", {"type": "integer", "minimum": -1}, "the last seq the client has")
]

ROUTES = [
    Op(
        "POST",
        "/agents/{agent_id}/runs",
        create_run,
        "Start a run (JSON result, or SSE with stream=true)",
        "runs",
        body=RunRequest,
        multipart=MULTIPART_SCHEMA,
        responses={200: RunOut, **_RUN_ERRORS},
        headers=[
            Query(
                "Idempotency-Key",
                ID_SCHEMA,
                "the same key (same credentials) always means the same run: never a second one",
            )
        ],
        sse=RUN_EVENT_SCHEMA,
    ),
    Op(
        "GET",
        "/agents/{agent_id}/runs/{run_id}/events",
        run_events,
        "Re-attach to a run's event stream (Last-Event-ID)",
        "runs",
        responses={200: None, 400: None, 404: None, 410: None},
        sse=RUN_EVENT_SCHEMA,
        query=_POSITION,
        headers=_LAST_EVENT_ID,
    ),
    Op(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/cancel",
        cancel_run,
        "Cancel a running run",
        "runs",
        responses={200: CancelOut, 400: None, 404: None, 409: None},
    ),
    Op(
        "POST",
        "/agents/{agent_id}/runs/{run_id}/resume",
        resume_run,
        "Resume a paused run with approvals (SSE from the resumption on)",
        "runs",
        body=ResumeRequest,
        responses={200: RunOut, **_RUN_ERRORS},
        sse=RUN_EVENT_SCHEMA,
        query=_POSITION,
        headers=_LAST_EVENT_ID,
    ),
]
