"""A fast, stateless fake OpenAI Chat Completions server for ``bench_server.py``.

Run as its own process::

    python benchmarks/_server_fake_model.py [--port 0]

It prints ``PORT <n>`` on stdout once listening on 127.0.0.1 and serves until SIGTERM/SIGINT.
``POST /v1/chat/completions`` answers a one-tool conversation without any per-session state:
when the last message is a ``tool`` result it answers :data:`ANSWER`, otherwise it calls
``get_weather`` with the city found in the last user message (``Paris`` by default).
Both ``stream: false`` (one ``chat.completion`` object) and ``stream: true`` (SSE
``chat.completion.chunk`` records, ``include_usage`` honoured, ``data: [DONE]``) are served.

The bodies are rendered by Vivace's protocol-faithful test fake
(:class:`vivace.testing.fake_providers.FakeOpenAIChat`: ``render_whole`` /
``render_events``), so the JSON is exactly what the OpenAI API sends; only the HTTP layer is
replaced by a lean ``asyncio.Protocol`` (keep-alive, ``Content-Length`` bodies, no request
recording, uvloop when installed) so it stays far from being the bottleneck. ``GET /health``
answers ``ok`` (readiness probe); ``GET /stats`` the number of completions served.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from vivace.testing.fake_providers import FakeOpenAIChat, ToolCall, Turn
from vivace.testing.fake_providers.base import RecordedRequest

ANSWER = "It is sunny in Paris."
TOOL_NAME = "get_weather"

_RENDER = FakeOpenAIChat()  # only used for its wire-format rendering (never started)
_ANSWER_TURN = Turn(text=ANSWER, usage={"input_tokens": 60, "output_tokens": 8}, chunk_chars=8)


class Stats:
    completions = 0
    tool_calls = 0
    answers = 0
    errors = 0


def _tool_turn(city: str) -> Turn:
    return Turn(
        tool_calls=[ToolCall(TOOL_NAME, {"city": city})],
        usage={"input_tokens": 50, "output_tokens": 12},
        args_chunk_chars=32,
    )


def _city(messages: list[Any]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            text = m.get("content")
            if isinstance(text, list):
                text = " ".join(p.get("text", "") for p in text if isinstance(p, dict))
            if isinstance(text, str) and " in " in text:
                return text.rsplit(" in ", 1)[1].strip(" ?.!") or "Paris"
            break
    return "Paris"


def _head(status: int, ctype: bytes, length: int | None) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 411: b"Length Required"}.get(
        status, b"Error"
    )
    framing = b"transfer-encoding: chunked" if length is None else b"content-length: %d" % length
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s\r\n\r\n" % (status, reason, ctype, framing)


def _json_reply(status: int, obj: Any) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return _head(status, b"application/json", len(body)) + body


def _error(status: int, message: str) -> bytes:
    Stats.errors += 1
    return _json_reply(
        status,
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    )


def answer(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The full HTTP response (head + body) for one request."""
    path = path.partition("?")[0]
    if method == "GET" and path == "/health":
        return _head(200, b"text/plain", 2) + b"ok"
    if method == "GET" and path == "/stats":
        return _json_reply(
            200,
            {
                "completions": Stats.completions,
                "tool_calls": Stats.tool_calls,
                "answers": Stats.answers,
                "errors": Stats.errors,
            },
        )
    if method != "POST" or not path.endswith("/chat/completions"):
        return _error(404, f"Invalid URL ({method} {path})")
    try:
        data = json.loads(body)
        messages = data["messages"]
        last = messages[-1]
    except (ValueError, KeyError, IndexError, TypeError):
        return _error(400, "could not parse the request body as a chat completion request")
    Stats.completions += 1
    if last.get("role") == "tool":
        Stats.answers += 1
        turn = _ANSWER_TURN
    else:
        Stats.tool_calls += 1
        turn = _tool_turn(_city(messages))
    req = RecordedRequest(method, path, "", headers, body)
    if data.get("stream"):
        payload = b"".join(_RENDER.render_events(turn, req))
        chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
        return _head(200, b"text/event-stream", None) + chunk
    return _json_reply(200, _RENDER.render_whole(turn, req))


class _HTTP(asyncio.Protocol):
    """Minimal HTTP/1.1 server side: keep-alive, ``Content-Length`` request bodies."""

    __slots__ = ("buf", "transport")

    def __init__(self) -> None:
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:  # uvloop's is no asyncio.Transport
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        transport = self.transport
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                transport.write(_error(411, "chunked request bodies are not supported"))
                transport.close()
                return
            length = int(headers.get("content-length") or 0)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            try:
                method, target, _ = lines[0].split(" ", 2)
            except ValueError:
                transport.write(_error(400, "bad request line"))
                transport.close()
                return
            transport.write(answer(method, target, headers, body))
            if headers.get("connection", "").lower() == "close":
                transport.close()
                return


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HTTP, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    args = p.parse_args()
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    runner(serve(args.port))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
