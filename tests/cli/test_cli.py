"""The ``vivace`` command: serve (bare, with the example app), run and models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.server.conftest import ServeProcess, parse_sse

REPO = Path(__file__).resolve().parents[2]


def _cli(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vivace.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _clean_env() -> dict[str, str]:
    from vivace.models.router import list_providers

    env = {row.key_env: "" for row in list_providers() if row.key_env}
    env.update(VIVACE_MODEL="", VIVACE_API_KEY="")
    return env


def test_run_streams_tool_calls_and_text() -> None:
    p = _cli("run", "tests.server.apps:app", "--agent", "weather", "weather?")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        '→ get_weather({"city": "Paris"})',
        "  ← sunny in Paris",
        "done: sunny in Paris",
    ]


def test_run_json_events_and_approval() -> None:
    p = _cli("run", "tests.server.apps:app", "--agent", "approver", "delete", "--yes")
    assert p.returncode == 0, p.stderr
    assert "→ delete_file" in p.stdout and "done: deleted /tmp/x" in p.stdout
    p = _cli("run", "tests.server.apps:app", "--agent", "approver", "delete")
    assert p.returncode == 3 and "--yes" in p.stderr  # stdin is not a tty
    p = _cli("run", "tests.server.apps:app", "--agent", "echo", "hi", "--json")
    import json

    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["output"] == "echo: hi"


def test_run_bad_targets() -> None:
    p = _cli("run", "no_such_module:agent", "x")
    assert p.returncode == 2 and "cannot import" in p.stderr
    p = _cli("run", "tests.server.apps:nothing", "x")
    assert p.returncode == 2 and "no attribute" in p.stderr
    p = _cli("run", "tests.server.apps:app", "x")
    assert p.returncode == 2 and "--agent" in p.stderr


def test_models_table() -> None:
    p = _cli("models", env={"OPENAI_API_KEY": "sk-x"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "PROTOCOL"]
    openai_row = next(line for line in lines if line.startswith("openai "))
    assert "OPENAI_API_KEY" in openai_row and "yes" in openai_row


def test_bare_serve_runs_the_example_offline(tmp_path: Path) -> None:
    """`vivace serve` with no argument on a fresh dir: example app, demo model, SQLite in .vivace/."""
    srv = ServeProcess(
        "",
        env={**_clean_env(), "PYTHONPATH": str(REPO), "VIVACE_STORAGE_URL": ""},
        cwd=tmp_path,
    )
    srv.cmd.remove("")  # no target at all
    with srv, httpx.Client(base_url=srv.url, timeout=20) as c:
        agents = c.get("/agents").json()["agents"]
        assert agents[0]["id"] == "assistant"
        assert agents[0]["model"] == "test/offline-demo"
        r = c.post(
            "/agents/assistant/runs",
            json={"input": "hello vivace", "stream": True, "session_id": "demo"},
        )
        frames = parse_sse(r.text)
        types = [f["event"] for f in frames]
        assert "tool_call_started" in types and types[-1] == "run_completed"
        out = frames[-1]["data"]["output"]
        assert out.startswith("[offline demo model]") and "OPENAI_API_KEY" in out
    assert (tmp_path / ".vivace" / "vivace.db").exists()


def test_serve_bad_target(tmp_path: Path) -> None:
    p = _cli("serve", "tests.server.apps:missing", "--port", "1", cwd=tmp_path)
    assert p.returncode == 2 and "no attribute" in p.stderr
    assert not (tmp_path / ".vivace").exists()


def test_main_is_importable_and_light() -> None:
    code = (
        "import sys, vivace.cli; vivace.cli.main; "
        "print(any(m.startswith(('starlette', 'uvicorn', 'vivace.server')) for m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert p.stdout.strip() == "False"


def test_vivace_mcp_serves_copies_and_leaves_the_apps_agents_alone() -> None:
    """``vivace mcp`` runs agents without storage on the app's storage through copies
    (regression: it set ``storage`` on the app's own Agent objects)."""
    from types import SimpleNamespace

    from vivace import Agent
    from vivace.cli.mcp import served_parts
    from vivace.storage import InMemoryStorage

    storage = InMemoryStorage()
    mine = Agent(name="mine")
    own = Agent(name="own", storage=InMemoryStorage())
    agents, tools, workflows = served_parts(
        SimpleNamespace(agents=[mine, own], storage=storage, tools=[len], workflows={})
    )
    assert mine.storage is None  # unchanged
    assert [a.name for a in agents] == ["mine", "own"] and agents[0].storage is storage
    assert agents[1] is own  # an agent with storage of its own is served as it is
    assert tools == [len] and workflows == []


def _worker_gc(env: dict[str, str]) -> list[int]:
    """What ``vivace serve``'s worker factory leaves the collector at: thresholds + frozen."""
    code = (
        "import gc; from vivace.cli._load import factory; factory(); "
        "print(*gc.get_threshold(), gc.get_freeze_count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **_clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [int(x) for x in out.stdout.split()]


def test_server_workers_freeze_the_app_and_collect_less_often() -> None:
    """A worker's collector took 11-12% of its CPU per run (full collections re-scanning the
    app's own objects); ``vivace serve`` workers freeze what the app built and raise the
    thresholds, ``VIVACE_GC=default`` leaves Python's settings."""
    import gc

    target = {"VIVACE_SERVE_TARGET": "tests.server.apps:app"}
    *thresholds, frozen = _worker_gc(target)
    assert thresholds == [7000, 10, 10] and frozen > 10_000
    *thresholds, frozen = _worker_gc({**target, "VIVACE_GC": "default"})
    assert thresholds == list(gc.get_threshold()) and frozen == 0
