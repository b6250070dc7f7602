"""Runs the protocol endpoints (A2A, AG-UI) start: the server's own runs.

:class:`ServerRuns` is the run host the protocol packages accept
(:class:`vivace.agent.host.RunHost`): a run starts through the app's
:class:`~vivace.server.runs.LiveRuns` (driven by its own task, first event out before the
request is answered, cancellable from any worker) and its events are read back from the event
log - so a protocol's run is also visible to ``GET /agents/{id}/runs/{run_id}/events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .sse import RunInfo

if TYPE_CHECKING:
    from ..agent import Agent, RunStream

__all__ = ["CANCEL_WAIT_SECONDS", "ServerRuns"]

CANCEL_WAIT_SECONDS = 5.0


class ServerRuns:
    """Start runs on the app's live runs and read their events from its event log."""

    __slots__ = ("log", "runs")

    def __init__(self, state: Any) -> None:
        self.runs = state.runs
        self.log = state.event_log

    async def run(
        self,
        agent: Agent[Any, Any],
        stream: RunStream[Any],
        run_id: str,
        user_id: str | None,
        session_id: str | None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Start ``stream`` (raising what keeps it from starting) and yield its events."""
        _, first = await self.runs.begin(RunInfo(run_id, agent.id, user_id, session_id), stream)
        async for event in self.log.subscribe(run_id, int(first.get("seq", 0)) - 1):
            yield event

    async def follow(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """A run's events from its first one: this worker's, or (with the storage-backed
        event log) another worker's read from storage; nothing when the log does not know it."""
        log = self.log
        prefetch = getattr(log, "prefetch", None)
        if prefetch is not None:
            await prefetch(run_id)
        if log.info(run_id) is None:
            return
        async for event in log.subscribe(run_id, log.oldest_seq(run_id) - 1):
            yield event

    async def cancel(self, agent: Agent[Any, Any], run_id: str) -> None:
        """Cancel the run here (waiting up to :data:`CANCEL_WAIT_SECONDS` for its end to be
        stored), or ask the worker running it through storage."""
        runs = self.runs
        task = runs.task_of(run_id)
        if not runs.cancel(run_id):
            sessions = runs.sessions_for(agent.id)
            if sessions is not None:
                await sessions.request_cancel(run_id)
            return
        if task is not None:
            await asyncio.wait([task], timeout=CANCEL_WAIT_SECONDS)
