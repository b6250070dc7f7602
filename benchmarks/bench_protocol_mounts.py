"""What the protocol endpoints cost, in process (ASGI, no network, CPU time per request):

1. The ordinary routes with the protocol routes mounted (``VivaceApp()``, the default) and
   without (``protocols=False``), interleaved rounds: ``POST /agents/{id}/runs`` (a run of a
   test model, no storage) and ``GET /agents/{id}``. The mounts must cost them nothing.
2. The first request to each protocol endpoint (it imports the SDK and builds its objects),
   then its steady cost per request next to the REST run route: MCP ``tools/call`` of the
   agent, A2A ``SendMessage``, AG-UI run.

Run from the repo root with the project's venv (no comparison packages needed)::

    .venv/bin/python benchmarks/bench_protocol_mounts.py [--requests 1500] [--rounds 6]

``--profile`` prints a cProfile of each steady measurement of part 2 (MCP, A2A, AG-UI, REST
run; part 1's A/B is not profiled: its question is answered by the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

import httpx
from _common import PROFILE_ENV, profiling

from vivace import Agent
from vivace.server import VivaceApp
from vivace.testing import FunctionModel

SSE = {"accept": "application/json, text/event-stream"}


def make(protocols: Any) -> VivaceApp:
    agent = Agent(model=FunctionModel(lambda m, r: "ok"), name="weather")
    return VivaceApp(agents=[agent], auth=False, protocols=protocols)


async def cpu_per_request(c: httpx.AsyncClient, n: int, send: Any) -> float:
    t = time.process_time()
    for _ in range(n):
        r = await send(c)
        assert r.status_code == 200, r.text
    return (time.process_time() - t) / n


def rest_run(c: httpx.AsyncClient) -> Any:
    return c.post("/agents/weather/runs", json={"input": "hi"})


def agent_info(c: httpx.AsyncClient) -> Any:
    return c.get("/agents/weather")


def mcp_call(c: httpx.AsyncClient) -> Any:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "weather", "arguments": {"task": "hi"}},
    }
    return c.post("/mcp", json=body, headers=SSE)


def a2a_send(c: httpx.AsyncClient) -> Any:
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    return c.post("/a2a/weather/", json=body, headers={"A2A-Version": "1.0"})


def agui_run(c: httpx.AsyncClient) -> Any:
    body = {
        "threadId": "t",
        "runId": "r",
        "messages": [{"id": "1", "role": "user", "content": "hi"}],
    }
    return c.post("/agents/weather/agui", json=body)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=1500, help="requests per measurement")
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds of the A/B")
    p.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of each steady measurement of part 2 (top functions)",
    )
    args = p.parse_args()
    if args.profile:
        os.environ[PROFILE_ENV] = "1"
    n = args.requests

    on, off = make(None), make(False)
    print(f"mounted: {on.protocols or 'none'} vs {off.protocols or 'none'}")
    results: dict[str, list[tuple[float, float]]] = {"mounted": [], "not mounted": []}
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1")
        for name, app in (("mounted", on), ("not mounted", off))
    }
    for c in clients.values():
        for _ in range(50):  # warm up
            await rest_run(c)
    for i in range(args.rounds):
        order = list(clients.items()) if i % 2 == 0 else list(clients.items())[::-1]
        for name, c in order:
            runs = await cpu_per_request(c, n, rest_run)
            info = await cpu_per_request(c, n, agent_info)
            results[name].append((runs, info))
    print(f"\n1. ordinary routes, CPU per request (median of {args.rounds} rounds of {n}):")
    for name, vals in results.items():
        runs = statistics.median(v[0] for v in vals) * 1e6
        info = statistics.median(v[1] for v in vals) * 1e6
        print(
            f"   protocols {name:11}  POST /agents/{{id}}/runs {runs:5.0f} us   GET /agents/{{id}} {info:4.0f} us"
        )

    print("\n2. protocol endpoints (protocols mounted):")
    c = clients["mounted"]
    for label, send in (
        ("MCP tools/call", mcp_call),
        ("A2A SendMessage", a2a_send),
        ("AG-UI run", agui_run),
    ):
        t = time.perf_counter()
        r = await send(c)
        assert r.status_code == 200, r.text
        first = time.perf_counter() - t
        for _ in range(20):
            await send(c)
        with profiling(f"{label}, {max(n // 5, 50)} steady requests"):
            steady = await cpu_per_request(c, max(n // 5, 50), send)
        print(
            f"   {label:16} first request {first * 1e3:6.0f} ms (SDK import + build), then {steady * 1e6:5.0f} us CPU per request"
        )
    with profiling(f"REST run, {max(n // 5, 50)} steady requests"):
        rest = await cpu_per_request(c, max(n // 5, 50), rest_run)
    print(f"   {'REST run':16} {'':33}{rest * 1e6:5.0f} us CPU per request")
    for c in clients.values():
        await c.aclose()
    await on.mounts.aclose()


if __name__ == "__main__":
    asyncio.run(main())
