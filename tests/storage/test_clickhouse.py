"""ClickHouse for the traces and scores domains, against a real ClickHouse server (Debian's
clickhouse-server, started here on free ports in a temporary folder; skipped with the reason
if it cannot): the same answers as the other backends, and the Studio reading it through a
composite storage."""

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
from vivace.storage import ClickHouseStorage, CompositeStorage, InMemoryStorage, open_storage
from vivace.testing import ScriptedModel, call

from .test_trace_queries import _filled, _ids, all_pages
from .trace_data import T0, _id

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


_DB = iter(range(1_000_000))


def _storage(url: str) -> ClickHouseStorage:
    return ClickHouseStorage(url, database=f"vivace_t{next(_DB)}")  # a database per test


async def test_the_same_answers_as_the_other_backends(clickhouse_url: str) -> None:
    ch = await _filled(_storage(clickhouse_url))
    ref = await _filled(InMemoryStorage())
    try:
        for kw in (
            {},
            {"agent": "weather"},
            {"model": "claude"},
            {"workflow": "pipeline"},
            {"user_id": "ann"},
            {"status": "failed"},
            {"status": "completed"},
            {"session_id": "s1b"},
            {"run_id": "run-1b"},
            {"since": T0, "until": T0 + 40},
            {"limit": 3},
        ):
            got = [r.to_dict() for r in await ch.traces.list_traces(**kw)]
            want = [r.to_dict() for r in await ref.traces.list_traces(**kw)]
            assert got == want, kw
        for size in (1, 3):
            assert _ids(await all_pages(ch.traces, size)) == [8, 7, 5, 4, 3, 2, 1, 6]
        got_trace = await ch.traces.get_trace(_id(1))
        want_trace = await ref.traces.get_trace(_id(1))
        assert [s.to_dict() for s in got_trace] == [s.to_dict() for s in want_trace]
        assert len(await ch.traces.list_spans(run_id="run-1b")) == 2
        # metrics: counts, tokens and cost equal; percentiles are ClickHouse's nearest value
        for kw in ({"since": T0}, {"since": T0 - 3 * 86400, "bucket": 3600}, {"agent": "weather"}):
            got_m = await ch.traces.trace_metrics(**kw)
            want_m = await ref.traces.trace_metrics(**kw)
            assert len(got_m) == len(want_m), kw
            for a, b in zip(got_m, want_m, strict=True):
                da, db = a.to_dict(), b.to_dict()
                for k in ("time", "agent", "model", "workflow", "runs", "errors", "tool_calls"):
                    assert da[k] == db[k], (kw, k, da, db)
                for k in ("model_requests", "input_tokens", "output_tokens", "cached_tokens"):
                    assert da[k] == db[k], (kw, k, da, db)
                assert da["cost_usd"] == pytest.approx(db["cost_usd"])
                for k, v in da.items():
                    if k.endswith("_ms"):
                        assert (v is None) == (db[k] is None), (k, da, db)
        # scores
        assert [s.to_dict() for s in await ch.scores.list_scores()] == [
            s.to_dict() for s in await ref.scores.list_scores()
        ]
        assert [
            s.score_id for s in await ch.scores.list_scores(limit=2, before=(T0 + 102, "sc-4"))
        ] == [
            "sc-3",
            "sc-2",
        ]
        for kw in ({}, {"scorer": "safety", "bucket": 2}, {"since": T0 + 101}):
            assert [s.to_dict() for s in await ch.scores.score_stats(**kw)] == [
                s.to_dict() for s in await ref.scores.score_stats(**kw)
            ], kw
        # a span written again (it ended) replaces the earlier row
        [first] = [s for s in await ch.traces.get_trace(_id(2)) if s.parent_id is None]
        first.name = "invoke_agent renamed"
        await ch.traces.write_spans([first])
        assert (await ch.traces.get_trace(_id(2)))[0].name == "invoke_agent renamed"
        assert await ch.traces.prune(T0 - 86400) == 4
    finally:
        await ch.close()


async def test_the_studio_reads_traces_from_clickhouse_in_a_composite_storage(
    clickhouse_url: str, tmp_path
) -> None:
    """Sessions in SQLite, traces and scores in ClickHouse; runs traced through the Studio's
    storage exporter; the Studio's API answers from ClickHouse."""
    from vivace.server import VivaceApp
    from vivace.storage import SQLiteStorage
    from vivace.studio import Studio

    ch = _storage(clickhouse_url)
    storage = CompositeStorage(default=SQLiteStorage(tmp_path / "v.db"), traces=ch, scores=ch)
    agent = Agent(
        model=ScriptedModel([call("get_weather", {"city": "Rome"}), "Sunny."] * 3),
        tools=[get_weather],
        name="weather",
    )
    studio = Studio()
    app = VivaceApp([agent], storage=storage, auth=False, extensions=[studio])
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c,
    ):
        runs = [
            (
                await c.post("/agents/weather/runs", json={"input": "Weather?", "user_id": "u"})
            ).json()
            for _ in range(3)
        ]
        assert await asyncio.to_thread(studio.tracing.tracer.force_flush)
        # in ClickHouse, not in SQLite
        assert len(await ch.traces.get_trace(runs[0]["trace_id"])) == 6
        assert await storage.default.traces.list_traces() == []
        page = (await c.get("/studio/api/traces", params={"limit": 2})).json()
        assert [t["trace_id"] for t in page["traces"]] == [r["trace_id"] for r in runs[:0:-1]]
        rest = (await c.get("/studio/api/traces", params={"cursor": page["next_cursor"]})).json()
        assert [t["trace_id"] for t in rest["traces"]] == [runs[0]["trace_id"]]
        assert rest["next_cursor"] is None
        assert page["traces"][0]["input_tokens"] > 0 and page["traces"][0]["spans"] == 6
        spans = (await c.get(f"/studio/api/traces/{runs[0]['trace_id']}")).json()["spans"]
        assert spans[0]["name"] == "invoke_agent weather"
        [row] = [
            r
            for r in (await c.get("/studio/api/metrics")).json()["rows"]
            if r["model"] == "scripted"
        ]
        assert row["runs"] == 3 and row["model_requests"] == 6
        from vivace.storage import ScoreRecord

        await storage.scores.add_score(
            ScoreRecord(
                "s1", "helpful", 0.9, run_id=runs[0]["run_id"], trace_id=runs[0]["trace_id"]
            )
        )
        scored = (
            await c.get("/studio/api/scores", params={"trace_id": runs[0]["trace_id"]})
        ).json()
        assert [s["score"] for s in scored["scores"]] == [0.9]
        stats = (await c.get("/studio/api/scores/stats")).json()["rows"]
        assert stats == [
            {"time": None, "scorer": "helpful", "count": 1, "mean": 0.9, "min": 0.9, "max": 0.9}
        ]
    await storage.close()


async def test_only_traces_and_scores_live_in_clickhouse() -> None:
    ch = open_storage("clickhouse://reader:s%40cret@127.0.0.1:8123/metrics_db")
    assert isinstance(ch, ClickHouseStorage)
    assert (ch.conn.url, ch.conn.database) == ("http://127.0.0.1:8123", "metrics_db")
    assert ch.conn.headers == {"X-ClickHouse-User": "reader", "X-ClickHouse-Key": "s@cret"}
    assert "s@cret" not in repr(ch)
    with pytest.raises(Exception, match="traces and scores domains, not sessions"):
        ch.sessions  # noqa: B018
    with pytest.raises(Exception, match="database name"):
        ClickHouseStorage("http://127.0.0.1:1", database="x; DROP TABLE y")


async def test_an_unreachable_clickhouse_is_a_storage_error() -> None:
    from vivace.errors import StorageError

    with pytest.raises(StorageError, match="unreachable"):
        await ClickHouseStorage("http://127.0.0.1:9", database="v").traces.list_traces()
