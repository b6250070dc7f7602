"""CPU per model call of async HTTP clients against the local fake OpenAI server.

How Vivace's model-call client was chosen (docs/models.md, "Why aiohttp"). Run from the
repo root (creates/reuses ``.bench-venv/`` with httpx, httpx2 when available, aiohttp)::

    python benchmarks/bench_http_clients.py            # 3 interleaved rounds
    python benchmarks/bench_http_clients.py --rounds 5 --calls 6400

Each client runs in its own process, at 64 concurrent calls (closed loop) against the fake
model server of ``bench_server.py`` (``_server_fake_model.py``, its own process): first a
**cold burst** (64 calls at once on a fresh client, 10 each), then the measured calls.
Figures: process CPU time per call (``resource.getrusage``: resists a noisy machine better
than wall time) and calls/s; medians over the rounds. ``vivace`` is Vivace's own transport
(``Endpoint.post_json``) on its client, to show what the transport adds. ``--profile`` prints
a cProfile of the ``vivace`` worker's measured calls (each round; ``--rounds 1`` for one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROFILE_ENV, machine_note, print_profiles
from _venv import REPO_ROOT, in_venv, reexec_in_venv

HERE = Path(__file__).resolve().parent
KINDS = ("httpx", "httpx-unlimited", "httpcore", "httpx2", "aiohttp", "vivace")

WORKER = r"""
import asyncio, contextlib, json, resource, sys, time
kind, base, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
C = 64
URL = base + "/chat/completions"
BODY = json.dumps({"model": "gpt-4o-mini",
                   "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}).encode()
HDRS = {"authorization": "Bearer x", "content-type": "application/json", "accept": "application/json"}

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

async def main():
    profiling = contextlib.nullcontext  # --profile: Vivace's transport only (below)
    if kind in ("httpx", "httpx-unlimited"):
        import httpx
        limits = (httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)
                  if kind == "httpx" else httpx.Limits(max_connections=None, max_keepalive_connections=None))
        client = httpx.AsyncClient(limits=limits)
        async def call():
            return json.loads((await client.post(URL, content=BODY, headers=HDRS)).content)
    elif kind == "httpcore":
        import httpcore
        pool = httpcore.AsyncConnectionPool(max_connections=None, max_keepalive_connections=None)
        async def call():
            return json.loads((await pool.request("POST", URL, content=BODY, headers=HDRS)).content)
    elif kind == "httpx2":
        import httpx2
        client = httpx2.AsyncClient()
        async def call():
            return json.loads((await client.post(URL, content=BODY, headers=HDRS)).content)
    elif kind == "aiohttp":
        import aiohttp
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async def call():
            async with session.post(URL, data=BODY, headers=HDRS) as r:
                return json.loads(await r.read())
    else:
        from vivace.models.http import Endpoint
        from _common import profiling
        ep = Endpoint("openai", base, headers={"authorization": "Bearer x"})
        body = json.loads(BODY)
        async def call():
            return await ep.post_json("/chat/completions", body)

    async def worker(n):
        for _ in range(n):
            assert (await call())["object"] == "chat.completion"

    c0, t0 = cpu(), time.perf_counter()
    await asyncio.gather(*(worker(10) for _ in range(C)))
    with profiling(f"{kind}: {max(1, total // C) * C} calls at c={C}"):
        c1, t1 = cpu(), time.perf_counter()
        per = max(1, total // C)
        await asyncio.gather(*(worker(per) for _ in range(C)))
        c2, t2 = cpu(), time.perf_counter()
    n = per * C
    print(json.dumps({"kind": kind, "cold_cpu": (c1 - c0) / (10 * C), "cold_rps": 10 * C / (t1 - t0),
                      "cpu": (c2 - c1) / n, "rps": n / (t2 - t1)}))

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=3200, help="measured calls per client and round")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--no-venv", action="store_true", help="use this interpreter")
    p.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of the vivace worker's measured calls (top functions)",
    )
    args = p.parse_args()
    if args.profile:
        os.environ[PROFILE_ENV] = "1"
    if not args.no_venv:
        reexec_in_venv(["httpx", "httpcore", "aiohttp", "uvloop"])
    print(f"bench_http_clients: {machine_note()}; venv={'.bench-venv' if in_venv() else sys.prefix}; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(HERE), str(REPO_ROOT)))}
    fake = subprocess.Popen(
        [sys.executable, str(HERE / "_server_fake_model.py")],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert fake.stdout is not None
        port = int(fake.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}/v1"
        kinds = [k for k in args.kinds.split(",") if k]
        results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            for k in kinds:
                proc = subprocess.run(
                    [sys.executable, "-c", WORKER, k, base, str(args.calls)],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=600,
                )
                if proc.returncode != 0:
                    last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"  round {r + 1}: {k}: failed ({last})", flush=True)
                    continue
                results[k].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print_profiles(proc.stderr)
            print(f"  round {r + 1}/{args.rounds} done", flush=True)
    finally:
        fake.terminate()
        fake.wait(10)
        time.sleep(0.1)
    print(
        f"\n{'client':<16} {'CPU/call c=64':>14} {'calls/s':>9} {'cold CPU/call':>14} "
        f"{'cold calls/s':>13}"
    )
    for k, rs in results.items():
        if not rs:
            print(f"{k:<16} {'(not installed or failed)':>14}")
            continue

        def med(key: str, rs: list[dict[str, float]] = rs) -> float:
            return statistics.median(x[key] for x in rs)

        print(
            f"{k:<16} {med('cpu') * 1e3:11.2f} ms {med('rps'):9.0f} {med('cold_cpu') * 1e3:11.2f} ms "
            f"{med('cold_rps'):13.0f}"
        )


if __name__ == "__main__":
    main()
