"""Workflows shared by the tests and the worker processes they start (``proc.py``).

Every step appends ``<path> <run_id>`` to the log file named by ``$VIVACE_WF_LOG`` (when
set), so a test can count how many times each step really ran, across processes.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel

from vivace.workflows import StepContext, Workflow, step


def log(ctx: StepContext[Any]) -> None:
    path = os.environ.get("VIVACE_WF_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{ctx.path} {ctx.run_id} {os.getpid()}\n")


class Decision(BaseModel):
    ok: bool
    note: str = ""


@step
def start(n: int, ctx: StepContext) -> int:
    log(ctx)
    return n + 1


@step(resume=Decision)
async def approve(n: int, ctx: StepContext) -> int:
    log(ctx)
    d = await ctx.suspend({"asked": n})
    return n * 100 if d.ok else -n


@step
def finish(n: Any, ctx: StepContext) -> dict[str, Any]:
    log(ctx)
    return {"final": n}


@step
async def plain(n: int, ctx: StepContext) -> int:
    log(ctx)
    return n + 1000


@step(resume=Decision)
async def item(n: int, ctx: StepContext) -> int:
    log(ctx)
    if n == 37:
        d = await ctx.suspend({"item": n})
        return n + (1000 if d.ok else 0)
    return n


@step(resume=Decision)
async def tick(n: int, ctx: StepContext) -> int:
    log(ctx)
    if n == 3:
        await ctx.suspend({"at": n})
    return n + 1


@step
def crashy(n: int, ctx: StepContext) -> int:
    """Hangs the first time it runs (the test kills the process), passes the second time."""
    log(ctx)
    marker = os.environ.get("VIVACE_WF_LOG", "") + ".crashed"
    if os.environ.get("VIVACE_WF_HANG") == "1" and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(3600)
    return n + 1


def build(
    storage: Any, lease: float = 30.0, engine: str = "local"
) -> dict[str, Workflow[Any, Any]]:
    """The test workflows on ``storage`` (a Storage, a URL or None), run by ``engine``."""
    wfs: dict[str, Workflow[Any, Any]] = {}
    # a suspension inside a nested workflow, inside an outer one
    inner = Workflow("inner", input=int).then(start).then(approve)
    wfs["nested"] = (
        Workflow(engine=engine, id="nested", input=int, storage=storage, lease=lease)
        .then(inner)
        .then(finish)
    )
    # two branches of a parallel suspended at once
    wfs["parallel"] = (
        Workflow(engine=engine, id="parallel", input=int, storage=storage, lease=lease)
        .parallel([approve.with_id("left"), approve.with_id("right"), plain])
        .then(finish)
    )
    # a suspension inside the branch that was taken
    wfs["branch"] = (
        Workflow(engine=engine, id="branch", input=int, storage=storage, lease=lease)
        .then(start)
        .branch([(lambda n: n > 5, approve.with_id("big")), (lambda n: True, plain)])
        .then(finish)
    )
    # a suspension inside the 4th iteration of a loop
    wfs["loop"] = (
        Workflow(engine=engine, id="loop", input=int, storage=storage, lease=lease)
        .dountil(tick, lambda n: n >= 6)
        .then(finish)
    )
    # item 37 of 100 suspended while the others complete
    wfs["foreach"] = (
        Workflow(engine=engine, id="foreach", input=list[int], storage=storage, lease=lease)
        .foreach(item, concurrency=4)
        .then(finish)
    )
    # a crash in the third step
    wfs["crash"] = (
        Workflow(engine=engine, id="crash", input=int, storage=storage, lease=lease)
        .then(start)
        .then(plain)
        .then(crashy)
        .then(finish)
    )
    wfs["crash_once"] = (
        Workflow(engine=engine, id="crash_once", input=int, storage=storage, lease=lease)
        .then(start)
        .then(crashy.with_options(id="crashy", rerun=False))
        .then(finish)
    )
    return wfs


def read_log(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]
