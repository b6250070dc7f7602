"""Real MCP servers for the tests: PyPI's mcp-server-time / mcp-server-git (stdio) and npm's
@modelcontextprotocol/server-everything (stdio, streamable HTTP, SSE).

No ``__init__.py`` here on purpose: a test package named ``mcp`` would shadow the SDK.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@pytest.fixture(scope="session")
def everything_js(js_modules: Path) -> Path:
    return js_modules / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


@pytest.fixture(scope="session")
def everything_cmd(everything_js: Path) -> tuple[str, list[str]]:
    """``(command, args)`` of server-everything over stdio."""
    return "node", [str(everything_js), "stdio"]


def _start_everything(everything_js: Path, mode: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        ["node", str(everything_js), mode],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    return proc, port


@pytest.fixture(scope="session")
def everything_http(everything_js: Path) -> Iterator[str]:
    """server-everything over streamable HTTP: its ``/mcp`` URL (one server per session)."""
    proc, port = _start_everything(everything_js, "streamableHttp")
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def everything_sse(everything_js: Path) -> Iterator[str]:
    """server-everything over the older HTTP+SSE transport: its ``/sse`` URL."""
    proc, port = _start_everything(everything_js, "sse")
    try:
        yield f"http://127.0.0.1:{port}/sse"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def time_cmd() -> tuple[str, list[str]]:
    """mcp-server-time (PyPI) over stdio."""
    return sys.executable, ["-m", "mcp_server_time", "--local-timezone", "UTC"]


def children(pid: int | None = None) -> list[int]:
    """Live child processes of ``pid`` (default: this process), from /proc."""
    pid = os.getpid() if pid is None else pid
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


@pytest.fixture
def child_pids() -> object:
    """``child_pids()``: the live child processes of this test process."""
    return children


@pytest.fixture
def serve_asgi() -> Iterator[object]:
    """``serve_asgi(app) -> base URL``: run an ASGI app with uvicorn on a free port (in a
    thread, lifespan on) until the test ends."""
    import threading

    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(app: object) -> str:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")  # type: ignore[arg-type]
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)
