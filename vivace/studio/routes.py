"""The Studio's route module: its page and assets (public, not in the OpenAPI document) and
its API under ``/studio/api`` (the server's auth and scopes): who is signed in, traces (list
and one trace), metrics, and the tool playground.

A user bound to an id (a JWT's ``sub``) sees only their own traces; metrics need ``admin``
(everyone has it while the server is open to localhost only).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..server.errors import HTTPError, json_response
from ..server.ids import path_id, query_id
from ..server.routing import Op, Query, parse_json, query_int
from ..server.state import agent, agents, model_override_allowed, principal, settings, storage

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["ROUTES", "STATIC"]

STATIC = Path(__file__).with_name("static")
"""The page and its assets (plain ES modules and CSS)."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


# -- schemas -----------------------------------------------------------------------------------


class StudioInfo(BaseModel):
    """Who is signed in and what this server offers the Studio."""

    title: str
    user_id: str | None
    admin: bool
    auth: str = Field(description="open, api_key or jwt")
    traces: bool = Field(description="spans are stored (the Traces and Metrics screens work)")
    workflows: bool
    model_override: bool = Field(description="this caller may choose a run's model (`model`)")
    models: list[str] = Field(description="model strings the served agents use")


class TraceRow(BaseModel):
    """One trace: its root span and the totals of its model requests."""

    model_config = ConfigDict(extra="allow")

    trace_id: str
    name: str
    agent: str | None
    workflow: str | None
    model: str | None
    run_id: str | None
    session_id: str | None
    user_id: str | None
    status: str
    error: bool
    start_time: float
    duration_ms: float
    spans: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class TraceList(BaseModel):
    traces: list[TraceRow]
    next_cursor: str | None = Field(description="the next page's `cursor` (null: the last page)")


class SpanOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_time: float
    end_time: float | None
    duration_ms: float
    status: str | None
    attributes: dict[str, Any]


class TraceOut(BaseModel):
    trace_id: str
    spans: list[SpanOut]


class MetricsRow(BaseModel):
    """Runs, errors, tokens, cost and latency percentiles of one bucket x agent x model."""

    model_config = ConfigDict(extra="allow")

    time: float
    agent: str | None
    model: str | None
    workflow: str | None
    runs: int
    errors: int
    tool_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class MetricsOut(BaseModel):
    rows: list[MetricsRow]
    bucket: float
    since: float


class ScoreOut(BaseModel):
    score_id: str
    scorer: str
    score: float
    run_id: str | None
    trace_id: str | None
    reason: str | None
    metadata: dict[str, Any]
    created_at: float


class ScoreList(BaseModel):
    scores: list[ScoreOut]
    next_cursor: str | None


class ScoreStatsRow(BaseModel):
    time: float | None
    scorer: str
    count: int
    mean: float
    min: float
    max: float


class ScoreStatsOut(BaseModel):
    rows: list[ScoreStatsRow]


class StepInputs(BaseModel):
    run_id: str
    inputs: dict[str, Any] = Field(description="step path -> the value it was called with")


class ToolRunIn(BaseModel):
    """The arguments to call the tool with (validated against its JSON Schema)."""

    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolRunOut(BaseModel):
    """The tool's result (``ok``), or why it failed (``error``, ``code``)."""

    ok: bool
    result: Any = None
    duration_ms: float | None = None
    error: str | None = None
    code: str | None = None


# -- page and assets ---------------------------------------------------------------------------


async def studio_page(request: Request) -> Response:
    from starlette.responses import Response

    body = (STATIC / "index.html").read_bytes()
    return Response(body, media_type=_TYPES[".html"], headers={"cache-control": "no-cache"})


async def studio_asset(request: Request) -> Response:
    from starlette.responses import Response

    path = (STATIC / request.path_params["name"]).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file():
        raise HTTPError(404, "route_not_found", "no such asset")
    media = _TYPES.get(path.suffix, "application/octet-stream")
    return Response(path.read_bytes(), media_type=media, headers={"cache-control": "no-cache"})


# -- the API -----------------------------------------------------------------------------------


def _queries(request: Request) -> Any:
    from ..observability.query import queries_for

    found = storage(request)
    if found is None or getattr(found, "traces", None) is None:
        raise HTTPError(404, "traces_not_stored", "the server has no storage for traces")
    return queries_for(found)


def _number(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise HTTPError(400, "invalid_parameter", f"{name} must be a number", param=name) from None


def _filter(request: Request, name: str) -> str | None:
    """A filter from the query (an id: checked); empty or absent: no filter."""
    return query_id(request, name) if request.query_params.get(name) else None


async def studio_info(request: Request) -> Response:
    from ..server.routes.agents import agent_info

    who = principal(request)
    models: list[str] = []
    for a in agents(request).values():
        m = agent_info(a)["model"]
        for name in m if isinstance(m, list) else [m]:
            if name and name not in models:
                models.append(name)
    return json_response(
        {
            "title": settings(request).title,
            "user_id": who.user_id,
            "admin": who.admin,
            "auth": who.method,
            "traces": getattr(storage(request), "traces", None) is not None,
            "workflows": bool(getattr(request.app.state, "workflows", None)),
            "model_override": model_override_allowed(request, who),
            "models": models,
        }
    )


async def list_traces(request: Request) -> Response:
    who = principal(request)
    user_id = _filter(request, "user_id")
    if who.user_id is not None and not who.admin:  # a user sees their own traces
        user_id = who.user_id
    try:
        rows, next_cursor = await _queries(request).list_traces(
            agent=_filter(request, "agent"),
            model=_filter(request, "model"),
            workflow=_filter(request, "workflow"),
            status=_filter(request, "status"),
            user_id=user_id,
            since=_number(request, "since"),
            until=_number(request, "until"),
            session_id=_filter(request, "session_id"),
            run_id=_filter(request, "run_id"),
            limit=query_int(request, "limit", 50, 1, 500),
            cursor=request.query_params.get("cursor") or None,
        )
    except ValueError:
        raise HTTPError(
            400, "invalid_cursor", "cursor is not a next_cursor", param="cursor"
        ) from None
    return json_response({"traces": rows, "next_cursor": next_cursor})


async def get_trace(request: Request) -> Response:
    who = principal(request)
    trace_id = path_id(request, "trace_id")
    spans = await _queries(request).get_trace(trace_id)
    if spans and who.user_id is not None and not who.admin:
        users = {s["attributes"].get("vivace.user_id") for s in spans}
        if users - {who.user_id}:  # another user's (or nobody's) trace: as if there were none
            spans = []
    if not spans:
        raise HTTPError(404, "trace_not_found", f"no trace {trace_id!r}", param="trace_id")
    return json_response({"trace_id": trace_id, "spans": spans})


async def studio_metrics(request: Request) -> Response:
    bucket = max(60.0, _number(request, "bucket") or 86400.0)
    since = _number(request, "since")
    if since is None:
        since = time.time() - 30 * 86400
    rows = await _queries(request).metrics(
        since=since,
        until=_number(request, "until"),
        bucket=bucket,
        agent=_filter(request, "agent"),
        model=_filter(request, "model"),
        workflow=_filter(request, "workflow"),
    )
    return json_response({"rows": rows, "bucket": bucket, "since": since})


def _scores(request: Request) -> Any:
    found = storage(request)
    if found is None or getattr(found, "scores", None) is None:
        raise HTTPError(404, "scores_not_stored", "the server has no storage for scores")
    return found.scores


async def list_scores(request: Request) -> Response:
    from ..observability.query import decode_cursor, encode_cursor

    raw = request.query_params.get("cursor") or None
    try:
        before = decode_cursor(raw) if raw else None
    except ValueError:
        raise HTTPError(
            400, "invalid_cursor", "cursor is not a next_cursor", param="cursor"
        ) from None
    limit = query_int(request, "limit", 50, 1, 500)
    rows = await _scores(request).list_scores(
        run_id=_filter(request, "run_id"),
        trace_id=_filter(request, "trace_id"),
        scorer=_filter(request, "scorer"),
        since=_number(request, "since"),
        until=_number(request, "until"),
        limit=limit + 1,
        before=before,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more and rows else None
    next_cursor = encode_cursor((last.created_at, last.score_id)) if last is not None else None
    return json_response({"scores": [r.to_dict() for r in rows], "next_cursor": next_cursor})


async def score_stats(request: Request) -> Response:
    bucket = _number(request, "bucket")
    rows = await _scores(request).score_stats(
        scorer=_filter(request, "scorer"),
        since=_number(request, "since"),
        until=_number(request, "until"),
        bucket=max(60.0, bucket) if bucket else None,
    )
    return json_response({"rows": [r.to_dict() for r in rows]})


async def workflow_step_inputs(request: Request) -> Response:
    """What each step of a workflow run was called with (replayed from its journal)."""
    from ..server.routes.workflows import workflows_of
    from ..workflows.engine import store_of
    from .workflow_inputs import step_inputs

    who = principal(request)
    workflow_id = path_id(request, "workflow_id")
    run_id = path_id(request, "run_id")
    wf = workflows_of(request).get(workflow_id)
    if wf is None:
        raise HTTPError(404, "workflow_not_found", f"no workflow {workflow_id!r}")
    store = store_of(wf)
    record = await store.get_run(run_id) if store is not None else None
    if record is None or record.workflow != wf.id or not who.can_see(record.user_id):
        raise HTTPError(404, "run_not_found", f"no run {run_id!r} of this workflow", param="run_id")
    inputs = await step_inputs(wf, run_id)
    return json_response({"run_id": run_id, "inputs": inputs or {}})


async def run_tool(request: Request) -> Response:
    """The tool playground: validate the arguments and call the tool alone (no run)."""
    import uuid

    from ..agent.loop import static_tools
    from ..errors import VivaceError
    from ..tools.context import RunContext
    from ..tools.tool import result_to_content

    who = principal(request)
    a = agent(request, path_id(request, "agent_id"))
    name = path_id(request, "tool")
    t = static_tools(a).get(name)
    if t is None:
        raise HTTPError(404, "tool_not_found", f"agent {a.id!r} has no tool {name!r}", param="tool")
    body: ToolRunIn = await parse_json(request, ToolRunIn)
    ctx: RunContext[Any] = RunContext(
        uuid.uuid4().hex,
        user_id=who.user_id,
        deps=a.deps,
        agent_name=a.name,
        agent=a,
        tool_call_id="playground",
    )
    started = time.perf_counter()
    try:
        raw = await t.call(t.validate(body.arguments), ctx)
    except VivaceError as exc:
        return json_response(
            {"ok": False, "error": exc.message or type(exc).__name__, "code": exc.code}
        )
    except Exception as exc:
        return json_response(
            {"ok": False, "error": f"{type(exc).__name__}: {exc}", "code": "tool_error"}
        )
    ms = (time.perf_counter() - started) * 1000
    return json_response({"ok": True, "result": result_to_content(raw), "duration_ms": ms})


_FILTERS = [
    Query("agent", {"type": "string"}, "only this agent's traces"),
    Query("model", {"type": "string"}, "only traces whose run used this model"),
    Query("workflow", {"type": "string"}, "only this workflow's traces"),
    Query("user_id", {"type": "string"}, "only this user's traces (admins; a user sees theirs)"),
    Query("status", {"type": "string"}, "completed, failed, paused, cancelled, blocked"),
    Query("since", {"type": "number"}, "started at or after (Unix seconds)"),
    Query("until", {"type": "number"}, "started before (Unix seconds)"),
    Query("session_id", {"type": "string"}, "only this session's traces"),
    Query("run_id", {"type": "string"}, "the trace of this run"),
    Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "at most this many"),
    Query("cursor", {"type": "string"}, "the `next_cursor` of the previous page"),
]
_TRACE_ID = {"type": "string", "minLength": 1, "maxLength": 256}

ROUTES = [
    Op("GET", "/studio", studio_page, "The Studio", "studio", None, in_schema=False),
    Op("GET", "/studio/", studio_page, "The Studio", "studio", None, in_schema=False),
    Op(
        "GET",
        "/studio/assets/{name:path}",
        studio_asset,
        "The Studio's assets",
        "studio",
        None,
        in_schema=False,
    ),
    Op(
        "GET",
        "/studio/api/info",
        studio_info,
        "Who is signed in, what the server offers",
        "studio",
        responses={200: StudioInfo},
    ),
    Op(
        "GET",
        "/studio/api/traces",
        list_traces,
        "Traces, newest first",
        "studio",
        responses={200: TraceList, 400: None, 404: None},
        query=_FILTERS,
    ),
    Op(
        "GET",
        "/studio/api/traces/{trace_id}",
        get_trace,
        "One trace's spans",
        "studio",
        responses={200: TraceOut, 400: None, 404: None},
        path_schemas={"trace_id": _TRACE_ID},
    ),
    Op(
        "GET",
        "/studio/api/metrics",
        studio_metrics,
        "Runs, tokens, cost and latency per time bucket, agent and model",
        "studio",
        scope="admin",
        responses={200: MetricsOut, 400: None, 404: None},
        query=[
            Query("since", {"type": "number"}, "from (Unix seconds; default 30 days ago)"),
            Query("until", {"type": "number"}, "until (Unix seconds)"),
            Query("bucket", {"type": "number", "minimum": 60}, "bucket size in seconds"),
            Query("agent", {"type": "string"}, "only this agent"),
            Query("model", {"type": "string"}, "only this model"),
            Query("workflow", {"type": "string"}, "only this workflow"),
        ],
    ),
    Op(
        "GET",
        "/studio/api/scores",
        list_scores,
        "Evaluation scores, newest first",
        "studio",
        scope="admin",
        responses={200: ScoreList, 400: None, 404: None},
        query=[
            Query("trace_id", {"type": "string"}, "scores of this trace"),
            Query("run_id", {"type": "string"}, "scores of this run"),
            Query("scorer", {"type": "string"}, "only this scorer"),
            Query("since", {"type": "number"}, "created at or after (Unix seconds)"),
            Query("until", {"type": "number"}, "created before (Unix seconds)"),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "at most"),
            Query("cursor", {"type": "string"}, "the `next_cursor` of the previous page"),
        ],
    ),
    Op(
        "GET",
        "/studio/api/scores/stats",
        score_stats,
        "Count, mean, min and max per scorer (and time bucket)",
        "studio",
        scope="admin",
        responses={200: ScoreStatsOut, 400: None, 404: None},
        query=[
            Query("scorer", {"type": "string"}, "only this scorer"),
            Query("since", {"type": "number"}, "from (Unix seconds)"),
            Query("until", {"type": "number"}, "until (Unix seconds)"),
            Query("bucket", {"type": "number", "minimum": 60}, "bucket size in seconds"),
        ],
    ),
    Op(
        "GET",
        "/studio/api/workflows/{workflow_id}/runs/{run_id}/inputs",
        workflow_step_inputs,
        "The input each step of a workflow run received",
        "studio",
        responses={200: StepInputs, 400: None, 404: None},
    ),
    Op(
        "POST",
        "/studio/api/agents/{agent_id}/tools/{tool}",
        run_tool,
        "Run one tool alone (the tool playground)",
        "studio",
        body=ToolRunIn,
        responses={200: ToolRunOut, 400: None, 404: None, 415: None, 422: None},
    ),
]
