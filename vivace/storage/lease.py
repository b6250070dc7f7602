"""Keep a running run's lease alive while the run is in progress.

The live runs of one session store and lease length, on one event loop, are renewed together:
one timer every ``lease / 3`` seconds heartbeats all of them, instead of a task per run (a
task to create, schedule and cancel with every run, for a renewal that almost never comes:
most runs end long before their first one). The timer is a plain loop callback, not a task, so a
loop that stops running - a sync ``run()`` in a thread that ends - leaves nothing pending.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .base import SessionStore

__all__ = ["keep_alive"]

_BATCH = 50
"""Heartbeats sent at once per tick (a store with thousands of live runs renews them in
batches rather than all concurrently)."""


class _Renewals:
    """The live runs of one session store with one lease length, on one event loop."""

    __slots__ = ("busy", "key", "loop", "runs", "seconds", "sessions", "timer")

    def __init__(
        self,
        key: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        sessions: SessionStore,
        seconds: float,
    ) -> None:
        self.key = key
        self.loop = loop
        self.sessions = sessions
        self.seconds = seconds
        self.runs: dict[str, int] = {}  # run id -> how many keep_alive blocks hold it
        self.busy: asyncio.Task[None] | None = None  # a tick's heartbeats, while they run
        self.timer: asyncio.TimerHandle | None = None  # None while no run is renewed

    def add(self, run_id: str) -> None:
        self.runs[run_id] = self.runs.get(run_id, 0) + 1
        if self.timer is None:  # new, or idle since its runs were dropped at a tick
            self.timer = self.loop.call_later(self.seconds / 3, self._tick)

    def remove(self, run_id: str) -> asyncio.Task[None] | None:
        """Forget ``run_id``; the last run out stops the timer (and returns a tick's
        heartbeats still running, for the caller to wait for)."""
        n = self.runs.pop(run_id, 0) - 1
        if n > 0:
            self.runs[run_id] = n
        if self.runs:
            return None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if _GROUPS.get(self.key) is self:
            del _GROUPS[self.key]
        busy, self.busy = self.busy, None
        return busy

    def _tick(self) -> None:
        self.timer = None
        if not self.runs:  # idle until add() (its blocks may still be held)
            return
        if self.busy is None or self.busy.done():
            self.busy = self.loop.create_task(self._beat(list(self.runs)))
        self.timer = self.loop.call_later(self.seconds / 3, self._tick)

    async def _beat(self, run_ids: list[str]) -> None:
        for i in range(0, len(run_ids), _BATCH):
            batch = run_ids[i : i + _BATCH]
            alive = await asyncio.gather(
                *(self.sessions.heartbeat(r, lease=self.seconds) for r in batch),
                return_exceptions=True,
            )
            for run_id, ok in zip(batch, alive, strict=True):
                if ok is False:  # no longer running in storage: stop renewing it
                    self.runs.pop(run_id, None)
            # a failed renewal (an exception) is retried at the next tick


_GROUPS: dict[tuple[Any, ...], _Renewals] = {}


class _Lease:
    """The async context manager :func:`keep_alive` returns."""

    __slots__ = ("group", "run_id", "seconds", "sessions")

    def __init__(self, sessions: SessionStore, run_id: str, seconds: float) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.seconds = seconds
        self.group: _Renewals | None = None

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        key = (id(self.sessions), self.seconds, loop)
        group = _GROUPS.get(key)
        if group is None or group.sessions is not self.sessions:
            group = _GROUPS[key] = _Renewals(key, loop, self.sessions, self.seconds)
        group.add(self.run_id)
        self.group = group

    async def __aexit__(self, *exc: object) -> None:
        group, self.group = self.group, None
        if group is None:
            return
        busy = group.remove(self.run_id)
        if busy is not None and not busy.done():  # nothing of this run's is left behind
            busy.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await busy


def keep_alive(
    sessions: SessionStore, run_id: str, *, lease: float | None = None
) -> contextlib.AbstractAsyncContextManager[None]:
    """Renew ``run_id``'s lease every ``lease / 3`` seconds until the block exits.

    ``lease`` defaults to the storage's ``run_lease``. Use it around a run started with
    ``begin_run``/``start_run``: if the process dies, the renewals stop and the run reads
    ``running`` until the lease expires, then ``incomplete``. A failed renewal is retried at
    the next tick (the final ``finish_run`` reports errors).
    """
    return _Lease(sessions, run_id, sessions.run_lease if lease is None else lease)
