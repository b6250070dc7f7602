"""The ClickHouse trace store against a real ClickHouse server (Debian's clickhouse-server,
started here on free ports in a temporary folder; skipped with the reason if it cannot)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vivace import Agent, tool
from vivace.observability import StorageExporter, configure
from vivace.observability.clickhouse import ClickHouseTraceStore
from vivace.observability.metrics import aggregate
from vivace.observability.query import TraceQueries
from vivace.storage import InMemoryStorage
from vivace.testing import ScriptedModel, call

SERVER = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"


def _port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@pytest.fixture(scope="module")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(SERVER).exists():
        pytest.skip("clickhouse-server is not installed (apt-get install clickhouse-server)")
    d = tmp_path_factory.mktemp("ch")
    http, tcp = _port(), _port()
    (d / "users.xml").write_text(
        "<yandex><profiles><default></default></profiles><users><default><password></password>"
        "<networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota>"
        "</default></users><quotas><default></default></quotas></yandex>"
    )
    (d / "config.xml").write_text(
        f"<yandex><logger><level>warning</level><console>true</console></logger>"
        f"<http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>"
        f"<listen_host>127.0.0.1</listen_host><path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path>"
        f"<user_files_path>{d}/uf/</user_files_path><format_schema_path>{d}/fs/</format_schema_path>"
        f"<users_config>{d}/users.xml</users_config><default_profile>default</default_profile>"
        f"<default_database>default</default_database><mark_cache_size>268435456</mark_cache_size>"
        f"</yandex>"
    )
    log = (d / "server.log").open("wb")
    proc = subprocess.Popen(
        [SERVER, f"--config-file={d}/config.xml"], stdout=log, stderr=log, cwd=d
    )
    url = f"http://127.0.0.1:{http}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(
                    "clickhouse-server did not start: " + (d / "server.log").read_text()[-500:]
                )
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@tool
def get_weather(city: str) -> str:
    """Weather."""
    return f"Sunny in {city}"


async def test_clickhouse_store_answers_what_the_memory_store_answers(clickhouse_url: str) -> None:
    store = ClickHouseTraceStore(clickhouse_url, database="vivace_test")
    memory = InMemoryStorage()
    ch_exporter, mem_exporter = StorageExporter(store), StorageExporter(memory)
    loop = asyncio.get_running_loop()
    ch_exporter.bind_loop(loop)
    mem_exporter.bind_loop(loop)
    tracer = configure(ch_exporter, mem_exporter, delay=0.01, batch_size=50)
    ok = Agent(
        model=ScriptedModel([call("get_weather", {"city": "Rome"}), "Sunny."] * 6),
        tools=[get_weather],
        name="weather",
    )
    bad = Agent(model=ScriptedModel([RuntimeError("boom")] * 2), name="broken")
    results = [await ok.arun("Weather?", session_id=f"s{i % 2}", user_id="u") for i in range(6)]
    results += [await bad.arun("x") for _ in range(2)]
    assert await asyncio.to_thread(tracer.force_flush)
    assert [p.stats()["exported"] for p in tracer.processors] == [6 * 4 + 2 * 2] * 2

    # one trace, by id: same spans, same nesting as the reference store
    ch_trace = await store.get_trace(results[0].trace_id)
    mem_trace = await memory.traces.get_trace(results[0].trace_id)
    assert [(s.name, s.span_id, s.parent_id) for s in ch_trace] == [
        (s.name, s.span_id, s.parent_id) for s in mem_trace
    ]
    assert (
        ch_trace[1].attributes["gen_ai.usage.input_tokens"]
        == mem_trace[1].attributes["gen_ai.usage.input_tokens"]
    )
    # by run
    assert len(await store.list_spans(run_id=results[1].run_id)) == 4

    pushed, generic = TraceQueries(store), TraceQueries(memory)
    assert pushed.pushed_down and not generic.pushed_down
    for kwargs in ({}, {"agent": "weather"}, {"status": "failed"}, {"session_id": "s1"}):
        a = await pushed.list_traces(**kwargs)
        b = await generic.list_traces(**kwargs)
        assert [(r["trace_id"], r["status"], r["spans"], r["input_tokens"]) for r in a] == [
            (r["trace_id"], r["status"], r["spans"], r["input_tokens"]) for r in b
        ], kwargs
    assert len(await pushed.list_traces(status="failed")) == 2
    since = time.time() - 3600
    assert await pushed.list_traces(since=time.time() + 60) == []

    m_ch = await pushed.metrics(since=since, bucket=3600)
    m_py = await generic.metrics(since=since, bucket=3600)
    key = lambda r: (r["agent"] or "", r["model"] or "")  # noqa: E731
    assert sorted(m_ch, key=key) and len(m_ch) == len(m_py)
    for a, b in zip(sorted(m_ch, key=key), sorted(m_py, key=key), strict=True):
        for k in ("runs", "errors", "tool_calls", "input_tokens", "output_tokens"):
            assert a[k] == b[k], (k, a, b)
        for k in ("run_p50_ms", "model_p95_ms", "tool_p99_ms"):
            assert (a[k] is None) == (b[k] is None), (k, a, b)
    weather = next(r for r in m_ch if r["agent"] == "weather" and r["model"] == "scripted")
    assert weather["runs"] == 6 and weather["errors"] == 0
    broken = next(r for r in m_ch if r["agent"] == "broken" and r["runs"])
    assert broken["errors"] == 2
    # the same rows from spans in Python (what `vivace stats` does for other stores)
    assert sum(r["runs"] for r in aggregate(await memory.traces.list_spans(limit=1000))) == 8
    await store.close()


async def test_a_bad_database_name_is_refused() -> None:
    with pytest.raises(Exception, match="database name"):
        ClickHouseTraceStore("http://127.0.0.1:1", database="x; DROP TABLE y")
