"""A ClickHouse trace store for high volume: spans written in batches (one ``INSERT`` per
exporter batch), and the Studio's queries (by trace, by run, by agent/model and time range,
aggregates with p50/p95/p99) pushed down to ClickHouse.

Talks to ClickHouse's HTTP interface with httpx (no driver), so it works with any server
version from 18.16 (Debian's ``clickhouse-server`` package) on.

    from vivace.observability import StorageExporter, configure
    from vivace.observability.clickhouse import ClickHouseTraceStore
    store = ClickHouseTraceStore("http://localhost:8123", database="vivace")
    configure(StorageExporter(store))
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import Sequence
from typing import Any

from . import genai as g

__all__ = ["ClickHouseTraceStore"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_COLUMNS = (
    "trace_id String, span_id String, parent_id String, name String, kind String, "
    "start_time Float64, end_time Float64, duration_ms Float64, status String, "
    "run_id String, session_id String, user_id String, agent String, model String, "
    "workflow String, span_type String, run_status String, input_tokens UInt64, "
    "output_tokens UInt64, cached_tokens UInt64, reasoning_tokens UInt64, cost_usd Float64, "
    "attributes String, version UInt64, day Date"
)


def _q(s: str) -> str:
    """A ClickHouse string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ClickHouseTraceStore:
    """The traces domain on ClickHouse (``write_spans``, ``get_trace``, ``list_spans``,
    ``prune``) plus the pushed-down queries ``list_traces`` and ``metrics``.

    Args:
        url: ClickHouse's HTTP endpoint (``http://host:8123``).
        database: Database (created by :meth:`setup`); table ``vivace_spans``.
        user, password: Credentials (sent as headers, never logged).
    """

    def __init__(
        self,
        url: str = "http://localhost:8123",
        *,
        database: str = "vivace",
        user: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not _IDENT.match(database):
            from ..errors import UserError

            raise UserError(f"invalid ClickHouse database name {database!r}")
        self.url = url.rstrip("/")
        self.database = database
        self.table = f"{database}.vivace_spans"
        self.timeout = timeout
        self._headers: dict[str, str] = {}
        if user:
            self._headers["X-ClickHouse-User"] = user
        if password:
            self._headers["X-ClickHouse-Key"] = password
        self._clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._ready = False

    @property
    def traces(self) -> ClickHouseTraceStore:
        return self

    def _client(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        c = self._clients.get(loop)
        if c is None:
            c = self._clients[loop] = httpx.AsyncClient(timeout=self.timeout, headers=self._headers)
        return c

    async def _exec(self, sql: str, body: bytes | None = None) -> str:
        client = self._client()
        if body is None:
            r = await client.post(self.url + "/", content=sql.encode())
        else:
            r = await client.post(self.url + "/", params={"query": sql}, content=body)
        if r.status_code != 200:
            from ..storage.errors import StorageError

            raise StorageError(f"ClickHouse answered HTTP {r.status_code}: {r.text[:500]}")
        return r.text

    async def _rows(self, sql: str) -> list[dict[str, Any]]:
        text = await self._exec(sql + " FORMAT JSONEachRow")
        return [json.loads(line) for line in text.splitlines() if line]

    async def setup(self) -> None:
        """Create the database and table (idempotent)."""
        if self._ready:
            return
        await self._exec(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        await self._exec(
            f"CREATE TABLE IF NOT EXISTS {self.table} ({_COLUMNS}) "
            "ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(day) "
            "ORDER BY (trace_id, span_id)"
        )
        self._ready = True

    async def close(self) -> None:
        for c in list(self._clients.values()):
            await c.aclose()
        self._clients = weakref.WeakKeyDictionary()

    # -- the TraceStore interface --------------------------------------------------------------

    async def write_spans(self, spans: Sequence[Any]) -> None:
        """Insert spans (``SpanRecord``\\ s) in one ``INSERT``; a span written again replaces
        the earlier row (ReplacingMergeTree, newest ``version`` wins)."""
        if not spans:
            return
        await self.setup()
        import time

        version = time.time_ns()
        lines = []
        for s in spans:
            a = s.attributes or {}
            end = s.end_time or s.start_time
            lines.append(
                json.dumps(
                    {
                        "trace_id": s.trace_id,
                        "span_id": s.span_id,
                        "parent_id": s.parent_id or "",
                        "name": s.name,
                        "kind": s.kind or "",
                        "start_time": s.start_time,
                        "end_time": end,
                        "duration_ms": (end - s.start_time) * 1000.0,
                        "status": s.status or "",
                        "run_id": s.run_id or "",
                        "session_id": s.session_id or "",
                        "user_id": str(a.get(g.USER_ID) or ""),
                        "agent": str(a.get(g.AGENT_NAME) or ""),
                        "model": str(a.get(g.REQUEST_MODEL) or ""),
                        "workflow": str(a.get(g.WORKFLOW_NAME) or ""),
                        "span_type": str(a.get(g.SPAN_TYPE) or ""),
                        "run_status": str(a.get(g.RUN_STATUS) or ""),
                        "input_tokens": int(a.get(g.INPUT_TOKENS) or 0),
                        "output_tokens": int(a.get(g.OUTPUT_TOKENS) or 0),
                        "cached_tokens": int(a.get(g.CACHED_TOKENS) or 0),
                        "reasoning_tokens": int(a.get(g.REASONING_TOKENS) or 0),
                        "cost_usd": float(a.get(g.COST) or 0.0),
                        "attributes": json.dumps(a, default=str),
                        "version": version,
                        "day": _day(s.start_time),
                    },
                    separators=(",", ":"),
                )
            )
        await self._exec(
            f"INSERT INTO {self.table} FORMAT JSONEachRow", ("\n".join(lines) + "\n").encode()
        )

    async def get_trace(self, trace_id: str) -> list[Any]:
        """A trace's spans by start time."""
        await self.setup()
        rows = await self._rows(
            f"SELECT * FROM {self.table} FINAL WHERE trace_id = {_q(trace_id)} ORDER BY start_time"
        )
        return [_record(r) for r in rows]

    async def list_spans(
        self, *, run_id: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[Any]:
        """Spans, newest first."""
        await self.setup()
        where = []
        if run_id is not None:
            where.append(f"run_id = {_q(run_id)}")
        if session_id is not None:
            where.append(f"session_id = {_q(session_id)}")
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        rows = await self._rows(
            f"SELECT * FROM {self.table} FINAL{cond} ORDER BY start_time DESC LIMIT {int(limit)}"
        )
        return [_record(r) for r in rows]

    async def prune(self, before: float) -> int:
        """Delete spans that started before ``before`` (whole old partitions drop cheaply)."""
        await self.setup()
        [row] = await self._rows(
            f"SELECT count() AS n FROM {self.table} WHERE start_time < {float(before)}"
        )
        n = int(row["n"])
        if n:
            await self._exec(f"ALTER TABLE {self.table} DELETE WHERE start_time < {float(before)}")
        return n

    # -- pushed-down queries (what the Studio and `vivace stats` ask) --------------------------

    async def list_traces(
        self,
        *,
        agent: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first: one row per trace (its root span) with the trace's totals."""
        await self.setup()
        where = ["parent_id = ''"]
        if agent is not None:
            where.append(f"agent = {_q(agent)}")
        if status is not None:
            where.append(
                f"(run_status = {_q(status)} OR (run_status = '' AND "
                f"{'status = ' + _q('error') if status == 'failed' else 'status != ' + _q('error')}))"
            )
        if since is not None:
            where.append(f"start_time >= {float(since)}")
        if until is not None:
            where.append(f"start_time < {float(until)}")
        if session_id is not None:
            where.append(f"session_id = {_q(session_id)}")
        if run_id is not None:
            where.append(f"run_id = {_q(run_id)}")
        roots = (
            f"SELECT trace_id, name, agent, workflow, model, run_id, session_id, user_id, "
            f"run_status, status, start_time, duration_ms FROM {self.table} "
            f"WHERE {' AND '.join(where)} ORDER BY start_time DESC LIMIT {int(limit)}"
        )
        sql = (
            f"SELECT * FROM ({roots}) ANY LEFT JOIN ("
            f"SELECT trace_id, count() AS spans, "
            f"sumIf(input_tokens, span_type = 'model_request') AS in_tok, "
            f"sumIf(output_tokens, span_type = 'model_request') AS out_tok, "
            f"sumIf(cost_usd, span_type = 'model_request') AS cost "
            f"FROM {self.table} WHERE trace_id IN (SELECT trace_id FROM ({roots})) "
            f"GROUP BY trace_id) USING trace_id ORDER BY start_time DESC"
        )
        out = []
        for r in await self._rows(sql):
            error = r["status"] == "error"
            out.append(
                {
                    "trace_id": r["trace_id"],
                    "name": r["name"],
                    "agent": r["agent"] or None,
                    "workflow": r["workflow"] or None,
                    "model": r["model"] or None,
                    "run_id": r["run_id"] or None,
                    "session_id": r["session_id"] or None,
                    "user_id": r["user_id"] or None,
                    "status": r["run_status"] or ("failed" if error else "completed"),
                    "error": error,
                    "start_time": float(r["start_time"]),
                    "duration_ms": round(float(r["duration_ms"]), 3),
                    "spans": int(r["spans"]),
                    "input_tokens": int(r["in_tok"]),
                    "output_tokens": int(r["out_tok"]),
                    "cost_usd": round(float(r["cost"]), 10),
                }
            )
        return out

    async def metrics(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        bucket: float = 86400.0,
        agent: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows per time bucket x agent x model x workflow, aggregated in ClickHouse (same
        shape as :func:`vivace.observability.metrics.aggregate`)."""
        await self.setup()
        b = max(1, int(bucket))
        where = ["span_type IN ('agent_run', 'workflow_run', 'model_request', 'tool_call')"]
        if since is not None:
            where.append(f"start_time >= {float(since)}")
        if until is not None:
            where.append(f"start_time < {float(until)}")
        if agent is not None:
            where.append(f"agent = {_q(agent)}")
        run = "span_type IN ('agent_run', 'workflow_run')"
        sql = (
            f"SELECT intDiv(toUInt64(start_time), {b}) * {b} AS t, agent, model, workflow, "
            f"countIf({run}) AS runs, countIf({run} AND status = 'error') AS errors, "
            f"countIf(span_type = 'tool_call') AS tool_calls, "
            f"countIf(span_type = 'model_request') AS model_requests, "
            f"sumIf(input_tokens, span_type = 'model_request') AS input_tokens, sumIf(output_tokens, span_type = 'model_request') AS output_tokens, "
            f"sumIf(cached_tokens, span_type = 'model_request') AS cached_tokens, sumIf(reasoning_tokens, span_type = 'model_request') AS reasoning_tokens, "
            f"sumIf(cost_usd, span_type = 'model_request') AS cost_usd, "
            f"quantilesExactIf(0.5, 0.95, 0.99)(duration_ms, {run}) AS run_q, "
            f"quantilesExactIf(0.5, 0.95, 0.99)(duration_ms, span_type = 'model_request') AS model_q, "
            f"quantilesExactIf(0.5, 0.95, 0.99)(duration_ms, span_type = 'tool_call') AS tool_q "
            f"FROM {self.table} WHERE {' AND '.join(where)} "
            f"GROUP BY t, agent, model, workflow ORDER BY t, agent, model, workflow"
        )
        out = []
        for r in await self._rows(sql):
            d: dict[str, Any] = {
                "time": float(r["t"]),
                "agent": r["agent"] or None,
                "model": r["model"] or None,
                "workflow": r["workflow"] or None,
                "runs": int(r["runs"]),
                "errors": int(r["errors"]),
                "tool_calls": int(r["tool_calls"]),
                "input_tokens": int(r["input_tokens"]),
                "output_tokens": int(r["output_tokens"]),
                "cached_tokens": int(r["cached_tokens"]),
                "reasoning_tokens": int(r["reasoning_tokens"]),
                "cost_usd": round(float(r["cost_usd"]), 10),
            }
            counts = {"run": d["runs"], "model": int(r["model_requests"]), "tool": d["tool_calls"]}
            for name in ("run", "model", "tool"):
                qs = r[f"{name}_q"]
                empty = counts[name] == 0 or not qs or any(_nan(x) for x in qs)
                for q, v in zip((50, 95, 99), qs or (None, None, None), strict=False):
                    d[f"{name}_p{q}_ms"] = None if empty else round(float(v), 3)
            out.append(d)
        return out


def _nan(x: Any) -> bool:
    try:
        return x != x or x in ("nan", "inf", "-inf")
    except Exception:
        return True


def _day(t: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d")


def _record(r: dict[str, Any]) -> Any:
    from ..storage.records import SpanRecord

    return SpanRecord(
        span_id=r["span_id"],
        trace_id=r["trace_id"],
        name=r["name"],
        parent_id=r["parent_id"] or None,
        kind=r["kind"] or None,
        start_time=float(r["start_time"]),
        end_time=float(r["end_time"]),
        status=r["status"] or None,
        run_id=r["run_id"] or None,
        session_id=r["session_id"] or None,
        attributes=json.loads(r["attributes"] or "{}"),
    )
