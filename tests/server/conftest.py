"""Fixtures for server tests: an app over ASGITransport, and real uvicorn servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vivace.server import VivaceApp

from .apps import GATE, make_agents

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_sse(text: str) -> list[dict[str, Any]]:
    """SSE text -> frames as dicts with event, id and data (parsed JSON)."""
    import json

    frames = []
    for block in text.split("\n\n"):
        f: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            f[key] = value
        if "data" in f:
            f["data"] = json.loads(f["data"]) if f["data"] != "[DONE]" else "[DONE]"
            frames.append(f)
    return frames


@pytest.fixture
def make_app() -> Any:
    def factory(**kw: Any) -> VivaceApp:
        kw.setdefault("auth", False)
        return VivaceApp(agents=make_agents(), **kw)

    return factory


@pytest.fixture
async def client(make_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as c:
        yield c


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    GATE.clear()
    yield GATE
    GATE.set()


class ThreadServer:
    """uvicorn serving an ASGI app in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def thread_server() -> Any:
    return ThreadServer


class ServeProcess:
    """``vivace serve target`` in a subprocess on a free port."""

    def __init__(
        self, target: str, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
    ) -> None:
        self.port = free_port()
        self.cwd = cwd
        self.cmd = [
            sys.executable,
            "-m",
            "vivace.cli",
            "serve",
            target,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *args,
        ]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServeProcess:
        self.proc = subprocess.Popen(
            self.cmd, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"vivace serve exited early:\n{out}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("vivace serve did not start")
            time.sleep(0.1)

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.proc.stdout.read().decode() if self.proc and self.proc.stdout else ""


@pytest.fixture
def serve_process() -> Any:
    return ServeProcess
