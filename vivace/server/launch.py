"""Start the run a request asks for - or find the run it already started - before answering.

Every route that starts or resumes a run (REST JSON, REST SSE, multipart, OpenAI chat,
OpenAI responses, resume) goes through :func:`launch` or :func:`resume`:

1. The request is matched to an earlier run (:mod:`vivace.server.idempotency`): a repeated
   request gets that run back and never starts another.
2. Otherwise the run is started and its **first event is pulled before a response is
   chosen**. That first step performs the run's storage ``begin`` (session upsert, ownership
   check), so typed errors - another user's session (404), a bad id (400), a conflict (409) -
   become proper HTTP answers (:func:`vivace.server.errors.from_vivace_error`) with no run
   stored, no response half-sent and nothing logged as an internal error.

The route then answers from the :class:`StartedRun`: its result (:meth:`StartedRun.outcome`)
or its events (:meth:`StartedRun.events`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from .idempotency import claim
from .ids import encode_header, run_id_header
from .sse import RunInfo
from .state import event_log, live_runs, principal, recent_runs, request_trace_id

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..agent import Agent, RunResult, RunStream
    from ..storage import RunRecord

__all__ = ["StartedRun", "launch", "record_out", "resume", "sessions_of"]

POLL_SECONDS = 0.2


class StartedRun:
    """A run a request started (or an earlier identical request started: ``replayed``)."""

    __slots__ = ("_request", "first", "record", "replayed", "run_id", "session_id", "task")

    def __init__(
        self,
        request: Request,
        run_id: str,
        *,
        task: asyncio.Task[RunResult | None] | None = None,
        record: RunRecord | None = None,
        first: dict[str, Any] | None = None,
        session_id: str | None = None,
        replayed: bool = False,
    ) -> None:
        self._request = request
        self.run_id = run_id
        self.task = task
        self.record = record
        self.first = first
        self.session_id = session_id
        self.replayed = replayed

    @property
    def trace_id(self) -> str | None:
        """The run's trace id (its first event's), else the request's."""
        first = self.first
        if first is not None and first.get("trace_id"):
            return str(first["trace_id"])
        record_trace = getattr(self.record, "trace_id", None)
        return record_trace or request_trace_id(self._request)

    def headers(self) -> dict[str, str]:
        """``x-vivace-run-id``, ``x-vivace-session-id`` (percent-encoded UTF-8) and, for a
        repeated request, ``idempotent-replayed: true``."""
        out = run_id_header(self.run_id)
        if self.session_id is not None:
            out["x-vivace-session-id"] = encode_header(self.session_id)
        if self.replayed:
            out["idempotent-replayed"] = "true"
        return out

    async def outcome(self) -> dict[str, Any]:
        """The run's result as a ``RunOut`` dict, once it has ended."""
        if self.task is not None:
            result = await asyncio.shield(self.task)
            if result is not None:
                return result.to_dict()
            return ended_early(self.run_id, self.first)
        record = self.record
        sessions = sessions_of_request(self._request, record)
        while record is not None and record.status == "running" and sessions is not None:
            await asyncio.sleep(POLL_SECONDS)  # running on another worker
            record = await sessions.get_run(self.run_id)
        if record is None:
            return ended_early(self.run_id, self.first)
        return record_out(record)

    async def events(self, after: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """The run's events with ``seq > after``; by default those of this request: from the
        run's start (a resumed run: from where it resumed, after the pause the client has),
        or, for a repeated request, the whole run."""
        log = event_log(self._request)
        run_id = self.run_id
        if self.replayed:
            if log.info(run_id) is None:
                prefetch = getattr(log, "prefetch", None)
                if prefetch is not None:
                    await prefetch(run_id)
            if log.info(run_id) is None:  # the log no longer has it: its ending, from the result
                for event in terminal_events(await self.outcome()):
                    yield event
                return
            start = max(-1 if after is None else after, log.oldest_seq(run_id) - 1)
        else:
            assert self.first is not None
            start = int(self.first.get("seq", 0)) - 1 if after is None else after
        async for event in log.subscribe(run_id, start):
            yield event


def sessions_of(agent: Agent) -> Any:
    """The session store of ``agent``'s storage, or ``None``."""
    spec = agent.storage
    if spec is None:
        return None
    from ..agent.session import resolve_storage

    return getattr(resolve_storage(spec), "sessions", None)


def sessions_of_request(request: Request, record: Any) -> Any:
    if record is None:
        return None
    agent = request.app.state.agents.get(record.agent_id or "")
    if agent is not None:
        return sessions_of(agent)
    storage = request.app.state.storage
    return getattr(storage, "sessions", None)


async def launch(
    request: Request,
    agent: Agent,
    *,
    user_id: str | None,
    session_id: str | None,
    body: bytes,
    input_message: Callable[[], dict[str, Any]] | None,
    make_stream: Callable[[str], RunStream],
) -> StartedRun:
    """Start a run of ``agent`` (``make_stream(run_id)``) - or return the run an identical
    earlier request started - once its first event is out (see the module docs)."""
    c = await claim(
        request,
        recent_runs(request),
        agent_id=agent.id,
        user_id=user_id,
        principal=principal(request),
        body=body,
        sessions=sessions_of(agent),
        input_message=input_message,
    )
    if c.existing is not None:
        known = c.existing.session_id
        if known is None and c.record is not None:
            known = c.record.session_id
        return StartedRun(
            request, c.run_id, task=c.task, record=c.record, session_id=known, replayed=True
        )
    try:
        stream = make_stream(c.run_id)
        info = RunInfo(c.run_id, agent.id, user_id, session_id)
        task, first = await live_runs(request).begin(info, stream)
    except BaseException:
        c.failed()
        raise
    sid = first.get("session_id") or session_id
    c.started(task, sid)
    return StartedRun(request, c.run_id, task=task, first=first, session_id=sid)


async def resume(
    request: Request,
    agent: Agent,
    run_id: str,
    owner: str | None,
    approvals: dict[str, Any],
    *,
    model: str | None = None,
) -> StartedRun:
    """Resume the paused run ``run_id`` (on ``model``, if given) once its first event is out.
    A missing run or approvals that do not match it are typed errors (404, 400) before
    anything starts."""
    from ..agent.loop import check_approvals
    from ..agent.session import find_paused

    paused = await find_paused(agent, run_id, owner)
    check_approvals(agent, paused, approvals)
    stream = agent.aresume_stream(paused, approvals, model=model)
    task, first = await live_runs(request).begin(RunInfo(run_id, agent.id, owner), stream)
    return StartedRun(request, run_id, task=task, first=first)


def ended_early(run_id: str, first: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result of a run that ended without one (cancelled early, or an internal failure);
    ``first``: its first event (for its trace)."""
    first = first or {}
    return {
        "run_id": run_id,
        "session_id": None,
        "user_id": None,
        "status": "failed",
        "output": None,
        "messages": [],
        "usage": {},
        "error": {"type": "InternalError", "code": "internal_error", "message": "run ended early"},
        "paused": None,
        "trace_id": first.get("trace_id"),
        "span_id": first.get("span_id"),
        "parent_run_id": first.get("parent_run_id"),
    }


def record_out(record: RunRecord) -> dict[str, Any]:
    """A stored run as a ``RunOut`` dict (the shape of ``RunResult.to_dict()``)."""
    status = record.status
    error = record.error
    if status == "incomplete" and error is None:
        error = {"type": "InternalError", "code": "incomplete", "message": "the run's worker died"}
    return {
        "run_id": record.run_id,
        "session_id": record.session_id,
        "user_id": record.user_id,
        "status": status,
        "output": record.output,
        "messages": [m.to_dict() for m in record.messages],
        "usage": dict(record.usage) if record.usage is not None else {},
        "error": error,
        "paused": record.paused,
        "trace_id": getattr(record, "trace_id", None),
        "span_id": getattr(record, "span_id", None),
        "parent_run_id": getattr(record, "parent_run_id", None),
    }


def terminal_events(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The ending events of a run rebuilt from its result (when its log is gone), with the
    run's trace context like every event."""
    trace = {k: out.get(k) for k in ("trace_id", "span_id", "parent_run_id")}
    return [{**e, **trace} for e in _terminal_events(out)]


def _terminal_events(out: dict[str, Any]) -> list[dict[str, Any]]:
    run_id, status = out["run_id"], out["status"]
    if status == "completed":
        output = out.get("output")
        events: list[dict[str, Any]] = []
        if isinstance(output, str) and output:
            events.append({"type": "text_delta", "run_id": run_id, "text": output})
        events.append(
            {"type": "run_completed", "run_id": run_id, "output": output, "usage": out["usage"]}
        )
        return events
    if status == "paused":
        paused = out.get("paused") or {}
        return [
            {
                "type": "run_paused",
                "run_id": run_id,
                "pending": paused.get("pending", []),
                "paused": paused,
            }
        ]
    if status == "cancelled":
        return [{"type": "run_cancelled", "run_id": run_id, "reason": "cancelled"}]
    return [{"type": "run_failed", "run_id": run_id, "status": status, "error": out.get("error")}]
