"""Live runs of this process: each run is driven by its own task that writes its events to
the :class:`~vivace.server.sse.EventLog`; HTTP responses only read the log.

So a run outlives the request that started it (a streaming client may drop and reconnect),
cancellation reaches it from any request, and nothing per-request is kept on shared objects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .sse import TERMINAL_TYPES, RunInfo

if TYPE_CHECKING:
    from ..agent import RunResult, RunStream
    from .sse import EventLog

__all__ = ["LiveRuns"]

logger = logging.getLogger("vivace.server")


class _Live:
    __slots__ = ("cancel_requested", "ended", "last_seq", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[RunResult | None] | None = None
        self.last_seq = -1
        self.cancel_requested = False
        self.ended = False  # a terminal event was logged


class LiveRuns:
    """The runs this process is executing right now (removed when they end)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._live: dict[str, _Live] = {}

    def start(self, info: RunInfo, stream: RunStream) -> asyncio.Task[RunResult | None]:
        """Drive ``stream`` in a new task, logging every event."""
        live = _Live()
        self._live[info.run_id] = live
        self.log.open(info)
        live.task = asyncio.get_running_loop().create_task(self._drive(info.run_id, stream, live))
        return live.task

    async def _drive(self, run_id: str, stream: RunStream, live: _Live) -> RunResult | None:
        log = self.log
        # a log that persists events shows the terminal event only once it is stored
        append_final = getattr(log, "append_final", None)
        try:
            async for event in stream:
                live.last_seq = event.seq
                if append_final is not None and event.type in TERMINAL_TYPES:
                    live.ended = True
                    await append_final(run_id, event.to_dict())
                else:
                    log.append(run_id, event.to_dict())
            return stream.result
        except asyncio.CancelledError:
            if live.ended:  # cancelled after the end (while its events were being stored)
                if live.cancel_requested:
                    return stream.result
                raise
            if live.cancel_requested:  # cancelled before the run registered itself
                self._synthetic(live, run_id, "run_cancelled", reason="cancelled by request")
                return None
            self._synthetic(live, run_id, "run_cancelled", reason="server shutting down")
            raise
        except Exception:
            logger.exception("run %s failed unexpectedly", run_id)
            if live.ended:
                return None
            self._synthetic(
                live,
                run_id,
                "run_failed",
                status="failed",
                error={
                    "type": "InternalError",
                    "code": "internal_error",
                    "message": "the run failed unexpectedly",
                },
            )
            return None
        finally:
            self._live.pop(run_id, None)
            log.finish(run_id)

    def _synthetic(self, live: _Live, run_id: str, type_: str, **fields: Any) -> None:
        live.last_seq += 1
        self.log.append(run_id, {"type": type_, "run_id": run_id, "seq": live.last_seq, **fields})

    def is_live(self, run_id: str) -> bool:
        return run_id in self._live

    def cancel(self, run_id: str) -> bool:
        """Cancel a live run of this process; False when it is not running here."""
        from ..agent.registry import cancel_run

        live = self._live.get(run_id)
        if live is None:
            return cancel_run(run_id)
        live.cancel_requested = True
        if cancel_run(run_id):
            return True
        if live.task is not None and not live.task.done():
            live.task.cancel()
            return True
        return False

    async def shutdown(self) -> None:
        """Cancel every live run (server shutdown)."""
        tasks = [live.task for live in self._live.values() if live.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
