"""MCPToolset against real MCP servers nobody here wrote: mcp-server-time, mcp-server-git
(PyPI, stdio) and server-everything (npm: stdio, streamable HTTP, SSE)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from vivace import Agent
from vivace.agent.events import ToolCallCompleted
from vivace.mcp import MCPConnectionError, MCPToolset
from vivace.testing import FunctionModel, ScriptedModel, call
from vivace.tools import ModelRetry, RunContext

pytest.importorskip("mcp")


async def test_time_server_over_stdio_in_an_agent_run(time_cmd: Any, child_pids: Any) -> None:
    async with MCPToolset(time_cmd[0], time_cmd[1], name="time") as time:
        agent = Agent(
            model=ScriptedModel([call("get_current_time", {"timezone": "Asia/Tokyo"}), "ok"] * 2),
            tools=[time],
        )
        stream = agent.astream("time in Tokyo?")
        events = [e async for e in stream]
        done = next(e for e in events if isinstance(e, ToolCallCompleted))
        assert not done.is_error, done.result
        assert done.result["timezone"] == "Asia/Tokyo" and "datetime" in done.result
        # the schema reached the model as the server gave it
        defs = {d.name: d for d in agent.model.requests[0].tools}  # type: ignore[union-attr]
        assert set(defs) == {"get_current_time", "convert_time"}
        assert defs["convert_time"].parameters["required"] == [
            "source_timezone",
            "time",
            "target_timezone",
        ]
        await agent.arun("again")
        assert time.connections == 1  # one connection for both runs
        ctx = RunContext("r")
        assert await time.tools_for_run(ctx) is await time.tools_for_run(ctx)  # listed once
        converted = await time.call_tool(
            "convert_time",
            {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Europe/Paris"},
        )
        assert converted["target"]["timezone"] == "Europe/Paris"
        assert len(child_pids()) == 1
    assert child_pids() == []  # the server process ended with the toolset


async def test_git_server_reads_a_real_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("hello\n")
    subprocess.run([*git, "-C", str(repo), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "first commit"], check=True)
    (repo / "b.txt").write_text("new\n")
    async with MCPToolset(
        sys.executable, ["-m", "mcp_server_git", "--repository", str(repo)]
    ) as git_ts:
        names = {d.name for d in await git_ts.list_tools()}
        assert {"git_status", "git_log"} <= names
        status = await git_ts.call_tool("git_status", {"repo_path": str(repo)})
        assert "b.txt" in str(status)
        log = await git_ts.call_tool("git_log", {"repo_path": str(repo)})
        assert "first commit" in str(log)


async def test_everything_over_stdio_tools_resources_prompts(everything_cmd: Any) -> None:
    async with MCPToolset(*everything_cmd, prefix="ev") as ev:
        tools = {d.name: d for d in await ev.list_tools()}
        assert {"ev_echo", "ev_get-sum"} <= set(tools)
        assert tools["ev_echo"].parameters["required"] == ["message"]
        agent = Agent(
            model=ScriptedModel([call("ev_get-sum", {"a": 2, "b": 40}), "done"]), tools=[ev]
        )
        stream = agent.astream("add")
        events = [e async for e in stream]
        done = next(e for e in events if isinstance(e, ToolCallCompleted))
        assert "42" in str(done.result) and not done.is_error
        resources = await ev.list_resources()
        assert resources and all(r["uri"] for r in resources)
        text = await ev.read_resource(resources[0]["uri"])
        assert isinstance(text, str) and text
        prompts = {p["name"]: p for p in await ev.list_prompts()}
        assert "args-prompt" in prompts
        messages = await ev.get_prompt("args-prompt", {"city": "Lyon"})
        assert messages and "Lyon" in messages[0].text
        # a tool's error result is an error the model sees, not a crash
        with pytest.raises(ModelRetry):
            await ev.call_tool("get-sum", {"a": "x"})


async def test_streamable_http_shared_by_concurrent_runs(everything_http: str) -> None:
    ev = MCPToolset(url=everything_http)
    assert ev.transport == "http"

    def model(messages: Any, request: Any) -> Any:
        last = messages[-1]
        if last.role == "user":
            return call("echo", {"message": last.text})
        return str(last.parts[0].content)

    agent = Agent(model=FunctionModel(model), tools=[ev])
    results = await asyncio.gather(*(agent.arun(f"m{i}") for i in range(8)))
    assert [r.output for r in results] == [f"Echo: m{i}" for i in range(8)]
    assert ev.connections == 1  # lazy, opened once, shared by the 8 concurrent runs
    await ev.aclose()


async def test_the_older_sse_transport(everything_sse: str) -> None:
    async with MCPToolset(url=everything_sse) as ev:
        assert ev.transport == "sse"
        assert await ev.call_tool("echo", {"message": "over sse"}) == "Echo: over sse"


async def test_a_slow_call_times_out_as_a_tool_error_and_the_run_goes_on(
    everything_cmd: Any,
) -> None:
    async with MCPToolset(*everything_cmd, timeout=0.5) as ev:
        agent = Agent(
            model=ScriptedModel(
                [call("trigger-long-running-operation", {"duration": 5, "steps": 5}), "gave up"]
            ),
            tools=[ev],
        )
        stream = agent.astream("slow")
        events = [e async for e in stream]
        done = next(e for e in events if isinstance(e, ToolCallCompleted))
        assert done.is_error and "did not answer" in done.result
        assert stream.result is not None and stream.result.output == "gave up"
        assert await ev.call_tool("echo", {"message": "still here"}) == "Echo: still here"


async def test_server_killed_mid_run_recovers(everything_cmd: Any, child_pids: Any) -> None:
    ev = MCPToolset(*everything_cmd, backoff=0.05)
    turns: list[Any] = []

    async def model(messages: Any, request: Any) -> Any:
        n = len(turns)
        turns.append(messages[-1])
        if n == 0:
            return call("echo", {"message": "one"})
        if n == 1:  # the server dies between two calls: the next call reconnects
            for pid in child_pids():
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.2)
            return call("echo", {"message": "two"})
        if n == 2:  # the server dies during a call: a tool error the model can recover from

            async def kill_soon() -> None:
                await asyncio.sleep(0.3)
                for pid in child_pids():
                    os.kill(pid, signal.SIGKILL)

            asyncio.get_running_loop().create_task(kill_soon())
            return call("trigger-long-running-operation", {"duration": 10, "steps": 2})
        if n == 3:
            return call("echo", {"message": "three"})
        return "recovered"

    agent = Agent(model=FunctionModel(model), tools=[ev])
    stream = agent.astream("go")
    events = [e async for e in stream]
    results = [(e.name, e.is_error, e.result) for e in events if isinstance(e, ToolCallCompleted)]
    assert results[0] == ("echo", False, "Echo: one")
    assert results[1] == ("echo", False, "Echo: two")
    assert results[2][0] == "trigger-long-running-operation" and results[2][1]
    assert "stopped during the call" in results[2][2]
    assert results[3] == ("echo", False, "Echo: three")
    assert stream.result is not None and stream.result.output == "recovered"
    assert ev.connections == 3
    await ev.aclose()
    await asyncio.sleep(0.1)
    assert child_pids() == []


async def test_a_server_that_cannot_start_fails_the_run_with_a_typed_error() -> None:
    ts = MCPToolset(sys.executable, ["-c", "import sys; sys.exit(3)"], reconnects=2, backoff=0.01)
    result = await Agent(model=ScriptedModel(["x"]), tools=[ts]).arun("hi")
    assert result.status == "failed"
    assert isinstance(result.error, MCPConnectionError)
    assert "cannot connect" in result.error.message


def test_no_orphan_server_when_the_program_ends_without_closing(
    tmp_path: Path, time_cmd: Any
) -> None:
    script = tmp_path / "prog.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, os
            from vivace.mcp import MCPToolset

            async def main():
                ts = MCPToolset({time_cmd[0]!r}, {time_cmd[1]!r})
                await ts.call_tool("get_current_time", {{"timezone": "UTC"}})
                kids = [p for p in os.listdir("/proc") if p.isdigit() and
                        open(f"/proc/{{p}}/stat").read().rsplit(")", 1)[1].split()[1] == str(os.getpid())]
                print(" ".join(kids), flush=True)
                # no aclose(): asyncio.run ends and cancels the connection's task

            asyncio.run(main())
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    pids = [int(p) for p in out.stdout.split()]
    assert pids
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )


def test_bad_configuration_is_a_typed_error() -> None:
    from vivace.errors import ToolDefinitionError

    with pytest.raises(ToolDefinitionError):
        MCPToolset()
    with pytest.raises(ToolDefinitionError):
        MCPToolset("cmd", url="http://x")
    with pytest.raises(ToolDefinitionError):
        MCPToolset(url="http://x/mcp", transport="stdio")
    assert MCPToolset(url="http://x/sse").transport == "sse"
