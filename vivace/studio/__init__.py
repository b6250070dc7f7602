"""The Studio: a local web UI (chat with agents, approve tool calls, read traces and metrics,
run tools) served at ``/studio`` by the same server. No build step: the assets are plain ES
modules and CSS shipped in the wheel (``vivace/studio/static``), working offline.

    from vivace.studio import with_studio
    app = with_studio(VivaceApp([agent]))    # ASGI: /studio, /metrics, /studio/api/*
"""

from __future__ import annotations

from .app import StudioApp, with_studio

__all__ = ["StudioApp", "with_studio"]
