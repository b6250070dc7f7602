"""One client call, one run: idempotent run creation.

A request that creates a run (``POST /agents/{id}/runs``, ``/v1/chat/completions``,
``/v1/responses``) is matched to an earlier one in two cases:

* **``Idempotency-Key``** header: the same key from the same principal (and user, agent and
  route) always means the same run. The run id is derived from a hash of those, so with
  storage any worker finds the run (``storage.sessions.get_run``), even after a restart;
  without storage, runs are remembered in this process. The same key with a different body
  is a 409 ``idempotency_key_reused`` (never retried: ``x-should-retry: false``).
* **Automatic retries** of the official OpenAI/Stainless clients, which resend the *same*
  request with ``x-stainless-retry-count: N``: a retry (N > 0) whose body matches a recent
  first attempt (N = 0) of the same principal gets that attempt's run. Remembered in this
  process (a retry that lands on another worker starts a new run: send an
  ``Idempotency-Key`` to be safe across workers).

A matched request never starts another run: it gets the earlier run's result, or its event
stream (see :mod:`vivace.server.launch`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..identifiers import new_id
from .errors import HTTPError
from .ids import header_id

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..agent import RunResult
    from ..storage import RunRecord

__all__ = ["IDEMPOTENCY_HEADER", "RETRY_COUNT_HEADER", "Claim", "RecentRuns", "claim"]

IDEMPOTENCY_HEADER = "idempotency-key"
RETRY_COUNT_HEADER = "x-stainless-retry-count"


class _Entry:
    """A run started by a request that may come again."""

    __slots__ = ("body_hash", "created", "ready", "record", "run_id", "session_id", "task")

    def __init__(self, run_id: str, body_hash: str) -> None:
        self.run_id = run_id
        self.body_hash = body_hash
        self.created = time.monotonic()
        # True once the run exists (task or stored record); False if it never started
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[RunResult | None] | None = None
        self.record: RunRecord | None = None
        self.session_id: str | None = None


class RecentRuns:
    """Runs of this process that a repeated request may ask for again (bounded, by age).

    Args:
        max_entries: Most runs remembered (oldest dropped first).
        ttl: Seconds a run is remembered (the official clients time out after 10 minutes
            before they retry).
    """

    def __init__(self, max_entries: int = 1024, ttl: float = 1800.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry.created > self.ttl:
            del self._entries[key]
            return None
        return entry

    def put(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: str, entry: _Entry) -> None:
        if self._entries.get(key) is entry:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(slots=True)
class Claim:
    """What a run-creating request should do: start run ``run_id``, or repeat ``existing``.

    After starting, call :meth:`started` (or :meth:`failed` when the run did not start).
    """

    run_id: str
    existing: _Entry | None = None
    _recent: RecentRuns | None = None
    _key: str | None = None
    _entry: _Entry | None = None

    @property
    def task(self) -> asyncio.Task[RunResult | None] | None:
        return self.existing.task if self.existing is not None else None

    @property
    def record(self) -> RunRecord | None:
        return self.existing.record if self.existing is not None else None

    def started(self, task: asyncio.Task[RunResult | None], session_id: str | None) -> None:
        entry = self._entry
        if entry is not None:
            entry.task = task
            entry.session_id = session_id
            if not entry.ready.done():
                entry.ready.set_result(True)

    def failed(self) -> None:
        entry = self._entry
        if entry is not None:
            if self._recent is not None and self._key is not None:
                self._recent.drop(self._key, entry)
            if not entry.ready.done():
                entry.ready.set_result(False)


def _hash(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\x00")
    return h.hexdigest()


def _retry_count(request: Request) -> int | None:
    raw = request.headers.get(RETRY_COUNT_HEADER)
    if raw is None:
        return None
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


async def claim(
    request: Request,
    recent: RecentRuns,
    *,
    agent_id: str,
    user_id: str | None,
    principal: Any,
    body: bytes,
    sessions: Any = None,
    input_message: Callable[[], dict[str, Any]] | None = None,
) -> Claim:
    """Match a run-creating request to an earlier run, or reserve the id of a new one.

    ``sessions`` is the agent's session store (``None``: no storage): an ``Idempotency-Key``
    run is looked up there too, so a retry that lands on another worker finds it (and its
    stored input must equal ``input_message()``, the new request's user message).
    """
    key = header_id(request, IDEMPOTENCY_HEADER)
    retry = _retry_count(request)
    if key is None and retry is None:
        return Claim(new_id())
    who = _hash(
        request.url.path,
        str(getattr(principal, "method", "")),
        str(getattr(principal, "user_id", None)),
        str(user_id),
        agent_id,
    )
    body_hash = _hash(body)
    while True:
        if key is not None:
            run_id = _hash(who, "key", key)[:32]
            slot = "k" + run_id
        else:
            run_id = new_id()
            slot = "f" + _hash(who, body_hash)
        entry = recent.get(slot)
        if entry is not None and (key is not None or (retry or 0) > 0):
            if entry.body_hash != body_hash:
                raise _reused()
            if await asyncio.shield(entry.ready):
                return Claim(entry.run_id, existing=entry)
            continue  # that attempt never started a run: this one tries again
        entry = _Entry(run_id, body_hash)
        recent.put(slot, entry)
        mine = Claim(run_id, _recent=recent, _key=slot, _entry=entry)
        if key is not None and sessions is not None:
            try:
                record = await sessions.get_run(run_id)
            except BaseException:
                mine.failed()
                raise
            if record is not None:
                if record.agent_id not in (None, agent_id) or not _same_input(
                    record, input_message
                ):
                    mine.failed()
                    raise _reused()
                entry.record = record
                entry.ready.set_result(True)
                return Claim(run_id, existing=entry)
        return mine


def _same_input(record: Any, input_message: Callable[[], dict[str, Any]] | None) -> bool:
    if record.input is None or input_message is None:
        return True
    return _canonical(record.input) == _canonical(input_message())


def _canonical(value: Any) -> str:
    import json

    from .errors import dumps

    return json.dumps(json.loads(dumps(value)), sort_keys=True)


def _reused() -> HTTPError:
    return HTTPError(
        409,
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request body",
        param=IDEMPOTENCY_HEADER,
        headers={"x-should-retry": "false"},
    )
