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

__all__ = ["MODULES", "STUDIO_MODULES", "all_routes"]

MODULES: tuple[str, ...] = (
    "agents",
    "runs",
    "sessions",
    "memory",
    "openai_chat",
    "openai_responses",
)
"""The route modules every app serves, in order (``docs`` is added when docs are on,
``studio`` and ``metrics`` with the Studio)."""

STUDIO_MODULES: tuple[str, ...] = ("studio", "metrics")


def all_routes(*, docs: bool = True, studio: bool = False) -> list[Op]:
    """The ops of every route module the app serves."""
    names = [*MODULES]
    if studio:
        names.extend(STUDIO_MODULES)
    if docs:
        names.append("docs")
    ops: list[Op] = []
    for name in names:
        ops.extend(importlib.import_module(f"{__name__}.{name}").ROUTES)
    return ops
