"""HTTP transport shared by every provider adapter: pooled clients, SSE, errors, retries.

Adapters never talk to the HTTP client directly; they build one :class:`Endpoint` per model (the
router does it from the registry) and call:

* ``await endpoint.post_json(path, body, model=..., settings=...)`` -> parsed JSON body;
* ``endpoint.stream_sse(path, body, ...)`` -> async iterator of :class:`SSEEvent`
  (``event``, ``data``, ``id``), for OpenAI, Anthropic and Gemini (``?alt=sse``) streams;
* ``endpoint.stream_lines(...)`` -> async iterator of ``bytes`` lines (NDJSON, e.g. Ollama's
  native API);
* ``endpoint.stream_bytes(...)`` -> async iterator of raw chunks (e.g. Bedrock's binary
  event stream, decoded by the adapter).

What the transport guarantees, so adapters do not repeat it:

* **One pooled ``aiohttp.ClientSession`` per provider per event loop** (:func:`get_client`):
  keep-alive connections (idle ones closed after :data:`KEEPALIVE_EXPIRY` seconds), proxies
  from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``), TLS verified against
  ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, else certifi's bundle (as httpx does). A
  session is bound to the loop that created it, and sync ``agent.run()`` may use a new loop
  each time, so the pool is keyed by ``(provider, loop)``; entries of closed loops are dropped.
  aiohttp was chosen by measurement (``docs/models.md``, "Why aiohttp").
* **Typed errors** (:mod:`vivace.errors`): HTTP status -> :class:`ModelHTTPError`
  (:class:`ModelRateLimited` for 429) with ``provider``, ``model``, ``status``, the provider's
  own message and a short, redacted ``body`` excerpt (JSON, HTML pages and plain text alike);
  timeouts -> :class:`ModelTimeout`; unreachable hosts -> :class:`ModelConnectionError`; a
  stream that breaks -> :class:`StreamInterrupted`.
* **Retries** with exponential backoff and jitter on 408/409/429/5xx, connection errors and
  timeouts, honouring ``Retry-After`` / ``retry-after-ms`` and OpenAI's ``x-should-retry``
  (:class:`RetryPolicy`). Retries happen only while opening the request: once the first byte
  of a stream was handed to the adapter, a failure is final (no duplicated output).
* **Secrets stay secret**: the API key lives only in the request headers; every message and
  excerpt passes through :meth:`Endpoint.redact`, reprs show provider and URL only, and the
  log lines (logger ``vivace.models.http``) carry method, URL, status and attempt.
* **Cancellation** closes the HTTP response: the streaming helpers are async generators whose
  ``finally`` closes it when the consumer stops, breaks or is cancelled.

Per-request settings read here: ``timeout`` (read timeout, seconds) and ``max_retries``.
:class:`Timeouts`: ``connect`` bounds opening a connection (TCP + TLS), ``read`` the gap
between received bytes (also the wait for the answer's head), ``pool`` the wait for a free
connection plus opening it; ``write`` is kept for compatibility and not enforced (request
bodies are handed to the kernel's socket buffer).

Adding a protocol that signs requests (Bedrock SigV4): pass ``sign=`` to :class:`Endpoint`,
a callable ``(method, url, headers, body) -> headers`` applied to every attempt.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import json
import logging
import os
import random
import re
import ssl
import time
import urllib.request
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from .. import trace_hook
from ..compact_json import compact_bytes_encoder
from ..errors import (
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelRateLimited,
    ModelResponseError,
    ModelTimeout,
    StreamInterrupted,
)

__all__ = [
    "KEEPALIVE_EXPIRY",
    "MAX_CONNECTIONS",
    "Endpoint",
    "RetryPolicy",
    "SSEDecoder",
    "SSEEvent",
    "Signer",
    "Timeouts",
    "aclose_clients",
    "error_from_response",
    "get_client",
    "json_excerpt",
    "parse_retry_after",
]

log = logging.getLogger("vivace.models.http")

Signer = Callable[[str, str, dict[str, str], bytes], dict[str, str]]
"""``(method, url, headers, body) -> headers``: adds signature headers (e.g. SigV4)."""

EXCERPT_CHARS = 300
_RETRY_STATUSES = frozenset({408, 409, 425, 429})


# -- configuration ----------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Timeouts:
    """Connect/read/write/pool timeouts in seconds (``read`` bounds the gap between bytes)."""

    connect: float = 10.0
    read: float = 120.0
    write: float = 30.0
    pool: float = 30.0

    def to_aiohttp(self, read: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None,
            connect=self.pool + self.connect,
            sock_connect=self.connect,
            sock_read=self.read if read is None else read,
        )


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """Retries of one request: exponential backoff with jitter, ``Retry-After`` honoured.

    ``max_retries`` is the number of extra attempts (0 disables retries). The n-th delay is
    drawn from ``[d/2, d]`` with ``d = min(backoff_max, backoff_base * 2**n)``; a server's
    ``Retry-After`` replaces it, unless it asks for more than ``max_retry_after`` seconds, in
    which case the error is raised at once (with ``retry_after`` set) so a fallback model
    can take over.
    """

    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    retry_timeouts: bool = True

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        d = min(self.backoff_max, self.backoff_base * (2**attempt))
        return d / 2 + random.random() * d / 2


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


# -- client pool ------------------------------------------------------------------------------

KEEPALIVE_EXPIRY = 30.0
"""Seconds an idle keep-alive connection stays in the pool (read when a session is made)."""
MAX_CONNECTIONS = 256
"""Open connections per provider per event loop; more concurrent requests wait (``pool``)."""

_POOL: dict[
    tuple[str, int], tuple[weakref.ref[asyncio.AbstractEventLoop], aiohttp.ClientSession]
] = {}
_SSL: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def _ssl_context() -> ssl.SSLContext:
    """The verifying TLS context: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, else certifi."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    ctx = _SSL.get(key)
    if ctx is None:
        if key[0] or key[1]:
            ctx = ssl.create_default_context(cafile=key[0], capath=key[1])
        else:
            try:
                import certifi

                ctx = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - certifi is a dependency
                ctx = ssl.create_default_context()
        _SSL[key] = ctx
    return ctx


_encode = compact_bytes_encoder()


def get_client(key: str) -> aiohttp.ClientSession:
    """The pooled client session for ``key`` (a provider id) on the running event loop."""
    loop = asyncio.get_running_loop()
    k = (key, id(loop))
    entry = _POOL.get(k)
    if entry is not None and entry[0]() is loop and not entry[1].closed:
        return entry[1]
    _prune()
    connector = aiohttp.TCPConnector(
        limit=MAX_CONNECTIONS,
        limit_per_host=0,
        keepalive_timeout=KEEPALIVE_EXPIRY,
        ssl=_ssl_context(),
    )
    _PROXIES.clear()  # the environment is read again for the new session
    client = aiohttp.ClientSession(
        connector=connector,
        # not aiohttp's trust_env: it reads the proxy settings and ~/.netrc in a worker
        # thread on every request; the proxy is resolved once per host here (_proxy)
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
        raise_for_status=False,
    )
    _POOL[k] = (weakref.ref(loop), client)
    return client


def _prune() -> None:
    for k, (ref, client) in list(_POOL.items()):
        loop = ref()
        if loop is None or loop.is_closed():
            _POOL.pop(k, None)
            _discard(client)


def _discard(client: aiohttp.ClientSession) -> None:
    """Mark the session of a closed loop closed (nothing can run on that loop any more), so
    dropping it is silent: aiohttp reports "Unclosed client session" for open ones."""
    connector = client.connector
    if connector is not None:
        with contextlib.suppress(Exception):
            connector._close()


@atexit.register
def _discard_all() -> None:
    for _k, (_ref, client) in list(_POOL.items()):
        _discard(client)
    _POOL.clear()


async def aclose_clients() -> None:
    """Close the pooled clients of the running loop (e.g. at application shutdown)."""
    loop = asyncio.get_running_loop()
    for k, (ref, client) in list(_POOL.items()):
        if ref() is loop:
            _POOL.pop(k, None)
            await client.close()


_PROXIES: dict[tuple[str, str], tuple[URL | None, dict[str, str] | None]] = {}


def _proxy(url: URL) -> tuple[URL | None, dict[str, str] | None]:
    """The proxy for ``url`` from the environment (``HTTP_PROXY`` / ``HTTPS_PROXY``, bypassed
    for hosts in ``NO_PROXY``; lowercase names win, as in urllib) and its
    ``Proxy-Authorization`` header when the proxy URL has credentials. Cached per scheme and
    host until the next client session is made."""
    key = (url.scheme, url.host or "")
    hit = _PROXIES.get(key)
    if hit is None:
        hit = (None, None)
        proxies = urllib.request.getproxies_environment()
        found = proxies.get(url.scheme)
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if found and url.host and not bypass(url.host, proxies):
            purl = URL(found if "://" in found else f"http://{found}")
            auth = None
            if purl.user:
                pair = f"{purl.user}:{purl.password or ''}".encode()
                auth = {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode()}
                purl = purl.with_user(None)
            hit = (purl, auth)
        _PROXIES[key] = hit
    return hit


_URLS: dict[str, URL] = {}
_SAFE_URL = re.compile(r"[!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+")


def _url(url: str) -> URL:
    """``url`` as a ``yarl.URL``, cached. A URL already made of legal characters is sent
    byte for byte (``encoded=True``: a percent-escape the adapter chose, or a SigV4-signed
    path, is not re-quoted); anything else is quoted by yarl."""
    u = _URLS.get(url)
    if u is None:
        u = URL(url, encoded=True) if _SAFE_URL.fullmatch(url) else URL(url)
        if len(_URLS) > 1024:
            _URLS.clear()
        _URLS[url] = u
    return u


# -- server-sent events -----------------------------------------------------------------------


@dataclass(slots=True)
class SSEEvent:
    """One server-sent event. ``event`` is ``"message"`` unless the stream named it."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    """Incremental SSE parser (WHATWG rules): ``feed(bytes) -> [SSEEvent]``, then ``flush()``.

    Handles ``event:``/``data:``/``id:`` fields, multi-line data (joined with ``\\n``),
    comment and keep-alive lines (``:``), LF, CRLF and CR line ends (also when split across
    chunks), and a field value's single optional leading space. ``[DONE]`` is an ordinary
    data value; the adapter decides what it means. ``flush`` dispatches an event the stream
    left unterminated at EOF, so a truncated stream surfaces as bad data, not as silence.
    """

    __slots__ = ("_buf", "_cr", "_data", "_event", "_last_id")

    def __init__(self) -> None:
        self._buf = b""
        self._cr = False
        self._data: list[bytes] = []
        self._event: str | None = None
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if self._cr:
            self._cr = False
            if buf[:1] == b"\n":  # the CRLF was split across chunks: CR already ended a line
                buf = buf[1:]
        if b"\r" in buf:
            if buf[-1:] == b"\r":
                self._cr = True
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        out: list[SSEEvent] = []
        for line in lines:
            self._line(line, out)
        return out

    def flush(self) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                out.append(
                    SSEEvent(
                        data.decode("utf-8", "replace"), self._event or "message", self._last_id
                    )
                )
                self._data = []
            self._event = None
            return
        if line[0] == 58:  # ":" comment / keep-alive
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._last_id = value.decode("utf-8", "replace")
        # "retry" and unknown fields are ignored, as the spec says


# -- errors -----------------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_WS = re.compile(r"\s+")


def json_excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A one-line excerpt of ``text`` for error messages."""
    text = _WS.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _provider_message(body: bytes, content_type: str) -> tuple[str, str | None, str | None]:
    """(message, error type, error code) from a provider's error body."""
    text = body.decode("utf-8", "replace")
    try:
        obj: Any = json.loads(text) if text.strip() else None
    except ValueError:
        obj = None
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]  # Gemini sometimes wraps errors in a list
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, str):
            return err, None, None
        if isinstance(err, dict):
            msg = err.get("message") or err.get("msg") or err.get("detail") or obj.get("message")
            etype = err.get("type") or err.get("status")
            code = err.get("code")
            if msg:
                return (
                    str(msg),
                    str(etype) if etype else None,
                    str(code) if code is not None else None,
                )
        detail = obj.get("detail") or obj.get("message")
        if detail:
            return str(detail), None, None
        return json_excerpt(text, 200), None, None
    if not text.strip():
        return "empty response body", None, None
    looks_html = "html" in content_type or text.lstrip()[:1] == "<"
    if looks_html:
        m = _TITLE.search(text)
        summary = (m.group(1) if m else _TAG.sub(" ", text)).strip()
        return f"non-JSON (HTML) response: {json_excerpt(summary, 120)}", None, None
    return f"non-JSON response: {json_excerpt(text, 120)}", None, None


def error_from_response(
    provider: str,
    model: str | None,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    redact: Callable[[str], str] = lambda s: s,
) -> ModelHTTPError:
    """The typed error for an HTTP error answer (the caller decides whether to retry)."""
    content_type = headers.get("content-type", "")
    message, etype, code = _provider_message(body, content_type)
    message = redact(message)
    excerpt = redact(json_excerpt(body.decode("utf-8", "replace")))
    retry_after = parse_retry_after(headers)
    should = headers.get("x-should-retry")
    if should == "true":
        retryable = True
    elif should == "false":
        retryable = False
    else:
        retryable = status in _RETRY_STATUSES or status >= 500
    cls = ModelRateLimited if status == 429 else ModelHTTPError
    where = f"{provider}/{model}" if model else provider
    return cls(
        f"{where} returned HTTP {status}: {message}",
        provider=provider,
        model=model,
        status=status,
        body=excerpt,
        retryable=retryable,
        retry_after=retry_after,
        error_type=etype,
        error_code=code,
    )


# -- the endpoint -----------------------------------------------------------------------------


class Endpoint:
    """One provider base URL with its auth headers, timeouts and retry policy.

    Cheap, immutable after construction, shared by concurrent requests. ``secrets`` are
    the values to scrub from any text that leaves the transport (the API key).
    """

    __slots__ = (
        "_base",
        "_headers",
        "_json_headers",
        "_secrets",
        "_targets",
        "_timeout",
        "provider",
        "retry",
        "sign",
        "timeouts",
    )

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        sign: Signer | None = None,
    ) -> None:
        self.provider = provider
        self._base = base_url.rstrip("/")
        self._headers = {"accept": "application/json", **(headers or {})}
        # what most requests send: a JSON body, no extra headers (aiohttp copies it)
        self._json_headers = {**self._headers, "content-type": "application/json"}
        self._secrets = tuple(s for s in secrets if s and len(s) >= 4)
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.sign = sign
        self._targets: dict[str, tuple[str, URL]] = {}  # path -> its URL, as text and parsed
        self._timeout: tuple[Timeouts, aiohttp.ClientTimeout] | None = None

    @property
    def base_url(self) -> str:
        return self._base

    def __repr__(self) -> str:
        return f"<Endpoint {self.provider} {self._base}>"

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self._base}/{path.lstrip('/')}" if path else self._base

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for s in self._secrets:
            if s in text:
                text = text.replace(s, "***")
        return text

    # -- opening a request (with retries) ----------------------------------------------------

    async def _open(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        model: str | None,
        settings: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        stream: bool,
    ) -> aiohttp.ClientResponse:
        client = get_client(self.provider)
        hit = self._targets.get(path)
        if hit is None:
            if len(self._targets) >= 64:  # paths with ids in them: bounded
                self._targets.clear()
            url = self.url(path)
            hit = self._targets[path] = (url, _url(url))
        url, target = hit
        payload = b"" if body is None else _encode(body)
        if body is not None and not stream and not headers:
            hdrs = self._json_headers
        else:
            hdrs = dict(self._headers)
            if body is not None:
                hdrs["content-type"] = "application/json"
            if stream:
                hdrs["accept"] = "text/event-stream"
            if headers:
                hdrs.update(headers)
        policy = self.retry
        read_timeout = None
        if settings:
            if settings.get("timeout") is not None:
                read_timeout = float(settings["timeout"])
            if settings.get("max_retries") is not None:
                policy = RetryPolicy(
                    int(settings["max_retries"]),
                    policy.backoff_base,
                    policy.backoff_max,
                    policy.max_retry_after,
                    policy.retry_timeouts,
                )
        if read_timeout is None:  # the endpoint's own, made once
            made = self._timeout
            if made is None or made[0] is not self.timeouts:
                made = self._timeout = (self.timeouts, self.timeouts.to_aiohttp())
            timeout = made[1]
        else:
            timeout = self.timeouts.to_aiohttp(read_timeout)
        proxy, proxy_auth = _proxy(target)
        proxy_headers = None
        if proxy_auth:  # plain HTTP goes through the proxy as is; HTTPS tunnels (CONNECT)
            if target.scheme == "https":
                proxy_headers = proxy_auth
            else:
                hdrs = {**hdrs, **proxy_auth}
        attempt = 0
        while True:
            send_headers = self.sign(method, url, dict(hdrs), payload) if self.sign else hdrs
            err: ModelError
            stale = False
            try:
                response = await client.request(
                    method,
                    target,
                    data=payload or None,
                    headers=send_headers,
                    timeout=timeout,
                    allow_redirects=False,
                    proxy=proxy,
                    proxy_headers=proxy_headers,
                )
            except TimeoutError as exc:  # aiohttp's connect/read timeouts subclass it
                err = ModelTimeout(
                    self.redact(f"{self.provider}: request timed out ({type(exc).__name__})"),
                    provider=self.provider,
                    model=model,
                    retryable=policy.retry_timeouts,
                )
            except aiohttp.ClientError as exc:
                # a keep-alive connection the server closed as we reused it: retry at once
                stale = isinstance(exc, aiohttp.ServerDisconnectedError)
                cert = isinstance(exc, aiohttp.ClientConnectorCertificateError)
                err = ModelConnectionError(
                    self.redact(
                        f"{self.provider}: cannot reach {self._base} ({type(exc).__name__}: {exc})"
                    ),
                    provider=self.provider,
                    model=model,
                    retryable=not cert,
                )
            else:
                status = response.status
                if status < 300:
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("%s %s -> %s (attempt %d)", method, url, status, attempt + 1)
                    return response
                try:
                    raw = await _read_limited(response)
                finally:
                    response.release()
                err = error_from_response(
                    self.provider, model, status, response.headers, raw, self.redact
                )
            log.info(
                "%s %s failed (attempt %d/%d): %s",
                method,
                url,
                attempt + 1,
                policy.max_retries + 1,
                err.message,
            )
            if not err.retryable or attempt >= policy.max_retries:
                raise err
            if err.retry_after is not None and err.retry_after > policy.max_retry_after:
                raise err
            # a keep-alive connection the server closed as we reused it: retried at once
            delay = 0.0 if stale and attempt == 0 else policy.delay(attempt, err.retry_after)
            hook = trace_hook.HOOK
            if hook is not None:  # tracing: this attempt's span ends, the next one's begins
                hook.model_retry(self.provider, model, attempt + 2, err, delay)
            if delay:
                await asyncio.sleep(delay)
            attempt += 1

    # -- public request helpers --------------------------------------------------------------

    async def post_json(
        self,
        path: str,
        body: Any,
        *,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> Any:
        """Send ``body`` as JSON and return the parsed JSON answer (with retries)."""
        response = await self._open(
            method, path, body, model=model, settings=settings, headers=headers, stream=False
        )
        try:
            raw = await response.read()
        except TimeoutError as exc:
            raise ModelTimeout(
                f"{self.provider}: timed out reading the response",
                provider=self.provider,
                model=model,
            ) from exc
        except aiohttp.ClientError as exc:
            raise ModelConnectionError(
                f"{self.provider}: connection broke while reading the response ({type(exc).__name__})",
                provider=self.provider,
                model=model,
            ) from exc
        finally:
            response.release()
        try:
            return json.loads(raw)
        except ValueError:
            message, _, _ = _provider_message(raw, response.headers.get("content-type", ""))
            raise ModelResponseError(
                self.redact(f"{self.provider} answered HTTP {response.status} with {message}"),
                provider=self.provider,
                model=model,
                status=response.status,
                body=self.redact(json_excerpt(raw.decode("utf-8", "replace"))),
            ) from None

    @asynccontextmanager
    async def open_stream(
        self,
        path: str,
        body: Any,
        *,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An open 2xx streaming response (retries done); closed when the block exits.

        A response read to its end goes back to the pool; one left early (the consumer
        stopped, broke or was cancelled) has its connection closed."""
        response = await self._open(
            method, path, body, model=model, settings=settings, headers=headers, stream=True
        )
        try:
            yield response
        finally:
            if response.content.at_eof():
                response.release()
            else:
                response.close()

    async def stream_bytes(
        self,
        path: str,
        body: Any,
        *,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Raw body chunks of a streamed answer; transport failures become typed errors."""
        async with self.open_stream(
            path, body, model=model, settings=settings, headers=headers
        ) as response:
            async for chunk in self._chunks(response, model):
                yield chunk

    async def _chunks(
        self, response: aiohttp.ClientResponse, model: str | None
    ) -> AsyncGenerator[bytes, None]:
        """``response``'s body chunks, with transport failures mapped to typed errors."""
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise ModelTimeout(
                f"{self.provider}: the stream stalled (read timeout)",
                provider=self.provider,
                model=model,
            ) from exc
        except aiohttp.ClientError as exc:
            raise StreamInterrupted(
                f"{self.provider}: the stream broke off ({type(exc).__name__})",
                provider=self.provider,
                model=model,
            ) from exc

    async def stream_sse(
        self,
        path: str,
        body: Any,
        *,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[SSEEvent, None]:
        """Server-sent events of a streamed answer (see :class:`SSEDecoder`)."""
        decoder = SSEDecoder()
        feed = decoder.feed
        async with self.open_stream(
            path, body, model=model, settings=settings, headers=headers
        ) as response:
            _check_stream_type(self, response, model, "text/event-stream")
            async for chunk in self._chunks(response, model):
                for event in feed(chunk):
                    yield event
            for event in decoder.flush():
                yield event

    async def stream_lines(
        self,
        path: str,
        body: Any,
        *,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Non-empty lines of a streamed answer (NDJSON), without line ends."""
        buf = b""
        async for chunk in self.stream_bytes(
            path, body, model=model, settings=settings, headers=headers
        ):
            buf += chunk
            if b"\n" not in buf:
                continue
            *lines, buf = buf.split(b"\n")
            for line in lines:
                line = line.strip()
                if line:
                    yield line
        if buf.strip():
            yield buf.strip()


def _check_stream_type(
    ep: Endpoint, response: aiohttp.ClientResponse, model: str | None, want: str
) -> None:
    """A 2xx answer to a stream request that is HTML (a proxy page) is a protocol error."""
    ctype = response.headers.get("content-type", "")
    if "html" in ctype:
        raise ModelResponseError(
            f"{ep.provider} answered a stream request with {ctype or 'no content type'}, not {want}",
            provider=ep.provider,
            model=model,
            status=response.status,
        )


async def _read_limited(response: aiohttp.ClientResponse, limit: int = 64 * 1024) -> bytes:
    """Up to ``limit`` bytes of an error body (never hangs past the read timeout)."""
    out = bytearray()
    try:
        async for chunk in response.content.iter_any():
            out += chunk
            if len(out) >= limit:
                break
    except (aiohttp.ClientError, TimeoutError):
        pass
    return bytes(out)
