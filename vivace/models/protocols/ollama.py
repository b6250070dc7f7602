"""Ollama's native chat API (``POST {base}/api/chat``), streaming (NDJSON) and not.

Why native rather than Ollama's OpenAI-compatible ``/v1``: ``/api/chat`` takes a JSON
schema in ``format`` (grammar-constrained structured output), ``think`` for reasoning
models (answered in ``message.thinking``), ``keep_alive`` and every runtime ``options`` key
(``num_ctx``...), and it is what every Ollama version speaks. The OpenAI-compatible
endpoint stays reachable through the ``ollama-openai`` registry entry.

Request mapping: ``instructions`` -> a ``system`` message; user text -> ``content``;
:class:`~vivace.messages.ImagePart` -> the message's ``images`` list (base64; remote URLs
are not fetched and raise :class:`~vivace.errors.ModelConfigError`, as do audio, video and
files). Assistant tool calls -> ``tool_calls: [{"id"?, "function": {"name", "arguments":
{...}}}]`` (arguments as an object); tool results -> ``role: tool`` messages with
``tool_name`` and ``tool_call_id``. Reasoning from an earlier turn is sent back as
``thinking``. Tools are ``{"type": "function", "function": {...}}``.

Settings: ``temperature``, ``top_p``, ``top_k``, ``seed``, ``stop``, ``max_tokens`` ->
``num_predict``, ``presence_penalty``, ``frequency_penalty``, ``num_ctx`` and any other key
of ``ollama_options`` (a dict) -> ``options``; ``think`` (bool or ``"low"``/``"medium"``/
``"high"``) or ``reasoning_effort`` -> ``think``; ``keep_alive``; ``extra_body`` is merged
last.

Streams: one JSON object per line; ``message.content`` -> :class:`TextDelta`,
``message.thinking`` -> :class:`ReasoningDelta`, ``message.tool_calls`` arrive whole; the
last line has ``done: true`` with ``done_reason`` and the token counts
(``prompt_eval_count``, ``eval_count``). An ``{"error": ...}`` line raises
:class:`~vivace.errors.StreamInterrupted`, a stream without ``done: true`` too. Ollama reports
no cached or reasoning token counts. Older servers send no tool call ids; one is synthesized.
"""

from __future__ import annotations

import json
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
from .base import HTTPModel, map_finish_reason, new_call_id, strict_json_schema, unsupported_part

__all__ = ["OllamaModel", "ollama_usage"]

_loads = json.loads
_OPTIONS = (
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("top_k", "top_k"),
    ("seed", "seed"),
    ("max_tokens", "num_predict"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
    ("num_ctx", "num_ctx"),
)


class OllamaModel(HTTPModel):
    """Ollama ``/api/chat`` over :class:`~vivace.models.http.Endpoint`."""

    protocol: ClassVar[str] = "ollama"
    path: ClassVar[str] = "api/chat"

    __slots__ = ()

    native_output_default: ClassVar[bool] = True

    # -- request building --------------------------------------------------------------------

    def build_body(self, request: ModelRequest, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request`` (public so tests can inspect it)."""
        settings = request.settings or {}
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": self.build_messages(request),
            "stream": stream,
        }
        if request.tools:
            body["tools"] = self.tool_entries(request.tools)
        out = request.output
        if out is not None and out.mode == "native":
            schema = strict_json_schema(out.schema) if out.strict else None
            body["format"] = schema or out.schema
        options: dict[str, Any] = {}
        for key, name in _OPTIONS:
            if settings.get(key) is not None:
                options[name] = settings[key]
        stop = settings.get("stop")
        if stop:
            options["stop"] = [stop] if isinstance(stop, str) else list(stop)
        extra_opts = settings.get("ollama_options")
        if isinstance(extra_opts, Mapping):
            options.update(extra_opts)
        if options:
            body["options"] = options
        think = settings.get("think")
        if think is None and settings.get("reasoning_effort"):
            think = settings["reasoning_effort"]
        if think is not None:
            body["think"] = think
        if settings.get("keep_alive") is not None:
            body["keep_alive"] = settings["keep_alive"]
        extra = settings.get("extra_body")
        if isinstance(extra, Mapping):
            body.update(extra)
        return body

    def build_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters or {"type": "object", "properties": {}},
            },
        }

    def build_messages(self, request: ModelRequest) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if request.instructions:
            out.append({"role": "system", "content": request.instructions})
        for message in request.messages:
            self._message(message, out)
        return out

    def _message(self, message: Message, out: list[dict[str, Any]]) -> None:
        parts = message.parts
        if message.role == "assistant":
            msg: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(p.text for p in parts if type(p) is TextPart),
            }
            reasoning = "".join(p.text for p in parts if type(p) is ReasoningPart)
            if reasoning:
                msg["thinking"] = reasoning
            calls = []
            p: Any
            for p in parts:
                if type(p) is ToolCallPart:
                    try:
                        args: Any = p.arguments_dict()
                    except ValueError:
                        args = {}
                    calls.append({"id": p.id, "function": {"name": p.name, "arguments": args}})
            if calls:
                msg["tool_calls"] = calls
            if msg["content"] or calls or reasoning:
                out.append(msg)
            return
        texts: list[str] = []
        images: list[str] = []
        for p in parts:
            t = type(p)
            if t is ToolResultPart:
                out.append(
                    {
                        "role": "tool",
                        "content": p.content_text(),
                        "tool_name": p.name,
                        "tool_call_id": p.call_id,
                    }
                )
            elif t is TextPart:
                texts.append(p.text)
            elif t is ImagePart:
                if p.url is not None and not p.url.startswith("data:"):
                    raise unsupported_part(
                        self.protocol, p, "Ollama takes inline images (data or a local path)"
                    )
                images.append(p.base64())
            elif t in (AudioPart, VideoPart, FilePart):
                raise unsupported_part(self.protocol, p, "Ollama's chat API takes text and images")
            elif t is ReasoningPart or t is ToolCallPart:
                continue
            else:
                raise UserError(f"cannot send a {t.__name__} in a {self.protocol} message")
        if not texts and not images:
            return
        role = "system" if message.role == "system" else "user"
        msg = {"role": role, "content": "".join(texts)}
        if images:
            msg["images"] = images
        out.append(msg)

    # -- responses ---------------------------------------------------------------------------

    async def _request(self, request: ModelRequest) -> ModelResponse:
        body = self.build_body(request, stream=False)
        data = await self.endpoint.post_json(
            self.path, body, model=self.model_name, settings=request.settings
        )
        if not isinstance(data, dict):
            raise self._bad(f"expected a JSON object, got {type(data).__name__}", data)
        if data.get("error"):
            raise self._bad(str(data["error"]), data)
        msg = data.get("message")
        if not isinstance(msg, dict):
            raise self._bad("the answer has no message", data)
        parts: list[Part] = []
        if msg.get("thinking"):
            parts.append(ReasoningPart(msg["thinking"], provider=self.provider))
        if msg.get("content"):
            parts.append(TextPart(msg["content"]))
        calls = [_call(tc, i) for i, tc in enumerate(msg.get("tool_calls") or ())]
        parts += calls
        return self._response(parts, len(calls), data)

    def _response(self, parts: list[Part], calls: int, final: dict[str, Any]) -> ModelResponse:
        raw = final.get("done_reason")
        usage = ollama_usage(final)
        usage.tool_calls = calls
        return ModelResponse(
            parts,
            usage,
            map_finish_reason(raw, calls > 0),
            final.get("model") or self.model_name,
            self.provider,
            None,
            None,
            raw,
        )

    async def _stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        body = self.build_body(request, stream=True)
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCallPart] = []
        final: dict[str, Any] | None = None
        lines = self.endpoint.stream_lines(
            self.path, body, model=self.model_name, settings=request.settings
        )
        async with aclosing(lines):
            async for line in lines:
                if final is not None:
                    continue
                try:
                    chunk = _loads(line)
                except ValueError:
                    raise self._bad(
                        "malformed stream line (not JSON)", line.decode("utf-8", "replace")
                    ) from None
                if type(chunk) is not dict:
                    raise self._bad("malformed stream line (not an object)", chunk)
                if chunk.get("error"):
                    raise StreamInterrupted(
                        self.endpoint.redact(
                            f"{self.provider}/{self.model_name} sent an error mid-stream: {chunk['error']}"
                        ),
                        provider=self.provider,
                        model=self.model_name,
                        body=self.endpoint.redact(json_excerpt(line.decode("utf-8", "replace"))),
                    )
                msg = chunk.get("message") or {}
                th = msg.get("thinking")
                if th:
                    reasoning.append(th)
                    yield ReasoningDelta(th)
                c = msg.get("content")
                if c:
                    text.append(c)
                    yield TextDelta(c)
                for tc in msg.get("tool_calls") or ():
                    call = _call(tc, len(calls))
                    calls.append(call)
                    yield ToolCallDelta(len(calls) - 1, call.id, call.name, call.arguments_json())
                if chunk.get("done"):
                    final = chunk
        if final is None:
            raise StreamInterrupted(
                f"{self.provider}/{self.model_name}: the stream ended before the answer was complete",
                provider=self.provider,
                model=self.model_name,
            )
        parts: list[Part] = []
        if reasoning:
            parts.append(ReasoningPart("".join(reasoning), provider=self.provider))
        if text:
            parts.append(TextPart("".join(text)))
        parts += calls
        yield self._response(parts, len(calls), final)

    def _bad(self, what: str, data: Any) -> ModelResponseError:
        text = data if isinstance(data, str) else json.dumps(data, default=str)
        return ModelResponseError(
            self.endpoint.redact(f"{self.provider}/{self.model_name}: {what}"),
            provider=self.provider,
            model=self.model_name,
            body=self.endpoint.redact(json_excerpt(text)),
        )


def _call(tc: dict[str, Any], index: int) -> ToolCallPart:
    fn = tc.get("function") or {}
    args = fn.get("arguments")
    if not isinstance(args, str):
        args = json.dumps(args or {})
    return ToolCallPart(tc.get("id") or new_call_id(), fn.get("name", ""), args)


def ollama_usage(final: Mapping[str, Any]) -> Usage:
    """:class:`Usage` from the counts of Ollama's final (``done: true``) object."""
    return Usage(
        input_tokens=final.get("prompt_eval_count") or 0,
        output_tokens=final.get("eval_count") or 0,
        requests=1,
    )
