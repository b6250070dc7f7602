"""The Studio: a local web UI (chat with agents, approve tool calls, read traces and
metrics, run tools) served by the server at ``/studio`` as an extension of the app::

    from vivace.server import VivaceApp
    from vivace.studio import Studio

    app = VivaceApp([agent], storage="sqlite:///.vivace/vivace.db", extensions=[Studio()])

``vivace dev`` and ``vivace serve --studio`` add it. The UI is plain ES modules and CSS
(``static/``): no build step, no CDN, it works offline. See ``docs/studio.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .extension import Studio

__all__ = ["STATIC", "Studio"]

STATIC = Path(__file__).with_name("static")
"""The folder of the Studio's page and assets."""


def __getattr__(name: str) -> Any:
    if name == "Studio":  # imported on first use: ``import vivace.studio`` stays light
        from .extension import Studio

        return Studio
    raise AttributeError(f"module 'vivace.studio' has no attribute {name!r}")
