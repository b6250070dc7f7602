"""An AG-UI endpoint for an agent, with the ``ag-ui-protocol`` package's types and encoder.

``POST`` a ``RunAgentInput`` (``threadId``, ``runId``, ``messages``, ``state``, ``tools``,
``resume``...) and read ``text/event-stream``: ``RUN_STARTED``, ``STATE_SNAPSHOT``, per
model step ``STEP_STARTED`` / ``STEP_FINISHED``, ``TEXT_MESSAGE_START``/``_CONTENT``/``_END``,
``TOOL_CALL_START``/``_ARGS``/``_END``/``TOOL_CALL_RESULT``, ``STATE_DELTA`` (JSON Patch)
whenever a tool changed the session state, then ``RUN_FINISHED`` (or ``RUN_ERROR``).
Members and subagents appear as ``SUBAGENT_STARTED``/``_FINISHED``/``_ERROR`` with their
text and tool events tagged by ``subagentRunId``.

**Frontend tools** (the input's ``tools``) are tools of this run that the client executes:
when the model calls one, the run pauses after ``TOOL_CALL_END`` and finishes with
``outcome: success`` and ``pendingToolCallIds``; the client runs the tool and sends the next
input with a ``tool`` message (``toolCallId``, ``content``), which resumes the paused run with
that content as the tool's result. **Approvals**: a call waiting for approval ends the run
with ``outcome: interrupt`` (one interrupt per call, id = the call id); the next input's
``resume`` entries answer them (``resolved``: approve - ``payload`` ``{"approve": false,
"reason"}`` rejects, ``{"arguments": {...}}`` edits -; ``cancelled``: reject).

The thread is the session (with storage: paused runs are found there, from any worker);
without storage the earlier ``messages`` are the history and paused runs are remembered in
this process. ``state`` merges into the session state.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ..agent.host import DirectHost, RunHost

if TYPE_CHECKING:
    from ..agent import Agent, RunStream
    from ..agent.result import PausedRun
    from ..tools import BaseTool

__all__ = [
    "AGUIRun",
    "FrontendTools",
    "agui_app",
    "agui_events",
    "agui_handler",
    "json_patch",
    "start_run",
]

_THREADS: OrderedDict[tuple[str, str], str] = OrderedDict()  # (agent, thread) -> paused run
_THREADS_MAX = 1024
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "description": "false rejects the call"},
        "reason": {"type": "string", "description": "why it was rejected (the model sees it)"},
        "arguments": {"type": "object", "description": "edited arguments to run it with"},
    },
}


def json_patch(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``old`` into ``new`` (objects recursively, other values
    replaced whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = []
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": f"{path}/{_escape(key)}"})
        for key, value in new.items():
            sub = f"{path}/{_escape(key)}"
            if key not in old:
                ops.append({"op": "add", "path": sub, "value": value})
            elif old[key] != value:
                ops += json_patch(old[key], value, sub)
        return ops
    if old == new:
        return []
    return [{"op": "replace", "path": path or "", "value": new}]


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: their text
        texts = [getattr(p, "text", None) for p in content]
        if all(isinstance(t, str) for t in texts):
            return "".join(t for t in texts if t)
    return json.dumps(content, default=lambda o: getattr(o, "model_dump", lambda: str(o))())


def _history(messages: list[Any]) -> tuple[str, list[Any]]:
    """The last user message's text, and the messages before it as Vivace messages."""
    from ..messages import Message, TextPart, ToolCallPart, ToolResultPart

    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    if last < 0:
        return "", []
    text = _text(messages[last].content)
    out: list[Message] = []
    for m in messages[:last]:
        if m.role == "user":
            out.append(Message("user", [TextPart(_text(m.content))]))
        elif m.role == "assistant":
            parts: list[Any] = [TextPart(m.content)] if isinstance(m.content, str) else []
            for c in m.tool_calls or ():
                parts.append(ToolCallPart(c.id, c.function.name, c.function.arguments))
            if parts:
                out.append(Message("assistant", parts))
        elif m.role == "tool":
            out.append(Message("tool", [ToolResultPart(m.tool_call_id, "", _text(m.content))]))
    return text, out


class FrontendTools:
    """The tools an AG-UI client defined for a run: calling one pauses the run (the client
    runs it); resumed, the call returns the client's result (``results`` by call id)."""

    def __init__(self, tools: list[Any], results: dict[str, str]) -> None:
        from ..models.base import ToolDefinition
        from ..tools import Toolset
        from ..tools.toolset import SchemaTool

        self.results = results
        self.names: set[str] = set()
        built: list[BaseTool] = []
        for t in tools:
            parameters = t.parameters if isinstance(t.parameters, dict) else {}
            definition = ToolDefinition(
                t.name, t.description or "", parameters or {"type": "object", "properties": {}}
            )
            built.append(SchemaTool(definition, self._answer, requires_approval=True))
            self.names.add(t.name)

        class _Set(Toolset):
            name = "frontend"

            def static_tools(self) -> list[BaseTool]:
                return built

        self.toolset = _Set()

    async def _answer(self, arguments: dict[str, Any], ctx: Any) -> Any:
        call_id = getattr(ctx, "tool_call_id", None)
        if call_id not in self.results:
            from ..tools.tool import ModelRetry

            raise ModelRetry("the client sent no result for this call")
        return self.results[call_id]


class _Observed:
    """A run's stream that copies the session state, inside the run's own task, when the run
    starts and after every tool call (by event ``seq``): the AG-UI state snapshot and deltas
    are then exact wherever the run is driven."""

    __slots__ = ("states", "stream")

    def __init__(self, stream: RunStream[Any]) -> None:
        self.stream = stream
        self.states: dict[int, Any] = {}

    def __aiter__(self) -> _Observed:
        return self

    async def __anext__(self) -> Any:
        e = await self.stream.__anext__()
        if not self.states or e.type in ("tool_call_completed", "run_completed", "run_paused"):
            state = _session_state(self.stream)
            self.states[-1 if not self.states else e.seq] = copy.deepcopy(state or {})
        return e

    @property
    def result(self) -> Any:
        return self.stream.result

    @property
    def run_id(self) -> Any:
        return self.stream.run_id


def _session_state(stream: Any) -> Any:
    runner = getattr(stream, "_runner", None)
    ctx = getattr(getattr(runner, "state", None), "ctx", None)
    return getattr(ctx, "session_state", None)


class AGUIError(Exception):
    """An AG-UI input that cannot run (answers the request: a 4xx, or ``RUN_ERROR``)."""

    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class AGUIRun:
    """One AG-UI request's run: started by :func:`start_run` (its first event is out), then
    :meth:`events` translates the run's events to AG-UI events."""

    def __init__(
        self,
        data: Any,
        stream: _Observed,
        events: AsyncIterator[dict[str, Any]],
        first: dict[str, Any],
        frontend: set[str],
        answered: set[str],
        run_id: str,
    ) -> None:
        self.run_id = run_id  # the Vivace run (a resumed one keeps its id)
        self.data = data
        self.stream = stream
        self._events = events
        self._first = first
        self.frontend = frontend
        self.answered = answered

    def _state(self, seq: int) -> Any:
        """The session state as it was at event ``seq`` (-1: at the start)."""
        return self.stream.states.get(seq, {})

    async def events(self) -> AsyncIterator[Any]:
        """The run's AG-UI events, each with ``metadata`` naming the Vivace run and its
        trace (``vivace_run_id``, ``trace_id``): a client error leads to the trace."""
        meta = {"vivace_run_id": self.run_id, "trace_id": self._first.get("trace_id")}
        async for event in self._translate():
            event.metadata = meta
            yield event

    async def _translate(self) -> AsyncIterator[Any]:
        from ag_ui import core as ag

        data = self.data
        thread_id, run_id = data.thread_id, data.run_id
        yield ag.RunStartedEvent(
            thread_id=thread_id, run_id=run_id, protocol_version=ag.PROTOCOL_VERSION
        )
        seen = self._state(-1)
        yield ag.StateSnapshotEvent(snapshot=seen)
        message_id: str | None = None
        sub_messages: dict[str, str] = {}

        async def all_events() -> AsyncIterator[dict[str, Any]]:
            yield self._first
            async for e in self._events:
                yield e

        try:
            async for e in all_events():
                kind = e.get("type")
                if kind == "text_delta":
                    if message_id is None:
                        message_id = uuid.uuid4().hex
                        yield ag.TextMessageStartEvent(message_id=message_id, role="assistant")
                    yield ag.TextMessageContentEvent(message_id=message_id, delta=e["text"])
                    continue
                if message_id is not None:
                    yield ag.TextMessageEndEvent(message_id=message_id)
                    message_id = None
                if kind == "model_request_started":
                    yield ag.StepStartedEvent(step_name=f"step {e.get('step')}")
                elif kind == "model_request_completed":
                    yield ag.StepFinishedEvent(step_name=f"step {e.get('step')}")
                elif kind == "tool_call_started":
                    for x in _tool_start(ag, e, None):
                        yield x
                elif kind == "tool_call_completed":
                    if e.get("call_id") not in self.answered:  # the client has its own result
                        yield _tool_result(ag, e, None)
                    now = self._state(e["seq"])
                    delta = json_patch(seen, now)
                    if delta:
                        seen = now
                        yield ag.StateDeltaEvent(delta=delta)  # type: ignore[arg-type]
                elif kind == "nested_event":
                    for x in _nested(ag, e, sub_messages):
                        yield x
                elif kind == "run_completed":
                    delta = json_patch(seen, self._state(e["seq"]))
                    if delta:
                        yield ag.StateDeltaEvent(delta=delta)  # type: ignore[arg-type]
                    yield ag.RunFinishedEvent(
                        thread_id=thread_id,
                        run_id=run_id,
                        result=e.get("output"),
                        outcome=ag.RunFinishedSuccessOutcome(type="success"),
                    )
                elif kind == "run_paused":
                    yield self._paused(ag, e)
                elif kind == "run_failed":
                    err = e.get("error") or {}
                    yield ag.RunErrorEvent(
                        message=err.get("message") or "failed", code=err.get("code")
                    )
                elif kind == "run_cancelled":
                    yield ag.RunErrorEvent(
                        message=str(e.get("reason") or "cancelled"), code="run_cancelled"
                    )
        except Exception as exc:  # the run's task ended without a terminal event
            yield ag.RunErrorEvent(message=_message(exc), code=getattr(exc, "code", None))

    def _paused(self, ag: Any, e: dict[str, Any]) -> Any:
        from ag_ui._generated.models import Interrupt

        thread_id, run_id = self.data.thread_id, self.data.run_id
        pending = list(e.get("pending") or ())
        for_client = [p["id"] for p in pending if p.get("name") in self.frontend]
        approvals = [p for p in pending if p.get("name") not in self.frontend]
        if not approvals:  # only frontend calls: a completed run, the client answers them
            return ag.RunFinishedEvent(
                thread_id=thread_id,
                run_id=run_id,
                outcome=ag.RunFinishedSuccessOutcome(
                    type="success", pending_tool_call_ids=for_client
                ),
            )
        return ag.RunFinishedEvent(
            thread_id=thread_id,
            run_id=run_id,
            result={"run_id": e.get("run_id"), "pending": pending},
            outcome=ag.RunFinishedInterruptOutcome(
                type="interrupt",
                interrupts=[
                    Interrupt(
                        id=p["id"],
                        reason="tool_call_approval",
                        message=f"approve {p['name']}?",
                        tool_call_id=p["id"],
                        response_schema=APPROVAL_SCHEMA,
                        metadata={"name": p["name"], "arguments": p.get("arguments")},
                    )
                    for p in approvals
                ],
            ),
        )


def _message(exc: BaseException) -> str:
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"


async def _paused_run(
    agent: Agent[Any, Any], thread_id: str, user_id: str | None
) -> PausedRun | None:
    """The thread's paused run of ``agent`` (the latest), or None."""
    from ..agent.session import find_paused, resolve_storage
    from ..errors import RunNotFound

    if agent.storage is not None:
        sessions = resolve_storage(agent.storage).sessions
        runs = await sessions.list_runs(thread_id, statuses=["paused"])
        for record in reversed(runs):
            if record.agent_id in (None, agent.id):
                try:
                    return await find_paused(agent, record.run_id, user_id)
                except RunNotFound:
                    return None
        return None
    run_id = _THREADS.get((agent.id, thread_id))
    if run_id is None:
        return None
    try:
        return await find_paused(agent, run_id, user_id)
    except RunNotFound:
        return None


def _decisions(
    data: Any, paused: PausedRun, results: dict[str, str]
) -> tuple[dict[str, Any], set[str]]:
    """Decisions for ``paused``'s calls from the input (tool messages, resume entries), and
    the ids the client answered with a tool result. No decision at all: ``({}, set())``."""
    from ..agent.result import Approve, Reject

    resume = {r.interrupt_id: r for r in data.resume or ()}
    decisions: dict[str, Any] = {}
    answered: set[str] = set()
    for call in paused.pending:
        if call.id in results:
            decisions[call.id] = Approve()
            answered.add(call.id)
            continue
        entry = resume.get(call.id)
        if entry is None:
            continue
        payload = entry.payload if isinstance(entry.payload, dict) else {}
        if entry.status == "cancelled" or payload.get("approve") is False:
            decisions[call.id] = Reject(str(payload.get("reason") or "rejected by the user"))
        else:
            arguments = payload.get("arguments")
            decisions[call.id] = Approve(arguments if isinstance(arguments, dict) else None)
    if decisions:
        missing = [c.id for c in paused.pending if c.id not in decisions]
        if missing:
            raise AGUIError(
                f"the run waits for answers to every pending call; missing: {', '.join(missing)}"
            )
    return decisions, answered


def parse_input(body: Any) -> Any:
    """A ``RunAgentInput`` from its JSON dict (pydantic ``ValidationError`` when invalid)."""
    from ag_ui import core as ag

    return body if isinstance(body, ag.RunAgentInput) else ag.RunAgentInput.model_validate(body)


async def start_run(
    agent: Agent[Any, Any],
    body: Any,
    *,
    user_id: str | None = None,
    host: RunHost | None = None,
) -> AGUIRun:
    """Start the run an AG-UI input asks for - a new one, or the thread's paused run resumed
    with the input's tool results and resume entries - and return it once its first event is
    out (so errors that keep it from starting raise here: typed Vivace errors, or
    :class:`AGUIError`)."""
    data = parse_input(body)
    runs: RunHost = host or DirectHost()
    thread_id = data.thread_id
    stored = agent.storage is not None
    results = {
        m.tool_call_id: _text(m.content)
        for m in data.messages
        if getattr(m, "role", None) == "tool"
    }
    decisions: dict[str, Any] = {}
    answered: set[str] = set()
    paused = await _paused_run(agent, thread_id, user_id) if results or data.resume else None
    if paused is not None:
        decisions, answered = _decisions(data, paused, results)
    if not decisions and data.resume:
        raise AGUIError("the resume entries answer no pending call of this thread", "no_interrupt")
    tools = list(data.tools or ())
    if paused is not None and decisions:
        known = {t.name for t in tools}
        from ag_ui import core as ag

        tools += [
            ag.Tool(name=c.name, description="")
            for c in paused.pending
            if c.id in answered and c.name not in known
        ]
    frontend = FrontendTools(tools, {k: results[k] for k in answered}) if tools else None
    run_agent = agent
    if frontend is not None:
        from ..agent.loop import static_tools

        clash = frontend.names & set(static_tools(agent))
        if clash:
            raise AGUIError(
                f"the client's tools {sorted(clash)} clash with the agent's own", "tool_clash"
            )
        run_agent = copy.copy(agent)
        run_agent.tools = [*(agent.tools or ()), frontend.toolset]
    if paused is not None and decisions:
        stream = run_agent.aresume_stream(paused, decisions, user_id=paused.user_id)
        run_id, owner, session_id = paused.run_id, paused.user_id, paused.session_id
    else:
        text, history = _history(list(data.messages))
        if not text:
            raise AGUIError("the input has no user message to answer", "no_user_message")
        state_in = dict(data.state) if isinstance(data.state, dict) else {}
        run_id = uuid.uuid4().hex
        owner, session_id = user_id, thread_id if stored else None
        stream = run_agent.astream(
            text,
            run_id=run_id,
            session_id=session_id,
            user_id=user_id,
            session_state=state_in,
            message_history=None if stored else history,
        )
    observed = _Observed(stream)
    events = runs.run(run_agent, observed, run_id, owner, session_id).__aiter__()  # type: ignore[arg-type]
    first = await events.__anext__()
    if not stored:
        _remember(agent.id, thread_id, run_id)
    names = frontend.names if frontend else set()
    return AGUIRun(data, observed, events, first, names, answered, run_id)


def _remember(agent_id: str, thread_id: str, run_id: str) -> None:
    key = (agent_id, thread_id)
    _THREADS[key] = run_id
    _THREADS.move_to_end(key)
    while len(_THREADS) > _THREADS_MAX:
        _THREADS.popitem(last=False)


async def agui_events(
    agent: Agent[Any, Any], body: Any, *, user_id: str | None = None
) -> AsyncIterator[Any]:
    """The AG-UI events (``ag_ui.core`` objects) of one run of ``agent`` for ``body`` (a
    ``RunAgentInput`` or its JSON dict); a run that cannot start is ``RUN_ERROR``."""
    from ag_ui import core as ag

    try:
        run = await start_run(agent, body, user_id=user_id)
    except Exception as exc:
        data = parse_input(body)
        yield ag.RunStartedEvent(
            thread_id=data.thread_id, run_id=data.run_id, protocol_version=ag.PROTOCOL_VERSION
        )
        yield ag.RunErrorEvent(message=_message(exc), code=getattr(exc, "code", None))
        return
    async for event in run.events():
        yield event


def _tool_start(ag: Any, e: dict[str, Any], sub: str | None) -> list[Any]:
    a = e.get("arguments")
    args = a if isinstance(a, str) else json.dumps(a)
    call_id = e["call_id"]
    return [
        ag.ToolCallStartEvent(tool_call_id=call_id, tool_call_name=e["name"], subagent_run_id=sub),
        ag.ToolCallArgsEvent(tool_call_id=call_id, delta=args, subagent_run_id=sub),
        ag.ToolCallEndEvent(tool_call_id=call_id, subagent_run_id=sub),
    ]


def _tool_result(ag: Any, e: dict[str, Any], sub: str | None) -> Any:
    r = e.get("result")
    return ag.ToolCallResultEvent(
        message_id=uuid.uuid4().hex,
        tool_call_id=e["call_id"],
        content=r if isinstance(r, str) else json.dumps(r),
        role="tool",
        subagent_run_id=sub,
    )


def _nested(ag: Any, wrapper: dict[str, Any], messages: dict[str, str]) -> list[Any]:
    """AG-UI events for one event of a member's or subagent's run."""
    e = wrapper.get("event") or {}
    sub = str(e.get("run_id"))
    kind = e.get("type")
    out: list[Any] = []
    open_id = messages.get(sub)
    if open_id is not None and kind != "text_delta":
        out.append(ag.TextMessageEndEvent(message_id=open_id, subagent_run_id=sub))
        del messages[sub]
    if kind == "run_started":
        out.append(
            ag.SubagentStartedEvent(
                subagent_run_id=sub,
                name="/".join(wrapper.get("path") or ()),
                parent_tool_call_id=wrapper.get("call_id"),
                parent_subagent_run_id=e.get("parent_run_id"),
            )
        )
    elif kind == "text_delta":
        if open_id is None:
            open_id = messages[sub] = uuid.uuid4().hex
            out.append(
                ag.TextMessageStartEvent(message_id=open_id, role="assistant", subagent_run_id=sub)
            )
        out.append(
            ag.TextMessageContentEvent(message_id=open_id, delta=e["text"], subagent_run_id=sub)
        )
    elif kind == "tool_call_started":
        out += _tool_start(ag, e, sub)
    elif kind == "tool_call_completed":
        out.append(_tool_result(ag, e, sub))
    elif kind == "run_completed":
        out.append(
            ag.SubagentFinishedEvent(
                subagent_run_id=sub,
                result=e.get("output"),
                outcome=ag.SubagentFinishedSuccessOutcome(type="success"),
            )
        )
    elif kind == "run_paused":
        ids = [p["id"] for p in e.get("pending") or ()]
        out.append(
            ag.SubagentFinishedEvent(
                subagent_run_id=sub,
                outcome=ag.SubagentFinishedSuspendedOutcome(type="suspended", interrupt_ids=ids),
            )
        )
    elif kind == "run_failed":
        err = e.get("error") or {}
        out.append(
            ag.SubagentErrorEvent(
                subagent_run_id=sub, message=err.get("message") or "failed", code=err.get("code")
            )
        )
    return out


def invalid_input(exc: Exception) -> dict[str, Any]:
    """The error body for a request that is not a ``RunAgentInput``."""
    from pydantic import ValidationError

    detail = exc.errors(include_url=False) if isinstance(exc, ValidationError) else None
    return {
        "error": {
            "code": "invalid_request",
            "message": "the body must be an AG-UI RunAgentInput",
            "details": json.loads(json.dumps(detail, default=str)),
        }
    }


def agui_handler(agent: Agent[Any, Any]) -> Callable[[Any], Any]:
    """A Starlette endpoint (``async (request) -> response``) running ``agent`` for AG-UI."""

    async def endpoint(request: Any) -> Any:
        from ag_ui.encoder import EventEncoder
        from pydantic import ValidationError
        from starlette.responses import JSONResponse, StreamingResponse

        try:
            data = parse_input(await request.json())
        except (ValueError, ValidationError) as exc:
            return JSONResponse(invalid_input(exc), status_code=422)
        encoder = EventEncoder(accept=request.headers.get("accept"))

        async def body_stream() -> AsyncIterator[str]:
            async for event in agui_events(agent, data):
                yield encoder.encode(event)

        return StreamingResponse(body_stream(), media_type=encoder.get_content_type())

    return endpoint


def agui_app(agent: Agent[Any, Any], path: str = "/") -> Any:
    """A Starlette app with the AG-UI endpoint of ``agent`` at ``path`` (POST)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route(path, agui_handler(agent), methods=["POST"])])
