"""What Python's cyclic garbage collector costs a server worker, with ``vivace serve``'s
setting (``gc.freeze()`` + thresholds 7000/10/10) and with Python's default.

Run from the repo root with the project's venv (Vivace's server extra; no comparison
packages)::

    .venv/bin/python benchmarks/bench_gc.py            # 3 rounds of 1,600 requests per side
    .venv/bin/python benchmarks/bench_gc.py --quick    # 2 rounds of 800

Each side runs in its own process (the collector's settings are process-wide): the
benchmark's one-tool agent (``_server_vivace_app.py``) in a ``VivaceApp`` on SQLite, driven
in process through httpx's ASGI transport (no uvicorn, no sockets to the app) at 16
concurrent requests, its model calls going to the fake OpenAI server
(``_server_fake_model.py``) over HTTP. Measured per request: CPU time of the process, time
spent in collections (``gc.callbacks``), the collections per generation, and the resident
memory at the end. ``vivace serve``'s setting is :func:`vivace.cli._load.tune_gc`.

``--profile`` prints a cProfile of the measured requests of the first process of each side
(so the table's figures, the better of two processes per side, normally come from the
unprofiled one). It shows where the CPU per request goes; time in collections is charged to
whatever allocated when one started (the table's own figure is the one to read for that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker(mode: str, rounds: int, batches: int, port: int, profile: bool) -> dict[str, Any]:
    """One side: ``mode`` is ``tuned`` (vivace serve's setting) or ``default``."""
    import gc

    profiling: Any = contextlib.nullcontext
    if profile:
        from _common import profiling

    os.environ["OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    os.environ["OPENAI_API_KEY"] = "x"
    import httpx
    from _server_vivace_app import agent

    from vivace.cli._load import tune_gc
    from vivace.server import VivaceApp
    from vivace.storage import SQLiteStorage

    where = tempfile.mkdtemp()
    agent.storage = SQLiteStorage(os.path.join(where, "vivace.db"))
    app = VivaceApp(agents=[agent])
    if mode == "tuned":
        os.environ.pop("VIVACE_GC", None)
        assert tune_gc()
    spent = [0.0]
    counts = {0: 0, 1: 0, 2: 0}
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]
            counts[info["generation"]] += 1

    async def main() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.lifespan(),
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        ):

            async def one(i: int) -> None:
                body = {"input": "What is the weather in Paris?", "session_id": f"s{i}"}
                r = await client.post("/agents/weather/runs", json=body)
                assert r.status_code == 200 and r.json()["status"] == "completed", r.text

            for i in range(200):  # warm-up: imports, pools, caches
                await one(i)
            gc.callbacks.append(on_gc)
            cpu, in_gc = [], []
            n = 0
            with profiling(f"gc {mode}: {rounds * batches * 16} requests at c=16"):
                for _ in range(rounds):
                    spent[0] = 0.0
                    t0 = time.process_time()
                    for _ in range(batches):
                        await asyncio.gather(*(one(10_000 + n + k) for k in range(16)))
                        n += 16
                    per = time.process_time() - t0
                    cpu.append(per / (batches * 16))
                    in_gc.append(spent[0] / (batches * 16))
            gc.callbacks.remove(on_gc)
            return {
                "cpu": statistics.median(cpu),
                "gc": statistics.median(in_gc),
                "collections": counts,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "requests": n,
            }

    return asyncio.run(main())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of the first process of each side's measured requests",
    )
    p.add_argument("--worker", choices=["tuned", "default"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    rounds, batches = (2, 50) if args.quick else (3, 100)
    if args.worker:
        print(json.dumps(worker(args.worker, rounds, batches, args.port, args.profile)))
        return
    if args.profile:  # not imported above: a worker's heap stays as it was without it
        from _common import PROFILE_ENV, print_profiles

        os.environ[PROFILE_ENV] = "1"
    port = _free_port()
    fake = subprocess.Popen(
        [sys.executable, str(HERE / "_server_fake_model.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)
        out: dict[str, dict[str, Any]] = {}
        for i, mode in enumerate(("default", "tuned") * 2):  # interleaved, last of each kept
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", mode, "--port", str(port)]
                + (["--quick"] if args.quick else [])
                + (["--profile"] if args.profile and i < 2 else []),
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "VIVACE_GC": "default" if mode == "default" else ""},
            )
            if args.profile:
                print_profiles(proc.stderr)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            prev = out.get(mode)
            if prev is None or res["cpu"] < prev["cpu"]:
                out[mode] = res
    finally:
        fake.kill()
    d, t = out["default"], out["tuned"]
    print(f"bench_gc: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"{t['requests']} requests per side at concurrency 16, SQLite, fake model over HTTP\n")  # fmt: skip
    rows = [
        ("CPU per request", f"{d['cpu'] * 1e3:.3f} ms", f"{t['cpu'] * 1e3:.3f} ms",
         f"{d['cpu'] / t['cpu']:.2f}x"),
        ("in collections per request", f"{d['gc'] * 1e3:.3f} ms ({d['gc'] / d['cpu']:.1%})",
         f"{t['gc'] * 1e3:.3f} ms ({t['gc'] / t['cpu']:.1%})", ""),
        ("collections (gen 0/1/2)", "/".join(str(v) for v in d["collections"].values()),
         "/".join(str(v) for v in t["collections"].values()), ""),
        ("resident memory at the end", f"{d['rss_mb']:.0f} MB", f"{t['rss_mb']:.0f} MB", ""),
    ]  # fmt: skip
    head = ("measurement", "Python default", "vivace serve", "ratio")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
