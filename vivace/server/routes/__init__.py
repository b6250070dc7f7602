"""Route modules. Each declares ``ROUTES: list[Op]`` of module-level handlers
``async def handler(request) -> Response`` that read shared state through
:mod:`vivace.server.state` (``request.app.state``).

To add one: write ``vivace/server/routes/<name>.py`` with its handlers and ``ROUTES``, and add
``<name>`` to :data:`MODULES`. The app serves it and the OpenAPI document describes it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..routing import Op

__all__ = ["MODULES", "all_routes"]

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


def all_routes(*, docs: bool = True) -> list[Op]:
    """The ops of every route module."""
    ops: list[Op] = []
    for name in (*MODULES, "docs") if docs else MODULES:
        ops.extend(importlib.import_module(f"{__name__}.{name}").ROUTES)
    return ops
