"""Workflows: list and describe them, start runs (JSON or SSE), read, list, resume, cancel and
time-travel runs, and re-attach to a run's events (``Last-Event-ID``).

Runs belong to the user who started them (like sessions): a principal bound to a user only
sees its own runs; another user's run reads as 404. Streamed runs are driven by the server's
live-run registry and event log, so a client may drop and reconnect; with the storage-backed
event log (several workers) the events of a run of another worker are read from storage.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import HTTPError, json_response
from ..ids import body_id, path_id, query_id, run_id_header
from ..routing import Op, Query, parse_json, query_int
from ..schemas import ID_SCHEMA
from ..sse import RUN_EVENT_SCHEMA, RunInfo
from ..state import event_log, live_runs, principal, request_trace_id, storage
from ..streams import run_event_frames, sse_response

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.responses import Response

    from ...workflows import Workflow

__all__ = ["ROUTES", "workflows_of"]

TERMINAL = frozenset(
    {"workflow_completed", "workflow_failed", "workflow_cancelled", "workflow_suspended"}
)
MAX_OFFSET = 10_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRequest(_Strict):
    """Start a workflow run."""

    input: Any = Field(None, description="the workflow's input (validated against its schema)")
    run_id: str | None = Field(None, description="choose the run id (unique)")
    state: Any = Field(None, description="the initial shared state")
    user_id: str | None = None
    stream: bool = Field(False, description="answer with the run's events (SSE)")
    wait: bool = Field(True, description="DBOS engine: wait for the run (else 202 at once)")


class ResumeWorkflow(_Strict):
    """Send data to a suspended step (``step``: its path; optional when only one is
    suspended), or deliver an ``event`` to the step waiting for it."""

    step: str | None = None
    data: Any = None
    event: str | None = None
    stream: bool = False


class TimeTravel(_Strict):
    """Re-run a run from ``step`` as a new run (``input`` overrides what the step receives)."""

    step: str
    input: Any = None
    run_id: str | None = None


def workflows_of(request: Request) -> dict[str, Workflow[Any, Any]]:
    return getattr(request.app.state, "workflows", None) or {}


def _workflow(request: Request) -> Workflow[Any, Any]:
    workflow_id = path_id(request, "workflow_id")
    wf = workflows_of(request).get(workflow_id)
    if wf is None:
        raise HTTPError(
            404, "workflow_not_found", f"no workflow {workflow_id!r}", param="workflow_id"
        )
    return wf


def _not_found(run_id: str) -> HTTPError:
    return HTTPError(404, "run_not_found", f"no run {run_id!r} of this workflow", param="run_id")


def _typed(exc: Exception) -> HTTPError:
    """Workflow errors as HTTP answers."""
    from ...workflows.errors import (
        ResumeDataInvalid,
        StepNotSuspended,
        WorkflowInputInvalid,
        WorkflowRunExists,
        WorkflowRunNotFound,
    )

    msg = getattr(exc, "message", str(exc))
    code = getattr(exc, "code", "error")
    details = getattr(exc, "details", None) or None
    if isinstance(exc, WorkflowRunNotFound):
        return HTTPError(404, "run_not_found", msg, param="run_id")
    if isinstance(exc, StepNotSuspended | WorkflowRunExists):
        return HTTPError(409, code, msg, details=details)
    if isinstance(exc, ResumeDataInvalid | WorkflowInputInvalid):
        return HTTPError(422, code, msg, details=details)
    raise exc


async def _owned(request: Request, wf: Workflow[Any, Any], run_id: str) -> Any:
    """The stored run record, if it is a run of ``wf`` the caller may see; else 404."""
    from ...workflows.engine import store_of

    store = store_of(wf)
    if store is None:
        raise HTTPError(404, "storage_not_configured", "this workflow has no storage")
    record = await store.get_run(run_id)
    if record is None or record.workflow != wf.id or not principal(request).can_see(record.user_id):
        raise _not_found(run_id)
    return record


# -- workflows ---------------------------------------------------------------------------------


async def list_workflows(request: Request) -> Response:
    out = [
        {"id": wf.id, "description": wf.description, "engine": wf.engine, "schedule": wf.schedule}
        for wf in workflows_of(request).values()
    ]
    return json_response({"workflows": out})


async def get_workflow(request: Request) -> Response:
    wf = _workflow(request)
    return json_response({**wf.describe(), "graph": wf.graph(), "mermaid": wf.mermaid()})


# -- runs ----------------------------------------------------------------------------------------


def _info(wf: Workflow[Any, Any], run_id: str, user_id: str | None) -> RunInfo:
    return RunInfo(run_id, f"workflow:{wf.id}", user_id)


async def start_run(request: Request) -> Response:
    wf = _workflow(request)
    req: StartRequest = await parse_json(request, StartRequest)
    body_id("run_id", req.run_id)
    user_id = principal(request).user_for(body_id("user_id", req.user_id))
    import uuid

    run_id = req.run_id or uuid.uuid4().hex
    try:
        if wf.engine == "dbos":
            if req.stream:
                raise HTTPError(400, "stream_unsupported", "DBOS runs do not stream; use JSON")
            result = await wf.arun(
                req.input, run_id=run_id, state=req.state, user_id=user_id, wait=req.wait
            )
            status = 202 if result.status == "running" else 200
            return json_response(result.to_dict(), status, headers=run_id_header(run_id))
        trace_id = request_trace_id(request)  # the run joins the request's trace
        if not req.stream:
            result = await wf.arun(
                req.input, run_id=run_id, state=req.state, user_id=user_id, trace_id=trace_id
            )
            return json_response(result.to_dict(), headers=run_id_header(run_id))
        stream = wf.astream(
            req.input, run_id=run_id, state=req.state, user_id=user_id, trace_id=trace_id
        )
        _, first = await live_runs(request).begin(_info(wf, run_id, user_id), stream)  # type: ignore[arg-type]
    except HTTPError:
        raise
    except Exception as exc:
        raise _typed(exc) from None
    log = event_log(request)
    events = log.subscribe(run_id, int(first.get("seq", 0)) - 1)
    return sse_response(run_event_frames(events), run_id_header(run_id))


async def list_runs(request: Request) -> Response:
    from ...workflows.engine import store_of

    wf = _workflow(request)
    user_id = principal(request).user_for(query_id(request, "user_id"), default_self=False)
    status = request.query_params.get("status")
    statuses = [s for s in status.split(",") if s] if status else None
    limit = query_int(request, "limit", 50, 1, 500)
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    store = store_of(wf)
    records = (
        []
        if store is None
        else await store.list_runs(
            workflow=wf.id, statuses=statuses, user_id=user_id, limit=limit, offset=offset
        )
    )
    runs = [
        {k: v for k, v in r.to_dict().items() if k not in ("input", "output", "state", "metadata")}
        for r in records
    ]
    return json_response({"runs": runs, "limit": limit, "offset": offset})


async def get_run(request: Request) -> Response:
    wf = _workflow(request)
    run_id = path_id(request, "run_id")
    record = await _owned(request, wf, run_id)
    result = await wf.get_run(run_id)
    assert result is not None
    return json_response({**result.to_dict(), "user_id": record.user_id, "input": record.input})


async def resume_run(request: Request) -> Response:
    wf = _workflow(request)
    run_id = path_id(request, "run_id")
    req: ResumeWorkflow = await parse_json(request, ResumeWorkflow)
    record = await _owned(request, wf, run_id)
    try:
        if req.event is not None:
            if req.stream:
                raise HTTPError(400, "stream_unsupported", "events are delivered without a stream")
            result = await wf.send_event(run_id, req.event, req.data)
            return json_response(result.to_dict(), headers=run_id_header(run_id))
        if not req.stream or wf.engine == "dbos":
            result = await wf.aresume(run_id, step=req.step, data=req.data)
            return json_response(result.to_dict(), headers=run_id_header(run_id))
        stream = wf.aresume_stream(run_id, step=req.step, data=req.data)
        _, first = await live_runs(request).begin(_info(wf, run_id, record.user_id), stream)  # type: ignore[arg-type]
    except HTTPError:
        raise
    except Exception as exc:
        raise _typed(exc) from None
    events = event_log(request).subscribe(run_id, int(first.get("seq", 0)) - 1)
    return sse_response(run_event_frames(events), run_id_header(run_id))


async def cancel_run(request: Request) -> Response:
    wf = _workflow(request)
    run_id = path_id(request, "run_id")
    record = await _owned(request, wf, run_id)
    if record.status not in ("running", "suspended", "waiting"):
        raise HTTPError(409, "run_not_running", f"the run is {record.status}", param="run_id")
    status = await wf.acancel(run_id)
    return json_response({"run_id": run_id, "cancelled": True, "status": status})


async def time_travel(request: Request) -> Response:
    wf = _workflow(request)
    run_id = path_id(request, "run_id")
    req: TimeTravel = await parse_json(request, TimeTravel)
    body_id("run_id", req.run_id)
    await _owned(request, wf, run_id)
    try:
        result = await wf.time_travel(run_id, step=req.step, input=req.input, new_run_id=req.run_id)
    except Exception as exc:
        raise _typed(exc) from None
    return json_response(result.to_dict(), headers=run_id_header(result.run_id))


# -- events (reconnect) --------------------------------------------------------------------------


def _after(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None:
        return -1
    try:
        after = int(raw)
    except ValueError:
        raise HTTPError(400, "invalid_last_event_id", "Last-Event-ID must be an integer") from None
    if after < -1:
        raise HTTPError(400, "invalid_last_event_id", "Last-Event-ID must be >= -1")
    return after


async def run_events(request: Request) -> Response:
    wf = _workflow(request)
    run_id = path_id(request, "run_id")
    after = _after(request)
    log = event_log(request)
    info = log.info(run_id)
    if info is not None and info.agent_id == f"workflow:{wf.id}":
        if not principal(request).can_see(info.user_id):
            raise _not_found(run_id)
        events: AsyncIterator[dict[str, Any]] = log.subscribe(run_id, after)
    else:  # a run of another worker (storage-backed log), or one this process forgot
        await _owned(request, wf, run_id)
        st = storage(request)
        if st is None or getattr(st, "events", None) is None:
            raise HTTPError(404, "events_not_found", "this run's events are not kept here")
        events = _stored_events(st, wf, run_id, after)
    return sse_response(run_event_frames(events), run_id_header(run_id))


async def _stored_events(
    st: Any, wf: Workflow[Any, Any], run_id: str, after: int, poll: float = 0.2
) -> AsyncIterator[dict[str, Any]]:
    """A run's events from ``storage.events``, until its terminal event (or until it stops
    running and nothing more arrives)."""
    from ...workflows.engine import store_of

    store = store_of(wf)
    nxt = after + 1
    quiet = 0
    while True:
        batch = await st.events.read(run_id, after=nxt - 1, limit=500)
        for event in batch:
            seq = event.get("seq")
            if not isinstance(seq, int) or seq < nxt:
                continue
            yield event
            nxt = seq + 1
            if event.get("type") in TERMINAL:
                return
        if len(batch) == 500:
            continue
        record = await store.get_run(run_id) if store is not None else None
        if record is None or record.status != "running":
            quiet += 1
            if quiet > 3:  # stopped, and its last events are not coming
                return
        await asyncio.sleep(poll)


_WF = {"workflow_id": ID_SCHEMA}
_RUN = {"workflow_id": ID_SCHEMA, "run_id": ID_SCHEMA}

ROUTES = [
    Op("GET", "/workflows", list_workflows, "List workflows", "workflows",
       responses={200: None}),
    Op("GET", "/workflows/{workflow_id}", get_workflow,
       "Describe a workflow: graph, Mermaid, JSON Schemas of input, output, resume and state",
       "workflows", responses={200: None, 400: None, 404: None}, path_schemas=_WF),
    Op("POST", "/workflows/{workflow_id}/runs", start_run, "Start a workflow run (JSON or SSE)",
       "workflows", body=StartRequest, sse=RUN_EVENT_SCHEMA,
       responses={200: None, 202: None, 400: None, 404: None, 409: None, 422: None},
       path_schemas=_WF),
    Op("GET", "/workflows/{workflow_id}/runs", list_runs, "List a workflow's runs", "workflows",
       responses={200: None, 400: None, 404: None}, path_schemas=_WF,
       query=[Query("status", {"type": "string"}, "comma-separated statuses"),
              Query("user_id", ID_SCHEMA, "admin: another user's runs"),
              Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
              Query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET})]),
    Op("GET", "/workflows/{workflow_id}/runs/{run_id}", get_run,
       "A run: status, output, error, suspended steps, step results, state", "workflows",
       responses={200: None, 400: None, 404: None}, path_schemas=_RUN),
    Op("GET", "/workflows/{workflow_id}/runs/{run_id}/events", run_events,
       "Re-attach to a run's events (Last-Event-ID or ?after=)", "workflows",
       sse=RUN_EVENT_SCHEMA, responses={200: None, 400: None, 404: None}, path_schemas=_RUN,
       query=[Query("after", {"type": "integer", "minimum": -1}, "the last seq the client has")],
       headers=[Query("last-event-id", {"type": "string"}, "the last seq the client has")]),
    Op("POST", "/workflows/{workflow_id}/runs/{run_id}/resume", resume_run,
       "Resume a suspended step (or send an event to a waiting run)", "workflows",
       body=ResumeWorkflow, sse=RUN_EVENT_SCHEMA,
       responses={200: None, 400: None, 404: None, 409: None, 422: None}, path_schemas=_RUN),
    Op("POST", "/workflows/{workflow_id}/runs/{run_id}/cancel", cancel_run, "Cancel a run",
       "workflows", responses={200: None, 400: None, 404: None, 409: None}, path_schemas=_RUN),
    Op("POST", "/workflows/{workflow_id}/runs/{run_id}/time-travel", time_travel,
       "Re-run a run from a step, as a new run", "workflows", body=TimeTravel,
       responses={200: None, 400: None, 404: None, 409: None, 422: None}, path_schemas=_RUN),
]  # fmt: skip
