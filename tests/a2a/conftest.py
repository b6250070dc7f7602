"""A2A test servers. No ``__init__.py`` here on purpose: a test package named ``a2a`` would
shadow the SDK."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest


@pytest.fixture
def serve_a2a() -> Iterator[object]:
    """``serve_a2a(agent) -> base URL``: the agent's A2A app on uvicorn (a thread)."""
    import uvicorn

    from vivace.a2a.server import a2a_app

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(agent: object) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        server = uvicorn.Server(
            uvicorn.Config(a2a_app(agent, base + "/"), port=port, log_level="warning")  # type: ignore[arg-type]
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        servers.append((server, thread))
        return base

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)
