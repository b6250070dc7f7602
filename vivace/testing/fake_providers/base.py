"""Generic fake provider server: real HTTP/1.1 on 127.0.0.1, scripted by the test.

:class:`FakeProviderServer` owns the sockets, the HTTP framing (keep-alive, chunked
transfer), the script queue, fault injection and request recording. A protocol subclass
only writes the wire format (see ``openai_chat.py`` for a complete example):

* ``base_path`` - prefix of the base URL (``"/v1"``);
* ``is_stream(req)`` - whether the request asked for a stream;
* ``render_whole(turn, req) -> dict`` - a complete JSON answer;
* ``render_events(turn, req) -> list[bytes]`` - the exact stream bytes, one item per event
  (SSE ``data:``/``event:`` records, NDJSON lines...);
* ``render_error(fault, req) -> (status, headers, body)`` - the provider's error body;
* ``error_event(turn, req) -> bytes`` - an error record in the middle of a stream;
* ``summarize(req) -> RequestSummary`` - what the adapter sent, protocol-neutral, so the
  shared behavioural tests can assert on it;
* optionally ``handle(req) -> Reply | None`` for extra routes (embeddings).

Scripting: ``server.script(Turn(text="Hi"), HTTPFault(429, retry_after=1), ...)`` queues
answers; each request takes the next one (``server.default`` answers when the queue is
empty, otherwise the server answers 500 "no scripted reply left"). A :class:`Turn` is
rendered whole or streamed depending on the request, with optional stream faults
(``drop_after``, ``malformed_at``, ``error_at``, ``event_delay``, ``delay``).

Use it as a context manager from sync or async tests; it runs its own event loop in a
daemon thread::

    with FakeOpenAIChat() as srv:
        srv.script(Turn(text="Hello"))
        model = get_model("openai/gpt-4o", base_url=srv.base_url, api_key="sk-test")
        ...
        assert srv.requests[0].json["model"] == "gpt-4o"
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FakeProviderServer",
    "HTTPFault",
    "RecordedRequest",
    "Reply",
    "RequestSummary",
    "ToolCall",
    "Turn",
]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}


@dataclass(slots=True)
class ToolCall:
    """A tool call the fake model makes. ``id`` defaults to ``call_<n>``."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        a = self.arguments
        return a if isinstance(a, str) else json.dumps(a)


@dataclass(slots=True)
class Turn:
    """One scripted model answer, rendered in the protocol's wire format.

    ``usage`` keys: ``input_tokens``, ``output_tokens``, ``cached_tokens``,
    ``reasoning_tokens``. ``finish_reason`` overrides the protocol's raw finish reason.
    Stream faults: ``drop_after=N`` closes the connection after N events,
    ``malformed_at=N`` sends a garbage record as event N, ``error_at=N`` sends a protocol
    error record as event N and ends the stream, ``event_delay`` sleeps between events,
    ``delay`` sleeps before the status line (a read timeout).
    """

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    reasoning: str | None = None
    refusal: str | None = None
    usage: dict[str, int] | None = None
    finish_reason: str | None = None
    chunk_chars: int = 4
    args_chunk_chars: int = 7
    interleave_tool_calls: bool = False
    drop_after: int | None = None
    malformed_at: int | None = None
    error_at: int | None = None
    error_message: str = "The server is overloaded, please retry"
    event_delay: float = 0.0
    delay: float = 0.0
    response_id: str | None = None

    def usage_or_default(self) -> dict[str, int]:
        u = {"input_tokens": 11, "output_tokens": 7, "cached_tokens": 0, "reasoning_tokens": 0}
        if self.usage:
            u.update(self.usage)
        return u

    def text_pieces(self) -> list[str]:
        t, n = self.text or "", max(1, self.chunk_chars)
        return [t[i : i + n] for i in range(0, len(t), n)]

    def reasoning_pieces(self) -> list[str]:
        t, n = self.reasoning or "", max(1, self.chunk_chars)
        return [t[i : i + n] for i in range(0, len(t), n)]

    def arg_pieces(self, call: ToolCall) -> list[str]:
        a, n = call.arguments_json(), max(1, self.args_chunk_chars)
        return [a[i : i + n] for i in range(0, len(a), n)]


@dataclass(slots=True)
class HTTPFault:
    """An HTTP error answer: ``status`` with the protocol's error body (or an HTML page).

    ``retry_after`` becomes a ``Retry-After`` header; ``body`` replaces the body verbatim.
    """

    status: int
    message: str = "Something went wrong"
    retry_after: float | str | None = None
    html: bool = False
    error_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(slots=True)
class Reply:
    """A raw answer: exact status, headers and body (``chunks`` -> chunked transfer)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: Sequence[bytes] | None = None


@dataclass(slots=True)
class RecordedRequest:
    """A request the fake server received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(slots=True)
class RequestSummary:
    """Protocol-neutral view of what an adapter sent (for the shared behavioural suite)."""

    model: str | None
    stream: bool
    system: str | None
    user_texts: list[str]
    tool_names: list[str]
    tool_call_ids: list[str]  # assistant tool calls echoed back
    tool_result_ids: list[str]
    images: int
    output_schema: dict[str, Any] | None


class FakeProviderServer:
    """Base fake server; subclasses implement the wire format (see module docs)."""

    name = "generic"
    base_path = ""
    keepalive_every: int = 0  # send an SSE comment every N events (0: never)

    def __init__(self, *, frame_bytes: int | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self.queue: deque[Turn | HTTPFault | Reply] = deque()
        self.default: Turn | HTTPFault | Reply | None = None
        self.frame_bytes = frame_bytes
        self.disconnects = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counter = 0
        self._lock = threading.Lock()

    # -- public API --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def script(self, *items: Turn | HTTPFault | Reply | str) -> FakeProviderServer:
        """Queue answers (a plain string is ``Turn(text=...)``)."""
        for item in items:
            self.queue.append(Turn(text=item) if isinstance(item, str) else item)
        return self

    def summaries(self) -> list[RequestSummary]:
        return [self.summarize(r) for r in self.requests]

    def next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}{self._counter:04d}"

    def register(self, provider_id: str | None = None, **options: Any) -> str:
        """Register this server as a keyless provider; returns its id (``fake-<name>-<port>``)."""
        from ...models.registry import register_provider

        pid = provider_id or f"fake-{self.name}-{self.port}"
        register_provider(
            pid,
            protocol=self.protocol_id,
            base_url=self.base_url,
            key_required=False,
            options={"native_output": True, **options},
        )
        return pid

    protocol_id = "openai-chat"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeProviderServer:
        self._thread = threading.Thread(target=self._run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake provider server did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            fut.result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop = None

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeProviderServer:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        loop.run_until_complete(boot())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- HTTP --------------------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                path, _, query = target.partition("?")
                req = RecordedRequest(method, path, query, headers, body)
                self.requests.append(req)
                keep = await self._answer(req, reader, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            try:
                writer.close()
            except Exception:
                pass

    async def _answer(
        self, req: RecordedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        extra = self.handle(req)
        if extra is not None:
            return await self._send_reply(extra, writer)
        item: Turn | HTTPFault | Reply | None
        item = self.queue.popleft() if self.queue else self.default
        if item is None:
            item = HTTPFault(500, "fake server: no scripted reply left")
        if isinstance(item, Reply):
            return await self._send_reply(item, writer)
        if isinstance(item, HTTPFault):
            if item.body is not None:
                status, headers, body = item.status, {"content-type": "application/json"}, item.body
            elif item.html:
                status, headers, body = (
                    item.status,
                    {"content-type": "text/html; charset=utf-8"},
                    _html_page(item),
                )
            else:
                status, headers, body = self.render_error(item, req)
            headers = {**headers, **item.headers}
            if item.retry_after is not None:
                headers["retry-after"] = str(item.retry_after)
            return await self._send_reply(Reply(status, headers, body), writer)
        turn = item
        if turn.delay:
            await asyncio.sleep(turn.delay)
        if not self.is_stream(req):
            body = json.dumps(self.render_whole(turn, req)).encode()
            return await self._send_reply(
                Reply(200, {"content-type": "application/json"}, body), writer
            )
        events = self.render_events(turn, req)
        if turn.error_at is not None:
            events = [*events[: turn.error_at], self.error_event(turn, req)]
        if turn.malformed_at is not None:
            events = [
                *events[: turn.malformed_at],
                self.malformed_event(),
                *events[turn.malformed_at :],
            ]
        if self.keepalive_every:
            spaced: list[bytes] = []
            for i, e in enumerate(events):
                if i % self.keepalive_every == 0:
                    spaced.append(b": keep-alive\n\n")
                spaced.append(e)
            events = spaced
        return await self._send_stream(turn, events, reader, writer)

    async def _send_reply(self, reply: Reply, writer: asyncio.StreamWriter) -> bool:
        headers = {k.lower(): v for k, v in reply.headers.items()}
        if reply.chunks is not None:
            headers["transfer-encoding"] = "chunked"
            writer.write(_head(reply.status, headers))
            for c in reply.chunks:
                if c:
                    writer.write(b"%x\r\n%s\r\n" % (len(c), c))
            writer.write(b"0\r\n\r\n")
        else:
            headers["content-length"] = str(len(reply.body))
            writer.write(_head(reply.status, headers) + reply.body)
        await writer.drain()
        return True

    async def _send_stream(
        self,
        turn: Turn,
        events: list[bytes],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        writer.write(
            _head(
                200,
                {
                    "content-type": self.stream_content_type,
                    "cache-control": "no-cache",
                    "transfer-encoding": "chunked",
                },
            )
        )
        eof = asyncio.ensure_future(reader.read(1))
        try:
            frames: Iterable[bytes]
            if self.frame_bytes:
                blob = b"".join(
                    events[: turn.drop_after] if turn.drop_after is not None else events
                )
                n = self.frame_bytes
                frames = [blob[i : i + n] for i in range(0, len(blob), n)]
            elif turn.event_delay or turn.drop_after is not None:
                frames = events[: turn.drop_after] if turn.drop_after is not None else events
            else:
                frames = [b"".join(events)]
            for frame in frames:
                if eof.done():
                    self.disconnects += 1
                    return False
                writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                if turn.event_delay:
                    await writer.drain()
                    await asyncio.sleep(turn.event_delay)
            await writer.drain()
            if turn.drop_after is not None:
                writer.transport.abort()
                return False
            await _stop_watch(eof)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except ConnectionError:
            self.disconnects += 1
            return False
        finally:
            await _stop_watch(eof)

    # -- wire format (subclasses) ------------------------------------------------------------

    stream_content_type = "text/event-stream"

    def handle(self, req: RecordedRequest) -> Reply | None:
        """Extra routes answered without the script queue (None: use the queue)."""
        return None

    def is_stream(self, req: RecordedRequest) -> bool:
        body = req.json
        return bool(isinstance(body, dict) and body.get("stream"))

    def render_whole(self, turn: Turn, req: RecordedRequest) -> dict[str, Any]:
        raise NotImplementedError

    def render_events(self, turn: Turn, req: RecordedRequest) -> list[bytes]:
        raise NotImplementedError

    def render_error(
        self, fault: HTTPFault, req: RecordedRequest
    ) -> tuple[int, dict[str, str], bytes]:
        body = {"error": {"message": fault.message, "type": fault.error_type or "error"}}
        return fault.status, {"content-type": "application/json"}, json.dumps(body).encode()

    def error_event(self, turn: Turn, req: RecordedRequest) -> bytes:
        raise NotImplementedError

    def malformed_event(self) -> bytes:
        return b'data: {"choices": [{"delta": {"content": "unterminated\n\n'

    def summarize(self, req: RecordedRequest) -> RequestSummary:
        raise NotImplementedError


async def _stop_watch(task: asyncio.Future[bytes]) -> None:
    """Cancel the EOF watch and wait until it let go of the reader."""
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _html_page(fault: HTTPFault) -> bytes:
    reason = _REASONS.get(fault.status, "Error")
    return (
        f"<!DOCTYPE html><html><head><title>{fault.status} {reason}</title></head>"
        f"<body><center><h1>{fault.status} {reason}</h1></center><hr><center>nginx</center>"
        "</body></html>\n"
    ).encode()


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE record: ``event: <event>`` (optional) and ``data: <json>``."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    if event:
        return f"event: {event}\ndata: {payload}\n\n".encode()
    return f"data: {payload}\n\n".encode()
