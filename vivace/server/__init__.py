"""The Vivace server: a stateless ASGI app exposing agents over REST, SSE and an
OpenAI-compatible API.

.. code-block:: python

    from vivace import Agent
    from vivace.server import VivaceApp

    app = VivaceApp(agents=[Agent(model="openai/gpt-4o-mini", name="assistant")])
    # uvicorn module:app   (the VivaceApp is itself an ASGI app; ``app.asgi`` is the Starlette app)

Needs the ``server`` extra (``pip install 'vivace[server]'``). Everything here is imported
lazily, so ``import vivace`` never pays for Starlette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import VivaceApp
    from .auth import APIKeyAuth, Auth, JWTAuth, MultiAuth, OpenAuth, Principal
    from .sse import EventLog, InMemoryEventLog, StorageEventLog

__all__ = [
    "APIKeyAuth",
    "Auth",
    "EventLog",
    "InMemoryEventLog",
    "JWTAuth",
    "MultiAuth",
    "OpenAuth",
    "Principal",
    "StorageEventLog",
    "VivaceApp",
]

_LAZY = {
    "VivaceApp": ".app",
    "APIKeyAuth": ".auth",
    "Auth": ".auth",
    "JWTAuth": ".auth",
    "MultiAuth": ".auth",
    "OpenAuth": ".auth",
    "Principal": ".auth",
    "EventLog": ".sse",
    "InMemoryEventLog": ".sse",
    "StorageEventLog": ".sse",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vivace.server' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
