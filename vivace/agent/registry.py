"""Process-wide registry of live runs, so ``cancel(run_id)`` can reach them.

Holds one small handle per running run and nothing else; entries are removed when the run
ends. (Cancelling a run that lives in another process goes through storage/the server.)
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import PausedRun

__all__ = [
    "RunHandle",
    "cancel_run",
    "forget_paused",
    "recall_paused",
    "register_run",
    "remember_paused",
    "unregister_run",
]


class RunHandle:
    """The running task of a run and whether cancellation was asked for (the run loop's
    ``RunState`` is one: it sets these fields itself)."""

    __slots__ = ("busy", "cancel_requested", "done", "loop", "task")

    def __init__(self) -> None:
        self.cancel_requested = False
        self.done = False
        self.busy = True
        loop = self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[object] | None = asyncio.current_task(loop)

    def waiting(self) -> None:
        """The current task waits for the run's next event: a cancel interrupts it."""
        self.task = asyncio.current_task(self.loop)
        self.busy = True


_RUNS: dict[str, RunHandle] = {}
_LOCK = threading.Lock()


def register_run(run_id: str, handle: RunHandle) -> None:
    """Make the run ``run_id`` reachable by :func:`cancel_run` (from its running task)."""
    with _LOCK:
        _RUNS[run_id] = handle


def unregister_run(run_id: str, handle: RunHandle) -> None:
    handle.done = True
    with _LOCK:
        if _RUNS.get(run_id) is handle:
            del _RUNS[run_id]


def cancel_run(run_id: str) -> bool:
    """Ask the run ``run_id`` (in this process) to stop. Returns False when it is not running.

    Safe to call from any thread. The run ends with status ``cancelled``.
    """
    with _LOCK:
        handle = _RUNS.get(run_id)
    if handle is None:
        return False
    handle.cancel_requested = True
    handle.loop.call_soon_threadsafe(_interrupt, handle)
    return True


def _interrupt(handle: RunHandle) -> None:
    # Runs on the run's own loop: only interrupt while the run's code is what is executing.
    task = handle.task
    if task is not None and handle.busy and not handle.done and not task.done():
        task.cancel()


# Paused runs of agents without storage, so ``resume(run_id)`` works within one process.
_PAUSED: OrderedDict[str, PausedRun] = OrderedDict()
_PAUSED_MAX = 1024


def remember_paused(paused: PausedRun) -> None:
    with _LOCK:
        _PAUSED[paused.run_id] = paused
        while len(_PAUSED) > _PAUSED_MAX:
            _PAUSED.popitem(last=False)


def recall_paused(run_id: str) -> PausedRun | None:
    """A paused run of an agent without storage, remembered in this process (or None)."""
    with _LOCK:
        return _PAUSED.get(run_id)


def forget_paused(run_id: str) -> None:
    """Drop an in-process paused run (it is being resumed)."""
    with _LOCK:
        _PAUSED.pop(run_id, None)
