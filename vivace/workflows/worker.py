"""Background work of a process that serves workflows: crash recovery and cron schedules.

:func:`recover` takes over the runs whose worker died (``running`` with an expired lease)
and continues each from its journal. :class:`Worker` does that periodically and starts the
runs of scheduled workflows at each cron tick; ``vivace serve`` runs one.

A tick fires once however many workers run the schedule: the run id is derived from the
workflow and the tick time (``nightly@2026-01-01T00:00:00+00:00``) and creating a run is an
insert that only one worker wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .engine import WORKER_ID, execution_from, resolve_store, start_run, store_of
from .errors import WorkflowRunExists

if TYPE_CHECKING:
    from .builder import Workflow
    from .result import WorkflowResult
    from .store import WorkflowRunStore

__all__ = ["Worker", "recover"]

log = logging.getLogger("vivace.workflows")

_LIMIT = 100  # runs claimed per recovery pass


async def recover(
    workflows: Sequence[Workflow[Any, Any]],
    *,
    storage: Any = None,
    limit: int = _LIMIT,
) -> list[WorkflowResult[Any]]:
    """Continue every run of ``workflows`` whose worker died (its lease expired), here.

    Each run is claimed by exactly one caller (several processes may call this at once),
    then replayed from its journal: completed steps keep their outputs, the step that was in
    flight runs again (or, declared ``rerun=False``, fails the run). Returns the results once
    every continuation has ended. The runs are independent: one that cannot be continued
    (its record unreadable, deleted meanwhile, the storage failing for it) is logged and left
    for a later pass (its lease expires again) while the others go on; cancelling ``recover``
    cancels them all and returns once they have stopped.
    """
    jobs = await _claim(workflows, storage, limit)
    if not jobs:
        return []
    # gather waits for every continuation (and, cancelled, cancels them and waits for them)
    ended = await asyncio.gather(*jobs, return_exceptions=True)
    results: list[WorkflowResult[Any]] = []
    for outcome in ended:
        if isinstance(outcome, BaseException):
            if isinstance(outcome, (KeyboardInterrupt, SystemExit)):
                raise outcome  # not a run's failure
            continue  # logged by _continue; the run's lease expires and a later pass retries
        if outcome is not None:
            results.append(outcome)
    return results


async def _claim(
    workflows: Sequence[Workflow[Any, Any]], storage: Any, limit: int
) -> list[Coroutine[Any, Any, WorkflowResult[Any] | None]]:
    """Claim the expired runs of ``workflows``: the continuation of each, not started."""
    groups: dict[int, tuple[WorkflowRunStore, dict[str, Workflow[Any, Any]]]] = {}
    for wf in workflows:
        if wf.engine != "local":
            continue
        store = resolve_store(storage) if storage is not None else store_of(wf)
        if store is None:
            continue
        groups.setdefault(id(store), (store, {}))[1][wf.id] = wf
    jobs = []
    for store, by_id in groups.values():
        lease = min(wf.lease for wf in by_id.values())
        runs = await store.claim_expired(WORKER_ID, workflows=list(by_id), lease=lease, limit=limit)
        for run in runs:
            jobs.append(_continue(store, by_id[run.workflow], run.run_id))
    return jobs


async def _continue(
    store: WorkflowRunStore, wf: Workflow[Any, Any], run_id: str
) -> WorkflowResult[Any] | None:
    try:
        loaded = await store.load_run(run_id)
        if loaded is None:
            log.warning("workflow run %s (%s) was deleted before it was recovered", run_id, wf.id)
            return None
        run, steps = loaded
        ex = execution_from(wf, run, steps, store, None, None)
        log.info(
            "recovering workflow run %s (%s) from %d recorded steps", run_id, wf.id, len(steps)
        )
        return await ex.drive(ex.input)
    except Exception:
        log.exception(
            "workflow run %s (%s) could not be recovered; a later pass tries again", run_id, wf.id
        )
        raise


class Worker:
    """Recovers crashed runs and fires cron schedules for ``workflows``, in the background.

    ``async with Worker([wf1, wf2]):`` (or :meth:`start`/:meth:`stop`). ``recover_every``
    seconds between recovery passes (default: half the shortest lease).
    """

    def __init__(
        self,
        workflows: Sequence[Workflow[Any, Any]],
        *,
        storage: Any = None,
        recover_every: float | None = None,
        schedules: bool = True,
    ) -> None:
        self.workflows = list(workflows)
        self.storage = storage
        leases = [wf.lease for wf in self.workflows] or [30.0]
        self.recover_every = recover_every if recover_every is not None else min(leases) / 2
        self.schedules = schedules
        self._tasks: list[asyncio.Task[Any]] = []
        self._runs: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._recover_loop()))
        if self.schedules:
            for wf in self.workflows:
                if wf.schedule:
                    self._tasks.append(loop.create_task(self._schedule_loop(wf)))

    async def stop(self) -> None:
        for t in [*self._tasks, *self._runs]:
            t.cancel()
        for t in [*self._tasks, *self._runs]:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        self._runs.clear()

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _recover_loop(self) -> None:
        # each pass claims what expired and starts it in the background: a long recovered run
        # must not keep the next pass from taking over another crashed run
        loop = asyncio.get_running_loop()
        while True:
            try:
                for job in await _claim(self.workflows, self.storage, _LIMIT):
                    task = loop.create_task(job)
                    self._runs.add(task)
                    task.add_done_callback(self._ended)
            except Exception:
                log.exception("workflow recovery pass failed")
            await asyncio.sleep(self.recover_every)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._runs.discard(task)
        if not task.cancelled():
            task.exception()  # logged by _continue: retrieved so asyncio does not log it again

    async def _schedule_loop(self, wf: Workflow[Any, Any]) -> None:
        from .schedule import parse_cron

        assert wf.schedule is not None
        cron = parse_cron(wf.schedule)
        tick = cron.next_after(datetime.now(UTC))
        while True:
            delay = (tick - datetime.now(UTC)).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            run_id = f"{wf.id}@{tick.isoformat()}"
            task = asyncio.get_running_loop().create_task(self._fire(wf, run_id))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)
            tick = cron.next_after(max(tick, datetime.now(UTC)))

    async def _fire(self, wf: Workflow[Any, Any], run_id: str) -> None:
        try:
            await start_run(wf, wf.schedule_input, run_id=run_id)
        except WorkflowRunExists:
            pass  # another worker fired this tick
        except Exception:
            log.exception("scheduled run %s failed to start", run_id)
