"""Objects the protocol endpoints build on first use and the app closes at shutdown.

The protocols' SDKs (``mcp``, ``a2a-sdk``, ``ag-ui-protocol``) take a second or more to
import, so an app builds nothing of them at startup: the first request to a protocol's
endpoint builds what it needs (an MCP session manager running in a task, an A2A request
handler per agent) through :meth:`Mounts.get`, and :class:`~vivace.server.app.VivaceApp`'s
lifespan closes them (``aclose``) before it stops the live runs. The ordinary routes never
touch them.

An object is built once per event loop: a test harness (or a server) that serves the same app
from another loop gets fresh ones, since tasks and locks belong to their loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["Mounts"]

logger = logging.getLogger("vivace.server")

T = TypeVar("T")


class Mounts:
    """Lazily built, closed-at-shutdown objects of the protocol endpoints, by key."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        # key -> (loop, the task building it): concurrent first requests share one build,
        # and a request that goes away meanwhile does not abandon it half-started
        self._items: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = {}

    async def get(self, key: str, build: Callable[[], Awaitable[T]]) -> T:
        """The object under ``key``, built by ``await build()`` on first use (in this loop).
        A build that failed is tried again by the next request."""
        loop = asyncio.get_running_loop()
        found = self._items.get(key)
        if found is None or found[0] is not loop or _failed(found[1]):
            task: asyncio.Task[Any] = loop.create_task(_run(build), name=f"vivace-build-{key}")
            found = self._items[key] = (loop, task)
        return await asyncio.shield(found[1])

    async def aclose(self) -> None:
        """Close every object built in this loop (``await obj.aclose()`` when it has one)."""
        loop = asyncio.get_running_loop()
        items, self._items = self._items, {}
        for key, (owner, task) in items.items():
            if owner is not loop:
                continue
            try:
                value = await task
            except Exception:
                continue  # never built: nothing to close
            close = getattr(value, "aclose", None)
            if close is None:
                continue
            try:
                await close()
            except Exception:
                logger.warning("closing the %s endpoint failed", key, exc_info=True)


async def _run(build: Callable[[], Awaitable[T]]) -> T:
    return await build()


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)
