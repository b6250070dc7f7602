"""Anthropic Messages (``POST {base}/v1/messages``), streaming and not.

Request mapping: ``instructions`` and system messages -> the top-level ``system`` field;
user parts -> ``text``, ``image`` (base64 or ``url`` source) and ``document`` blocks (PDFs as
base64 or URL, ``text/plain`` files as text sources); :class:`~vivace.messages.AudioPart`
and :class:`~vivace.messages.VideoPart` raise :class:`~vivace.errors.ModelConfigError`.
Assistant tool calls -> ``tool_use`` blocks (ids kept); tool results -> ``tool_result``
blocks in a user turn (consecutive same-role turns are merged, tool results first, as the
API requires). Reasoning parts this provider produced are echoed back as ``thinking``
blocks with their ``signature`` (``redacted_thinking`` when redacted); reasoning from other
providers is dropped. Tools are ``{"name", "description", "input_schema"}``.

Structured output: ``OutputSpec(mode="native")`` -> ``output_config.format =
{"type": "json_schema", "schema": ...}`` (generally available for Claude 4.5 and newer
models); ``supports_native_output`` follows the model catalog, and for models it does not
know, the model name (4.5 and newer); otherwise the agent uses its final-result tool.

Settings: ``max_tokens`` (required by the API; default 8192 lowered to the model's output
limit from the model catalog - 4096 for ``claude-3-haiku``/``claude-3-opus`` - or the
registry option ``default_max_tokens``), ``temperature``, ``top_p``, ``top_k``, ``stop`` ->
``stop_sequences``, ``tool_choice`` (``auto``/``none``/``required``/a tool name),
``parallel_tool_calls=False`` -> ``disable_parallel_tool_use``, ``thinking`` (a dict passed
as is) or ``thinking_budget`` (tokens) -> extended thinking, ``user`` ->
``metadata.user_id``, ``service_tier``; ``extra_body`` is merged last.

Streams: ``message_start`` (id, model, input usage) -> ``content_block_start`` /
``content_block_delta`` (``text_delta``, ``thinking_delta``, ``signature_delta``,
``input_json_delta`` - the first ``partial_json`` is often empty) / ``content_block_stop``
-> ``message_delta`` (stop reason, output usage) -> ``message_stop``. ``ping`` events are
ignored wherever they appear, unknown event types too (the API documents that new ones may
be added); an ``error`` event raises :class:`~vivace.errors.StreamInterrupted`; a stream
without ``message_stop`` raises :class:`StreamInterrupted`.

Usage: ``input_tokens`` of :class:`~vivace.models.Usage` is the whole prompt
(``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``), ``cached_tokens``
the cache reads. Anthropic does not report thinking tokens separately (they are part of
``output_tokens``), so ``reasoning_tokens`` stays 0.

Vertex AI (``vertex-anthropic``): the model goes in the path (``:rawPredict`` /
``:streamRawPredict``) and the body carries ``anthropic_version: vertex-2023-10-16``; the
access token comes from ``api_key=`` or ``GOOGLE_CLOUD_ACCESS_TOKEN`` (see
:func:`vivace.models.protocols.gemini.google_access_token`).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, ClassVar

from ...errors import ModelResponseError, StreamInterrupted, UserError
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
from ..http import json_excerpt
from ..registry import ProviderInfo
from .base import HTTPModel, map_finish_reason, new_call_id, strict_json_schema, unsupported_part

__all__ = ["AnthropicModel", "anthropic_usage", "supports_json_outputs"]

_loads = json.loads
_PROVIDERS = ("anthropic", "vertex-anthropic", "claude")
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
_VERSION = re.compile(r"claude-(?:(?:opus|sonnet|haiku)-)?(\d+)(?:[-.](\d{1,2}))?(?:\b|[-@_])")


def supports_json_outputs(model_name: str) -> bool:
    """Whether ``model_name`` takes ``output_config.format`` (Claude 4.5 and newer)."""
    m = _VERSION.search(model_name.lower())
    if not m:
        return False
    major = int(m.group(1))
    minor = int(m.group(2)) if m.group(2) and len(m.group(2)) <= 2 else 0
    return major > 4 or (major == 4 and minor >= 5)


class AnthropicModel(HTTPModel):
    """Anthropic Messages over :class:`~vivace.models.http.Endpoint`."""

    protocol: ClassVar[str] = "anthropic"

    __slots__ = ()

    def default_native_output(self) -> bool:
        return supports_json_outputs(self.model_name)

    @classmethod
    def from_provider(cls, info: ProviderInfo, model_name: str, **kw: Any) -> HTTPModel:
        if info.auth == "google-adc":
            from .gemini import google_access_token

            token = google_access_token(info, kw.pop("api_key", None))
            headers = {"authorization": f"Bearer {token}", **(kw.pop("headers", None) or {})}
            options = {"vertex": True, **(kw.pop("options", None) or {})}
            # api_key=token only registers the token as a secret to redact
            return super().from_provider(
                info, model_name, api_key=token, headers=headers, options=options, **kw
            )
        return super().from_provider(info, model_name, **kw)

    # -- request building --------------------------------------------------------------------

    def _path(self, stream: bool) -> str:
        if self.option("vertex"):
            return f"models/{self.model_name}:{'streamRawPredict' if stream else 'rawPredict'}"
        return "v1/messages"

    def build_body(self, request: ModelRequest, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request`` (public so tests and subclasses can inspect it)."""
        settings = request.settings or {}
        system, messages = self.build_messages(request)
        body: dict[str, Any] = {}
        if self.option("vertex"):
            body["anthropic_version"] = "vertex-2023-10-16"
        else:
            body["model"] = self.model_name
        body["max_tokens"] = int(settings.get("max_tokens") or self.default_max_tokens())
        if system:
            body["system"] = system
        body["messages"] = messages
        if stream:
            body["stream"] = True
        if request.tools:
            body["tools"] = self.tool_entries(request.tools)
            choice = settings.get("tool_choice")
            tc: dict[str, Any] | None = None
            if choice is not None:
                if choice == "auto":
                    tc = {"type": "auto"}
                elif choice == "none":
                    tc = {"type": "none"}
                elif choice == "required":
                    tc = {"type": "any"}
                elif isinstance(choice, str):
                    tc = {"type": "tool", "name": choice}
                elif isinstance(choice, Mapping):
                    tc = dict(choice)
            if settings.get("parallel_tool_calls") is False:
                tc = tc or {"type": "auto"}
                if tc.get("type") != "none":
                    tc["disable_parallel_tool_use"] = True
            if tc is not None:
                body["tool_choice"] = tc
        out = request.output
        if out is not None and out.mode == "native":
            schema = strict_json_schema(out.schema) if out.strict else None
            body["output_config"] = {
                "format": {"type": "json_schema", "schema": schema or out.schema}
            }
        for key in ("temperature", "top_p", "top_k", "service_tier"):
            if settings.get(key) is not None:
                body[key] = settings[key]
        stop = settings.get("stop")
        if stop:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if settings.get("user"):
            body["metadata"] = {"user_id": str(settings["user"])}
        thinking = settings.get("thinking")
        if isinstance(thinking, Mapping):
            body["thinking"] = dict(thinking)
        elif settings.get("thinking_budget"):
            body["thinking"] = {
                "type": "enabled",
                "budget_tokens": int(settings["thinking_budget"]),
            }
        extra = settings.get("extra_body")
        if isinstance(extra, Mapping):
            body.update(extra)
        return body

    def build_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        return {
            "name": tool.name,
            "description": tool.description,
            "input_schema": tool.parameters or {"type": "object", "properties": {}},
        }

    def build_messages(self, request: ModelRequest) -> tuple[str | None, list[dict[str, Any]]]:
        """``(system, messages)``: system text and the alternating user/assistant turns."""
        system: list[str] = [request.instructions] if request.instructions else []
        out: list[dict[str, Any]] = []
        for message in request.messages:
            if message.role == "system":
                text = message.text
                if text:
                    system.append(text)
                continue
            role = "assistant" if message.role == "assistant" else "user"
            blocks = (
                self._assistant_blocks(message)
                if role == "assistant"
                else self._user_blocks(message)
            )
            if not blocks:
                continue
            if out and out[-1]["role"] == role:
                prev = out[-1]["content"]
                if role == "user" and any(b["type"] == "tool_result" for b in blocks):
                    # tool results must come first in their user turn
                    results = [b for b in blocks if b["type"] == "tool_result"]
                    rest = [b for b in blocks if b["type"] != "tool_result"]
                    n = sum(1 for b in prev if b["type"] == "tool_result")
                    prev[n:n] = results
                    prev.extend(rest)
                else:
                    prev.extend(blocks)
            else:
                out.append({"role": role, "content": blocks})
        return ("\n\n".join(system) or None), out

    def _assistant_blocks(self, message: Message) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        p: Any
        for p in message.parts:
            t = type(p)
            if t is TextPart:
                if p.text:
                    blocks.append({"type": "text", "text": p.text})
            elif t is ToolCallPart:
                try:
                    args: Any = p.arguments_dict()
                except ValueError:
                    args = {}
                blocks.append({"type": "tool_use", "id": p.id, "name": p.name, "input": args})
            elif t is ReasoningPart:
                if p.provider not in _PROVIDERS and p.provider != self.provider:
                    continue
                if p.redacted and p.signature:
                    blocks.append({"type": "redacted_thinking", "data": p.signature})
                elif p.signature:
                    blocks.append(
                        {"type": "thinking", "thinking": p.text, "signature": p.signature}
                    )
        return blocks

    def _user_blocks(self, message: Message) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        blocks: list[dict[str, Any]] = []
        p: Any
        for p in message.parts:
            t = type(p)
            if t is ToolResultPart:
                block: dict[str, Any] = {
                    "type": "tool_result",
                    "tool_use_id": p.call_id,
                    "content": p.content_text(),
                }
                if p.is_error:
                    block["is_error"] = True
                results.append(block)
            elif t is TextPart:
                if p.text:
                    blocks.append({"type": "text", "text": p.text})
            elif t is ImagePart:
                blocks.append({"type": "image", "source": self._source(p, image=True)})
            elif t is FilePart:
                blocks.append({"type": "document", "source": self._source(p, image=False)})
            elif t is AudioPart or t is VideoPart:
                raise unsupported_part(
                    self.protocol, p, "Anthropic models take text, images and PDFs"
                )
            elif t is ReasoningPart or t is ToolCallPart:
                continue
            else:
                raise UserError(f"cannot send a {t.__name__} in a {self.protocol} user message")
        return results + blocks

    def _source(self, p: ImagePart | FilePart, *, image: bool) -> dict[str, Any]:
        mt = (p.media_type or "").lower()
        if p.url is not None and not p.url.startswith("data:"):
            return {"type": "url", "url": p.url}
        if image:
            if mt not in _IMAGE_TYPES:
                raise unsupported_part(
                    self.protocol,
                    p,
                    f"images must be png, jpeg, gif or webp, not {mt or 'unknown'}",
                )
            return {"type": "base64", "media_type": mt, "data": p.base64()}
        if mt == "application/pdf":
            return {"type": "base64", "media_type": mt, "data": p.base64()}
        if mt.startswith("text/"):
            return {
                "type": "text",
                "media_type": "text/plain",
                "data": p.read_bytes().decode("utf-8", "replace"),
            }
        raise unsupported_part(
            self.protocol, p, f"documents must be PDF or text, not {mt or 'unknown'}"
        )

    # -- responses ---------------------------------------------------------------------------

    async def _request(self, request: ModelRequest) -> ModelResponse:
        body = self.build_body(request, stream=False)
        data = await self.endpoint.post_json(
            self._path(False), body, model=self.model_name, settings=request.settings
        )
        return self.parse_response(data)

    def parse_response(self, data: Any) -> ModelResponse:
        if not isinstance(data, dict):
            raise self._bad(f"expected a JSON object, got {type(data).__name__}", data)
        if data.get("type") == "error" or (data.get("error") and not data.get("content")):
            raise self._bad(_error_message(data.get("error")), data)
        content = data.get("content")
        if not isinstance(content, list):
            raise self._bad("the answer has no content", data)
        parts: list[Part] = []
        calls = 0
        for block in content:
            kind = block.get("type")
            if kind == "text":
                if block.get("text"):
                    parts.append(TextPart(block["text"]))
            elif kind == "thinking":
                parts.append(
                    ReasoningPart(block.get("thinking", ""), block.get("signature"), self.provider)
                )
            elif kind == "redacted_thinking":
                parts.append(ReasoningPart("", block.get("data"), self.provider, redacted=True))
            elif kind == "tool_use":
                parts.append(
                    ToolCallPart(
                        block.get("id") or new_call_id(),
                        block.get("name", ""),
                        json.dumps(block.get("input") or {}),
                    )
                )
                calls += 1
        raw = data.get("stop_reason")
        usage = anthropic_usage(data.get("usage"))
        usage.tool_calls = calls
        parts, refusal = _split_refusal(parts, raw)
        return ModelResponse(
            parts,
            usage,
            _finish(raw, calls > 0),
            data.get("model") or self.model_name,
            self.provider,
            data.get("id"),
            refusal,
            raw,
        )

    async def _stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        body = self.build_body(request, stream=True)
        # index -> [kind, pieces, id, name, signature, call ordinal]
        blocks: dict[int, list[Any]] = {}
        usage_in: Any = None
        usage_out: dict[str, Any] = {}
        response_id: str | None = None
        model_name: str | None = None
        stop: str | None = None
        done = False
        n_calls = 0
        events = self.endpoint.stream_sse(
            self._path(True), body, model=self.model_name, settings=request.settings
        )
        async with aclosing(events):
            async for event in events:
                data = event.data
                if done or not data:
                    continue
                try:
                    ev = _loads(data)
                except ValueError:
                    raise self._bad("malformed stream event (not JSON)", data) from None
                if type(ev) is not dict:
                    raise self._bad("malformed stream event (not an object)", data)
                kind = ev.get("type") or event.event
                if kind == "content_block_delta":
                    slot = blocks.get(ev.get("index", 0))
                    delta = ev.get("delta") or {}
                    dt = delta.get("type")
                    if slot is None:
                        raise self._bad(
                            "malformed stream: a delta for a block that never started", data
                        )
                    if dt == "text_delta":
                        piece = delta.get("text") or ""
                        if piece:
                            slot[1].append(piece)
                            yield TextDelta(piece)
                    elif dt == "input_json_delta":
                        piece = delta.get("partial_json") or ""
                        if piece:  # the first one is usually empty
                            slot[1].append(piece)
                            yield ToolCallDelta(slot[5], None, None, piece)
                    elif dt == "thinking_delta":
                        piece = delta.get("thinking") or ""
                        if piece:
                            slot[1].append(piece)
                            yield ReasoningDelta(piece)
                    elif dt == "signature_delta":
                        slot[4] = (slot[4] or "") + (delta.get("signature") or "")
                    elif dt == "citations_delta":
                        pass
                elif kind == "content_block_start":
                    cb = ev.get("content_block") or {}
                    ct = cb.get("type")
                    idx = ev.get("index", len(blocks))
                    slot = [ct, [], cb.get("id"), cb.get("name"), cb.get("signature"), -1]
                    if ct == "text" and cb.get("text"):
                        slot[1].append(cb["text"])
                        yield TextDelta(cb["text"])
                    elif ct == "thinking" and cb.get("thinking"):
                        slot[1].append(cb["thinking"])
                        yield ReasoningDelta(cb["thinking"])
                    elif ct == "redacted_thinking":
                        slot[4] = cb.get("data")
                    elif ct == "tool_use":
                        slot[5] = n_calls
                        n_calls += 1
                        if cb.get("input"):  # some servers send the whole input here
                            slot[1].append(json.dumps(cb["input"]))
                        yield ToolCallDelta(slot[5], slot[2], slot[3], "")
                    blocks[idx] = slot
                elif kind == "message_start":
                    msg = ev.get("message") or {}
                    response_id = msg.get("id")
                    model_name = msg.get("model")
                    usage_in = msg.get("usage")
                elif kind == "message_delta":
                    d = ev.get("delta") or {}
                    if d.get("stop_reason"):
                        stop = d["stop_reason"]
                    if ev.get("usage"):
                        usage_out.update({k: v for k, v in ev["usage"].items() if v is not None})
                elif kind == "message_stop":
                    done = True
                elif kind == "error":
                    raise StreamInterrupted(
                        self.endpoint.redact(
                            f"{self.provider}/{self.model_name} sent an error mid-stream: "
                            f"{_error_message(ev.get('error'))}"
                        ),
                        provider=self.provider,
                        model=self.model_name,
                        body=self.endpoint.redact(json_excerpt(data)),
                        error_type=(ev.get("error") or {}).get("type"),
                    )
                # ping, content_block_stop and unknown events need nothing
        if not done:
            raise StreamInterrupted(
                f"{self.provider}/{self.model_name}: the stream ended before the answer was complete",
                provider=self.provider,
                model=self.model_name,
            )
        parts: list[Part] = []
        for idx in sorted(blocks):
            kind, pieces, bid, name, sig, _ordinal = blocks[idx]
            if kind == "text":
                if pieces:
                    parts.append(TextPart("".join(pieces)))
            elif kind == "thinking":
                parts.append(ReasoningPart("".join(pieces), sig, self.provider))
            elif kind == "redacted_thinking":
                parts.append(ReasoningPart("", sig, self.provider, redacted=True))
            elif kind == "tool_use":
                parts.append(
                    ToolCallPart(bid or new_call_id(), name or "", "".join(pieces) or "{}")
                )
        usage = anthropic_usage({**(usage_in or {}), **usage_out})
        usage.tool_calls = n_calls
        parts, refusal = _split_refusal(parts, stop)
        yield ModelResponse(
            parts,
            usage,
            _finish(stop, n_calls > 0),
            model_name or self.model_name,
            self.provider,
            response_id,
            refusal,
            stop,
        )

    def _bad(self, what: str, data: Any) -> ModelResponseError:
        text = data if isinstance(data, str) else json.dumps(data, default=str)
        return ModelResponseError(
            self.endpoint.redact(f"{self.provider}/{self.model_name}: {what}"),
            provider=self.provider,
            model=self.model_name,
            body=self.endpoint.redact(json_excerpt(text)),
        )


def _finish(raw: str | None, has_calls: bool) -> FinishReason:
    if raw in ("model_context_window_exceeded",):
        return "length"
    if raw == "pause_turn":
        return "stop"
    return map_finish_reason(raw, has_calls)


def _split_refusal(parts: list[Part], raw: str | None) -> tuple[list[Part], str | None]:
    """A ``refusal`` stop moves the answer text to ``ModelResponse.refusal``."""
    if raw != "refusal":
        return parts, None
    text = "".join(p.text for p in parts if type(p) is TextPart)
    return [p for p in parts if type(p) is not TextPart], text or "the model refused to answer"


def _error_message(err: Any) -> str:
    if isinstance(err, dict):
        msg = err.get("message") or err.get("type") or err
        return f"{msg} ({err['type']})" if err.get("type") and err.get("message") else str(msg)
    return str(err) if err else "unknown error"


def anthropic_usage(u: Any) -> Usage:
    """:class:`Usage` from an Anthropic ``usage`` object (prompt = uncached + cache reads/writes)."""
    if not u:
        return Usage(requests=1)
    cached = u.get("cache_read_input_tokens") or 0
    created = u.get("cache_creation_input_tokens") or 0
    return Usage(
        input_tokens=(u.get("input_tokens") or 0) + cached + created,
        output_tokens=u.get("output_tokens") or 0,
        cached_tokens=cached,
        requests=1,
    )
