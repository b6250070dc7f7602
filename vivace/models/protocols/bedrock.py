"""AWS Bedrock Converse (``POST /model/{modelId}/converse`` and ``/converse-stream``).

No botocore: requests are signed here with AWS Signature Version 4 (:func:`sigv4_headers`,
``hashlib``/``hmac``) and the binary ``application/vnd.amazon.eventstream`` answer of
ConverseStream is decoded here (:class:`EventStreamDecoder`: prelude, headers, payload,
both CRC32 checks).

Credentials, first match wins: ``api_key=`` (a Bedrock API key, sent as
``Authorization: Bearer``); options ``aws_access_key_id`` / ``aws_secret_access_key`` /
``aws_session_token``; the environment's ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN`` (SigV4); ``AWS_BEARER_TOKEN_BEDROCK`` (Bearer). The region is the
option ``region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else the one in the
endpoint host, else ``us-east-1``. Profiles, SSO and instance roles are not read (export
the credentials, e.g. ``aws configure export-credentials --format env``). A provider
registered with another ``auth`` than ``sigv4`` (a gateway that signs itself) may go
without credentials.

Request mapping: ``instructions`` and system messages -> ``system: [{"text"}]``; user parts
-> ``text``, ``image`` (png/jpeg/gif/webp bytes), ``document`` (pdf, csv, doc(x), xls(x),
html, txt, md bytes), ``video`` (mp4, mov, mkv, webm... bytes or ``s3://`` URIs); audio and
remote http(s) URLs raise :class:`~vivace.errors.ModelConfigError`. Assistant tool calls
-> ``toolUse`` blocks (ids kept); tool results -> ``toolResult`` blocks (``json`` content
for objects, ``text`` otherwise, ``status: "error"`` for failures) in a user turn; reasoning
this provider produced -> ``reasoningContent`` with its signature. Tools ->
``toolConfig.tools[].toolSpec`` with ``inputSchema.json``.

Structured output: Converse has no JSON-schema response mode here, so
``supports_native_output`` is off and the agent uses its final-result tool.

Settings: ``max_tokens`` -> ``inferenceConfig.maxTokens``, ``temperature``, ``top_p``,
``stop`` -> ``stopSequences``, ``tool_choice``, ``thinking_budget`` (Claude on Bedrock:
``additionalModelRequestFields.thinking``), ``additional_model_request_fields`` (a dict),
``guardrail_config``, ``performance_config``; ``extra_body`` is merged last.

Streams: ``messageStart``, ``contentBlockStart`` (``start.toolUse``), ``contentBlockDelta``
(``delta.text``, ``delta.toolUse.input`` pieces, ``delta.reasoningContent``),
``contentBlockStop``, ``messageStop`` (``stopReason``), ``metadata`` (``usage``). An
exception frame (``:message-type: exception``, e.g. ``throttlingException``) raises
:class:`~vivace.errors.StreamInterrupted`; a bad CRC or a truncated frame raises
:class:`~vivace.errors.ModelResponseError`; a stream without ``messageStop`` raises
:class:`StreamInterrupted`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import re
import struct
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import aclosing
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

from ...errors import ModelConfigError, ModelResponseError, StreamInterrupted, UserError
from ...messages import (
    AudioPart,
    FilePart,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    VideoPart,
)
from ..base import (
    FinishReason,
    ModelRequest,
    ModelResponse,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolDefinition,
    Usage,
)
from ..http import Endpoint, RetryPolicy, Timeouts, json_excerpt
from ..registry import ProviderInfo
from .base import HTTPModel, map_finish_reason, new_call_id, unsupported_part

__all__ = [
    "BedrockModel",
    "EventStreamDecoder",
    "EventStreamError",
    "bedrock_usage",
    "sigv4_headers",
]

_loads = json.loads

# -- SigV4 ------------------------------------------------------------------------------------

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "bedrock",
    session_token: str | None = None,
    amz_date: str | None = None,
    sign_headers: tuple[str, ...] = ("content-type",),
) -> dict[str, str]:
    """``headers`` plus ``host``, ``x-amz-date`` (and the session token) and ``authorization``.

    Signs ``host``, ``x-amz-date``, ``x-amz-security-token`` and those of ``sign_headers``
    present in ``headers``. ``amz_date`` (``YYYYMMDDTHHMMSSZ``) defaults to now (UTC).
    The canonical URI is the request path encoded once more (every service but S3).
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port and not (
        (parts.scheme == "https" and parts.port == 443)
        or (parts.scheme == "http" and parts.port == 80)
    ):
        host = f"{host}:{parts.port}"
    if amz_date is None:
        amz_date = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = {k.lower(): v for k, v in headers.items()}
    out["host"] = host
    out["x-amz-date"] = amz_date
    if session_token:
        out["x-amz-security-token"] = session_token
    signed = sorted(
        {"host", "x-amz-date"}
        | ({"x-amz-security-token"} if session_token else set())
        | {h for h in sign_headers if h in out}
    )
    canonical_headers = "".join(f"{h}:{' '.join(out[h].strip().split())}\n" for h in signed)
    signed_names = ";".join(signed)
    query = sorted(parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    canonical_uri = quote(parts.path or "/", safe="/~")
    payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    canonical = "\n".join(
        [
            method.upper(),
            canonical_uri,
            canonical_query,
            canonical_headers,
            signed_names,
            payload_hash,
        ]
    )
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + secret_key).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    key = _hmac(key, "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_names}, Signature={signature}"
    )
    return out


# -- event stream -----------------------------------------------------------------------------


class EventStreamError(ValueError):
    """A frame of an ``application/vnd.amazon.eventstream`` body is corrupt."""


_PRELUDE = struct.Struct(">III")
_MAX_FRAME = 16 * 1024 * 1024


class EventStreamDecoder:
    """Incremental decoder: ``feed(bytes) -> [(headers, payload)]``.

    A frame is ``total length (4) | headers length (4) | prelude CRC32 (4) | headers |
    payload | message CRC32 (4)``, big-endian; the prelude CRC covers the first 8 bytes,
    the message CRC everything before it. Header values are typed (bool, byte, short, int,
    long, bytes, string, timestamp, uuid). ``pending`` is the number of buffered bytes of an
    unfinished frame (a stream that ends with ``pending > 0`` was truncated).
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[tuple[dict[str, Any], bytes]]:
        """The frames ``chunk`` completes (raises at the first corrupt one)."""
        return list(self.iter_feed(chunk))

    def iter_feed(self, chunk: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
        """Like :meth:`feed`, one frame at a time: frames before a corrupt one come out."""
        buf = self._buf
        buf += chunk
        while len(buf) >= 12:
            total, hlen, pcrc = _PRELUDE.unpack_from(buf, 0)
            if zlib.crc32(bytes(buf[:8])) != pcrc:
                raise EventStreamError("prelude CRC mismatch")
            if total < 16 or total > _MAX_FRAME or hlen > total - 16:
                raise EventStreamError(f"bad frame lengths (total {total}, headers {hlen})")
            if len(buf) < total:
                break
            frame = bytes(buf[:total])
            del buf[:total]
            (mcrc,) = struct.unpack_from(">I", frame, total - 4)
            if zlib.crc32(frame[:-4]) != mcrc:
                raise EventStreamError("message CRC mismatch")
            yield _headers(frame[12 : 12 + hlen]), frame[12 + hlen : total - 4]


def _headers(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i, n = 0, len(data)
    try:
        while i < n:
            nlen = data[i]
            name = data[i + 1 : i + 1 + nlen].decode()
            i += 1 + nlen
            htype = data[i]
            i += 1
            value: Any
            if htype == 0:
                value = True
            elif htype == 1:
                value = False
            elif htype == 2:
                value = struct.unpack_from(">b", data, i)[0]
                i += 1
            elif htype == 3:
                value = struct.unpack_from(">h", data, i)[0]
                i += 2
            elif htype == 4:
                value = struct.unpack_from(">i", data, i)[0]
                i += 4
            elif htype in (5, 8):
                value = struct.unpack_from(">q", data, i)[0]
                i += 8
            elif htype in (6, 7):
                (vlen,) = struct.unpack_from(">H", data, i)
                raw = data[i + 2 : i + 2 + vlen]
                value = raw.decode() if htype == 7 else raw
                i += 2 + vlen
            elif htype == 9:
                value = data[i : i + 16]
                i += 16
            else:
                raise EventStreamError(f"unknown header type {htype}")
            out[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError(f"bad headers ({exc})") from None
    return out


# -- the adapter ------------------------------------------------------------------------------

_IMAGE = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
_DOCS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_VIDEO = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/x-matroska": "mkv",
    "video/webm": "webm",
    "video/x-flv": "flv",
    "video/mpeg": "mpeg",
    "video/x-ms-wmv": "wmv",
    "video/3gpp": "three_gp",
}
_STOP: dict[str, FinishReason] = {
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "model_context_window_exceeded": "length",
}
_REGION = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")
_DOC_NAME = re.compile(r"[^A-Za-z0-9 ()\[\]-]")


class BedrockModel(HTTPModel):
    """AWS Bedrock Converse / ConverseStream, signed with SigV4 (no botocore)."""

    protocol: ClassVar[str] = "bedrock"

    __slots__ = ()

    native_output_capable: ClassVar[bool] = False

    @classmethod
    def from_provider(
        cls,
        info: ProviderInfo,
        model_name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> HTTPModel:
        opts = {**info.options, **(options or {})}
        env = os.environ
        base = info.resolve_base_url(base_url)
        m = _REGION.search(base)
        region = str(
            opts.get("region")
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or (m.group(1) if m else "us-east-1")
        )
        hdrs = dict(info.resolve_headers(headers))
        secrets: list[str] = []
        sign = None
        access = opts.get("aws_access_key_id") or (
            None if api_key else env.get("AWS_ACCESS_KEY_ID")
        )
        secret = opts.get("aws_secret_access_key") or (
            None if api_key else env.get("AWS_SECRET_ACCESS_KEY")
        )
        bearer = api_key or (None if access and secret else env.get("AWS_BEARER_TOKEN_BEDROCK"))
        if bearer:
            hdrs["authorization"] = f"Bearer {bearer}"
            secrets.append(bearer)
        elif access and secret:
            token = opts.get("aws_session_token") or env.get("AWS_SESSION_TOKEN") or None
            secrets += [s for s in (secret, token) if s]
            service = str(opts.get("signing_service", "bedrock"))

            def sign(method: str, url: str, h: dict[str, str], body: bytes) -> dict[str, str]:
                return sigv4_headers(
                    method,
                    url,
                    h,
                    body,
                    access_key=str(access),
                    secret_key=str(secret),
                    region=region,
                    service=service,
                    session_token=token,
                )

        elif info.auth != "sigv4":
            pass  # a gateway registered without SigV4 (e.g. a proxy that signs for us)
        else:
            raise ModelConfigError(
                f"provider {info.id!r} needs AWS credentials: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones) or "
                "AWS_BEARER_TOKEN_BEDROCK, or pass api_key= (a Bedrock API key)",
                provider=info.id,
                env_var="AWS_ACCESS_KEY_ID",
            )
        t = Timeouts()
        if timeout is not None or connect_timeout is not None:
            t = Timeouts(
                connect=connect_timeout if connect_timeout is not None else t.connect,
                read=timeout if timeout is not None else t.read,
            )
        endpoint = Endpoint(
            info.id,
            base,
            headers=hdrs,
            secrets=secrets,
            timeouts=t,
            retry=RetryPolicy(max_retries=max_retries) if max_retries is not None else None,
            sign=sign,
        )
        opts["region"] = region
        for k in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
            opts.pop(k, None)  # credentials live in the signer only
        return cls(model_name, endpoint, provider=info.id, options=opts)

    def _path(self, stream: bool) -> str:
        return (
            f"model/{quote(self.model_name, safe='')}/{'converse-stream' if stream else 'converse'}"
        )

    # -- request building --------------------------------------------------------------------

    def build_body(self, request: ModelRequest) -> dict[str, Any]:
        """The Converse JSON body (the same for both endpoints)."""
        settings = request.settings or {}
        system, messages = self.build_messages(request)
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = [{"text": s} for s in system]
        inference: dict[str, Any] = {}
        if settings.get("max_tokens") is not None:
            inference["maxTokens"] = int(settings["max_tokens"])
        if settings.get("temperature") is not None:
            inference["temperature"] = settings["temperature"]
        if settings.get("top_p") is not None:
            inference["topP"] = settings["top_p"]
        stop = settings.get("stop")
        if stop:
            inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        if inference:
            body["inferenceConfig"] = inference
        if request.tools:
            cfg: dict[str, Any] = {"tools": self.tool_entries(request.tools)}
            choice = settings.get("tool_choice")
            if choice == "auto":
                cfg["toolChoice"] = {"auto": {}}
            elif choice == "required":
                cfg["toolChoice"] = {"any": {}}
            elif isinstance(choice, str) and choice != "none":
                cfg["toolChoice"] = {"tool": {"name": choice}}
            body["toolConfig"] = cfg
        extra_fields = dict(settings.get("additional_model_request_fields") or {})
        if settings.get("thinking_budget"):
            extra_fields["thinking"] = {
                "type": "enabled",
                "budget_tokens": int(settings["thinking_budget"]),
            }
        if extra_fields:
            body["additionalModelRequestFields"] = extra_fields
        if settings.get("guardrail_config"):
            body["guardrailConfig"] = settings["guardrail_config"]
        if settings.get("performance_config"):
            body["performanceConfig"] = settings["performance_config"]
        extra = settings.get("extra_body")
        if isinstance(extra, Mapping):
            body.update(extra)
        return body

    def build_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        return {
            "toolSpec": {
                "name": tool.name,
                "description": tool.description or tool.name,
                "inputSchema": {"json": tool.parameters or {"type": "object", "properties": {}}},
            }
        }

    def build_messages(self, request: ModelRequest) -> tuple[list[str], list[dict[str, Any]]]:
        system = [request.instructions] if request.instructions else []
        out: list[dict[str, Any]] = []
        for message in request.messages:
            if message.role == "system":
                if message.text:
                    system.append(message.text)
                continue
            role = "assistant" if message.role == "assistant" else "user"
            blocks = self._assistant(message) if role == "assistant" else self._user(message)
            if not blocks:
                continue
            if out and out[-1]["role"] == role:
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": role, "content": blocks})
        return system, out

    def _assistant(self, message: Message) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        p: Any
        for p in message.parts:
            t = type(p)
            if t is ReasoningPart:
                if p.signature and p.provider == self.provider:
                    if p.redacted:
                        blocks.append({"reasoningContent": {"redactedContent": p.signature}})
                    else:
                        blocks.append(
                            {
                                "reasoningContent": {
                                    "reasoningText": {"text": p.text, "signature": p.signature}
                                }
                            }
                        )
            elif t is TextPart:
                if p.text:
                    blocks.append({"text": p.text})
            elif t is ToolCallPart:
                try:
                    args: Any = p.arguments_dict()
                except ValueError:
                    args = {}
                blocks.append({"toolUse": {"toolUseId": p.id, "name": p.name, "input": args}})
        return blocks

    def _user(self, message: Message) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        blocks: list[dict[str, Any]] = []
        p: Any
        for p in message.parts:
            t = type(p)
            if t is ToolResultPart:
                c = p.content
                content = [{"json": c}] if isinstance(c, dict) else [{"text": p.content_text()}]
                tr: dict[str, Any] = {"toolUseId": p.call_id, "content": content}
                tr["status"] = "error" if p.is_error else "success"
                results.append({"toolResult": tr})
            elif t is TextPart:
                if p.text:
                    blocks.append({"text": p.text})
            elif t is ImagePart:
                blocks.append({"image": {"format": self._fmt(p, _IMAGE), "source": self._src(p)}})
            elif t is FilePart:
                fp: Any = p
                name = _DOC_NAME.sub(
                    "-", (fp.name or (fp.path or "document").rsplit("/", 1)[-1]).rsplit(".", 1)[0]
                )
                blocks.append(
                    {
                        "document": {
                            "format": self._fmt(p, _DOCS),
                            "name": name[:200] or "document",
                            "source": self._src(p),
                        }
                    }
                )
            elif t is VideoPart:
                blocks.append({"video": {"format": self._fmt(p, _VIDEO), "source": self._src(p)}})
            elif t is AudioPart:
                raise unsupported_part(self.protocol, p, "Converse takes no audio input")
            elif t is ReasoningPart or t is ToolCallPart:
                continue
            else:
                raise UserError(f"cannot send a {t.__name__} in a {self.protocol} message")
        return results + blocks

    def _fmt(self, p: Any, table: Mapping[str, str]) -> str:
        fmt = table.get((p.media_type or "").lower())
        if fmt is None:
            raise unsupported_part(
                self.protocol, p, f"unsupported media type {p.media_type or 'unknown'}"
            )
        return fmt

    def _src(self, p: Any) -> dict[str, Any]:
        if p.url is not None and p.url.startswith("s3://"):
            return {"s3Location": {"uri": p.url}}
        if p.url is not None and not p.url.startswith("data:"):
            raise unsupported_part(self.protocol, p, "Bedrock takes inline bytes or s3:// URIs")
        return {"bytes": p.base64()}

    # -- responses ---------------------------------------------------------------------------

    async def _request(self, request: ModelRequest) -> ModelResponse:
        data = await self.endpoint.post_json(
            self._path(False),
            self.build_body(request),
            model=self.model_name,
            settings=request.settings,
        )
        if not isinstance(data, dict):
            raise self._bad(f"expected a JSON object, got {type(data).__name__}", data)
        msg = (data.get("output") or {}).get("message")
        if not isinstance(msg, dict):
            raise self._bad("the answer has no output message", data)
        parts: list[Part] = []
        calls = 0
        for block in msg.get("content") or ():
            if "text" in block:
                if block["text"]:
                    parts.append(TextPart(block["text"]))
            elif "toolUse" in block:
                tu = block["toolUse"]
                parts.append(
                    ToolCallPart(
                        tu.get("toolUseId") or new_call_id(),
                        tu.get("name", ""),
                        json.dumps(tu.get("input") or {}),
                    )
                )
                calls += 1
            elif "reasoningContent" in block:
                rc = block["reasoningContent"]
                if "reasoningText" in rc:
                    rt = rc["reasoningText"]
                    parts.append(
                        ReasoningPart(rt.get("text", ""), rt.get("signature"), self.provider)
                    )
                elif "redactedContent" in rc:
                    parts.append(
                        ReasoningPart("", rc["redactedContent"], self.provider, redacted=True)
                    )
        return self._response(parts, calls, data.get("stopReason"), data.get("usage"))

    def _response(
        self, parts: list[Part], calls: int, raw: str | None, usage_data: Any
    ) -> ModelResponse:
        usage = bedrock_usage(usage_data)
        usage.tool_calls = calls
        finish = _STOP.get(raw or "") or map_finish_reason(raw, calls > 0)
        return ModelResponse(parts, usage, finish, self.model_name, self.provider, None, None, raw)

    async def _stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        body = self.build_body(request)
        decoder = EventStreamDecoder()
        # contentBlockIndex -> [kind, pieces, id, name, signature, call ordinal]
        blocks: dict[int, list[Any]] = {}
        stop: str | None = None
        stopped = False
        usage_data: Any = None
        n_calls = 0
        chunks = self.endpoint.stream_bytes(
            self._path(True),
            body,
            model=self.model_name,
            settings=request.settings,
            headers={"accept": "application/vnd.amazon.eventstream"},
        )
        async with aclosing(chunks):
            async for chunk in chunks:
                frames = decoder.iter_feed(chunk)
                while True:
                    try:
                        headers, payload = next(frames)
                    except StopIteration:
                        break
                    except EventStreamError as exc:
                        raise self._bad(
                            f"malformed event stream frame: {exc}", chunk[:200].hex()
                        ) from None
                    mtype = headers.get(":message-type", "event")
                    if mtype != "event":
                        etype = (
                            headers.get(":exception-type") or headers.get(":error-code") or mtype
                        )
                        try:
                            detail = _loads(payload).get("message") if payload else None
                        except (ValueError, AttributeError):
                            detail = payload.decode("utf-8", "replace")
                        detail = detail or headers.get(":error-message") or "unknown error"
                        raise StreamInterrupted(
                            self.endpoint.redact(
                                f"{self.provider}/{self.model_name} sent an error mid-stream: "
                                f"{detail} ({etype})"
                            ),
                            provider=self.provider,
                            model=self.model_name,
                            body=self.endpoint.redact(
                                json_excerpt(payload.decode("utf-8", "replace"))
                            ),
                            error_type=etype,
                            retryable=etype
                            in ("throttlingException", "serviceUnavailableException"),
                        )
                    try:
                        ev = _loads(payload) if payload else {}
                    except ValueError:
                        raise self._bad(
                            "malformed event stream payload (not JSON)",
                            payload.decode("utf-8", "replace"),
                        ) from None
                    if type(ev) is not dict:
                        raise self._bad("malformed event stream payload (not an object)", ev)
                    kind = headers.get(":event-type")
                    if kind == "contentBlockDelta":
                        idx = ev.get("contentBlockIndex", 0)
                        delta = ev.get("delta") or {}
                        slot = blocks.get(idx)
                        if "text" in delta:
                            if slot is None:
                                slot = blocks[idx] = ["text", [], None, None, None, -1]
                            if delta["text"]:
                                slot[1].append(delta["text"])
                                yield TextDelta(delta["text"])
                        elif "toolUse" in delta:
                            if slot is None:
                                raise self._bad(
                                    "malformed stream: tool input for a block that never started",
                                    ev,
                                )
                            piece = (delta["toolUse"] or {}).get("input") or ""
                            if piece:
                                slot[1].append(piece)
                                yield ToolCallDelta(slot[5], None, None, piece)
                        elif "reasoningContent" in delta:
                            rc = delta["reasoningContent"] or {}
                            if slot is None:
                                slot = blocks[idx] = ["reasoning", [], None, None, None, -1]
                            if rc.get("text"):
                                slot[1].append(rc["text"])
                                yield ReasoningDelta(rc["text"])
                            if rc.get("signature"):
                                slot[4] = (slot[4] or "") + rc["signature"]
                            if rc.get("redactedContent"):
                                slot[0] = "redacted"
                                slot[4] = rc["redactedContent"]
                    elif kind == "contentBlockStart":
                        idx = ev.get("contentBlockIndex", len(blocks))
                        tu = (ev.get("start") or {}).get("toolUse")
                        if tu:
                            blocks[idx] = [
                                "tool",
                                [],
                                tu.get("toolUseId"),
                                tu.get("name"),
                                None,
                                n_calls,
                            ]
                            yield ToolCallDelta(n_calls, tu.get("toolUseId"), tu.get("name"), "")
                            n_calls += 1
                    elif kind == "messageStop":
                        stop = ev.get("stopReason")
                        stopped = True
                    elif kind == "metadata":
                        usage_data = ev.get("usage")
                    # messageStart, contentBlockStop and unknown events need nothing
        if decoder.pending:
            raise StreamInterrupted(
                f"{self.provider}/{self.model_name}: the stream ended before the answer was complete "
                f"(a truncated frame)",
                provider=self.provider,
                model=self.model_name,
            )
        if not stopped:
            raise StreamInterrupted(
                f"{self.provider}/{self.model_name}: the stream ended before the answer was complete",
                provider=self.provider,
                model=self.model_name,
            )
        parts: list[Part] = []
        for idx in sorted(blocks):
            kind, pieces, bid, name, sig, _ord = blocks[idx]
            if kind == "text":
                parts.append(TextPart("".join(pieces)))
            elif kind == "reasoning":
                parts.append(ReasoningPart("".join(pieces), sig, self.provider))
            elif kind == "redacted":
                parts.append(ReasoningPart("", sig, self.provider, redacted=True))
            else:
                parts.append(
                    ToolCallPart(bid or new_call_id(), name or "", "".join(pieces) or "{}")
                )
        yield self._response(parts, n_calls, stop, usage_data)

    def _bad(self, what: str, data: Any) -> ModelResponseError:
        text = data if isinstance(data, str) else json.dumps(data, default=str)
        return ModelResponseError(
            self.endpoint.redact(f"{self.provider}/{self.model_name}: {what}"),
            provider=self.provider,
            model=self.model_name,
            body=self.endpoint.redact(json_excerpt(text)),
        )


def bedrock_usage(u: Any) -> Usage:
    """:class:`Usage` from Converse ``usage`` (prompt = input + cache reads + cache writes)."""
    if not u:
        return Usage(requests=1)
    cached = u.get("cacheReadInputTokens") or 0
    written = u.get("cacheWriteInputTokens") or 0
    return Usage(
        input_tokens=(u.get("inputTokens") or 0) + cached + written,
        output_tokens=u.get("outputTokens") or 0,
        cached_tokens=cached,
        requests=1,
    )
