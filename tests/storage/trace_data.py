"""Spans and scores every trace store is tested with (and compared on): runs with model
requests and tool calls, a subagent, a failed run, a workflow, a run whose parent span is in
another process, a trace with two roots, an old trace, and two traces starting together."""

from __future__ import annotations

import time
from typing import Any

from vivace.storage import ScoreRecord, SpanRecord

T0 = (time.time() // 86400) * 86400 - 86400  # yesterday, midnight UTC


def _id(n: int, width: int = 32) -> str:
    return f"{n:0{width}x}"


def _span(
    trace: int,
    span: int,
    name: str,
    start: float,
    ms: float,
    *,
    parent: int | str | None = None,
    kind: str,
    run: str | None = None,
    session: str | None = None,
    status: str = "ok",
    **attrs: Any,
) -> SpanRecord:
    a: dict[str, Any] = {"vivace.span_type": kind}
    names = {
        "agent": "gen_ai.agent.name",
        "model": "gen_ai.request.model",
        "workflow": "gen_ai.workflow.name",
        "user": "vivace.user_id",
        "run_status": "vivace.run.status",
        "inp": "gen_ai.usage.input_tokens",
        "out": "gen_ai.usage.output_tokens",
        "cached": "gen_ai.usage.cache_read.input_tokens",
        "reasoning": "vivace.usage.reasoning_tokens",
        "cost": "vivace.cost_usd",
        "local_root": "vivace.local_root",
    }
    for k, v in attrs.items():
        a[names[k]] = v
    if run is not None:
        a["vivace.run_id"] = run
    if session is not None:
        a["gen_ai.conversation.id"] = session
    return SpanRecord(
        span_id=_id(trace * 100 + span, 16),
        trace_id=_id(trace),
        name=name,
        parent_id=(
            parent
            if isinstance(parent, str)
            else None
            if parent is None
            else _id(trace * 100 + parent, 16)
        ),
        kind="internal",
        start_time=start,
        end_time=start + ms / 1000.0,
        status=status,
        run_id=run,
        session_id=session,
        attributes=a,
    )


def _run(trace: int, start: float, agent: str, model: str, user: str, session: str, **kw: Any):
    """A run with two model requests and a tool call between them."""
    run = f"run-{trace}"
    common = {"agent": agent, "run": run, "session": session}
    return [
        _span(
            trace,
            1,
            f"invoke_agent {agent}",
            start,
            100,
            kind="agent_run",
            model=model,
            user=user,
            inp=30,
            out=12,
            **common,
            **kw,
        ),
        _span(
            trace,
            2,
            f"chat {model}",
            start + 0.001,
            20,
            parent=1,
            kind="model_request",
            model=model,
            inp=10,
            out=5,
            cached=2,
            cost=0.001,
            **common,
        ),
        _span(
            trace,
            3,
            "execute_tool get_weather",
            start + 0.03,
            10,
            parent=1,
            kind="tool_call",
            **common,
        ),
        _span(
            trace,
            4,
            f"chat {model}",
            start + 0.05,
            40,
            parent=1,
            kind="model_request",
            model=model,
            inp=20,
            out=7,
            reasoning=3,
            cost=0.002,
            **common,
        ),
    ]


def spans() -> list[SpanRecord]:
    out = []
    # 1: weather/gpt-4o, ann, s1; its tool call ran a subagent (helper/mini, run-1b)
    out += _run(1, T0 + 10, "weather", "gpt-4o", "ann", "s1", run_status="completed")
    out += [
        _span(
            1,
            5,
            "invoke_agent helper",
            T0 + 10.031,
            5,
            parent=3,
            kind="agent_run",
            agent="helper",
            model="mini",
            user="ann",
            run="run-1b",
            session="s1b",
            run_status="completed",
        ),
        _span(
            1,
            6,
            "chat mini",
            T0 + 10.032,
            3,
            parent=5,
            kind="model_request",
            agent="helper",
            model="mini",
            inp=3,
            out=1,
            cost=0.0001,
            run="run-1b",
            session="s1b",
        ),
    ]
    # 2: weather/claude, bob, failed
    out += _run(2, T0 + 20, "weather", "claude", "bob", "s2", run_status="failed")
    out[-4].status = "error"
    # 3: a workflow run with an agent run inside
    out += [
        _span(
            3,
            1,
            "invoke_workflow pipeline",
            T0 + 30,
            300,
            kind="workflow_run",
            workflow="pipeline",
            user="ann",
            run="wf-3",
        ),
    ]
    inner = _run(3, T0 + 30.01, "writer", "gpt-4o", "ann", "s3", run_status="completed")
    for s in inner:
        s.span_id = _id(3 * 100 + 10 + int(s.span_id, 16) % 100, 16)
        if s.parent_id is not None:
            s.parent_id = _id(3 * 100 + 10 + int(s.parent_id, 16) % 100, 16)
        else:
            s.parent_id = _id(3 * 100 + 1, 16)
        s.attributes["gen_ai.workflow.name"] = "pipeline"
    out += inner
    # 4: the caller's span is in another process (traceparent): its run is the local root
    out += _run(4, T0 + 40, "weather", "gpt-4o", "carl", "s4", run_status="paused")
    out[-4].parent_id = "feedfacefeedface"
    out[-4].attributes["vivace.local_root"] = True
    # 5: two runs in one trace, no parent: the earlier one is the trace's row
    out += _run(5, T0 + 50, "echo", "echo", "ann", "s5", run_status="completed")
    second = _run(5, T0 + 55, "second", "echo", "ann", "s5b", run_status="completed")
    for s in second:
        s.span_id = _id(5 * 100 + 50 + int(s.span_id, 16) % 100, 16)
        if s.parent_id is not None:
            s.parent_id = _id(5 * 100 + 50 + int(s.parent_id, 16) % 100, 16)
    out += second
    # 6: two days earlier
    out += _run(6, T0 - 2 * 86400, "weather", "gpt-4o", "ann", "s6", run_status="completed")
    # 7 and 8: started at the same instant (pages must not lose or repeat one)
    out += _run(7, T0 + 60, "echo", "echo", "dan", "s7", run_status="completed")
    out += _run(8, T0 + 60, "echo", "echo", "dan", "s8", run_status="cancelled")
    return out


def scores() -> list[ScoreRecord]:
    out = []
    for i in range(7):
        out.append(
            ScoreRecord(
                score_id=f"sc-{i}",
                scorer="relevance" if i % 2 else "safety",
                score=i / 10,
                run_id=f"run-{i % 3 + 1}",
                trace_id=_id(i % 3 + 1),
                reason=f"reason {i}",
                metadata={"i": i},
                created_at=T0 + 100 + (i // 2),  # pairs share a timestamp
            )
        )
    return out
