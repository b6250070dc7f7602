"""Server-sent events: the frame format and the per-run event log that makes reconnects exact.

Every run the server starts writes its events into an :class:`EventLog`. A streaming response
is just a subscriber that reads the log from a position, so a client that drops and comes
back with ``Last-Event-ID: N`` gets exactly the events with ``seq > N``: no gaps, no
duplicates. The run itself keeps going when its client disconnects.

:class:`InMemoryEventLog` keeps the live runs of this process plus recently finished ones
(bounded count and age). A storage-backed log (so a client can reconnect to a *different*
worker) implements the same :class:`EventLog` protocol and is passed as
``VivaceApp(event_log=...)``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .errors import dumps

__all__ = ["EventLog", "EventsExpired", "InMemoryEventLog", "RunInfo", "frame"]


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
        self.changed = asyncio.Event()


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
        self._live[info.run_id] = _Log(info)

    def append(self, run_id: str, event: dict[str, Any]) -> None:
        log = self._live.get(run_id)
        if log is None:
            return
        log.events.append(event)
        if len(log.events) > self.max_events:
            log.events.popleft()
            log.first_seq += 1
        changed, log.changed = log.changed, asyncio.Event()
        changed.set()

    def finish(self, run_id: str) -> None:
        log = self._live.pop(run_id, None)
        if log is None:
            return
        log.done = True
        log.finished_at = time.monotonic()
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
            await log.changed.wait()

    def __len__(self) -> int:
        return len(self._live) + len(self._finished)
