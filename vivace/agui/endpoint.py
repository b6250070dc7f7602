"""An AG-UI endpoint for an agent, with the ``ag-ui-protocol`` package's types and encoder.

``POST`` a ``RunAgentInput`` (``threadId``, ``runId``, ``messages``, ``state``...) and read
``text/event-stream``: ``RUN_STARTED``, ``STATE_SNAPSHOT``, per model step ``STEP_STARTED``
/ ``STEP_FINISHED``, ``TEXT_MESSAGE_START``/``_CONTENT``/``_END``,
``TOOL_CALL_START``/``_ARGS``/``_END``/``TOOL_CALL_RESULT``, ``STATE_DELTA`` (JSON Patch)
whenever a tool changed the session state, then ``RUN_FINISHED`` (or ``RUN_ERROR``).
Members and subagents appear as ``SUBAGENT_STARTED``/``_FINISHED``/``_ERROR`` with their
text and tool events tagged by ``subagentRunId``. A run that pauses for an approval
finishes with ``outcome: "interrupt"`` and the pending calls in ``result``.

The thread is the session (with storage); without storage the earlier ``messages`` are the
history. ``state`` merges into the session state.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..agent import Agent

__all__ = ["agui_app", "agui_events", "agui_handler", "json_patch"]


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


def _history(messages: list[Any]) -> tuple[str, list[Any]]:
    """The last user message's text, and the messages before it as Vivace messages."""
    from ..messages import Message, TextPart, ToolCallPart, ToolResultPart

    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    if last < 0:
        return "", []
    content = messages[last].content
    text = content if isinstance(content, str) else json.dumps(content)
    out: list[Message] = []
    for m in messages[:last]:
        if m.role == "user" and isinstance(m.content, str):
            out.append(Message("user", [TextPart(m.content)]))
        elif m.role == "assistant":
            parts: list[Any] = [TextPart(m.content)] if m.content else []
            for c in m.tool_calls or ():
                parts.append(ToolCallPart(c.id, c.function.name, c.function.arguments))
            if parts:
                out.append(Message("assistant", parts))
        elif m.role == "tool":
            out.append(Message("tool", [ToolResultPart(m.tool_call_id, "", m.content)]))
    return text, out


async def agui_events(agent: Agent[Any, Any], body: Any) -> AsyncIterator[Any]:
    """The AG-UI events (``ag_ui.core`` objects) of one run of ``agent`` for ``body`` (a
    ``RunAgentInput`` or its JSON dict)."""
    from ag_ui import core as ag

    from ..agent import events as ev

    data = body if isinstance(body, ag.RunAgentInput) else ag.RunAgentInput.model_validate(body)
    thread_id, run_id = data.thread_id, data.run_id
    text, history = _history(list(data.messages))
    state_in = dict(data.state) if isinstance(data.state, dict) else {}
    yield ag.RunStartedEvent(
        thread_id=thread_id, run_id=run_id, protocol_version=ag.PROTOCOL_VERSION
    )
    stored = agent.storage is not None
    stream = agent.astream(
        text,
        session_id=thread_id if stored else None,
        session_state=state_in,
        message_history=None if stored else history,
    )
    seen: Any = None
    message_id: str | None = None
    sub_messages: dict[str, str] = {}
    try:
        async for e in stream:
            kind = type(e)
            if seen is None:
                live = stream._runner.state.ctx.session_state  # the run's own state object
                seen = copy.deepcopy(live)
                yield ag.StateSnapshotEvent(snapshot=seen)
            if kind is ev.TextDelta:
                if message_id is None:
                    message_id = uuid.uuid4().hex
                    yield ag.TextMessageStartEvent(message_id=message_id, role="assistant")
                yield ag.TextMessageContentEvent(message_id=message_id, delta=e.text)  # type: ignore[attr-defined]
                continue
            if message_id is not None:
                yield ag.TextMessageEndEvent(message_id=message_id)
                message_id = None
            if kind is ev.ModelRequestStarted:
                yield ag.StepStartedEvent(step_name=f"step {e.step}")  # type: ignore[attr-defined]
            elif kind is ev.ModelRequestCompleted:
                yield ag.StepFinishedEvent(step_name=f"step {e.step}")  # type: ignore[attr-defined]
            elif kind is ev.ToolCallStarted:
                for x in _tool_start(ag, e, None):
                    yield x
            elif kind is ev.ToolCallCompleted:
                yield _tool_result(ag, e, None)
                now = stream._runner.state.ctx.session_state
                delta = json_patch(seen, now)
                if delta:
                    seen = copy.deepcopy(now)
                    yield ag.StateDeltaEvent(delta=delta)  # type: ignore[arg-type]
            elif kind is ev.NestedEvent:
                for x in _nested(ag, e, sub_messages):
                    yield x
            elif kind is ev.RunCompleted:
                now = stream._runner.state.ctx.session_state
                delta = json_patch(seen, now)
                if delta:
                    yield ag.StateDeltaEvent(delta=delta)  # type: ignore[arg-type]
                yield ag.RunFinishedEvent(
                    thread_id=thread_id,
                    run_id=run_id,
                    result=e.output,  # type: ignore[attr-defined]
                    outcome=ag.RunFinishedSuccessOutcome(type="success"),
                )
            elif kind is ev.RunPaused:
                from ag_ui._generated.models import Interrupt

                pending = e.pending  # type: ignore[attr-defined]
                yield ag.RunFinishedEvent(
                    thread_id=thread_id,
                    run_id=run_id,
                    result={"run_id": e.run_id, "pending": pending},
                    outcome=ag.RunFinishedInterruptOutcome(
                        type="interrupt",
                        interrupts=[
                            Interrupt(
                                id=p["id"],
                                reason="tool_call_approval",
                                message=f"approve {p['name']}?",
                                tool_call_id=p["id"],
                                metadata={"name": p["name"], "arguments": p.get("arguments")},
                            )
                            for p in pending
                        ],
                    ),
                )
            elif kind is ev.RunFailed:
                err = e.error  # type: ignore[attr-defined]
                yield ag.RunErrorEvent(message=err.get("message") or "failed", code=err.get("code"))
            elif kind is ev.RunCancelled:
                yield ag.RunErrorEvent(message=e.reason, code="run_cancelled")  # type: ignore[attr-defined]
    except Exception as exc:  # a typed error before the run started (storage, ids...)
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        yield ag.RunErrorEvent(message=message, code=getattr(exc, "code", None))


def _tool_start(ag: Any, e: Any, sub: str | None) -> list[Any]:
    args = e.arguments if isinstance(e.arguments, str) else json.dumps(e.arguments)
    return [
        ag.ToolCallStartEvent(tool_call_id=e.call_id, tool_call_name=e.name, subagent_run_id=sub),
        ag.ToolCallArgsEvent(tool_call_id=e.call_id, delta=args, subagent_run_id=sub),
        ag.ToolCallEndEvent(tool_call_id=e.call_id, subagent_run_id=sub),
    ]


def _tool_result(ag: Any, e: Any, sub: str | None) -> Any:
    content = e.result if isinstance(e.result, str) else json.dumps(e.result)
    return ag.ToolCallResultEvent(
        message_id=uuid.uuid4().hex,
        tool_call_id=e.call_id,
        content=content,
        role="tool",
        subagent_run_id=sub,
    )


def _nested(ag: Any, wrapper: Any, messages: dict[str, str]) -> list[Any]:
    """AG-UI events for one event of a member's or subagent's run."""
    from ..agent import events as ev

    e = wrapper.event
    sub = e.run_id
    kind = type(e)
    out: list[Any] = []
    open_id = messages.get(sub)
    if open_id is not None and kind is not ev.TextDelta:
        out.append(ag.TextMessageEndEvent(message_id=open_id, subagent_run_id=sub))
        del messages[sub]
    if kind is ev.RunStarted:
        out.append(
            ag.SubagentStartedEvent(
                subagent_run_id=sub,
                name="/".join(wrapper.path),
                parent_tool_call_id=wrapper.call_id,
                parent_subagent_run_id=e.parent_run_id,
            )
        )
    elif kind is ev.TextDelta:
        if open_id is None:
            open_id = messages[sub] = uuid.uuid4().hex
            out.append(
                ag.TextMessageStartEvent(message_id=open_id, role="assistant", subagent_run_id=sub)
            )
        out.append(
            ag.TextMessageContentEvent(message_id=open_id, delta=e.text, subagent_run_id=sub)
        )
    elif kind is ev.ToolCallStarted:
        out += _tool_start(ag, e, sub)
    elif kind is ev.ToolCallCompleted:
        out.append(_tool_result(ag, e, sub))
    elif kind is ev.RunCompleted:
        out.append(
            ag.SubagentFinishedEvent(
                subagent_run_id=sub,
                result=e.output,
                outcome=ag.SubagentFinishedSuccessOutcome(type="success"),
            )
        )
    elif kind is ev.RunPaused:
        ids = [p["id"] for p in e.pending]
        out.append(
            ag.SubagentFinishedEvent(
                subagent_run_id=sub,
                outcome=ag.SubagentFinishedSuspendedOutcome(type="suspended", interrupt_ids=ids),
            )
        )
    elif kind is ev.RunFailed:
        err = e.error
        out.append(
            ag.SubagentErrorEvent(
                subagent_run_id=sub, message=err.get("message") or "failed", code=err.get("code")
            )
        )
    return out


def agui_handler(agent: Agent[Any, Any]) -> Any:
    """A Starlette endpoint (``async (request) -> response``) running ``agent`` for AG-UI."""

    async def endpoint(request: Any) -> Any:
        from ag_ui.encoder import EventEncoder
        from pydantic import ValidationError
        from starlette.responses import JSONResponse, StreamingResponse

        try:
            body = await request.json()
            from ag_ui.core import RunAgentInput

            data = RunAgentInput.model_validate(body)
        except (ValueError, ValidationError) as exc:
            detail = exc.errors(include_url=False) if isinstance(exc, ValidationError) else None
            return JSONResponse(
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "the body must be an AG-UI RunAgentInput",
                        "details": json.loads(json.dumps(detail, default=str)),
                    }
                },
                status_code=422,
            )
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
