"""What the trace queries read from a span, shared by every trace store: the facts derived
from its attributes (OpenTelemetry GenAI names, decided once per span: SQL and ClickHouse
keep them as columns), trace summaries, and the metrics aggregation with percentiles.

The attribute names are the ones :mod:`vivace.observability.genai` writes (a test checks
they agree); storage only reads them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .records import SpanRecord, TraceMetricsRow, TraceSummary

__all__ = [
    "RUN_TYPES",
    "MetricsAccumulator",
    "SpanFacts",
    "aggregate",
    "earlier",
    "facts",
    "list_traces_in",
    "percentile",
    "score_stats_of",
    "summarize",
    "trace_status",
]

AGENT = "gen_ai.agent.name"
MODEL = "gen_ai.request.model"
WORKFLOW = "gen_ai.workflow.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHED_TOKENS = "gen_ai.usage.cache_read.input_tokens"
REASONING_TOKENS = "vivace.usage.reasoning_tokens"
USER_ID = "vivace.user_id"
SPAN_TYPE = "vivace.span_type"
RUN_STATUS = "vivace.run.status"
COST = "vivace.cost_usd"
LOCAL_ROOT = "vivace.local_root"  # a run whose parent span is in another process

RUN_TYPES = ("agent_run", "workflow_run")
COUNTED_TYPES = (*RUN_TYPES, "model_request", "tool_call")


def _int(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def _float(v: Any) -> float:
    try:
        return float(v or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _text(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


@dataclass(slots=True)
class SpanFacts:
    """What the queries need of one span (columns in SQL and ClickHouse)."""

    agent: str | None
    model: str | None
    workflow: str | None
    user_id: str | None
    span_type: str | None
    run_status: str | None
    error: bool
    root: bool
    duration_ms: float
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: float

    def columns(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "model": self.model,
            "workflow": self.workflow,
            "user_id": self.user_id,
            "span_type": self.span_type,
            "run_status": self.run_status,
            "error": self.error,
            "is_root": self.root,
            "duration_ms": self.duration_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
        }


def facts(span: SpanRecord) -> SpanFacts:
    """The facts of a stored span."""
    a = span.attributes or {}
    end = span.end_time if span.end_time is not None else span.start_time
    return SpanFacts(
        agent=_text(a.get(AGENT)),
        model=_text(a.get(MODEL)),
        workflow=_text(a.get(WORKFLOW)),
        user_id=_text(a.get(USER_ID)),
        span_type=_text(a.get(SPAN_TYPE)),
        run_status=_text(a.get(RUN_STATUS)),
        error=span.status == "error",
        root=span.parent_id is None or bool(a.get(LOCAL_ROOT)),
        duration_ms=max(0.0, (end - span.start_time) * 1000.0),
        input_tokens=_int(a.get(INPUT_TOKENS)),
        output_tokens=_int(a.get(OUTPUT_TOKENS)),
        cached_tokens=_int(a.get(CACHED_TOKENS)),
        reasoning_tokens=_int(a.get(REASONING_TOKENS)),
        cost_usd=_float(a.get(COST)),
    )


def trace_status(run_status: str | None, error: bool) -> str:
    """A trace's status: its root run's, else from the root span's status."""
    return run_status or ("failed" if error else "completed")


def summarize(root: SpanRecord, spans: Sequence[SpanRecord]) -> TraceSummary:
    """The trace list's row for ``root`` and the trace's ``spans``."""
    f = facts(root)
    inp = out = 0
    cost = 0.0
    for s in spans:
        sf = facts(s)
        if sf.span_type == "model_request":
            inp += sf.input_tokens
            out += sf.output_tokens
            cost += sf.cost_usd
    return TraceSummary(
        trace_id=root.trace_id,
        name=root.name,
        start_time=root.start_time,
        duration_ms=f.duration_ms,
        status=trace_status(f.run_status, f.error),
        error=f.error,
        agent=f.agent,
        workflow=f.workflow,
        model=f.model,
        run_id=root.run_id,
        session_id=root.session_id,
        user_id=f.user_id,
        spans=len(spans),
        input_tokens=inp,
        output_tokens=out,
        cost_usd=cost,
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` (0..100) percentile by linear interpolation; None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class MetricsAccumulator:
    """Adds spans' facts up into :class:`TraceMetricsRow`\\ s per time bucket x agent x model x
    workflow (every backend's ``trace_metrics`` ends here, so they agree)."""

    __slots__ = ("bucket", "rows", "samples")

    def __init__(self, bucket: float) -> None:
        self.bucket = max(1.0, float(bucket))
        self.rows: dict[tuple[float, str, str, str], TraceMetricsRow] = {}
        self.samples: dict[tuple[float, str, str, str], dict[str, list[float]]] = {}

    def _row(
        self, t: float, agent: str | None, model: str | None, workflow: str | None
    ) -> tuple[TraceMetricsRow, dict[str, list[float]]]:
        start = t - (t % self.bucket)
        key = (start, agent or "", model or "", workflow or "")
        r = self.rows.get(key)
        if r is None:
            r = self.rows[key] = TraceMetricsRow(start, agent, model, workflow)
            self.samples[key] = {"run": [], "model": [], "tool": []}
        return r, self.samples[key]

    def add(self, start: float, f: SpanFacts) -> None:
        kind = f.span_type
        if kind in RUN_TYPES:
            r, s = self._row(start, f.agent, f.model, f.workflow)
            r.runs += 1
            r.errors += f.error
            s["run"].append(f.duration_ms)
        elif kind == "model_request":
            r, s = self._row(start, f.agent, f.model, f.workflow)
            r.model_requests += 1
            r.input_tokens += f.input_tokens
            r.output_tokens += f.output_tokens
            r.cached_tokens += f.cached_tokens
            r.reasoning_tokens += f.reasoning_tokens
            r.cost_usd += f.cost_usd
            s["model"].append(f.duration_ms)
        elif kind == "tool_call":
            r, s = self._row(start, f.agent, None, f.workflow)
            r.tool_calls += 1
            s["tool"].append(f.duration_ms)

    def result(self) -> list[TraceMetricsRow]:
        out = []
        for key in sorted(self.rows):
            r = self.rows[key]
            for name, values in self.samples[key].items():
                for q in (50, 95, 99):
                    r.latency_ms[f"{name}_p{q}"] = percentile(values, q)
            out.append(r)
        return out


def aggregate(
    spans: Iterable[SpanRecord],
    *,
    bucket: float,
    since: float | None = None,
    until: float | None = None,
    agent: str | None = None,
    model: str | None = None,
    workflow: str | None = None,
) -> list[TraceMetricsRow]:
    """:class:`TraceMetricsRow`\\ s of ``spans`` (filtered)."""
    acc = MetricsAccumulator(bucket)
    for s in spans:
        t = s.start_time
        if (since is not None and t < since) or (until is not None and t >= until):
            continue
        f = facts(s)
        if f.span_type not in COUNTED_TYPES:
            continue
        if not matches(f, agent=agent, model=model, workflow=workflow):
            continue
        acc.add(t, f)
    return acc.result()


def matches(
    f: SpanFacts,
    *,
    agent: str | None = None,
    model: str | None = None,
    workflow: str | None = None,
) -> bool:
    return (
        (agent is None or f.agent == agent)
        and (model is None or f.model == model)
        and (workflow is None or f.workflow == workflow)
    )


def earlier(a: tuple[float, str], b: tuple[float, str]) -> bool:
    """``a`` comes after ``b`` in newest-first order (a page ``before=b`` holds ``a``)."""
    return a[0] < b[0] or (a[0] == b[0] and a[1] < b[1])


def list_traces_in(
    spans: Iterable[SpanRecord],
    *,
    agent: str | None = None,
    model: str | None = None,
    workflow: str | None = None,
    status: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    run_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 50,
    before: tuple[float, str] | None = None,
) -> list[TraceSummary]:
    """``TraceStore.list_traces`` over spans in hand (the in-memory store)."""
    by_trace: dict[str, list[SpanRecord]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, []).append(s)
    rows = []
    for trace_spans in by_trace.values():
        roots = [s for s in trace_spans if facts(s).root]
        if not roots:
            continue
        root = min(roots, key=lambda s: (s.start_time, s.span_id))
        f = facts(root)
        t = root.start_time
        if (since is not None and t < since) or (until is not None and t >= until):
            continue
        if not matches(f, agent=agent, model=model, workflow=workflow):
            continue
        if user_id is not None and f.user_id != user_id:
            continue
        if status is not None and trace_status(f.run_status, f.error) != status:
            continue
        if session_id is not None and all(s.session_id != session_id for s in trace_spans):
            continue
        if run_id is not None and all(s.run_id != run_id for s in trace_spans):
            continue
        if before is not None and not earlier((t, root.trace_id), before):
            continue
        rows.append(summarize(root, trace_spans))
    rows.sort(key=lambda r: (r.start_time, r.trace_id), reverse=True)
    return rows[:limit]


def score_stats_of(scores: Iterable[Any], *, bucket: float | None = None) -> list[Any]:
    """``ScoreStore.score_stats`` over (already filtered) scores in hand."""
    from .records import ScoreStats

    groups: dict[tuple[float, str], list[float]] = {}
    for s in scores:
        t = s.created_at - (s.created_at % bucket) if bucket else -1.0
        groups.setdefault((t, s.scorer), []).append(float(s.score))
    out = []
    for (t, scorer), values in sorted(groups.items()):
        out.append(
            ScoreStats(
                scorer=scorer,
                count=len(values),
                mean=sum(values) / len(values),
                min=min(values),
                max=max(values),
                time=None if t < 0 else t,
            )
        )
    return out
