"""The server does at startup what the first run would otherwise do while its client waits:
the run loop and each agent's model adapter are imported and each agent's tool plan (schemas,
definitions, argument validators) is built in the app's lifespan, so the first request imports nothing and builds
no tool; an agent whose tools cannot be planned still lets the server start, and its first
run reports the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from vivace import Agent, tool
from vivace.server import VivaceApp
from vivace.testing import ScriptedModel, call

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import asyncio, json, sys
import httpx
from vivace import Agent
from vivace.server import VivaceApp
from vivace.testing import ScriptedModel, call


def lookup(word: str, limit: int = 3) -> str:
    '''Look a word up.'''
    return f"{word} 词典 📖"


agent = Agent(
    model=ScriptedModel([call("lookup", {"word": "茶"}), "found"]), name="dict", tools=[lookup]
)
remote = Agent(model="openai/gpt-4o-mini", name="remote")  # never run here
app = VivaceApp(agents=[agent, remote], auth=False)


async def main():
    async with app.lifespan():
        from pydantic import BaseModel

        before, models = set(sys.modules), len(BaseModel.__subclasses__())
        adapter = "vivace.models.protocols.openai_chat" in before and "aiohttp" in before
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://testserver"
        ) as c:
            r = await c.post("/agents/dict/runs", json={"input": "查 茶"})
        new = sorted(m for m in set(sys.modules) - before if m.startswith("vivace"))
        made = len(BaseModel.__subclasses__()) - models  # e.g. a tool's arguments model
        print(json.dumps({"status": r.status_code, "output": r.json()["output"], "new": new,
                          "models": made, "adapter": adapter}))


asyncio.run(main())
"""


def test_the_first_run_after_startup_imports_and_builds_nothing() -> None:
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-test"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    import json

    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and out["output"] == "found"
    assert out["new"] == []  # the run loop, tools and schemas were imported at startup
    assert out["models"] == 0  # and the tool's arguments model built then
    assert out["adapter"] is True  # the remote agent's model adapter and HTTP client too


async def test_an_agent_whose_tools_cannot_be_planned_still_starts_and_its_run_says_why() -> None:
    @tool(name="same")
    def first(x: int) -> int:
        """One."""
        return x

    @tool(name="same")
    def second(x: int) -> int:
        """Two."""
        return x

    agent = Agent(
        model=ScriptedModel([call("same", {"x": 1}), "ok"]), name="clash", tools=[first, second]
    )
    app = VivaceApp(agents=[agent], auth=False)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c,
    ):
        assert (await c.get("/health")).status_code == 200
        r = await c.post("/agents/clash/runs", json={"input": "go"})
    body = r.json()
    assert body["status"] == "failed"
    assert "two different tools are named 'same'" in body["error"]["message"]
