"""Conformance of the model HTTP client (aiohttp under :class:`vivace.models.http.Endpoint`).

Real sockets on 127.0.0.1 only: chunked bodies, keep-alive reuse and expiry, a connection
the server closed between requests, proxies from the environment, TLS verification and
timeouts (connect, read before the head, read mid-stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from vivace.errors import ModelConnectionError, ModelTimeout
from vivace.models import http
from vivace.models.http import Endpoint, RetryPolicy, Timeouts

ANSWER = {"object": "chat.completion", "ok": True}


class Server:
    """A tiny HTTP/1.1 server: ``reply(request_head, body) -> list of byte pieces`` (written
    with a short pause between them); counts connections and records request heads."""

    def __init__(self, reply: Callable[[bytes, bytes], list[bytes]], *, close: bool = False):
        self.reply = reply
        self.close_after = close
        self.connections = 0
        self.closed = 0
        self.heads: list[bytes] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                    return
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                body = await reader.readexactly(length)
                for i, piece in enumerate(self.reply(head, body)):
                    if i:
                        await asyncio.sleep(0.01)
                    writer.write(piece)
                    await writer.drain()
                if self.close_after:
                    return
        finally:
            self.closed += 1
            writer.close()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def whole(head: bytes, body: bytes) -> list[bytes]:
    data = json.dumps(ANSWER).encode()
    return [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (len(data), data)
    ]


def chunked(pieces: list[bytes], ctype: bytes = b"application/json") -> list[bytes]:
    out = [b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ntransfer-encoding: chunked\r\n\r\n" % ctype]
    out += [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces]
    out.append(b"0\r\n\r\n")
    return out


def endpoint(url: str, **kw: object) -> Endpoint:
    return Endpoint("test", url, headers={"authorization": "Bearer sk-secret-key"}, **kw)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")


# -- bodies ------------------------------------------------------------------------------------


async def test_chunked_json_body() -> None:
    data = json.dumps({"object": "chat.completion", "text": "x" * 3000}).encode()
    pieces = [data[i : i + 700] for i in range(0, len(data), 700)]
    async with Server(lambda h, b: chunked(pieces)) as srv:
        got = await endpoint(srv.url).post_json("/chat/completions", {"q": 1})
    assert got == json.loads(data)


async def test_per_request_headers_do_not_stick_to_the_endpoint() -> None:
    seen: list[bytes] = []

    def reply(head: bytes, body: bytes) -> list[bytes]:
        seen.append(head.lower())
        return whole(head, body)

    async with Server(reply) as srv:
        ep = endpoint(srv.url)
        await ep.post_json("/chat/completions", {}, headers={"x-extra": "1"})
        await ep.post_json("/chat/completions", {})
        await ep.post_json("/responses", {})
    assert b"x-extra: 1" in seen[0] and b"x-extra" not in seen[1]
    assert all(b"content-type: application/json" in h for h in seen)
    assert seen[2].startswith(b"post /v1/responses http/1.1")


async def test_chunked_sse_stream_split_anywhere() -> None:
    events = b"".join(b'data: {"n": %d}\n\n' % i for i in range(50)) + b"data: [DONE]\n\n"
    pieces = [events[i : i + 37] for i in range(0, len(events), 37)]
    async with Server(lambda h, b: chunked(pieces, b"text/event-stream")) as srv:
        got = [e.data async for e in endpoint(srv.url).stream_sse("/chat/completions", {})]
    assert got == [json.dumps({"n": i}) for i in range(50)] + ["[DONE]"]


async def test_request_is_sent_as_json_with_headers() -> None:
    seen: list[tuple[bytes, bytes]] = []

    def reply(head: bytes, body: bytes) -> list[bytes]:
        seen.append((head, body))
        return whole(head, body)

    async with Server(reply) as srv:
        await endpoint(srv.url).post_json("/chat/completions", {"city": "Zürich"})
    head, body = seen[0]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"authorization: Bearer sk-secret-key" in head.lower().replace(b"bearer", b"Bearer")
    assert json.loads(body) == {"city": "Zürich"}


# -- keep-alive ------------------------------------------------------------------------------


async def test_keep_alive_connection_is_reused() -> None:
    async with Server(whole) as srv:
        ep = endpoint(srv.url)
        for _ in range(5):
            assert await ep.post_json("/chat/completions", {}) == ANSWER
        assert srv.connections == 1
        await asyncio.gather(*(ep.post_json("/chat/completions", {}) for _ in range(3)))
        assert srv.connections <= 3
        before = srv.connections
        for _ in range(3):
            await ep.post_json("/chat/completions", {})
        assert srv.connections == before  # back in the pool, reused


async def test_idle_connection_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "KEEPALIVE_EXPIRY", 0.2)
    async with Server(whole) as srv:
        ep = endpoint(srv.url)
        await ep.post_json("/chat/completions", {})
        for _ in range(100):  # the pool closes it after ~0.2 s idle
            if srv.closed:
                break
            await asyncio.sleep(0.02)
        assert srv.closed == 1
        assert await ep.post_json("/chat/completions", {}) == ANSWER
        assert srv.connections == 2


async def test_server_closing_between_requests_is_transparent() -> None:
    # the server ends every connection after one answer, without saying so in a header
    async with Server(whole, close=True) as srv:
        ep = endpoint(srv.url, retry=RetryPolicy(max_retries=1))
        for _ in range(4):
            assert await ep.post_json("/chat/completions", {}) == ANSWER
            await asyncio.sleep(0.02)
        assert srv.connections == 4


async def test_connection_close_header_is_honoured() -> None:
    def reply(head: bytes, body: bytes) -> list[bytes]:
        data = json.dumps(ANSWER).encode()
        return [
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: %d\r\n\r\n" % len(data) + data
        ]

    async with Server(reply) as srv:
        ep = endpoint(srv.url, retry=RetryPolicy(max_retries=0))
        for _ in range(3):
            assert await ep.post_json("/chat/completions", {}) == ANSWER
        assert srv.connections == 3


# -- proxies ---------------------------------------------------------------------------------


async def test_http_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Server(whole) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        got = await endpoint("http://model.invalid/v1").post_json("/chat/completions", {})
    assert got == ANSWER
    assert proxy.heads[0].startswith(b"POST http://model.invalid/v1/chat/completions HTTP/1.1")


async def test_proxy_credentials_from_the_proxy_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    async with Server(whole) as proxy:
        monkeypatch.setenv("http_proxy", f"http://alice:s3cret@127.0.0.1:{proxy.port}")
        got = await endpoint("http://model.invalid/v1").post_json("/chat/completions", {})
    assert got == ANSWER
    token = base64.b64encode(b"alice:s3cret")
    assert b"proxy-authorization: basic " + token in proxy.heads[0].lower().replace(
        token.lower(), token
    )


async def test_proxy_credentials_stay_with_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # the endpoint keeps its usual headers between requests: the credentials a request adds
    # for a proxy must not stick to them and reach the model server later
    async with Server(whole) as proxy, Server(whole) as direct:
        ep = endpoint(direct.url)
        monkeypatch.setenv("http_proxy", f"http://alice:s3cret@127.0.0.1:{proxy.port}")
        assert await ep.post_json("/chat/completions", {}) == ANSWER
        assert b"proxy-authorization" in proxy.heads[0].lower()
        monkeypatch.delenv("http_proxy")
        await http.get_client("test").close()  # the next session reads the environment again
        assert await ep.post_json("/chat/completions", {}) == ANSWER
    assert proxy.connections == 1 and direct.connections == 1
    assert b"proxy-authorization" not in direct.heads[0].lower()


async def test_no_proxy_bypasses_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Server(whole) as proxy, Server(whole) as direct:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        assert await endpoint(direct.url).post_json("/chat/completions", {}) == ANSWER
    assert proxy.connections == 0 and direct.connections == 1


# -- TLS -------------------------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.asynccontextmanager
async def tls_server(tmp: Path) -> AsyncIterator[tuple[Server, Path]]:
    cert, key = _self_signed(tmp)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = Server(whole)
    srv.server = await asyncio.start_server(srv.handle, "127.0.0.1", 0, ssl=ctx)
    srv.port = srv.server.sockets[0].getsockname()[1]
    try:
        yield srv, cert
    finally:
        srv.server.close()


async def test_tls_certificate_is_verified(tmp_path: Path) -> None:
    async with tls_server(tmp_path) as (srv, _cert):
        ep = endpoint(f"https://127.0.0.1:{srv.port}/v1", retry=RetryPolicy(max_retries=2))
        with pytest.raises(ModelConnectionError, match=r"(?i)certificate") as info:
            await ep.post_json("/chat/completions", {})
    assert not info.value.retryable  # a bad certificate is not retried
    assert "sk-secret-key" not in str(info.value)


async def test_tls_trusts_ssl_cert_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with tls_server(tmp_path) as (srv, cert):
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        ep = endpoint(f"https://127.0.0.1:{srv.port}/v1")
        assert await ep.post_json("/chat/completions", {}) == ANSWER


# -- timeouts --------------------------------------------------------------------------------


async def test_read_timeout_before_the_head() -> None:
    async with Server(lambda h, b: []) as srv:  # reads the request, never answers
        ep = endpoint(srv.url, retry=RetryPolicy(max_retries=0))
        with pytest.raises(ModelTimeout):
            await ep.post_json("/chat/completions", {}, settings={"timeout": 0.3})


async def test_read_timeout_mid_stream() -> None:
    def reply(head: bytes, body: bytes) -> list[bytes]:
        return chunked([b"data: 1\n\n"], b"text/event-stream")[:2]  # head + 1 chunk, then silence

    async with Server(reply) as srv:
        ep = endpoint(srv.url, timeouts=Timeouts(read=0.3), retry=RetryPolicy(max_retries=0))
        got: list[str] = []
        with pytest.raises(ModelTimeout):
            async for e in ep.stream_sse("/chat/completions", {}):
                got.append(e.data)
        assert got == ["1"]


async def test_connect_timeout() -> None:
    # a listener whose accept queue is full: the kernel drops further SYNs, connect hangs
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        held = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            held.append(c)
        await asyncio.sleep(0.05)
        try:
            ep = endpoint(
                f"http://127.0.0.1:{port}/v1",
                timeouts=Timeouts(connect=0.3),
                retry=RetryPolicy(max_retries=0),
            )
            with pytest.raises(ModelTimeout):
                await asyncio.wait_for(ep.post_json("/chat/completions", {}), 10)
        finally:
            for c in held:
                c.close()
