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

    __slots__ = ("_items", "_locks")

    def __init__(self) -> None:
        self._items: dict[str, tuple[asyncio.AbstractEventLoop, Any]] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def get(self, key: str, build: Callable[[], Awaitable[T]]) -> T:
        """The object under ``key``, built by ``await build()`` on first use (in this loop)."""
        loop = asyncio.get_running_loop()
        found = self._items.get(key)
        if found is not None and found[0] is loop:
            return found[1]  # type: ignore[no-any-return]
        lock = self._locks.setdefault((key, id(loop)), asyncio.Lock())
        async with lock:
            found = self._items.get(key)
            if found is not None and found[0] is loop:
                return found[1]  # type: ignore[no-any-return]
            value = await build()
            self._items[key] = (loop, value)
            return value

    async def aclose(self) -> None:
        """Close every object built in this loop (``await obj.aclose()`` when it has one)."""
        loop = asyncio.get_running_loop()
        items, self._items = self._items, {}
        self._locks.clear()
        for key, (owner, value) in items.items():
            close = getattr(value, "aclose", None)
            if close is None or owner is not loop:
                continue
            try:
                await close()
            except Exception:
                logger.warning("closing the %s endpoint failed", key, exc_info=True)
