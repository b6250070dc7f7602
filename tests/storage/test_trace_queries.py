"""The trace and score queries (what the Studio and ``vivace stats`` ask) on every backend:
the trace list with its filters, roots and totals, pages, metrics, scores - and an older
database's spans answering them after the upgrade."""

from __future__ import annotations

from typing import Any

import pytest

from vivace.storage import InMemoryStorage, TraceSummary

from .trace_data import T0, _id, scores, spans


async def _filled(storage: Any) -> Any:
    await storage.traces.write_spans(spans())
    for s in scores():
        await storage.scores.add_score(s)
    return storage


def _ids(rows: list[TraceSummary]) -> list[int]:
    return [int(r.trace_id, 16) for r in rows]


async def all_pages(store: Any, size: int, **filters: Any) -> list[TraceSummary]:
    out: list[TraceSummary] = []
    before = None
    while True:
        page = await store.list_traces(limit=size, before=before, **filters)
        out += page
        if len(page) < size:
            return out
        before = page[-1].cursor


async def test_the_trace_list(storage: Any) -> None:
    traces = (await _filled(storage)).traces
    rows = await traces.list_traces()
    # newest first; trace 7 and 8 start together (higher id first); 6 is two days old
    assert _ids(rows) == [8, 7, 5, 4, 3, 2, 1, 6]
    by_id = {int(r.trace_id, 16): r for r in rows}
    one = by_id[1]
    assert (one.name, one.agent, one.model, one.user_id, one.session_id, one.run_id) == (
        "invoke_agent weather",
        "weather",
        "gpt-4o",
        "ann",
        "s1",
        "run-1",
    )
    assert (one.status, one.error, one.spans) == ("completed", False, 6)
    # tokens and cost add up the model requests (the subagent's included, the runs' not)
    assert (one.input_tokens, one.output_tokens) == (33, 13)
    assert one.cost_usd == pytest.approx(0.0031)
    assert one.duration_ms == pytest.approx(100, abs=0.01)
    assert (by_id[2].status, by_id[2].error) == ("failed", True)
    assert (by_id[3].name, by_id[3].workflow, by_id[3].agent) == (
        "invoke_workflow pipeline",
        "pipeline",
        None,
    )
    assert by_id[4].status == "paused"  # its parent span is in another process
    assert (by_id[5].agent, by_id[5].spans) == ("echo", 8)  # the earlier of two roots

    async def ids(**kw: Any) -> list[int]:
        return _ids(await traces.list_traces(**kw))

    assert await ids(agent="weather") == [4, 2, 1, 6]
    assert await ids(model="claude") == [2]
    assert await ids(workflow="pipeline") == [3]
    assert await ids(user_id="ann") == [5, 3, 1, 6]
    assert await ids(status="failed") == [2]
    assert await ids(status="completed") == [7, 5, 3, 1, 6]
    assert await ids(session_id="s1b") == [1]  # a subagent's session: its parent's trace
    assert await ids(run_id="run-1b") == [1]
    assert await ids(since=T0, until=T0 + 40) == [3, 2, 1]
    assert await ids(since=T0 + 60) == [8, 7]
    assert await ids(agent="weather", status="completed", since=T0) == [1]
    assert await ids(agent="nobody") == []
    assert await ids(limit=3) == [8, 7, 5]


@pytest.mark.parametrize("size", [1, 2, 3])
async def test_pages_hold_every_trace_once(storage: Any, size: int) -> None:
    traces = (await _filled(storage)).traces
    assert _ids(await all_pages(traces, size)) == [8, 7, 5, 4, 3, 2, 1, 6]
    assert _ids(await all_pages(traces, size, agent="echo")) == [8, 7, 5]


async def test_one_trace_and_one_runs_spans(storage: Any) -> None:
    traces = (await _filled(storage)).traces
    one = await traces.get_trace(_id(1))
    assert [s.name for s in one] == [
        "invoke_agent weather",
        "chat gpt-4o",
        "execute_tool get_weather",
        "invoke_agent helper",
        "chat mini",
        "chat gpt-4o",
    ]
    assert one[3].parent_id == one[2].span_id
    assert one[1].attributes["gen_ai.usage.cache_read.input_tokens"] == 2
    assert {s.name for s in await traces.list_spans(run_id="run-1b")} == {
        "invoke_agent helper",
        "chat mini",
    }


async def test_metrics(storage: Any) -> None:
    traces = (await _filled(storage)).traces
    rows = await traces.trace_metrics(since=T0, bucket=86400)
    key = {(r.agent, r.model, r.workflow): r for r in rows}
    assert {r.time for r in rows} == {T0}
    weather = key[("weather", "gpt-4o", None)]
    assert (weather.runs, weather.errors, weather.model_requests) == (2, 0, 4)
    assert (weather.input_tokens, weather.output_tokens) == (60, 24)
    assert (weather.cached_tokens, weather.reasoning_tokens) == (4, 6)
    assert weather.cost_usd == pytest.approx(0.006)
    assert weather.latency_ms["run_p50"] == pytest.approx(100, abs=0.01)
    assert weather.latency_ms["model_p50"] == pytest.approx(30, abs=0.01)
    assert weather.latency_ms["model_p99"] == pytest.approx(40, abs=0.01)
    assert weather.latency_ms["tool_p50"] is None  # tool calls have a row of their own
    tools = key[("weather", None, None)]
    assert (tools.tool_calls, tools.runs) == (3, 0)
    assert tools.latency_ms["tool_p95"] == pytest.approx(10, abs=0.01)
    claude = key[("weather", "claude", None)]
    assert (claude.runs, claude.errors) == (1, 1)
    assert key[("helper", "mini", None)].runs == 1
    assert key[(None, None, "pipeline")].runs == 1
    assert key[("writer", "gpt-4o", "pipeline")].model_requests == 2
    # filters and buckets
    only = await traces.trace_metrics(since=T0, agent="weather", model="claude")
    assert [(r.agent, r.model, r.runs) for r in only] == [("weather", "claude", 1)]
    hourly = await traces.trace_metrics(since=T0 - 3 * 86400, bucket=3600)
    assert {r.time for r in hourly} == {T0, T0 - 2 * 86400}
    assert sum(r.runs for r in hourly) == 11
    assert await traces.trace_metrics(since=T0 + 86400) == []
    d = weather.to_dict()
    assert d["run_p95_ms"] == 100.0 and d["tool_p99_ms"] is None


async def test_scores(storage: Any) -> None:
    st = await _filled(storage)
    listed = await st.scores.list_scores()
    assert [s.score_id for s in listed] == ["sc-6", "sc-5", "sc-4", "sc-3", "sc-2", "sc-1", "sc-0"]
    assert [s.score_id for s in await st.scores.list_scores(scorer="relevance")] == [
        "sc-5",
        "sc-3",
        "sc-1",
    ]
    assert [s.score_id for s in await st.scores.list_scores(since=T0 + 102)] == [
        "sc-6",
        "sc-5",
        "sc-4",
    ]
    pages, before = [], None
    while True:
        page = await st.scores.list_scores(limit=2, before=before)
        pages += [s.score_id for s in page]
        if len(page) < 2:
            break
        before = (page[-1].created_at, page[-1].score_id)
    assert pages == [s.score_id for s in listed]
    assert listed[0].metadata == {"i": 6} and listed[0].reason == "reason 6"
    stats = {s.scorer: s for s in await st.scores.score_stats()}
    assert stats["safety"].count == 4 and stats["safety"].mean == pytest.approx(0.3)
    assert (stats["relevance"].min, stats["relevance"].max) == (0.1, 0.5)
    per_bucket = await st.scores.score_stats(scorer="safety", bucket=2)
    assert [(s.time, s.count) for s in per_bucket] == [
        (T0 + 100, 2),
        (T0 + 102, 2),
    ]


async def test_an_older_databases_spans_answer_after_the_upgrade(sql_factory: Any) -> None:
    """Spans written by schema 4 (no query columns) are filled in by the upgrade."""
    import json

    import sqlalchemy as sa

    from vivace.storage.sql import history

    st = sql_factory()
    data = spans()

    def build(conn: sa.Connection) -> None:
        if sql_factory.kind == "postgres":
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{sql_factory.schema}"')
        history.create_schema(conn, 4)
        table = history.old_metadata(4).tables["vivace_spans"]
        conn.execute(
            table.insert(),
            [{**s.to_dict(), "attributes": json.dumps(s.attributes)} for s in data],
        )

    await st.run_sync(build, setup=False)
    await st.close()
    upgraded = sql_factory()
    reference = InMemoryStorage()
    await reference.traces.write_spans(data)
    got = await upgraded.traces.list_traces()
    want = await reference.traces.list_traces()
    assert [r.to_dict() for r in got] == [r.to_dict() for r in want]
    assert [r.to_dict() for r in await upgraded.traces.trace_metrics(since=T0 - 3 * 86400)] == [
        r.to_dict() for r in await reference.traces.trace_metrics(since=T0 - 3 * 86400)
    ]


def test_storage_reads_the_attribute_names_tracing_writes() -> None:
    from vivace.observability import genai as g
    from vivace.storage import _spans as s

    pairs = [
        (s.AGENT, g.AGENT_NAME),
        (s.MODEL, g.REQUEST_MODEL),
        (s.WORKFLOW, g.WORKFLOW_NAME),
        (s.INPUT_TOKENS, g.INPUT_TOKENS),
        (s.OUTPUT_TOKENS, g.OUTPUT_TOKENS),
        (s.CACHED_TOKENS, g.CACHED_TOKENS),
        (s.REASONING_TOKENS, g.REASONING_TOKENS),
        (s.USER_ID, g.USER_ID),
        (s.SPAN_TYPE, g.SPAN_TYPE),
        (s.RUN_STATUS, g.RUN_STATUS),
        (s.COST, g.COST),
        (s.LOCAL_ROOT, g.LOCAL_ROOT),
    ]
    assert [a for a, _ in pairs] == [b for _, b in pairs]
