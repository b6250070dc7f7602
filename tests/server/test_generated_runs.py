"""The server gives what the Python API gives: the generated scripts of
``tests/core/test_run_paths.py`` (text, empty answers, reasoning, mixed tool calls with bad
arguments, retries, failures, unknown tools, approvals, ``stop_after``, ``final_result``;
random budgets and output modes) run through ``POST /agents/{id}/runs`` as JSON and as an
SSE stream, and must end as ``agent.arun`` ends: status, output, error, usage, messages, the
stream's terminal event."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.core.test_run_paths import _generated, flaky_calls
from vivace.server import VivaceApp

from .conftest import parse_sse


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


async def _post(make: Any, stream: bool) -> httpx.Response:
    flaky_calls.clear()
    agent, prompt, options = make()
    app = VivaceApp(agents=[agent], auth=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as c:
        body = {"input": prompt, "max_steps": options["max_steps"], "stream": stream}
        return await c.post("/agents/agent/runs", json=body)


async def test_generated_runs_end_over_http_as_they_end_in_python() -> None:
    ends = {"completed": "run_completed", "failed": "run_failed", "paused": "run_paused"}
    for seed in range(150):
        make = _generated(seed)
        flaky_calls.clear()
        agent, prompt, options = make()
        expected = (await agent.arun(prompt, **options)).to_dict()
        r = await _post(make, stream=False)
        assert r.status_code == 200, (seed, r.text)
        got = r.json()
        for key in ("status", "output", "usage", "messages"):
            assert _same(got[key], expected[key]), (seed, key)
        assert (got["error"] or {}).get("code") == (expected["error"] or {}).get("code"), seed
        if expected["paused"]:
            assert _same(got["paused"]["pending"], expected["paused"]["pending"]), seed
        frames = parse_sse((await _post(make, stream=True)).text)
        last = frames[-1]["data"]
        assert last["type"] == ends[expected["status"]], seed
        assert [f["data"]["seq"] for f in frames] == list(range(len(frames))), seed
        if expected["status"] == "completed":
            assert _same(last["output"], expected["output"]), seed
            assert _same(last["usage"], expected["usage"]), seed
