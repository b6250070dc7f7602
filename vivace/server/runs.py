"""Live runs of this process: each run is driven by its own task that writes its events to
the :class:`~vivace.server.sse.EventLog`; HTTP responses only read the log.

So a run outlives the request that started it (a streaming client may drop and reconnect),
cancellation reaches it from any request, and nothing per-request is kept on shared objects.
:meth:`LiveRuns.begin` waits for the run's first event before the request answers, so errors
that keep a run from starting (another user's session, a bad id) are raised to the route, with
nothing logged.

With several workers (the storage-backed event log), a cancel request that lands on a worker
not running the run is written to storage (``sessions.request_cancel``); the worker running
it checks its live runs for such requests (one batched read every ``poll_interval`` seconds,
only while it has live runs) and cancels them here, as a local cancel would.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..trace_hook import TRACE_CONTEXT
from .sse import TERMINAL_TYPES, RunInfo

if TYPE_CHECKING:
    from ..agent import RunResult, RunStream
    from ..agent.events import RunEvent
    from .sse import EventLog

__all__ = ["LiveRuns"]

logger = logging.getLogger("vivace.server")


class _Live:
    __slots__ = ("cancel_requested", "ended", "last_seq", "sessions", "started", "task", "trace")

    def __init__(self, started: asyncio.Future[dict[str, Any]]) -> None:
        self.task: asyncio.Task[RunResult | None] | None = None
        self.last_seq = -1
        self.trace: dict[str, Any] = {}  # trace_id, span_id, parent_run_id of the run's events
        self.cancel_requested = False
        self.ended = False  # a terminal event was logged
        self.sessions: Any = None  # where cancel requests from other workers show up
        self.started = started  # the first event, or the error that kept the run from starting


class LiveRuns:
    """The runs this process is executing right now (removed when they end).

    Args:
        log: Where the runs' events go.
        sessions_of: ``agent_id -> SessionStore | None``: where an agent's runs are stored,
            to honour cancel requests made on other workers (``None``: this process only).
        poll_interval: Seconds between checks for such requests (while runs are live).
    """

    def __init__(
        self,
        log: EventLog,
        *,
        sessions_of: Callable[[str], Any] | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        self.log = log
        self._live: dict[str, _Live] = {}
        self._sessions_of = sessions_of
        self.poll_interval = poll_interval
        self._poller: asyncio.Task[None] | None = None

    async def begin(
        self, info: RunInfo, stream: RunStream
    ) -> tuple[asyncio.Task[RunResult | None], dict[str, Any]]:
        """Start driving ``stream`` and wait for its first event: the run has then started
        (its storage ``begin``, with the session ownership check, is done). Errors that keep
        the run from starting (``SessionOwnershipError``, ``InvalidIdentifier``,
        ``RunStateError``...) are raised here, with nothing logged or stored, so the caller
        can still answer with a proper status. Returns the task and the first event."""
        task = self.start(info, stream)
        started = self._live[info.run_id].started
        # a client that goes away meanwhile does not stop the run (a retry finds it)
        return task, await asyncio.shield(started)

    def start(self, info: RunInfo, stream: RunStream) -> asyncio.Task[RunResult | None]:
        """Drive ``stream`` in a new task, logging every event (see :meth:`begin`)."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[dict[str, Any]] = loop.create_future()
        started.add_done_callback(_retrieve)
        live = _Live(started)
        self._live[info.run_id] = live
        live.task = loop.create_task(self._drive(info, stream, live))
        if self._sessions_of is not None:
            try:
                live.sessions = self._sessions_of(info.agent_id)
            except Exception:  # the run itself reports a storage it cannot open
                logger.warning("run %s: no storage to watch for cancel requests", info.run_id)
            if live.sessions is not None and (self._poller is None or self._poller.done()):
                # not in this request's context: the poller serves every run
                self._poller = loop.create_task(self._poll(), context=contextvars.Context())
        return live.task

    def sessions_for(self, agent_id: str) -> Any:
        """The sessions store to send cancel requests for ``agent_id``'s runs of other workers
        to, or None when cross-worker cancel is off (one worker: the in-process log)."""
        return self._sessions_of(agent_id) if self._sessions_of is not None else None

    async def _poll(self) -> None:
        """Cancel live runs for which another worker stored a cancel request."""
        failing = False
        while True:
            await asyncio.sleep(self.poll_interval)
            groups: dict[int, tuple[Any, list[str]]] = {}
            watched = False
            for run_id, live in self._live.items():
                if live.sessions is None:
                    continue
                watched = True
                if not live.cancel_requested and not live.ended:
                    groups.setdefault(id(live.sessions), (live.sessions, []))[1].append(run_id)
            if not watched:  # no live runs: stop (the next run starts a new poller)
                self._poller = None
                return
            for sessions, run_ids in groups.values():
                try:
                    asked = await sessions.cancel_requests(run_ids)
                except Exception:
                    if not failing:
                        logger.warning("cannot read cancel requests from storage", exc_info=True)
                    failing = True
                    continue
                failing = False
                for run_id in asked:
                    live_now = self._live.get(run_id)
                    if live_now is not None and not live_now.cancel_requested:
                        logger.info(
                            "run %s: cancelled by a request on another worker",
                            run_id,
                            extra=_log_context(live_now, run_id),
                        )
                        self.cancel(run_id)

    async def _drive(self, info: RunInfo, stream: RunStream, live: _Live) -> RunResult | None:
        run_id = info.run_id
        try:
            event: RunEvent = await stream.__anext__()
        except (Exception, asyncio.CancelledError) as exc:  # it did not start: nothing to log
            self._live.pop(run_id, None)
            if isinstance(exc, StopAsyncIteration):
                exc = RuntimeError("the run produced no events")
            elif isinstance(exc, asyncio.CancelledError):
                from ..errors import RunCancelled

                live.started.set_exception(RunCancelled("the run was cancelled before it started"))
                if live.cancel_requested:
                    return None
                raise
            live.started.set_exception(exc)
            return None
        log = self.log
        log.open(info)
        trace_id = event.trace_id
        if trace_id is not None:  # this task's log lines carry the run's trace and id
            live.trace = {
                "trace_id": trace_id,
                "span_id": event.span_id,
                "parent_run_id": event.parent_run_id,
            }
            TRACE_CONTEXT.set((trace_id, event.span_id, run_id))
        # a log that persists events shows the terminal event only once it is stored
        append_final = getattr(log, "append_final", None)
        try:
            while True:
                live.last_seq = event.seq
                data = event.to_dict()
                if append_final is not None and event.type in TERMINAL_TYPES:
                    live.ended = True
                    await append_final(run_id, data)
                else:
                    log.append(run_id, data)
                if not live.started.done():
                    live.started.set_result(data)
                try:
                    event = await stream.__anext__()
                except StopAsyncIteration:
                    break
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
        self.log.append(
            run_id, {"type": type_, "run_id": run_id, "seq": live.last_seq, **fields, **live.trace}
        )

    def is_live(self, run_id: str) -> bool:
        return run_id in self._live

    def task_of(self, run_id: str) -> asyncio.Task[RunResult | None] | None:
        """The task driving a live run of this process (done once the run has ended)."""
        live = self._live.get(run_id)
        return live.task if live is not None else None

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
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        tasks = [live.task for live in self._live.values() if live.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _log_context(live: _Live, run_id: str) -> dict[str, Any]:
    """``extra=`` for a log line about a run, logged outside its task."""
    trace = live.trace
    return {"trace_id": trace.get("trace_id"), "span_id": trace.get("span_id"), "run_id": run_id}


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a start error as seen (the run's task reports nothing else about it)."""
    if not future.cancelled():
        future.exception()
