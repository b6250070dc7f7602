"""Small measuring and reporting helpers shared by the ``benchmarks/bench_*.py`` scripts.

* :func:`time_per_call` / :func:`atime_per_call`: median seconds per call over timed batches.
* :func:`kept_bytes_per_object`: tracemalloc bytes still held per object after making N.
* :func:`peak_bytes_per_call`: Agno-style tracemalloc peak of one call minus an empty call's.
* :func:`fresh_process_times`: wall time of a statement in fresh interpreters.
* :func:`run_worker`: run ``script --worker NAME ...`` in a subprocess and read its JSON.
* :class:`Row` and :func:`print_table`: a side-by-side table with ratios and PASS/MISS.
* :func:`profiled` / :func:`profiling`: ``fn()`` / a ``with`` body (which may ``await``) under
  cProfile when ``--profile`` asked for it (``PROFILE_ENV``), its top functions printed to
  stderr (which :func:`run_worker` and :func:`print_profiles` pass on).

Ratios are always "how many times better Vivace is" (other / vivace), so a target of 10
means "at least 10x faster" or "at most 1/10 of the memory".
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PROFILE_ENV",
    "Row",
    "atime_per_call",
    "fmt_bytes",
    "fmt_seconds",
    "fresh_process_times",
    "kept_bytes_per_object",
    "machine_note",
    "peak_bytes_per_call",
    "print_profiles",
    "print_table",
    "profiled",
    "profiling",
    "run_worker",
    "time_per_call",
]


def time_per_call(
    fn: Callable[[], Any], *, number: int, repeat: int, warmup: int = 0
) -> tuple[float, list[float]]:
    """Median seconds per call of ``fn`` over ``repeat`` batches of ``number`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples), samples


async def atime_per_call(
    fn: Callable[[], Awaitable[Any]], *, number: int, repeat: int, warmup: int = 0
) -> tuple[float, list[float]]:
    """Like :func:`time_per_call` for a coroutine function, awaited in the running loop."""
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(number):
            await fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples), samples


def kept_bytes_per_object(make: Callable[[], Any], n: int, *, warmup: int = 50) -> float:
    """Bytes still allocated per object after making ``n`` of them and keeping them all.

    The list that holds them is allocated before the baseline, so only what ``make``
    allocates and keeps alive is counted (the object, its own containers, and anything it
    builds, e.g. a model object passed to it).
    """
    keep: list[Any] = [None] * n
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(warmup):  # one-time caches are paid here, not below
            make()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            keep[i] = make()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del keep
    return (after - before) / n


def _peak_once(fn: Callable[[], Any]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_bytes_per_call(fn: Callable[[], Any], *, samples: int = 20) -> float:
    """Agno's ``PerformanceEval`` method: tracemalloc peak during one call, minus the peak
    of an empty call (median of ``samples``). The result of the call is discarded."""
    fn()
    base = statistics.median(_peak_once(lambda: None) for _ in range(samples))
    return statistics.median(_peak_once(fn) for _ in range(samples)) - base


def fresh_process_times(
    code: str, *, python: str = sys.executable, runs: int = 7, warmup: int = 1
) -> tuple[list[float], list[float]]:
    """Time ``code`` in ``runs`` fresh interpreters.

    Returns ``(in_process, whole_process)`` seconds: the statement alone (timed inside the
    child, excluding interpreter start-up) and the child's whole wall time.
    """
    prog = (
        f"import time as _t; _t0 = _t.perf_counter()\n{code}\nprint(repr(_t.perf_counter() - _t0))"
    )
    inner: list[float] = []
    outer: list[float] = []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        out = subprocess.run(
            [python, "-c", prog], check=True, capture_output=True, text=True, env=env
        ).stdout
        wall = time.perf_counter() - t0
        if i >= warmup:
            inner.append(float(out.strip().splitlines()[-1]))
            outer.append(wall)
    return inner, outer


PROFILE_ENV = "VIVACE_BENCH_PROFILE"
"""Set (to any value) by a script's ``--profile``; its worker processes inherit it."""


@contextlib.contextmanager
def profiling(label: str, *, top: int = 30, cpu: bool = False) -> Iterator[None]:
    """The ``with`` body under cProfile when :data:`PROFILE_ENV` is set (else nothing at all),
    printing the ``top`` functions by own time (and the Vivace ones by inclusive time) to
    stderr. The body may ``await``: the profile is of this thread, so of the event loop and
    every task it runs meanwhile. Work handed to thread pools meanwhile (``asyncio.to_thread``,
    a store's executor) is profiled too and printed as a second profile (unless it took under
    1% of this thread's time). ``cpu``: thread CPU time instead of wall time (for a mostly
    idle process, e.g. a server's whole life)."""
    if not os.environ.get(PROFILE_ENV):
        yield
        return
    import cProfile
    from concurrent.futures import thread as cf_thread

    def new() -> cProfile.Profile:
        return cProfile.Profile(time.thread_time) if cpu else cProfile.Profile()

    pool_profiles: list[cProfile.Profile] = []
    run = cf_thread._WorkItem.run

    def run_profiled(item: Any, *args: Any) -> Any:
        pr = new()
        pool_profiles.append(pr)
        pr.enable()
        try:
            return run(item, *args)
        finally:
            pr.disable()

    setattr(cf_thread._WorkItem, "run", run_profiled)  # noqa: B010
    pr = new()
    pr.enable()
    try:
        yield
    finally:
        pr.disable()
        setattr(cf_thread._WorkItem, "run", run)  # noqa: B010
        label += ", CPU time" if cpu else ""
        total = _print_profile(label, [pr], top)
        if pool_profiles:
            pools = f"{label}, work run in thread pools meanwhile"
            _print_profile(pools, pool_profiles, top, floor=total / 100)


def _print_profile(label: str, profiles: list[Any], top: int, floor: float = 0.0) -> float:
    """Print the profile unless its total time is under ``floor``; return that total."""
    import io
    import pstats

    out = io.StringIO()
    st = pstats.Stats(*profiles, stream=out)
    total: float = st.total_tt or 1e-9  # type: ignore[attr-defined]
    if total < floor:
        return total
    out.write(f"\n-- profile: {label} (cProfile; top {top} by own time)\n")
    st.sort_stats("tottime").print_stats(top)
    out.write(f"-- profile: {label}, vivace functions by inclusive time\n")
    st.sort_stats("cumtime").print_stats(r"vivace/", top)
    own: collections.Counter[str] = collections.Counter()
    for (file, _, func), (_, _, tt, _, _) in st.stats.items():  # type: ignore[attr-defined]
        own[_package(file, func)] += tt
    viv = sum(v for k, v in own.items() if k.startswith("vivace.")) / total
    shares = ", ".join(f"{k} {v / total:.1%}" for k, v in own.most_common(12))
    out.write(
        f"-- profile: {label}, own time by package (of {total:.3f} s; all vivace.* "
        f"{viv:.1%}): {shares}\n"
    )
    sys.stdout.flush()  # what was printed before the profile stays before it
    sys.stderr.write(out.getvalue())
    sys.stderr.flush()
    return total


def _package(file: str, func: str) -> str:
    """Where a profiled function belongs: ``vivace.<subpackage>``, an installed package, a
    stdlib module, a C function's module or type (``select``'s poll: the idle event loop)."""
    import re

    if file == "~":
        m = re.search(r"of '(\w+)|method (\w+)", func)
        owner = (m.group(1) or m.group(2)) if m else func
        return "idle: waiting in epoll" if owner == "select" else f"{owner} (C)"
    for marker in ("site-packages/", "/vivace/", "/benchmarks/"):
        if marker in file:
            first = file.split(marker, 1)[1].split("/")[0].removesuffix(".py")
            return {"/vivace/": f"vivace.{first}", "/benchmarks/": "benchmark"}.get(marker, first)
    m = re.search(r"/python3\.\d+/([^/]+)", file)
    return f"stdlib {m.group(1).removesuffix('.py')}" if m else "stdlib"


def profiled(fn: Callable[[], Any], label: str, *, top: int = 30, cpu: bool = False) -> Any:
    """``fn()``; under cProfile when :data:`PROFILE_ENV` is set (see :func:`profiling`)."""
    with profiling(label, top=top, cpu=cpu):
        return fn()


def print_profiles(stderr: str) -> None:
    """Pass on to stdout the profiles a worker process wrote to its ``stderr``, if any."""
    if os.environ.get(PROFILE_ENV) and "-- profile:" in stderr:
        sys.stdout.write(stderr[stderr.index("-- profile:") - 1 :])
        sys.stdout.flush()


def run_worker(script: str, name: str, args: Sequence[str] = ()) -> dict[str, Any]:
    """Run ``python script --worker name *args`` with this interpreter; parse its last
    stdout line as JSON. Each side is measured in its own process so neither pays for the
    other's imports or heap."""
    proc = subprocess.run(
        [sys.executable, script, "--worker", name, *args],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"worker {name!r} failed with exit code {proc.returncode}")
    print_profiles(proc.stderr)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.2f} us"
    return f"{s * 1e9:.0f} ns"


def fmt_bytes(b: float) -> str:
    if abs(b) >= 1024:
        return f"{b / 1024:.2f} KiB"
    return f"{b:.0f} B"


@dataclass(slots=True)
class Row:
    """One compared measurement; ``target`` is the minimum ratio (other / vivace)."""

    label: str
    vivace: float
    other: float
    kind: str  # "time" or "bytes"
    target: float | None = None

    @property
    def ratio(self) -> float:
        return self.other / self.vivace if self.vivace > 0 else float("inf")

    @property
    def status(self) -> str:
        if self.target is None:
            return ""
        return "PASS" if self.ratio >= self.target else "MISS"

    def cells(self) -> list[str]:
        fmt = fmt_seconds if self.kind == "time" else fmt_bytes
        target = ""
        if self.target is not None:
            target = f">= {self.target:g}x" if self.kind == "time" else f"<= 1/{self.target:g}"
        return [
            self.label,
            fmt(self.vivace),
            fmt(self.other),
            f"{self.ratio:.1f}x",
            target,
            self.status,
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "vivace": self.vivace,
            "other": self.other,
            "kind": self.kind,
            "ratio": self.ratio,
            "target": self.target,
            "status": self.status or None,
        }


@dataclass(slots=True)
class FloorRow(Row):
    """Vivace against a floor (the least the work can cost): ``ratio`` is how many times the
    floor is better (``kind="rate"``, runs/s: floor / Vivace; times: Vivace / floor), so 1.0
    is at the floor and ``target`` is a maximum."""

    @property
    def ratio(self) -> float:
        if self.kind == "rate":
            return self.other / self.vivace if self.vivace > 0 else float("inf")
        return self.vivace / self.other if self.other > 0 else float("inf")

    @property
    def status(self) -> str:
        if self.target is None:
            return ""
        return "PASS" if self.ratio <= self.target else "MISS"

    def cells(self) -> list[str]:
        fmt = (lambda x: f"{x:.1f} runs/s") if self.kind == "rate" else fmt_seconds
        target = f"<= {self.target:g}x" if self.target is not None else ""
        return [self.label, fmt(self.vivace), fmt(self.other), f"{self.ratio:.2f}x", target,
                self.status]  # fmt: skip


def print_table(rows: Sequence[Row], other_name: str, *, markdown: bool = False) -> str:
    """Print (and return) the table; ``markdown`` gives a GitHub table for the docs."""
    head = ["measurement", "Vivace", other_name, "ratio", "target", ""]
    body = [r.cells() for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c) + " |" for c in body]
    else:
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            for cells in body
        ]
    text = "\n".join(lines)
    print(text)
    return text


def machine_note() -> str:
    """Python version, platform and CPU count, for the report header."""
    return (
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
