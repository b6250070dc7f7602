"""Server-sent events: the frame format and the per-run event log that makes reconnects exact.

Every run the server starts writes its events into an :class:`EventLog`. A streaming response
is just a subscriber that reads the log from a position, so a client that drops and comes
back with ``Last-Event-ID: N`` gets exactly the events with ``seq > N``: no gaps, no
duplicates. The run itself keeps going when its client disconnects.

:class:`InMemoryEventLog` keeps the live runs of this process plus recently finished ones
(bounded count and age). :class:`StorageEventLog` adds persistence to storage
(``storage.events``) so a client can reconnect to a *different* worker: live subscribers on the
run's own worker still read the in-process log; the events are also written in batches by a
background task per run, and a worker that does not know a run serves a reconnect from
storage, polling until the run's terminal event. Choose it with
``VivaceApp(event_log="storage")`` (``vivace serve --workers N`` with N > 1 does).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .errors import dumps

__all__ = [
    "RUN_EVENT_SCHEMA",
    "TERMINAL_TYPES",
    "EventLog",
    "EventsExpired",
    "InMemoryEventLog",
    "RunInfo",
    "StorageEventLog",
    "frame",
]

TERMINAL_TYPES = frozenset(
    {
        "run_completed",
        "run_failed",
        "run_cancelled",
        "run_paused",
        "workflow_completed",
        "workflow_failed",
        "workflow_cancelled",
        "workflow_suspended",
    }
)
"""Event types that end a run's stream (or a segment of it, for ``run_paused`` and
``workflow_suspended``); workflow runs stream through the same log."""

logger = logging.getLogger("vivace.server")


def frame(data: Any, event: str | None = None, id: int | str | None = None) -> bytes:
    """One SSE frame: ``event:``, ``id:`` and ``data:`` lines and a blank line."""
    out = []
    if event is not None:
        out.append(f"event: {event}\n".encode())
    if id is not None:
        out.append(f"id: {id}\n".encode())
    payload = data if isinstance(data, bytes) else dumps(data)
    out.append(b"data: " + payload + b"\n\n")
    return b"".join(out)


KEEPALIVE = b": keep-alive\n\n"

RUN_EVENT_SCHEMA: dict[str, Any] = {
    "description": "one run event: `event` is its type, `id` its seq, `data` the event as JSON",
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "run_id": {"type": "string"},
                    "seq": {"type": "integer", "minimum": 0},
                },
                "required": ["type", "run_id"],
            },
        },
    },
    "required": ["data"],
}
"""The OpenAPI schema of one server-sent event of a run's stream."""


class EventsExpired(Exception):
    """The events asked for are no longer kept (the client was away too long)."""


@dataclass(slots=True)
class RunInfo:
    """Who a logged run belongs to (checked before letting a client read or cancel it)."""

    run_id: str
    agent_id: str
    user_id: str | None = None
    session_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class EventLog(Protocol):
    """Where a run's events are written, and read back by streams and reconnects.

    Events are dicts with at least ``type`` and ``seq`` (0, 1, 2... per run).
    """

    def open(self, info: RunInfo) -> None:
        """Start the log of a new run."""

    def append(self, run_id: str, event: dict[str, Any]) -> None:
        """Add the next event (in ``seq`` order)."""

    def finish(self, run_id: str) -> None:
        """Mark the run's stream as complete (subscribers end after the last event)."""

    def info(self, run_id: str) -> RunInfo | None:
        """The run's owner info, or ``None`` when the run is unknown here."""

    def oldest_seq(self, run_id: str) -> int:
        """The lowest ``seq`` still kept for the run (0 unless a ring buffer dropped some)."""

    def subscribe(self, run_id: str, after: int = -1) -> AsyncIterator[dict[str, Any]]:
        """Events with ``seq > after``: those already written, then live ones until finished."""
        ...


class _Log:
    __slots__ = ("changed", "done", "events", "finished_at", "first_seq", "info")

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.events: deque[dict[str, Any]] = deque()
        self.first_seq = 0
        self.done = False
        self.finished_at = 0.0
        self.changed: asyncio.Event | None = None  # made when a reader waits for more


class InMemoryEventLog:
    """Event logs of this process's runs.

    Args:
        retain_seconds: How long a finished run's events stay readable.
        max_finished: Most finished runs kept (oldest dropped first).
        max_events: Most events kept per run (a ring buffer; older ones are dropped and a
            reconnect asking for them gets ``410 Gone``).
    """

    def __init__(
        self, retain_seconds: float = 300.0, max_finished: int = 1000, max_events: int = 100_000
    ) -> None:
        self.retain_seconds = retain_seconds
        self.max_finished = max_finished
        self.max_events = max_events
        self._live: dict[str, _Log] = {}
        self._finished: OrderedDict[str, _Log] = OrderedDict()

    def _get(self, run_id: str) -> _Log | None:
        log = self._live.get(run_id)
        if log is None:
            log = self._finished.get(run_id)
            if log is not None and time.monotonic() - log.finished_at > self.retain_seconds:
                del self._finished[run_id]
                return None
        return log

    def open(self, info: RunInfo) -> None:
        log = _Log(info)
        prev = self._finished.pop(info.run_id, None)
        if prev is not None:  # a resumed run: its events continue the earlier ones
            log.events, log.first_seq = prev.events, prev.first_seq
        self._live[info.run_id] = log

    def append(self, run_id: str, event: dict[str, Any]) -> None:
        log = self._live.get(run_id)
        if log is None:
            return
        seq = event.get("seq")
        if isinstance(seq, int) and seq != log.first_seq + len(log.events):
            # numbering restarted (a new segment): drop what came before
            log.events.clear()
            log.first_seq = seq
        log.events.append(event)
        if len(log.events) > self.max_events:
            log.events.popleft()
            log.first_seq += 1
        changed = log.changed
        if changed is not None:  # wake the readers waiting for this event
            log.changed = None
            changed.set()

    def finish(self, run_id: str) -> None:
        log = self._live.pop(run_id, None)
        if log is None:
            return
        log.done = True
        log.finished_at = time.monotonic()
        if log.changed is not None:
            log.changed.set()
        self._finished[run_id] = log
        while len(self._finished) > self.max_finished:
            self._finished.popitem(last=False)
        now = log.finished_at
        while self._finished:  # drop expired ones from the old end
            oldest = next(iter(self._finished.values()))
            if now - oldest.finished_at <= self.retain_seconds:
                break
            self._finished.popitem(last=False)

    def info(self, run_id: str) -> RunInfo | None:
        log = self._get(run_id)
        return log.info if log is not None else None

    def oldest_seq(self, run_id: str) -> int:
        log = self._get(run_id)
        return log.first_seq if log is not None else 0

    def is_live(self, run_id: str) -> bool:
        return run_id in self._live

    def discard(self, run_id: str) -> None:
        """Forget a finished run (its events are served from elsewhere now)."""
        self._finished.pop(run_id, None)

    async def subscribe(self, run_id: str, after: int = -1) -> AsyncIterator[dict[str, Any]]:
        log = self._get(run_id)
        if log is None:
            return
        nxt = after + 1
        while True:
            if nxt < log.first_seq:
                raise EventsExpired(f"events before seq {log.first_seq} are no longer kept")
            events = log.events
            while nxt - log.first_seq < len(events):
                yield events[nxt - log.first_seq]
                nxt += 1
            if log.done:
                return
            changed = log.changed
            if changed is None:
                changed = log.changed = asyncio.Event()
            await changed.wait()

    def __len__(self) -> int:
        return len(self._live) + len(self._finished)


def _give_up(stored: asyncio.Future[None], run_id: str) -> None:
    if not stored.done():
        logger.warning("run %s: events not persisted in time; showing the end", run_id)
        stored.set_result(None)


class _Run:
    """A live run's persistence state in :class:`StorageEventLog`."""

    __slots__ = ("broken", "done", "first", "stored_seq", "waiters")

    def __init__(self) -> None:
        self.stored_seq = -1
        self.first = True  # its first write decides whether it replaces a stored segment
        self.done = False
        self.broken = False
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []  # (seq, stored)


class StorageEventLog:
    """The in-process log plus persistence in ``storage.events``: reconnect on any worker.

    Live subscribers on the run's worker read the in-process log (no extra latency). One
    background task per log writes the events of **all** live runs in batches: it gathers
    for up to ``flush_interval`` seconds, or writes at once when a run ends, then stores every
    pending event of every run in one statement (``storage.events.append_many``: a group
    commit, so the cost per event falls as the load grows). Runs never wait for those writes,
    and a failed write is logged, never raised into a run. A run's terminal event is written
    *before* it becomes visible here, so once a client (or a JSON response) has seen the end,
    storage holds every event before it.

    A worker that does not know a run (``prefetch`` reads its record from
    ``storage.sessions``) serves reconnects from storage: the stored events after the client's
    position, then polling every ``poll_interval`` seconds until the terminal event, or until
    the run is no longer ``running`` in storage (``incomplete`` after a crash) and
    ``settle_seconds`` have passed without it.

    Args:
        storage: A :class:`~vivace.storage.Storage` shared by all workers.
        local: The in-process log (default a new :class:`InMemoryEventLog`).
        flush_interval: Longest wait (seconds) before a live run's events are written.
        poll_interval: Seconds between storage reads of a reconnect served from storage.
        settle_seconds: How long a reader waits for a finished run's last events.
        final_timeout: Longest wait for the terminal event's write before showing it anyway.
        retain_seconds: Stored events older than this are pruned (at most every
            ``retain_seconds / 10`` s, when a run starts); ``None`` leaves pruning to you
            (``storage.prune({"events": timedelta(...)})``).
    """

    def __init__(
        self,
        storage: Any,
        *,
        local: InMemoryEventLog | None = None,
        flush_interval: float = 0.05,
        poll_interval: float = 0.15,
        settle_seconds: float = 2.0,
        final_timeout: float = 5.0,
        retain_seconds: float | None = 3600.0,
    ) -> None:
        self.storage = storage
        self.local = local if local is not None else InMemoryEventLog()
        self.flush_interval = flush_interval
        self.poll_interval = poll_interval
        self.settle_seconds = settle_seconds
        self.final_timeout = final_timeout
        self.retain_seconds = retain_seconds
        self._runs: dict[str, _Run] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._wake: asyncio.Event | None = None  # something to write
        self._kick: asyncio.Event | None = None  # a run ended: write now
        self._urgent = False
        self._writer: asyncio.Task[None] | None = None
        self._remote: OrderedDict[str, tuple[RunInfo, int, float]] = OrderedDict()
        self._last_prune = time.monotonic()
        self._prune_task: asyncio.Task[None] | None = None

    # -- writing ---------------------------------------------------------------------------------

    def open(self, info: RunInfo) -> None:
        self.local.open(info)
        self._remote.pop(info.run_id, None)
        self._runs[info.run_id] = _Run()
        self._pending.pop(info.run_id, None)
        if self._writer is None or self._writer.done():
            self._wake, self._kick = asyncio.Event(), asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._maybe_prune()

    def _queue(self, run_id: str, event: dict[str, Any], urgent: bool) -> _Run | None:
        r = self._runs.get(run_id)
        if r is None or r.broken:
            return None
        pending = self._pending.get(run_id)
        if pending is None:
            self._pending[run_id] = [event]
        else:
            pending.append(event)
        if urgent:
            self._wake_now()
        else:
            wake = self._wake
            if wake is not None and not wake.is_set():
                wake.set()
        return r

    def _wake_now(self) -> None:
        self._urgent = True
        if self._wake is not None:
            self._wake.set()
        if self._kick is not None:
            self._kick.set()

    def append(self, run_id: str, event: dict[str, Any]) -> None:
        self.local.append(run_id, event)
        self._queue(run_id, event, False)

    async def append_final(self, run_id: str, event: dict[str, Any]) -> None:
        """Append the terminal event once it (and everything before it) is in storage."""
        try:
            r = self._queue(run_id, event, True)
            if r is None:
                return
            loop = asyncio.get_running_loop()
            stored = loop.create_future()
            r.waiters.append((event["seq"], stored))
            timer = loop.call_later(self.final_timeout, _give_up, stored, run_id)
            try:
                await stored
            finally:
                timer.cancel()
        finally:
            self.local.append(run_id, event)

    def finish(self, run_id: str) -> None:
        self.local.finish(run_id)
        r = self._runs.get(run_id)
        if r is not None:
            r.done = True
            if run_id not in self._pending:  # nothing left to write
                self._forget(run_id, r)
            else:
                self._wake_now()

    def _forget(self, run_id: str, r: _Run) -> None:
        if self._runs.get(run_id) is r:
            del self._runs[run_id]
        for _, fut in r.waiters:
            if not fut.done():
                fut.set_result(None)
        r.waiters.clear()

    async def _write_loop(self) -> None:
        wake, kick = self._wake, self._kick
        assert wake is not None and kick is not None
        while True:
            try:
                await wake.wait()
                if not self._urgent:  # gather a batch, unless a run ends meanwhile
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(kick.wait(), self.flush_interval)
                wake.clear()
                kick.clear()
                self._urgent = False
                batch, self._pending = self._pending, {}
                if batch:
                    await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let a logging problem surface anywhere
                logger.exception("the run event writer failed")
                await asyncio.sleep(self.flush_interval)
            if not self._runs and not self._pending:
                return  # idle: the next run starts a new writer

    async def _write(self, batch: dict[str, list[dict[str, Any]]]) -> None:
        group: list[tuple[str, list[dict[str, Any]]]] = []
        for run_id, events in batch.items():
            r = self._runs.get(run_id)
            if r is None:
                continue
            if r.broken:
                if r.done:
                    self._forget(run_id, r)
                continue
            # a segment numbered from 0 again (not a run's start) replaces the stored one
            replace = (
                r.first and events[0].get("seq") == 0 and events[0].get("type") != "run_started"
            )
            r.first = False
            if replace:
                await self._store([(run_id, events)], replace=True)
            else:
                group.append((run_id, events))
        if group:
            await self._store(group)

    async def _store(
        self, group: list[tuple[str, list[dict[str, Any]]]], replace: bool = False
    ) -> None:
        events_store = self.storage.events
        for attempt in range(3):
            try:
                if replace:
                    await events_store.append(group[0][0], group[0][1], replace=True)
                else:
                    await events_store.append_many(group)
                ok = True
                break
            except Exception:
                if attempt == 2:
                    # stop persisting these runs: later batches would leave a gap in storage
                    logger.exception(
                        "run(s) %s: cannot persist its events; giving up",
                        ", ".join(run_id for run_id, _ in group),
                    )
                    ok = False
                    break
                await asyncio.sleep(0.05 * (attempt + 1))
        for run_id, events in group:
            r = self._runs.get(run_id)
            if r is None:
                continue
            if ok:
                r.stored_seq = events[-1]["seq"]
                if r.waiters:
                    keep = []
                    for seq, fut in r.waiters:
                        if seq <= r.stored_seq:
                            if not fut.done():
                                fut.set_result(None)
                        else:
                            keep.append((seq, fut))
                    r.waiters = keep
            else:
                r.broken = True
                for _, fut in r.waiters:  # the end is shown without waiting any longer
                    if not fut.done():
                        fut.set_result(None)
                r.waiters.clear()
            if (r.done or r.broken) and run_id not in self._pending:
                self._forget(run_id, r)

    def _maybe_prune(self) -> None:
        retain = self.retain_seconds
        if retain is None:
            return
        now = time.monotonic()
        if now - self._last_prune < max(retain / 10, 1.0):
            return
        if self._prune_task is not None and not self._prune_task.done():
            return
        self._last_prune = now
        self._prune_task = asyncio.get_running_loop().create_task(
            self._prune(retain),
            context=contextvars.Context(),  # no run's trace: it serves all
        )

    async def _prune(self, retain: float) -> None:
        try:
            await self.storage.events.prune(time.time() - retain)
        except Exception:
            logger.exception("pruning stored run events failed")

    async def aclose(self, timeout: float = 5.0) -> None:
        """Write what is still buffered (server shutdown)."""
        tasks: list[asyncio.Task[None]] = []
        for r in self._runs.values():
            r.done = True
        if self._writer is not None and not self._writer.done():
            self._urgent = True
            if self._wake is not None:
                self._wake.set()
            tasks.append(self._writer)
        if self._prune_task is not None:
            tasks.append(self._prune_task)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    # -- reading ---------------------------------------------------------------------------------

    async def prefetch(self, run_id: str) -> None:
        """Learn about a run this worker does not know from storage (before :meth:`info`)."""
        if self.local.is_live(run_id):
            return
        try:
            record = await self.storage.sessions.get_run(run_id)
        except Exception:
            logger.exception("run %s: cannot read its record", run_id)
            return
        if record is None:
            return
        if self.local.info(run_id) is not None:
            if record.status != "running":
                return  # finished here: the in-process log has it all
            self.local.discard(run_id)  # resumed on another worker since
        oldest = 0
        if record.status != "running":
            try:
                first = await self.storage.events.read(run_id, limit=1)
            except Exception:
                logger.exception("run %s: cannot read its events", run_id)
                return
            if first:
                oldest = int(first[0]["seq"])
            elif time.time() - record.updated_at > self.settle_seconds:
                return  # finished and its events are not stored (pruned, or never logged)
        info = RunInfo(run_id, record.agent_id or "", record.user_id, record.session_id)
        self._remote[run_id] = (info, oldest, time.monotonic())
        self._remote.move_to_end(run_id)
        while len(self._remote) > 1024:
            self._remote.popitem(last=False)

    def _remote_entry(self, run_id: str) -> tuple[RunInfo, int, float] | None:
        entry = self._remote.get(run_id)
        if entry is not None and time.monotonic() - entry[2] > 60.0:
            del self._remote[run_id]
            return None
        return entry

    def info(self, run_id: str) -> RunInfo | None:
        info = self.local.info(run_id)
        if info is not None:
            return info
        entry = self._remote_entry(run_id)
        return entry[0] if entry is not None else None

    def oldest_seq(self, run_id: str) -> int:
        if self.local.info(run_id) is not None:
            return self.local.oldest_seq(run_id)
        entry = self._remote_entry(run_id)
        return entry[1] if entry is not None else 0

    def is_live(self, run_id: str) -> bool:
        return self.local.is_live(run_id)

    def subscribe(self, run_id: str, after: int = -1) -> AsyncIterator[dict[str, Any]]:
        if self.local.info(run_id) is not None:
            return self.local.subscribe(run_id, after)
        return self._from_storage(run_id, after)

    async def _from_storage(self, run_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        events_store = self.storage.events
        nxt = after + 1
        next_status_check = 0.0
        settle_until: float | None = None
        last_type: Any = None
        while True:
            batch = await events_store.read(run_id, after=nxt - 1, limit=500)
            for event in batch:
                seq = event.get("seq")
                if not isinstance(seq, int) or seq < nxt:
                    continue
                if seq > nxt:  # events missing (pruned, or their write failed): stop here
                    logger.warning("run %s: stored events jump from %d to %d", run_id, nxt, seq)
                    return
                yield event
                nxt = seq + 1
                last_type = event.get("type")
            if len(batch) == 500:
                continue
            if last_type in TERMINAL_TYPES:  # the last event so far ends the run
                if last_type != "run_paused":
                    return
                # a paused run ends its stream unless it has been resumed since
                record = await self.storage.sessions.get_run(run_id)
                if record is None or record.status != "running":
                    return
            now = loop.time()
            if settle_until is not None:
                if now >= settle_until:
                    return
            elif not batch and now >= next_status_check:
                next_status_check = now + 1.0
                record = await self.storage.sessions.get_run(run_id)
                status = record.status if record is not None else None
                if status == "incomplete" or status is None:
                    settle_until = now  # the run died (or vanished): one last read
                elif status != "running":
                    settle_until = now + self.settle_seconds
                if settle_until is not None:
                    continue
            await asyncio.sleep(self.poll_interval)

    def __len__(self) -> int:
        return len(self.local)
