"""Route modules. Each declares ``ROUTES: list[Op]`` of module-level handlers
``async def handler(request) -> Response`` that read shared state through
:mod:`vivace.server.state` (``request.app.state``).

To add one: write ``vivace/server/routes/<name>.py`` with its handlers and ``ROUTES``, and add
``<name>`` to :data:`MODULES`. The app serves it and the OpenAPI document describes it. Parts
above the server (the Studio) bring their route modules as extensions
(``VivaceApp(extensions=[...])``, see :mod:`vivace.server.extensions`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..routing import Op

__all__ = ["MODULES", "PROTOCOL_MODULES", "all_routes"]

MODULES: tuple[str, ...] = (
    "agents",
    "runs",
    "sessions",
    "memory",
    "knowledge",
    "openai_chat",
    "openai_responses",
    "workflows",
)
"""The route modules every app serves, in order (``docs`` is added when docs are on)."""

PROTOCOL_MODULES: dict[str, str] = {"mcp": "mcp", "a2a": "a2a", "agui": "agui"}
"""The route module of each open protocol, served after the others when the app serves it
(``VivaceApp(protocols=...)``): their paths never sit before an ordinary route."""


def all_routes(
    *, docs: bool = True, protocols: tuple[str, ...] = (), extra: Sequence[Op] = ()
) -> list[Op]:
    """The ops of every route module (and of the protocol modules named in ``protocols``),
    then ``extra`` (the app's extensions'), then the docs."""
    ops: list[Op] = []
    for name in (*MODULES, *(PROTOCOL_MODULES[p] for p in protocols)):
        ops.extend(importlib.import_module(f"{__name__}.{name}").ROUTES)
    ops.extend(extra)
    if docs:
        ops.extend(importlib.import_module(f"{__name__}.docs").ROUTES)
    return ops
