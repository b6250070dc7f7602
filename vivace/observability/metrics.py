"""Cost, token and latency metrics from spans: per agent, model, workflow and day.

Two views of the same spans:

- :func:`aggregate` turns stored spans (any trace store) into rows per day x agent x model:
  runs, errors, tokens (input/output/cached/reasoning), cost in USD, and p50/p95/p99 latency
  of runs, model requests and tool calls (the Studio's Metrics screen, ``vivace stats``).
- :class:`MetricsExporter` keeps live counters and histograms in this process and renders
  them in Prometheus' text format (``GET /metrics``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from . import genai as g
from .exporters.base import Exporter
from .span import ERROR, Span

__all__ = ["MetricsExporter", "aggregate", "percentile", "span_view"]

DAY = 86400.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` (0..100) percentile by linear interpolation; None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def span_view(span: Any) -> dict[str, Any]:
    """A span (exported :class:`Span` or stored ``SpanRecord``) as one flat dict."""
    if isinstance(span, Span):
        return {
            "name": span.name,
            "start": span.start_ns / 1e9,
            "duration_ms": span.duration_ms,
            "error": span.status == ERROR,
            "attributes": span.attributes,
            "trace_id": span.trace_id,
        }
    end = span.end_time or span.start_time
    return {
        "name": span.name,
        "start": span.start_time,
        "duration_ms": (end - span.start_time) * 1000.0,
        "error": span.status == "error",
        "attributes": span.attributes or {},
        "trace_id": span.trace_id,
    }


def _bucket(t: float, size: float) -> float:
    return t - (t % size)


class _Row:
    __slots__ = (
        "cached_tokens",
        "cost_usd",
        "errors",
        "input_tokens",
        "model_ms",
        "output_tokens",
        "reasoning_tokens",
        "run_ms",
        "runs",
        "tool_calls",
        "tool_ms",
    )

    def __init__(self) -> None:
        self.runs = self.errors = self.tool_calls = 0
        self.input_tokens = self.output_tokens = self.cached_tokens = self.reasoning_tokens = 0
        self.cost_usd = 0.0
        self.run_ms: list[float] = []
        self.model_ms: list[float] = []
        self.tool_ms: list[float] = []


def aggregate(
    spans: Iterable[Any],
    *,
    bucket: float = DAY,
    since: float | None = None,
    until: float | None = None,
    agent: str | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{time, agent, model, workflow, runs, errors, input_tokens, ..., cost_usd,
    run_p50_ms, ..., tool_p99_ms}`` sorted by time, agent, model. Tokens and cost are
    counted on model-request spans (so nested runs are not counted twice); runs and their
    latency on run spans, keyed by the run's model."""
    rows: dict[tuple[float, str, str, str], _Row] = {}

    def row(t: float, a: dict[str, Any]) -> _Row:
        key = (
            _bucket(t, bucket),
            a.get(g.AGENT_NAME) or "",
            a.get(g.REQUEST_MODEL) or "",
            a.get(g.WORKFLOW_NAME) or "",
        )
        r = rows.get(key)
        if r is None:
            r = rows[key] = _Row()
        return r

    for span in spans:
        v = span_view(span)
        t = v["start"]
        if (since is not None and t < since) or (until is not None and t >= until):
            continue
        a = v["attributes"]
        if agent is not None and a.get(g.AGENT_NAME) != agent:
            continue
        kind = a.get(g.SPAN_TYPE)
        if kind == "agent_run":
            r = row(t, a)
            r.runs += 1
            if v["error"]:
                r.errors += 1
            r.run_ms.append(v["duration_ms"])
        elif kind == "model_request":
            r = row(t, a)
            r.input_tokens += int(a.get(g.INPUT_TOKENS) or 0)
            r.output_tokens += int(a.get(g.OUTPUT_TOKENS) or 0)
            r.cached_tokens += int(a.get(g.CACHED_TOKENS) or 0)
            r.reasoning_tokens += int(a.get(g.REASONING_TOKENS) or 0)
            r.cost_usd += float(a.get(g.COST) or 0.0)
            r.model_ms.append(v["duration_ms"])
        elif kind == "tool_call":
            a2 = dict(a)
            a2.pop(g.REQUEST_MODEL, None)
            r = row(t, a2)
            r.tool_calls += 1
            r.tool_ms.append(v["duration_ms"])
        elif kind == "workflow_run":
            r = row(t, a)
            r.runs += 1
            if v["error"]:
                r.errors += 1
            r.run_ms.append(v["duration_ms"])
    out = []
    for (t, agent_name, model, workflow), r in sorted(rows.items()):
        d: dict[str, Any] = {
            "time": t,
            "agent": agent_name or None,
            "model": model or None,
            "workflow": workflow or None,
            "runs": r.runs,
            "errors": r.errors,
            "tool_calls": r.tool_calls,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cached_tokens": r.cached_tokens,
            "reasoning_tokens": r.reasoning_tokens,
            "cost_usd": round(r.cost_usd, 10),
        }
        for name, values in (("run", r.run_ms), ("model", r.model_ms), ("tool", r.tool_ms)):
            for q in (50, 95, 99):
                p = percentile(values, q)
                d[f"{name}_p{q}_ms"] = None if p is None else round(p, 3)
        out.append(d)
    return out


# -- Prometheus -------------------------------------------------------------------------------

_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs) + "}" if pairs else ""


class _Histogram:
    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * len(_BUCKETS_S)
        self.sum = 0.0
        self.total = 0

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        self.total += 1
        for i, b in enumerate(_BUCKETS_S):
            if seconds <= b:
                self.counts[i] += 1
                break


class MetricsExporter(Exporter):
    """Live metrics of this process from the spans it traces, in Prometheus' text format.

    Counters: ``vivace_runs_total{agent,status}``, ``vivace_tokens_total{agent,model,type}``,
    ``vivace_cost_usd_total{agent,model}``, ``vivace_tool_calls_total{agent,tool,status}``;
    histograms (seconds): ``vivace_run_duration_seconds{agent}``,
    ``gen_ai_client_operation_duration_seconds{agent,model}`` and
    ``vivace_tool_duration_seconds{agent,tool}``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.histograms: dict[tuple[str, tuple[tuple[str, str], ...]], _Histogram] = {}
        self.started = time.time()
        self.sources: list[Any] = []  # objects with .stats() (exporter health)

    def _inc(self, name: str, labels: tuple[tuple[str, str], ...], by: float = 1.0) -> None:
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0.0) + by

    def _observe(self, name: str, labels: tuple[tuple[str, str], ...], seconds: float) -> None:
        key = (name, labels)
        h = self.histograms.get(key)
        if h is None:
            h = self.histograms[key] = _Histogram()
        h.observe(seconds)

    def export(self, spans: Sequence[Span]) -> None:
        with self._lock:
            for s in spans:
                a = s.attributes
                kind = a.get(g.SPAN_TYPE)
                agent = str(a.get(g.AGENT_NAME) or "")
                secs = (s.end_ns - s.start_ns) / 1e9
                if kind == "agent_run":
                    status = str(
                        a.get(g.RUN_STATUS) or ("failed" if s.status == ERROR else "completed")
                    )
                    self._inc("vivace_runs_total", (("agent", agent), ("status", status)))
                    self._observe("vivace_run_duration_seconds", (("agent", agent),), secs)
                elif kind == "model_request":
                    model = str(a.get(g.REQUEST_MODEL) or "")
                    base = (("agent", agent), ("model", model))
                    for typ, key in (
                        ("input", g.INPUT_TOKENS),
                        ("output", g.OUTPUT_TOKENS),
                        ("cached", g.CACHED_TOKENS),
                        ("reasoning", g.REASONING_TOKENS),
                    ):
                        n = a.get(key)
                        if n:
                            self._inc("vivace_tokens_total", (*base, ("type", typ)), float(n))
                    cost = a.get(g.COST)
                    if cost:
                        self._inc("vivace_cost_usd_total", base, float(cost))
                    if s.status == ERROR:
                        self._inc("vivace_model_errors_total", base)
                    self._observe("gen_ai_client_operation_duration_seconds", base, secs)
                elif kind == "tool_call":
                    tool = str(a.get(g.TOOL_NAME) or "")
                    status = "error" if s.status == ERROR else "ok"
                    self._inc(
                        "vivace_tool_calls_total",
                        (("agent", agent), ("tool", tool), ("status", status)),
                    )
                    self._observe(
                        "vivace_tool_duration_seconds", (("agent", agent), ("tool", tool)), secs
                    )

    def prometheus_text(self) -> str:
        """The metrics in Prometheus' text exposition format (version 0.0.4)."""
        lines: list[str] = []
        with self._lock:
            counters = sorted(self.counters.items())
            hists = sorted(self.histograms.items())
            seen: set[str] = set()
            for (name, labels), value in counters:
                if name not in seen:
                    seen.add(name)
                    lines.append(f"# TYPE {name} counter")
                v = repr(value) if not value.is_integer() else str(int(value))
                lines.append(f"{name}{_labels(labels)} {v}")
            for (name, labels), h in hists:
                if name not in seen:
                    seen.add(name)
                    lines.append(f"# TYPE {name} histogram")
                acc = 0
                for b, c in zip(_BUCKETS_S, h.counts, strict=True):
                    acc += c
                    lines.append(f"{name}_bucket{_labels((*labels, ('le', repr(b))))} {acc}")
                lines.append(f"{name}_bucket{_labels((*labels, ('le', '+Inf')))} {h.total}")
                lines.append(f"{name}_sum{_labels(labels)} {h.sum!r}")
                lines.append(f"{name}_count{_labels(labels)} {h.total}")
        stats = [st for src in self.sources for st in src.stats()]
        if stats:
            for metric in ("dropped", "failed", "exported"):
                name = f"vivace_trace_spans_{metric}_total"
                lines.append(f"# TYPE {name} counter")
                for st in stats:
                    lines.append(f'{name}{{exporter="{_label(st["exporter"])}"}} {st[metric]}')
        return "\n".join(lines) + "\n"
