"""ClickHouse for the traces and scores domains, at high volume: spans written in batches (one
``INSERT`` per exporter batch) and every trace query pushed down to ClickHouse (the trace
list with its totals, one trace, a run's spans, metrics with p50/p95/p99, score statistics).

It serves those two domains only, as a backend of a :class:`~vivace.storage.CompositeStorage`::

    from vivace.storage import ClickHouseStorage, CompositeStorage, SQLiteStorage

    storage = CompositeStorage(
        default=SQLiteStorage(".vivace/vivace.db"),
        traces=ClickHouseStorage("http://localhost:8123", database="vivace"),
    )

Talks to ClickHouse's HTTP interface with httpx (no driver), so it works with any server
version from 18.16 (Debian's ``clickhouse-server`` package) on. Tables are
``ReplacingMergeTree``\\ s partitioned by month (a span written again replaces the earlier
row; queries read ``FINAL``). Percentiles are ClickHouse's ``quantilesExact`` (the nearest
stored value, where the other backends interpolate).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import time
import weakref
from collections.abc import Sequence
from typing import Any

from . import _logic as L
from . import _spans
from .base import ScoreStore, Storage, TraceStore
from .errors import StorageError
from .records import ScoreRecord, ScoreStats, SpanRecord, TraceMetricsRow, TraceSummary

__all__ = ["ClickHouseScores", "ClickHouseStorage", "ClickHouseTraces"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SPAN_COLUMNS = (
    "trace_id String, span_id String, parent_id String, name String, kind String, "
    "start_time Float64, end_time Float64, duration_ms Float64, status String, "
    "run_id String, session_id String, user_id String, agent String, model String, "
    "workflow String, span_type String, run_status String, error UInt8, is_root UInt8, "
    "input_tokens UInt64, output_tokens UInt64, cached_tokens UInt64, "
    "reasoning_tokens UInt64, cost_usd Float64, attributes String, version UInt64, day Date"
)
_SCORE_COLUMNS = (
    "score_id String, scorer String, score Float64, run_id String, trace_id String, "
    "reason String, metadata String, created_at Float64, version UInt64, day Date"
)


def _q(s: str) -> str:
    """A ClickHouse string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _f(x: float) -> str:
    return repr(float(x))


def _day(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d")


def _none(v: Any) -> Any:
    return None if v == "" else v


class _Connection:
    """ClickHouse's HTTP interface: one httpx client per event loop."""

    def __init__(
        self, url: str, database: str, user: str | None, password: str | None, timeout: float
    ) -> None:
        if not _IDENT.match(database):
            from ..errors import UserError

            raise UserError(f"invalid ClickHouse database name {database!r}")
        self.url = url.rstrip("/")
        self.database = database
        self.timeout = timeout
        self.headers: dict[str, str] = {}
        if user:
            self.headers["X-ClickHouse-User"] = user
        if password:
            self.headers["X-ClickHouse-Key"] = password
        self._clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._ready = False
        self._lock: asyncio.Lock | None = None

    def _client(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        c = self._clients.get(loop)
        if c is None:
            c = self._clients[loop] = httpx.AsyncClient(timeout=self.timeout, headers=self.headers)
        return c

    async def execute(self, sql: str, body: bytes | None = None) -> str:
        import httpx

        try:
            if body is None:
                r = await self._client().post(self.url + "/", content=sql.encode())
            else:
                r = await self._client().post(self.url + "/", params={"query": sql}, content=body)
        except httpx.HTTPError as exc:
            raise StorageError(f"ClickHouse at {self.url} is unreachable: {exc}") from exc
        if r.status_code != 200:
            raise StorageError(f"ClickHouse answered HTTP {r.status_code}: {r.text[:500]}")
        return str(r.text)

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        await self.setup()
        text = await self.execute(sql + " FORMAT JSONEachRow")
        return [json.loads(line) for line in text.splitlines() if line]

    async def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        await self.setup()
        body = "\n".join(json.dumps(r, separators=(",", ":")) for r in rows) + "\n"
        await self.execute(f"INSERT INTO {table} FORMAT JSONEachRow", body.encode())

    async def setup(self) -> None:
        """Create the database and tables (idempotent, once per process)."""
        if self._ready:
            return
        db = self.database
        await self.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
        for table, columns, order in (
            ("vivace_spans", _SPAN_COLUMNS, "(trace_id, span_id)"),
            ("vivace_scores", _SCORE_COLUMNS, "(scorer, score_id)"),
        ):
            await self.execute(
                f"CREATE TABLE IF NOT EXISTS {db}.{table} ({columns}) "
                f"ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(day) ORDER BY {order}"
            )
        self._ready = True

    async def close(self) -> None:
        for c in list(self._clients.values()):
            await c.aclose()
        self._clients = weakref.WeakKeyDictionary()


class ClickHouseTraces(TraceStore):
    """The traces domain on ClickHouse (table ``vivace_spans``)."""

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.table = f"{conn.database}.vivace_spans"

    async def write_spans(self, spans: Sequence[SpanRecord]) -> None:
        """Insert spans in one ``INSERT``; a span written again replaces the earlier row."""
        if not spans:
            return
        version = time.time_ns()
        rows = []
        for s in spans:
            L.check_span_ids(s)
            f = _spans.facts(s)
            end = s.end_time if s.end_time is not None else s.start_time
            rows.append(
                {
                    "trace_id": s.trace_id,
                    "span_id": s.span_id,
                    "parent_id": s.parent_id or "",
                    "name": s.name,
                    "kind": s.kind or "",
                    "start_time": s.start_time,
                    "end_time": end,
                    "duration_ms": f.duration_ms,
                    "status": s.status or "",
                    "run_id": s.run_id or "",
                    "session_id": s.session_id or "",
                    "user_id": f.user_id or "",
                    "agent": f.agent or "",
                    "model": f.model or "",
                    "workflow": f.workflow or "",
                    "span_type": f.span_type or "",
                    "run_status": f.run_status or "",
                    "error": int(f.error),
                    "is_root": int(f.root),
                    "input_tokens": f.input_tokens,
                    "output_tokens": f.output_tokens,
                    "cached_tokens": f.cached_tokens,
                    "reasoning_tokens": f.reasoning_tokens,
                    "cost_usd": f.cost_usd,
                    "attributes": json.dumps(s.attributes or {}, default=str),
                    "version": version,
                    "day": _day(s.start_time),
                }
            )
        await self.conn.insert(self.table, rows)

    @staticmethod
    def _record(r: dict[str, Any]) -> SpanRecord:
        return SpanRecord(
            span_id=r["span_id"],
            trace_id=r["trace_id"],
            name=r["name"],
            parent_id=_none(r["parent_id"]),
            kind=_none(r["kind"]),
            start_time=float(r["start_time"]),
            end_time=float(r["end_time"]),
            status=_none(r["status"]),
            run_id=_none(r["run_id"]),
            session_id=_none(r["session_id"]),
            attributes=json.loads(r["attributes"] or "{}"),
        )

    async def get_trace(self, trace_id: str) -> list[SpanRecord]:
        L.check_id("trace_id", trace_id)
        rows = await self.conn.rows(
            f"SELECT * FROM {self.table} FINAL WHERE trace_id = {_q(trace_id)} "
            "ORDER BY start_time, span_id"
        )
        return [self._record(r) for r in rows]

    async def list_spans(
        self, *, run_id: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[SpanRecord]:
        L.check_opt_id("run_id", run_id)
        L.check_opt_id("session_id", session_id)
        where = []
        if run_id is not None:
            where.append(f"run_id = {_q(run_id)}")
        if session_id is not None:
            where.append(f"session_id = {_q(session_id)}")
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        rows = await self.conn.rows(
            f"SELECT * FROM {self.table} FINAL{cond} ORDER BY start_time DESC LIMIT {int(limit)}"
        )
        return [self._record(r) for r in rows]

    async def list_traces(
        self,
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
        L.check_opt_id("run_id", run_id)
        L.check_opt_id("session_id", session_id)
        t = self.table
        where = ["1"]
        for col, value in (
            ("agent", agent),
            ("model", model),
            ("workflow", workflow),
            ("user_id", user_id),
        ):
            if value is not None:
                where.append(f"{col} = {_q(value)}")
        if status is not None:
            where.append(
                f"if(run_status != '', run_status, if(error = 1, 'failed', 'completed')) "
                f"= {_q(status)}"
            )
        if since is not None:
            where.append(f"start_time >= {_f(since)}")
        if until is not None:
            where.append(f"start_time < {_f(until)}")
        for col, value in (("session_id", session_id), ("run_id", run_id)):
            if value is not None:
                where.append(f"trace_id IN (SELECT trace_id FROM {t} WHERE {col} = {_q(value)})")
        if before is not None:
            bt, bid = before
            where.append(
                f"(start_time < {_f(bt)} OR (start_time = {_f(bt)} AND trace_id < {_q(bid)}))"
            )
        # each trace's root: its earliest span without a parent in this process
        roots = (
            f"SELECT trace_id, span_id, name, start_time, duration_ms, status, run_status, "
            f"error, agent, workflow, model, run_id, session_id, user_id FROM {t} FINAL "
            f"WHERE is_root = 1 ORDER BY trace_id, start_time, span_id LIMIT 1 BY trace_id"
        )
        page = (
            f"SELECT * FROM ({roots}) WHERE {' AND '.join(where)} "
            f"ORDER BY start_time DESC, trace_id DESC LIMIT {int(limit)}"
        )
        sql = (
            f"SELECT * FROM ({page}) ANY LEFT JOIN ("
            f"SELECT trace_id, count() AS spans, "
            f"sumIf(input_tokens, span_type = 'model_request') AS in_tok, "
            f"sumIf(output_tokens, span_type = 'model_request') AS out_tok, "
            f"sumIf(cost_usd, span_type = 'model_request') AS cost "
            f"FROM {t} FINAL WHERE trace_id IN (SELECT trace_id FROM ({page})) "
            f"GROUP BY trace_id) USING trace_id ORDER BY start_time DESC, trace_id DESC"
        )
        out = []
        for r in await self.conn.rows(sql):
            error = bool(int(r["error"]))
            out.append(
                TraceSummary(
                    trace_id=r["trace_id"],
                    name=r["name"],
                    start_time=float(r["start_time"]),
                    duration_ms=float(r["duration_ms"]),
                    status=_spans.trace_status(_none(r["run_status"]), error),
                    error=error,
                    agent=_none(r["agent"]),
                    workflow=_none(r["workflow"]),
                    model=_none(r["model"]),
                    run_id=_none(r["run_id"]),
                    session_id=_none(r["session_id"]),
                    user_id=_none(r["user_id"]),
                    spans=int(r["spans"]),
                    input_tokens=int(r["in_tok"]),
                    output_tokens=int(r["out_tok"]),
                    cost_usd=float(r["cost"]),
                )
            )
        return out

    async def trace_metrics(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        bucket: float = 86400.0,
        agent: str | None = None,
        model: str | None = None,
        workflow: str | None = None,
    ) -> list[TraceMetricsRow]:
        b = max(1, int(bucket))
        kinds = ", ".join(_q(k) for k in _spans.COUNTED_TYPES)
        where = [f"span_type IN ({kinds})"]
        if since is not None:
            where.append(f"start_time >= {_f(since)}")
        if until is not None:
            where.append(f"start_time < {_f(until)}")
        for col, value in (("agent", agent), ("model", model), ("workflow", workflow)):
            if value is not None:
                where.append(f"{col} = {_q(value)}")
        run = "span_type IN ('agent_run', 'workflow_run')"
        model_req = "span_type = 'model_request'"
        tool = "span_type = 'tool_call'"
        sql = (
            f"SELECT intDiv(toUInt64(start_time), {b}) * {b} AS t, agent, "
            f"if({tool}, '', model) AS row_model, workflow, "
            f"countIf({run}) AS runs, countIf({run} AND error = 1) AS errors, "
            f"countIf({tool}) AS tool_calls, countIf({model_req}) AS model_requests, "
            f"sumIf(input_tokens, {model_req}) AS input_tokens, "
            f"sumIf(output_tokens, {model_req}) AS output_tokens, "
            f"sumIf(cached_tokens, {model_req}) AS cached_tokens, "
            f"sumIf(reasoning_tokens, {model_req}) AS reasoning_tokens, "
            f"sumIf(cost_usd, {model_req}) AS cost_usd, "
            f"quantilesExactIf(0.5, 0.95, 0.99)(duration_ms, {run}) AS run_q, "
            f"quantilesExactIf(0.5, 0.95, 0.99)(duration_ms, {model_req}) AS model_q, "
            f"quantilesExactIf(0.5, 0.95, 0.99)(duration_ms, {tool}) AS tool_q "
            f"FROM {self.table} FINAL WHERE {' AND '.join(where)} "
            f"GROUP BY t, agent, row_model, workflow ORDER BY t, agent, row_model, workflow"
        )
        out = []
        for r in await self.conn.rows(sql):
            row = TraceMetricsRow(
                time=float(r["t"]),
                agent=_none(r["agent"]),
                model=_none(r["row_model"]),
                workflow=_none(r["workflow"]),
                runs=int(r["runs"]),
                errors=int(r["errors"]),
                tool_calls=int(r["tool_calls"]),
                model_requests=int(r["model_requests"]),
                input_tokens=int(r["input_tokens"]),
                output_tokens=int(r["output_tokens"]),
                cached_tokens=int(r["cached_tokens"]),
                reasoning_tokens=int(r["reasoning_tokens"]),
                cost_usd=float(r["cost_usd"]),
            )
            counts = {"run": row.runs, "model": row.model_requests, "tool": row.tool_calls}
            for name, n in counts.items():
                qs = r[f"{name}_q"] if n else None
                for q, v in zip((50, 95, 99), qs or (None, None, None), strict=True):
                    row.latency_ms[f"{name}_p{q}"] = None if v is None else float(v)
            out.append(row)
        return out

    async def prune(self, before: float) -> int:
        """Delete spans that started before ``before`` (a mutation, applied in the background)."""
        [row] = await self.conn.rows(
            f"SELECT count() AS n FROM {self.table} WHERE start_time < {_f(before)}"
        )
        n = int(row["n"])
        if n:
            await self.conn.execute(
                f"ALTER TABLE {self.table} DELETE WHERE start_time < {_f(before)}"
            )
        return n


class ClickHouseScores(ScoreStore):
    """The scores domain on ClickHouse (table ``vivace_scores``)."""

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.table = f"{conn.database}.vivace_scores"

    async def add_score(self, score: ScoreRecord) -> None:
        L.check_id("score_id", score.score_id)
        L.check_opt_id("run_id", score.run_id)
        L.check_opt_id("trace_id", score.trace_id)
        await self.conn.insert(
            self.table,
            [
                {
                    "score_id": score.score_id,
                    "scorer": score.scorer,
                    "score": float(score.score),
                    "run_id": score.run_id or "",
                    "trace_id": score.trace_id or "",
                    "reason": score.reason or "",
                    "metadata": json.dumps(score.metadata or {}, default=str),
                    "created_at": score.created_at,
                    "version": time.time_ns(),
                    "day": _day(score.created_at),
                }
            ],
        )

    @staticmethod
    def _where(scorer: str | None, since: float | None, until: float | None) -> list[str]:
        where = ["1"]
        if scorer is not None:
            where.append(f"scorer = {_q(scorer)}")
        if since is not None:
            where.append(f"created_at >= {_f(since)}")
        if until is not None:
            where.append(f"created_at < {_f(until)}")
        return where

    async def list_scores(
        self,
        *,
        run_id: str | None = None,
        trace_id: str | None = None,
        scorer: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[ScoreRecord]:
        L.check_opt_id("run_id", run_id)
        L.check_opt_id("trace_id", trace_id)
        where = self._where(scorer, since, until)
        if run_id is not None:
            where.append(f"run_id = {_q(run_id)}")
        if trace_id is not None:
            where.append(f"trace_id = {_q(trace_id)}")
        if before is not None:
            bt, bid = before
            where.append(
                f"(created_at < {_f(bt)} OR (created_at = {_f(bt)} AND score_id < {_q(bid)}))"
            )
        rows = await self.conn.rows(
            f"SELECT * FROM {self.table} FINAL WHERE {' AND '.join(where)} "
            f"ORDER BY created_at DESC, score_id DESC LIMIT {int(limit)}"
        )
        return [
            ScoreRecord(
                score_id=r["score_id"],
                scorer=r["scorer"],
                score=float(r["score"]),
                run_id=_none(r["run_id"]),
                trace_id=_none(r["trace_id"]),
                reason=_none(r["reason"]),
                metadata=json.loads(r["metadata"] or "{}"),
                created_at=float(r["created_at"]),
            )
            for r in rows
        ]

    async def score_stats(
        self,
        *,
        scorer: str | None = None,
        since: float | None = None,
        until: float | None = None,
        bucket: float | None = None,
    ) -> list[ScoreStats]:
        keys = ["scorer"]
        select = ""
        if bucket:
            select = f"floor(created_at / {_f(bucket)}) * {_f(bucket)} AS t, "
            keys.insert(0, "t")
        rows = await self.conn.rows(
            f"SELECT {select}scorer, count() AS n, avg(score) AS mean, min(score) AS lo, "
            f"max(score) AS hi FROM {self.table} FINAL "
            f"WHERE {' AND '.join(self._where(scorer, since, until))} "
            f"GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}"
        )
        return [
            ScoreStats(
                scorer=r["scorer"],
                count=int(r["n"]),
                mean=float(r["mean"]),
                min=float(r["lo"]),
                max=float(r["hi"]),
                time=float(r["t"]) if bucket else None,
            )
            for r in rows
        ]

    async def prune(self, before: float) -> int:
        [row] = await self.conn.rows(
            f"SELECT count() AS n FROM {self.table} WHERE created_at < {_f(before)}"
        )
        n = int(row["n"])
        if n:
            await self.conn.execute(
                f"ALTER TABLE {self.table} DELETE WHERE created_at < {_f(before)}"
            )
        return n


class ClickHouseStorage(Storage):
    """ClickHouse serving the ``traces`` and ``scores`` domains (a backend of a
    :class:`~vivace.storage.CompositeStorage`; the other domains are a ``UserError``).

    Args:
        url: ClickHouse's HTTP endpoint (``http://host:8123``).
        database: Database (created by :meth:`setup`); tables ``vivace_spans`` and
            ``vivace_scores``.
        user, password: Credentials (sent as headers, never logged).
        timeout: Seconds per HTTP request.
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
        self.conn = _Connection(url, database, user, password, timeout)
        self.traces = ClickHouseTraces(self.conn)
        self.scores = ClickHouseScores(self.conn)

    def __getattr__(self, name: str) -> Any:
        if name in ("sessions", "memory", "workflows", "events"):
            from ..errors import UserError

            raise UserError(
                f"ClickHouse serves the traces and scores domains, not {name}: use it in a "
                "CompositeStorage(default=..., traces=ClickHouseStorage(...), scores=...)"
            )
        raise AttributeError(name)

    @property
    def run_lease(self) -> float:
        return L.DEFAULT_LEASE

    async def setup(self) -> None:
        await self.conn.setup()

    async def close(self) -> None:
        await self.conn.close()

    def __repr__(self) -> str:
        return f"ClickHouseStorage({self.conn.url!r}, database={self.conn.database!r})"
