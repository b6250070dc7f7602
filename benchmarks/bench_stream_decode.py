"""Streaming decode throughput: chunks/s through Vivace's OpenAI Chat adapter, the official
``openai`` client and Agno's ``OpenAIChat``, against one local fake server.

The server (Vivace's ``FakeOpenAIChat``, in its own process so it does not share the CPU
time of the measured client's event loop... it still shares the machine) streams a long
answer - ``--chunks`` ``chat.completion.chunk`` records of 4 characters each, then the
finish chunk, the usage-only chunk and ``[DONE]`` - as fast as it can (pre-rendered bytes).
Each client streams the whole answer ``--rounds`` times (rounds interleaved across the
clients); the figure is the median of total content chunks received per second.

Run (creates/reuses ``.bench-venv/`` with ``agno==3.1.10 openai`` and the repo)::

    python benchmarks/bench_stream_decode.py            # --chunks 20000 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROFILE_ENV, machine_note, profiled

TARGET = 2.0  # at least 2x the official client


# -- the server process -------------------------------------------------------------------------


def serve(chunks: int) -> None:
    from vivace.testing.fake_providers import FakeOpenAIChat, Turn
    from vivace.testing.fake_providers.base import RecordedRequest

    class BenchServer(FakeOpenAIChat):
        _cache: dict[str, list[bytes]] = {}

        def render_events(self, turn: Turn, req: RecordedRequest) -> list[bytes]:
            key = json.dumps([req.json.get("model"), bool(req.json.get("stream_options"))])
            if key not in self._cache:
                self._cache[key] = [b"".join(super().render_events(turn, req))]
            return self._cache[key]

    srv = BenchServer()
    srv.default = Turn(text="abcd" * chunks, chunk_chars=4, response_id="chatcmpl-bench")
    with srv:
        print(srv.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin


# -- the clients ----------------------------------------------------------------------------------


async def run_vivace(base_url: str) -> int:
    from vivace.messages import Message
    from vivace.models import ModelRequest, TextDelta
    from vivace.models.router import get_model

    model = _cache.get("vivace")
    if model is None:
        model = _cache["vivace"] = get_model(
            "openai/bench-model", base_url=base_url, api_key="sk-bench"
        )
    n = 0
    async for ev in model.stream(ModelRequest([Message.user("Write a long answer.")])):
        if type(ev) is TextDelta:
            n += 1
    return n


async def run_openai(base_url: str) -> int:
    from openai import AsyncOpenAI

    client = _cache.get("openai")
    if client is None:
        client = _cache["openai"] = AsyncOpenAI(base_url=base_url, api_key="sk-bench")
    stream = await client.chat.completions.create(
        model="bench-model",
        messages=[{"role": "user", "content": "Write a long answer."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    n = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            n += 1
    return n


async def run_agno(base_url: str) -> int:
    from agno.models.message import Message
    from agno.models.openai import OpenAIChat

    model = _cache.get("agno")
    if model is None:
        model = _cache["agno"] = OpenAIChat(id="bench-model", base_url=base_url, api_key="sk-bench")
    n = 0
    async for resp in model.ainvoke_stream(
        messages=[Message(role="user", content="Write a long answer.")],
        assistant_message=Message(role="assistant"),
    ):
        if resp.content:
            n += 1
    return n


_cache: dict[str, Any] = {}
CLIENTS = {"Vivace": run_vivace, "openai": run_openai, "Agno OpenAIChat": run_agno}


async def measure(base_url: str, rounds: int, chunks: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in CLIENTS}
    for name, fn in CLIENTS.items():  # warm-up: imports, connections, server caches
        got = await fn(base_url)
        if got != chunks:
            raise SystemExit(f"{name} received {got} chunks, expected {chunks}")
    for _ in range(rounds):
        for name, fn in CLIENTS.items():
            t0 = time.perf_counter()
            got = await fn(base_url)
            rates[name].append(got / (time.perf_counter() - t0))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of the measuring process (all clients, Vivace's lines included)",
    )
    args = ap.parse_args()
    if args.serve:
        serve(args.chunks)
        return

    from _venv import reexec_in_venv

    reexec_in_venv(["agno==3.1.10", "openai"])

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--chunks", str(args.chunks)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        if args.profile:
            os.environ[PROFILE_ENV] = "1"
        rates = profiled(
            lambda: asyncio.run(measure(base_url, args.rounds, args.chunks)), "stream decode"
        )
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(10)

    med = {name: statistics.median(v) for name, v in rates.items()}
    viv = med["Vivace"]
    print(f"\nStreaming decode throughput ({machine_note()})")
    print(f"{args.chunks} content chunks per answer, median of {args.rounds} rounds\n")
    head = ["client", "chunks/s", "us/chunk", "Vivace speed-up"]
    rows = [
        [name, f"{r:,.0f}", f"{1e6 / r:.2f}", "1.0x" if name == "Vivace" else f"{viv / r:.2f}x"]
        for name, r in med.items()
    ]
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    for line in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    ratio = viv / med["openai"]
    print(
        f"\ntarget: >= {TARGET:g}x the official openai client -> {ratio:.2f}x "
        f"{'PASS' if ratio >= TARGET else 'MISS'}"
    )
    if args.json:
        print(json.dumps({"median_chunks_per_s": med, "ratio_vs_openai": ratio}))


if __name__ == "__main__":
    main()
