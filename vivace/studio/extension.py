"""The Studio as an extension of the server: its route modules (:mod:`.routes`,
:mod:`.prometheus`) join the app's routes and OpenAPI document, and its exporters
(:mod:`.tracing`) trace runs into the server's storage while the app runs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..server import VivaceApp
    from ..server.routing import Op
    from .tracing import StudioTracing

__all__ = ["Studio"]


class Studio:
    """The Studio at ``/studio`` (page, assets, ``/studio/api/*``) and ``/metrics``:
    ``VivaceApp([...], extensions=[Studio()])`` (``vivace dev`` and ``vivace serve --studio``
    add it).

    Args:
        trace: Trace runs into the server's storage and keep live metrics. ``False`` when
            you configure :mod:`vivace.observability` yourself and want nothing added (the
            Traces screen then shows what your exporters put in the storage).
    """

    name = "studio"

    def __init__(self, *, trace: bool = True) -> None:
        self.trace = trace
        self.tracing: StudioTracing | None = None

    @property
    def routes(self) -> list[Op]:
        from .prometheus import ROUTES as PROMETHEUS
        from .routes import ROUTES

        return [*ROUTES, *PROMETHEUS]

    def setup(self, app: VivaceApp) -> None:
        """Once, when the app builds: the exporters, and ``app.state.studio``."""
        if self.trace and self.tracing is None:
            from .tracing import StudioTracing

            self.tracing = StudioTracing(app.storage)
        app.asgi.state.studio = self

    @property
    def metrics(self) -> Any:
        """The live metrics (``/metrics``), or None without tracing."""
        return self.tracing.metrics if self.tracing is not None else None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """When the app first serves: spans are written on its loop (it owns the storage)."""
        if self.tracing is not None:
            self.tracing.bind(loop)

    async def aclose(self) -> None:
        """At shutdown: flush the Studio's exporters and stop tracing into the storage."""
        if self.tracing is not None:
            await self.tracing.aclose()
            self.tracing = None
