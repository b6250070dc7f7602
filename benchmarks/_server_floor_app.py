"""The floor of ``bench_server.py``: what a run costs with no framework at all.

A bare Starlette app on the same uvicorn settings as Vivace's server. Its one route,
``POST /agents/weather/runs``, does what a one-tool run has to do and nothing else: read the
JSON request, call the fake model (the same two chat completions, the same request bodies'
shape), run ``get_weather``, write the same two SQLite transactions (session + run row as
``running``, then the run's messages and status), answer the final output as JSON. No agent,
no events, no validation, no auth, no idempotency.

Served with ``uvicorn _server_floor_app:app --workers 1`` (run from ``benchmarks/``).
Environment:

* ``BENCH_FAKE_BASE_URL`` - the fake OpenAI server (``http://127.0.0.1:<port>/v1``);
* ``BENCH_FLOOR_DB`` - the SQLite file;
* ``BENCH_FLOOR_CLIENT`` - ``aiohttp`` (default, the fastest measured) or ``httpx``;
* ``BENCH_FLOOR_SQLITE`` - ``inline`` (default: the transactions on the event loop, WAL,
  ``synchronous=NORMAL``, automatic checkpoints off and run in a thread every 500 commits)
  or ``thread`` (each transaction in a worker thread, one hop each).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

BASE = os.environ["BENCH_FAKE_BASE_URL"].rstrip("/")
DB = os.environ["BENCH_FLOOR_DB"]
CLIENT = os.environ.get("BENCH_FLOOR_CLIENT", "aiohttp")
SQLITE_MODE = os.environ.get("BENCH_FLOOR_SQLITE", "inline")
INSTRUCTIONS = "You are a weather assistant. Use the get_weather tool to answer."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The name of the city."}},
                "required": ["city"],
            },
        },
    }
]
HEADERS = {"authorization": "Bearer x", "content-type": "application/json"}


def get_weather(city: str) -> str:
    return f"Sunny in {city}."


def _connect() -> sqlite3.Connection:
    db = sqlite3.connect(DB, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


_setup = _connect()
_setup.executescript(
    """
    CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, user_id TEXT,
        state TEXT NOT NULL DEFAULT '{}', created_at REAL, updated_at REAL);
    CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT UNIQUE NOT NULL, session_id TEXT NOT NULL, status TEXT NOT NULL,
        input TEXT, messages TEXT, output TEXT, created_at REAL, updated_at REAL);
    CREATE INDEX IF NOT EXISTS runs_session ON runs (session_id, seq);
    """
)
_setup.close()

if SQLITE_MODE == "inline":
    _db = _connect()
    _db.execute("PRAGMA busy_timeout=0")
    _db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in the thread below
else:
    _db = _connect()
    _db.execute("PRAGMA busy_timeout=30000")
_pool = ThreadPoolExecutor(1)
_commits = 0
_checkpointing = False


def _checkpoint() -> None:
    global _checkpointing
    try:
        db = _connect()
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        db.close()
    finally:
        _checkpointing = False


def _begin(session_id: str, user_id: str, run_id: str, text: str) -> None:
    now = time.time()
    _db.execute("BEGIN IMMEDIATE")
    _db.execute(
        "INSERT INTO sessions (session_id, user_id, created_at, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (session_id) DO UPDATE SET updated_at = excluded.updated_at",
        (session_id, user_id, now, now),
    )
    _db.execute(
        "INSERT INTO runs (run_id, session_id, status, input, created_at, updated_at) "
        "VALUES (?, ?, 'running', ?, ?, ?)",
        (run_id, session_id, text, now, now),
    )
    _db.execute("COMMIT")


def _finish(session_id: str, run_id: str, messages: str, output: str) -> None:
    now = time.time()
    _db.execute("BEGIN IMMEDIATE")
    _db.execute("UPDATE sessions SET updated_at = ? WHERE session_id = ?", (now, session_id))
    _db.execute(
        "UPDATE runs SET status = 'completed', messages = ?, output = ?, updated_at = ? "
        "WHERE run_id = ?",
        (messages, output, now, run_id),
    )
    _db.execute("COMMIT")


async def _write(fn: Any, *args: Any) -> None:
    global _commits, _checkpointing
    if SQLITE_MODE == "inline":
        fn(*args)
        _commits += 1
        if _commits % 500 == 0 and not _checkpointing:
            _checkpointing = True
            _pool.submit(_checkpoint)
    else:
        await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)


_session: Any = None


async def _post(body: dict[str, Any]) -> dict[str, Any]:
    global _session
    data = json.dumps(body, separators=(",", ":")).encode()
    url = BASE + "/chat/completions"
    if CLIENT == "aiohttp":
        import aiohttp

        if _session is None:
            _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with _session.post(url, data=data, headers=HEADERS) as r:
            out: dict[str, Any] = json.loads(await r.read())
            return out
    import httpx

    if _session is None:
        _session = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
        )
    resp = await _session.post(url, content=data, headers=HEADERS)
    out = json.loads(resp.content)
    return out


async def run(request: Request) -> Response:
    req = json.loads(await request.body())
    text, session_id = req["input"], req["session_id"]
    user_id = req.get("user_id") or "anonymous"
    run_id = uuid.uuid4().hex
    await _write(_begin, session_id, user_id, run_id, text)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": text},
    ]
    first = await _post({"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS})
    msg = first["choices"][0]["message"]
    messages.append(msg)
    for call in msg.get("tool_calls") or ():
        args = json.loads(call["function"]["arguments"])
        messages.append(
            {"role": "tool", "tool_call_id": call["id"], "content": get_weather(**args)}
        )
    second = await _post({"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS})
    answer = second["choices"][0]["message"]["content"]
    messages.append({"role": "assistant", "content": answer})
    await _write(_finish, session_id, run_id, json.dumps(messages), answer)
    out = {"run_id": run_id, "session_id": session_id, "status": "completed", "output": answer}
    return Response(json.dumps(out), media_type="application/json")


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[Route("/agents/weather/runs", run, methods=["POST"]), Route("/health", health)]
)
