"""Keep a running run's lease alive while the run is in progress."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from .base import SessionStore

__all__ = ["keep_alive"]


@contextlib.asynccontextmanager
async def keep_alive(
    sessions: SessionStore, run_id: str, *, lease: float | None = None
) -> AsyncIterator[None]:
    """Renew ``run_id``'s lease every ``lease / 3`` seconds until the block exits.

    ``lease`` defaults to the storage's ``run_lease``. Use it around a run started with
    ``begin_run``/``start_run``: if the process dies, the renewals stop and the run reads
    ``running`` until the lease expires, then ``incomplete``. A failed renewal is retried at
    the next tick (the final ``finish_run`` reports errors).
    """
    seconds = sessions.run_lease if lease is None else lease

    async def beat() -> None:
        while True:
            await asyncio.sleep(seconds / 3)
            with contextlib.suppress(Exception):
                if not await sessions.heartbeat(run_id, lease=seconds):
                    return

    task = asyncio.create_task(beat(), name=f"vivace-lease-{run_id}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
