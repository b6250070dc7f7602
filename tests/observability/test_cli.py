"""``vivace stats`` and ``vivace dev``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from vivace import Agent, tool
from vivace.cli import main
from vivace.observability import StorageExporter, configure, disable
from vivace.testing import ScriptedModel, call


@tool
def get_weather(city: str) -> str:
    """Weather."""
    return "Sunny"


def test_vivace_stats_reads_traced_runs(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    tracer = configure(StorageExporter(url), delay=0.01)
    agent = Agent(
        model=ScriptedModel([call("get_weather", {"city": "A"}), "ok"] * 3),
        tools=[get_weather],
        name="stats-agent",
    )
    for _ in range(3):
        agent.run("go")
    assert tracer.force_flush()
    disable()
    assert main(["stats", "--storage", url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    [row] = [r for r in rows if r["model"] == "scripted"]
    assert row["agent"] == "stats-agent" and row["runs"] == 3 and row["errors"] == 0
    assert row["input_tokens"] > 0 and row["run_p95_ms"] is not None
    [tools] = [r for r in rows if r["tool_calls"]]
    assert tools["tool_calls"] == 3
    assert main(["stats", "--storage", url, "--bucket", "hour"]) == 0
    out = capsys.readouterr().out
    assert "stats-agent" in out and "run p50/p95/p99 ms" in out
    assert main(["stats", "--storage", url, "--since", "soon"]) == 2
    assert "--since" in capsys.readouterr().err


def test_vivace_dev_serves_the_studio(tmp_path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "VIVACE_MODEL": "test/echo"}
    env.pop("VIVACE_STUDIO", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vivace.cli",
            "dev",
            "--no-reload",
            "--port",
            str(port),
            "--storage",
            f"sqlite:///{tmp_path / 'dev.db'}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                r = httpx.get(base + "/studio", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert r.status_code == 200 and "Vivace Studio" in r.text
        run = httpx.post(base + "/agents/assistant/runs", json={"input": "hello"}, timeout=10)
        assert run.status_code == 200
        trace_id = run.json()["trace_id"]
        for _ in range(50):
            t = httpx.get(f"{base}/studio/api/traces/{trace_id}")
            if t.status_code == 200:
                break
            time.sleep(0.1)
        assert t.json()["spans"][0]["name"] == "invoke_agent assistant"
        assert "vivace_runs_total" in httpx.get(base + "/metrics").text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert f"Vivace Studio: http://127.0.0.1:{port}/studio" in err.decode()


def test_vivace_serve_studio_with_json_logs_carrying_the_trace(tmp_path) -> None:
    """``vivace serve --studio --log-format json``: the Studio is served, and every log line
    of a request (the access log too) is JSON with the request's trace id."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "VIVACE_MODEL": "test/echo"}
    env.pop("VIVACE_STUDIO", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vivace.cli",
            "serve",
            "--studio",
            "--log-format",
            "json",
            "--port",
            str(port),
            "--storage",
            f"sqlite:///{tmp_path / 'serve.db'}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                r = httpx.get(base + "/studio", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert r.status_code == 200
        missing = httpx.get(base + "/no/such/route")
        trace_id = missing.json()["error"]["trace_id"]
        assert missing.headers["x-vivace-trace-id"] == trace_id
        run = httpx.post(base + "/agents/assistant/runs", json={"input": "hi"}, timeout=10)
        assert run.json()["trace_id"] == run.headers["x-vivace-trace-id"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    lines = [json.loads(x) for x in err.decode().splitlines() if x.startswith("{")]
    access = [x for x in lines if x["logger"] == "uvicorn.access"]
    [miss] = [x for x in access if "/no/such/route" in x["message"]]
    assert miss["trace_id"] == trace_id
    [ran] = [x for x in access if "/agents/assistant/runs" in x["message"]]
    assert ran["trace_id"] == run.json()["trace_id"]
    assert all(set(x) >= {"time", "level", "logger", "message", "trace_id"} for x in lines)
