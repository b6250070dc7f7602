"""Tracing overhead per agent run with a tool: Vivace (batched OTLP/HTTP exporter to a local
collector that accepts everything) vs Agno 3.1.10's own tracing (``agno.tracing.
setup_tracing``: OpenInference's Agno instrumentation on the OpenTelemetry SDK, batch
processing on, spans to Agno's in-memory db). Each of the four cases runs in its own process.

    python benchmarks/bench_tracing.py            # 3 rounds
    python benchmarks/bench_tracing.py --quick    # 1 round, noisier

Targets: Vivace's added cost per run >= 5x lower than Agno's, and Vivace with tracing on
still faster than Agno with tracing off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PROFILE_ENV,
    Row,
    atime_per_call,
    machine_note,
    print_table,
    profiled,
    run_worker,
)
from _venv import REPO_ROOT, in_venv, reexec_in_venv

REQUIREMENTS = [
    "agno==3.1.10",
    "openai",
    "opentelemetry-sdk",
    "openinference-instrumentation-agno",
]
PROMPT = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris."
CASES = ("vivace-off", "vivace-on", "agno-off", "agno-on")


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The name of the city.
    """
    return f"Sunny in {city}"


def accept_all_collector() -> tuple[str, Any]:
    """An OTLP/HTTP endpoint that accepts everything, in its own process (like a real
    collector, it does not share the measured process's GIL)."""
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, __file__, "--collector"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc.stdout.readline().strip(), proc


def serve_collector() -> None:
    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    print(f"http://127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


def _measure(arun: Any, quick: bool) -> float:
    number, repeat, warmup = (20, 7, 30) if quick else (50, 21, 100)

    async def go() -> float:
        return (await atime_per_call(arun, number=number, repeat=repeat, warmup=warmup))[0]

    return asyncio.run(go())


def worker_vivace(on: bool, quick: bool) -> dict[str, Any]:
    from vivace import Agent
    from vivace.testing import FunctionModel, call

    url = None
    if on:
        from vivace.observability import OTLPExporter, configure

        url, collector = accept_all_collector()
        tracer = configure(OTLPExporter(url))

    def script(messages: list[Any], request: Any) -> Any:
        if messages[-1].role == "tool":
            return ANSWER
        return call("get_weather", {"city": "Paris"}, id="call_1")

    agent = Agent(model=FunctionModel(script), tools=[get_weather], name="weather")
    if agent.run(PROMPT).output != ANSWER:
        raise SystemExit("unexpected Vivace result")

    async def arun() -> Any:
        return await agent.arun(PROMPT)

    t = _measure(arun, quick)
    out: dict[str, Any] = {"per_run": t}
    if on:
        tracer.force_flush(30)
        [st] = tracer.stats()
        out["exported"] = st["exported"]
        out["dropped"] = st["dropped"] + st["failed"]
        collector.terminate()
    return out


def worker_agno(on: bool, quick: bool) -> dict[str, Any]:
    os.environ["AGNO_TELEMETRY"] = "false"
    from agno.agent import Agent
    from bench_agent import _agno_scripted_model

    if on:
        from agno.db.in_memory import InMemoryDb
        from agno.tracing import setup_tracing

        setup_tracing(db=InMemoryDb(), batch_processing=True)
    agent = Agent(model=_agno_scripted_model(), tools=[get_weather], telemetry=False)
    if agent.run(PROMPT).content != ANSWER:
        raise SystemExit("unexpected Agno result")

    async def arun() -> Any:
        return await agent.arun(PROMPT)

    out: dict[str, Any] = {"per_run": _measure(arun, quick)}
    if on:
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--no-venv", action="store_true")
    p.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of Vivace's measured work (top functions)",
    )
    p.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--collector", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.profile:
        os.environ[PROFILE_ENV] = "1"
    if args.collector:
        serve_collector()
        return
    if args.worker:
        sys.path.insert(0, str(REPO_ROOT))
        kind, state = args.worker.split("-")
        fn = worker_vivace if kind == "vivace" else worker_agno
        if kind == "vivace":
            print(json.dumps(profiled(lambda: fn(state == "on", args.quick), args.worker)))
        else:
            print(json.dumps(fn(state == "on", args.quick)))
        return
    if not args.no_venv:
        reexec_in_venv(REQUIREMENTS)
    if not in_venv():
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO_ROOT), path) if x)
    print(f"bench_tracing: {machine_note()}")
    rounds = args.rounds or (1 if args.quick else 3)
    extra = ["--quick"] if args.quick else []
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
    for i in range(rounds):
        print(f"round {i + 1}/{rounds}...", flush=True)
        for c in CASES:
            results[c].append(run_worker(__file__, c, extra))
    med = {c: statistics.median(r["per_run"] for r in results[c]) for c in CASES}
    v_added = max(med["vivace-on"] - med["vivace-off"], 1e-9)
    a_added = med["agno-on"] - med["agno-off"]
    rows = [
        Row("per run with a tool, tracing off", med["vivace-off"], med["agno-off"], "time"),
        Row("per run with a tool, tracing on", med["vivace-on"], med["agno-on"], "time"),
        Row("added by tracing (on - off)", v_added, a_added, "time", 5),
        Row("Vivace on vs Agno off", med["vivace-on"], med["agno-off"], "time", 1),
    ]
    print()
    print_table(rows, "Agno")
    dropped = [r.get("dropped", 0) for r in results["vivace-on"]]
    print(
        f"\nVivace spans exported per round: {[r.get('exported') for r in results['vivace-on']]}, "
        f"dropped/failed: {dropped}"
    )
    if args.markdown:
        print()
        print_table(rows, "Agno 3.1.10", markdown=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine_note(), "medians": med, "raw": results}, indent=2)
        )


if __name__ == "__main__":
    main()
