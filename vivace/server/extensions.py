"""Extensions: what parts above the server (the Studio) add to an app, without the server
importing them.

An extension is any object with ``routes`` (a list of :class:`~vivace.server.routing.Op`, served
and documented like the app's own route modules, with the same auth and errors) and, if it
needs them, lifecycle methods::

    class Extension:
        name = "studio"
        routes: list[Op]

        def setup(self, app: VivaceApp) -> None:  # once, when the app builds (app.asgi.state)
            ...

        def bind(self, loop) -> None:  # the event loop that serves the app (first request)
            ...

        async def aclose(self) -> None:  # at shutdown (the app's lifespan)
            ...

``VivaceApp(extensions=[...])`` or ``app.add_extension(ext)`` before the app serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .routing import Op

__all__ = ["Extension"]


class Extension(Protocol):
    """Routes (and optional ``name``, ``setup``, ``bind``, ``aclose``) added to an app."""

    @property
    def routes(self) -> Sequence[Op]: ...
