"""OpenAI Chat Completions (``POST {base}/chat/completions``): the protocol most providers speak.

Request mapping: ``instructions`` -> a ``system`` message; user parts -> ``text``,
``image_url`` (data URL or remote URL), ``input_audio`` (inline wav/mp3...), ``file``
(inline, as ``file_data``); a :class:`~vivace.messages.VideoPart` raises
:class:`~vivace.errors.ModelConfigError`. Assistant tool calls keep the provider's call id;
each :class:`~vivace.messages.ToolResultPart` becomes a ``role: tool`` message. Tools are
``{"type": "function", "function": {...}}``, made strict where the provider supports it
(registry option ``strict_tools``) and the schema allows it. ``OutputSpec(mode="native")``
becomes ``response_format: {"type": "json_schema", ...}``.

Settings: ``temperature``, ``top_p``, ``max_tokens`` (sent as the registry's
``max_tokens_field``; ``max_completion_tokens`` only goes to OpenAI's and Azure's own hosts:
an OpenAI-compatible server reached through ``OPENAI_BASE_URL`` - llama.cpp, vLLM, LM Studio
- gets ``max_tokens``, the field those servers read), ``seed``, ``stop``, ``presence_penalty``, ``frequency_penalty``,
``parallel_tool_calls``, ``tool_choice``, ``reasoning_effort``, ``user``, ``service_tier``,
``logit_bias``, ``metadata``, ``verbosity``; ``extra_body`` (a dict) is merged last.

Streams: ``delta.content`` -> :class:`TextDelta`; ``delta.reasoning_content`` /
``delta.reasoning`` (DeepSeek, vLLM, OpenRouter...) -> :class:`ReasoningDelta`;
``delta.tool_calls`` accumulate by ``index`` (parallel calls) -> :class:`ToolCallDelta`;
``delta.refusal`` -> ``ModelResponse.refusal``; usage from a usage-only chunk
(``stream_options.include_usage``, registry option ``stream_usage``, default on) or Groq's
``x_groq.usage``; ``{"error": ...}`` chunks raise :class:`StreamInterrupted`; a stream that
ends before ``[DONE]`` or a finish reason raises :class:`StreamInterrupted`; an unparsable
chunk raises :class:`ModelResponseError` with an excerpt.
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
from .base import (
    HTTPModel,
    map_finish_reason,
    media_data_url,
    media_format,
    new_call_id,
    schema_name,
    strict_json_schema,
    unsupported_part,
)

__all__ = ["OpenAIChatModel", "chat_usage"]

_PASS_SETTINGS = (
    "temperature",
    "top_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
    "user",
    "service_tier",
    "logit_bias",
    "metadata",
    "verbosity",
    "logprobs",
    "top_logprobs",
)

_loads = json.loads


_OPENAI_HOSTS = (".openai.com", ".azure.com", ".azure-api.net")


def _is_openai_host(base_url: str) -> bool:
    host = base_url.partition("://")[2].partition("/")[0].partition(":")[0].lower()
    return host == "api.openai.com" or host.endswith(_OPENAI_HOSTS)


class OpenAIChatModel(HTTPModel):
    """OpenAI Chat Completions over :class:`~vivace.models.http.Endpoint`."""

    protocol: ClassVar[str] = "openai-chat"
    path: ClassVar[str] = "chat/completions"

    __slots__ = ("max_tokens_field",)

    def __init__(self, model_name: str, endpoint: Any, **kw: Any) -> None:
        super().__init__(model_name, endpoint, **kw)
        field = self.options.get("max_tokens_field", "max_tokens")
        if field == "max_completion_tokens" and not _is_openai_host(endpoint.base_url):
            field = "max_tokens"  # what OpenAI-compatible servers read
        self.max_tokens_field: str = field

    # -- request building --------------------------------------------------------------------

    def build_body(self, request: ModelRequest, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request`` (public so tests and subclasses can inspect it)."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": self.build_messages(request),
        }
        if stream:
            body["stream"] = True
            if self.option("stream_usage", True):
                body["stream_options"] = {"include_usage": True}
        settings = request.settings or {}
        if request.tools:
            body["tools"] = self.tool_entries(request.tools)
            if settings.get("parallel_tool_calls") is not None:
                body["parallel_tool_calls"] = bool(settings["parallel_tool_calls"])
            choice = settings.get("tool_choice")
            if choice is not None:
                body["tool_choice"] = (
                    choice
                    if not isinstance(choice, str) or choice in ("auto", "none", "required")
                    else {"type": "function", "function": {"name": choice}}
                )
        out = request.output
        if out is not None and out.mode == "native":
            schema = strict_json_schema(out.schema) if out.strict else None
            fmt: dict[str, Any] = {
                "name": schema_name(out.name),
                "schema": schema if schema is not None else out.schema,
                "strict": schema is not None,
            }
            if out.description:
                fmt["description"] = out.description
            body["response_format"] = {"type": "json_schema", "json_schema": fmt}
        if settings:
            for key in _PASS_SETTINGS:
                value = settings.get(key)
                if value is not None:
                    body[key] = value
            if settings.get("max_tokens") is not None:
                body[self.max_tokens_field] = settings["max_tokens"]
            extra = settings.get("extra_body")
            if isinstance(extra, Mapping):
                body.update(extra)
        return body

    def build_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": tool.name, "description": tool.description}
        params = tool.parameters or {"type": "object", "properties": {}}
        if tool.strict is not False and self.option("strict_tools", False):
            strict = strict_json_schema(params)
            if strict is not None:
                fn["parameters"] = strict
                fn["strict"] = True
                return {"type": "function", "function": fn}
        fn["parameters"] = params
        return {"type": "function", "function": fn}

    def build_messages(self, request: ModelRequest) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if request.instructions:
            out.append(
                {"role": self.option("system_role", "system"), "content": request.instructions}
            )
        for message in request.messages:
            self._message(message, out)
        return out

    def _message(self, message: Message, out: list[dict[str, Any]]) -> None:
        role = message.role
        parts = message.parts
        if role == "assistant":
            text = "".join(p.text for p in parts if type(p) is TextPart)
            msg: dict[str, Any] = {"role": "assistant", "content": text or None}
            calls = [
                {
                    "id": p.id,
                    "type": "function",
                    "function": {"name": p.name, "arguments": p.arguments_json()},
                }
                for p in parts
                if type(p) is ToolCallPart
            ]
            if calls:
                msg["tool_calls"] = calls
            if self.option("send_reasoning", False):
                reasoning = "".join(p.text for p in parts if type(p) is ReasoningPart)
                if reasoning:
                    msg["reasoning_content"] = reasoning
            if text or calls:
                out.append(msg)
            return
        others: list[Part] = []
        for p in parts:
            if type(p) is ToolResultPart:
                out.append({"role": "tool", "tool_call_id": p.call_id, "content": p.content_text()})
            else:
                others.append(p)
        if not others:
            return
        if role == "system":
            out.append(
                {
                    "role": "system",
                    "content": "".join(p.text for p in others if type(p) is TextPart),
                }
            )
            return
        if role == "tool":
            role = "user"
        if all(type(p) is TextPart for p in others):
            out.append({"role": role, "content": "".join(p.text for p in others)})  # type: ignore[union-attr]
            return
        content = [c for c in (self._user_part(p) for p in others) if c is not None]
        out.append({"role": role, "content": content})

    def _user_part(self, p: Part) -> dict[str, Any] | None:
        t = type(p)
        if t is TextPart:
            return {"type": "text", "text": p.text}  # type: ignore[union-attr]
        if t is ImagePart:
            return {"type": "image_url", "image_url": {"url": media_data_url(p)}}  # type: ignore[arg-type]
        if t is AudioPart:
            if p.url is not None and not p.url.startswith("data:"):  # type: ignore[union-attr]
                raise unsupported_part(
                    self.protocol, p, "audio must be inline data or a local path"
                )
            return {
                "type": "input_audio",
                "input_audio": {"data": p.base64(), "format": media_format(p)},  # type: ignore[union-attr,arg-type]
            }
        if t is FilePart:
            if p.url is not None and not p.url.startswith("data:"):  # type: ignore[union-attr]
                raise unsupported_part(
                    self.protocol, p, "files must be inline data or a local path"
                )
            name = p.name or (p.path.rsplit("/", 1)[-1] if p.path else "file")  # type: ignore[union-attr]
            return {"type": "file", "file": {"filename": name, "file_data": media_data_url(p)}}  # type: ignore[arg-type]
        if t is VideoPart:
            raise unsupported_part(self.protocol, p, "send frames as images or use a Gemini model")
        if t is ReasoningPart:
            return None
        raise UserError(f"cannot send a {t.__name__} in a {self.protocol} user message")

    # -- responses ---------------------------------------------------------------------------

    async def _request(self, request: ModelRequest) -> ModelResponse:
        body = self.build_body(request, stream=False)
        data = await self.endpoint.post_json(
            self.path, body, model=self.model_name, settings=request.settings
        )
        return self.parse_response(data)

    def parse_response(self, data: Any) -> ModelResponse:
        if not isinstance(data, dict):
            raise self._bad(f"expected a JSON object, got {type(data).__name__}", data)
        if data.get("error"):
            raise self._bad(_error_message(data["error"]), data)
        choices = data.get("choices")
        if not choices or not isinstance(choices, list):
            raise self._bad("the answer has no choices", data)
        choice = choices[0]
        msg = choice.get("message") or {}
        parts: list[Part] = []
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            parts.append(ReasoningPart(reasoning, provider=self.provider))
        content = msg.get("content")
        if isinstance(content, list):  # some servers return content parts
            content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
        if content:
            parts.append(TextPart(content))
        calls = 0
        for tc in msg.get("tool_calls") or ():
            fn = tc.get("function") or {}
            args = fn.get("arguments")
            if isinstance(args, dict):
                args = json.dumps(args)
            parts.append(
                ToolCallPart(tc.get("id") or new_call_id(), fn.get("name", ""), args or "{}")
            )
            calls += 1
        usage = chat_usage(data.get("usage"))
        usage.tool_calls = calls
        raw = choice.get("finish_reason")
        return ModelResponse(
            parts,
            usage,
            map_finish_reason(raw, calls > 0),
            data.get("model") or self.model_name,
            self.provider,
            data.get("id"),
            msg.get("refusal") or None,
            raw,
        )

    async def _stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        body = self.build_body(request, stream=True)
        text: list[str] = []
        reasoning: list[str] = []
        refusal: list[str] = []
        calls: dict[int, list[Any]] = {}  # index -> [id, name, [argument pieces]]
        last_index = -1
        finish: str | None = None
        usage_data: Any = None
        response_id: str | None = None
        model_name: str | None = None
        done = False
        events = self.endpoint.stream_sse(
            self.path, body, model=self.model_name, settings=request.settings
        )
        async with aclosing(events):
            async for event in events:
                data = event.data
                if done:
                    continue
                if data == "[DONE]":
                    done = True
                    continue
                try:
                    chunk = _loads(data)
                except ValueError:
                    raise self._bad("malformed stream chunk (not JSON)", data) from None
                if type(chunk) is not dict:
                    raise self._bad("malformed stream chunk (not an object)", data)
                if chunk.get("error"):
                    raise StreamInterrupted(
                        self.endpoint.redact(
                            f"{self.provider}/{self.model_name} sent an error mid-stream: "
                            f"{_error_message(chunk['error'])}"
                        ),
                        provider=self.provider,
                        model=self.model_name,
                        body=self.endpoint.redact(json_excerpt(data)),
                    )
                if response_id is None:
                    response_id = chunk.get("id")
                    model_name = chunk.get("model")
                choices = chunk.get("choices")
                if choices:
                    choice = choices[0]
                    delta = choice.get("delta")
                    if delta:
                        content = delta.get("content")
                        if content:
                            text.append(content)
                            yield TextDelta(content)
                        rc = delta.get("reasoning_content") or delta.get("reasoning")
                        if rc and type(rc) is str:
                            reasoning.append(rc)
                            yield ReasoningDelta(rc)
                        tcs = delta.get("tool_calls")
                        if tcs:
                            for tc in tcs:
                                idx = tc.get("index")
                                cid = tc.get("id")
                                if idx is None or (
                                    cid and idx in calls and calls[idx][0] not in (None, cid)
                                ):
                                    idx = _slot_for(calls, cid, last_index)
                                slot = calls.get(idx)
                                if slot is None:
                                    slot = calls[idx] = [None, None, []]
                                last_index = idx
                                fn = tc.get("function") or {}
                                name = fn.get("name")
                                args = fn.get("arguments")
                                if isinstance(args, dict):
                                    args = json.dumps(args)
                                if cid:
                                    slot[0] = cid
                                if name:
                                    slot[1] = name
                                if args:
                                    slot[2].append(args)
                                yield ToolCallDelta(idx, cid, name, args or "")
                        r = delta.get("refusal")
                        if r:
                            refusal.append(r)
                    fr = choice.get("finish_reason")
                    if fr:
                        finish = fr
                u = chunk.get("usage")
                if u:
                    usage_data = u
                else:
                    xg = chunk.get("x_groq")
                    if xg and xg.get("usage"):
                        usage_data = xg["usage"]
        if not done and finish is None:
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
        for idx in sorted(calls):
            cid, name, pieces = calls[idx]
            parts.append(ToolCallPart(cid or new_call_id(), name or "", "".join(pieces) or "{}"))
        usage = chat_usage(usage_data)
        usage.tool_calls = len(calls)
        yield ModelResponse(
            parts,
            usage,
            map_finish_reason(finish, bool(calls)),
            model_name or self.model_name,
            self.provider,
            response_id,
            "".join(refusal) or None,
            finish,
        )

    def _bad(self, what: str, data: Any) -> ModelResponseError:
        text = data if isinstance(data, str) else json.dumps(data, default=str)
        return ModelResponseError(
            self.endpoint.redact(f"{self.provider}/{self.model_name}: {what}"),
            provider=self.provider,
            model=self.model_name,
            body=self.endpoint.redact(json_excerpt(text)),
        )


def _slot_for(calls: dict[int, list[Any]], cid: str | None, last: int) -> int:
    """The call index for a tool-call delta without a usable ``index`` (non-conforming
    servers): the call with the same id, else the previous call for a continuation, else
    a new one."""
    if cid:
        for i, slot in calls.items():
            if slot[0] == cid:
                return i
        return max(calls, default=-1) + 1
    return last if last >= 0 else 0


def _error_message(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)
    return str(err)


def chat_usage(u: Any) -> Usage:
    """:class:`Usage` from a Chat Completions ``usage`` object (``None`` -> zeros, 1 request)."""
    if not u:
        return Usage(requests=1)
    details = u.get("prompt_tokens_details") or {}
    out_details = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=u.get("prompt_tokens") or 0,
        output_tokens=u.get("completion_tokens") or 0,
        cached_tokens=details.get("cached_tokens") or u.get("prompt_cache_hit_tokens") or 0,
        reasoning_tokens=out_details.get("reasoning_tokens") or 0,
        requests=1,
    )
