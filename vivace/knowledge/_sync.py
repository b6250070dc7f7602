"""Run a coroutine from sync code (the sync ``add``/``search``/``delete`` wrappers): one event
loop per thread, or a helper thread when called inside a running loop (e.g. Jupyter)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = getattr(_local, "loop", None)
        if loop is None or loop.is_closed():
            loop = _local.loop = asyncio.new_event_loop()
        return loop.run_until_complete(coro)
    out: list[Any] = []

    def target() -> None:
        try:
            out.append((True, run_sync(coro)))
        except BaseException as exc:
            out.append((False, exc))

    t = threading.Thread(target=target)
    t.start()
    t.join()
    ok, value = out[0]
    if ok:
        return value  # type: ignore[no-any-return,unused-ignore]
    raise value
