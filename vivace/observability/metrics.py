"""Cost, token and latency metrics from spans: per agent, model, workflow and day.

:class:`MetricsExporter` keeps live counters and histograms in this process and renders them
in Prometheus' text format (``GET /metrics``). The stored view of the same numbers (rows per
day x agent x model: the Studio's Metrics screen, ``vivace stats``) is each trace store's
``trace_metrics`` (:mod:`vivace.storage`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from . import genai as g
from .exporters.base import Exporter
from .span import ERROR, Span

__all__ = ["MetricsExporter"]


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
