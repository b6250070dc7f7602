"""Vivace agents and tools served over MCP, checked with the official ``mcp`` Python client
and the MCP Inspector's CLI (npm), over stdio (``vivace mcp``) and streamable HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import mcp
from mcp.client.stdio import StdioServerParameters

HERE = Path(__file__).resolve().parent
STDIO = StdioServerParameters(
    command=sys.executable, args=["-m", "vivace.cli", "mcp", "mcp_app:app"], cwd=str(HERE)
)


async def test_official_client_over_stdio_lists_calls_and_gets_progress() -> None:
    async with mcp.Client(STDIO) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"forecaster", "get_weather"}
        assert tools["forecaster"].input_schema["required"] == ["task"]
        assert tools["get_weather"].input_schema["properties"]["city"]["type"] == "string"
        progress: list[tuple[float, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, message))

        result = await client.call_tool(
            "forecaster", {"task": "Lyon"}, progress_callback=on_progress
        )
        assert not result.is_error
        assert result.content[0].text == "It is sunny in Lyon, 21 C."  # type: ignore[union-attr]
        messages = [m for _, m in progress]
        assert messages == [
            "step 1: asking the model",
            "calling get_weather",
            "step 2: asking the model",
        ]
        values = [v for v, _ in progress]  # MUST increase with each notification (the spec)
        assert values == sorted(set(values)), values
        plain = await client.call_tool("get_weather", {"city": "Oslo"})
        assert plain.structured_content == {"city": "Oslo", "sky": "sunny", "celsius": 21}
        bad = await client.call_tool("get_weather", {})
        assert bad.is_error and "city" in bad.content[0].text  # type: ignore[union-attr]
        unknown = await client.call_tool("nope", {})
        assert unknown.is_error


async def test_official_client_over_streamable_http(serve_asgi: Any) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import mcp_app
    finally:
        sys.path.remove(str(HERE))
    from vivace import Agent
    from vivace.mcp.server import build_mcp_server, mcp_http_app
    from vivace.testing import ScriptedModel

    broken = Agent(model=ScriptedModel([RuntimeError("model down")]), name="broken")
    server = build_mcp_server([mcp_app.forecaster, broken], [mcp_app.get_weather])
    base = serve_asgi(mcp_http_app(server))
    async with mcp.Client(f"{base}/mcp") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"forecaster", "get_weather", "broken"}
        seen: list[str | None] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            seen.append(message)

        result = await client.call_tool(
            "forecaster", {"task": "Rome"}, progress_callback=on_progress
        )
        assert result.content[0].text == "It is sunny in Rome, 21 C."  # type: ignore[union-attr]
        assert "calling get_weather" in seen
        # an agent's result names its run and trace in _meta (a client error leads to it)
        meta = result.meta or {}
        assert len(meta.get("trace_id") or "") == 32 and meta.get("run_id")
        failed = await client.call_tool("broken", {"task": "anything"})
        assert failed.is_error and "model down" in failed.content[0].text  # type: ignore[union-attr]
        assert len((failed.meta or {}).get("trace_id") or "") == 32


def _inspector(js_modules: Path, *args: str) -> Any:
    cli = js_modules / "@modelcontextprotocol" / "inspector" / "cli" / "build" / "cli.js"
    out = subprocess.run(
        ["node", str(cli), "--cli", *args],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_inspector_cli_over_stdio(js_modules: Path) -> None:
    cmd = [sys.executable, "-m", "vivace.cli", "mcp", "mcp_app:app"]
    listed = _inspector(js_modules, *cmd, "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == {"forecaster", "get_weather"}
    called = _inspector(
        js_modules,
        *cmd,
        "--method",
        "tools/call",
        "--tool-name",
        "forecaster",
        "--tool-arg",
        "task=Paris",
    )
    assert called["content"][0]["text"] == "It is sunny in Paris, 21 C."


def test_inspector_cli_over_http(js_modules: Path, serve_asgi: Any) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import mcp_app
    finally:
        sys.path.remove(str(HERE))
    from vivace.mcp.server import build_mcp_server, mcp_http_app

    base = serve_asgi(mcp_http_app(build_mcp_server([mcp_app.forecaster], [mcp_app.get_weather])))
    called = _inspector(
        js_modules,
        f"{base}/mcp",
        "--transport",
        "http",
        "--method",
        "tools/call",
        "--tool-name",
        "get_weather",
        "--tool-arg",
        "city=Nice",
    )
    assert json.loads(called["content"][0]["text"])["city"] == "Nice"


def test_duplicate_names_are_a_typed_error() -> None:
    from vivace import Agent
    from vivace.errors import UserError
    from vivace.mcp.server import build_mcp_server

    def forecaster() -> str:
        return "x"

    with pytest.raises(UserError, match="two MCP tools"):
        build_mcp_server([Agent(name="forecaster")], [forecaster])
