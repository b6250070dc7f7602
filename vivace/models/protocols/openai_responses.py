"""OpenAI Responses (``POST {base}/responses``), streaming and not.

Request mapping: ``instructions`` -> ``instructions``; user parts -> ``input_text``,
``input_image`` (data URL or remote URL), ``input_file`` (inline ``file_data`` or remote
``file_url``); :class:`~vivace.messages.AudioPart` and :class:`~vivace.messages.VideoPart`
raise :class:`~vivace.errors.ModelConfigError` (the protocol takes neither as input).
Assistant tool calls -> ``function_call`` items (``call_id`` kept); tool results ->
``function_call_output`` items. Tools are flat ``{"type": "function", "name", ...}``;
native output -> ``text.format = {"type": "json_schema", ...}``. Requests send
``store: false`` unless the setting ``store`` says otherwise. ``reasoning_effort`` ->
``reasoning: {"effort", "summary": "auto"}``.

Streams: ``response.output_text.delta`` -> :class:`TextDelta`;
``response.reasoning_summary_text.delta`` / ``response.reasoning_text.delta`` ->
:class:`ReasoningDelta`; function calls open with ``response.output_item.added`` and grow
with ``response.function_call_arguments.delta`` keyed by ``output_index`` (parallel calls);
``response.refusal.delta`` -> refusal; the stream must end with ``response.completed``,
``response.incomplete`` or ``response.failed`` (else :class:`StreamInterrupted`); an
``error`` event raises :class:`StreamInterrupted`. Unknown event types are ignored (the
API adds new ones regularly).
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
from .base import (
    HTTPModel,
    map_finish_reason,
    media_data_url,
    new_call_id,
    schema_name,
    strict_json_schema,
    unsupported_part,
)

__all__ = ["OpenAIResponsesModel", "responses_usage"]

_PASS = (
    "temperature",
    "top_p",
    "user",
    "service_tier",
    "metadata",
    "truncation",
    "store",
    "top_logprobs",
)
_loads = json.loads


class OpenAIResponsesModel(HTTPModel):
    """OpenAI Responses API over :class:`~vivace.models.http.Endpoint`."""

    protocol: ClassVar[str] = "openai-responses"
    path: ClassVar[str] = "responses"

    def build_body(self, request: ModelRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "input": self.build_input(request),
            "store": False,
        }
        if request.instructions:
            body["instructions"] = request.instructions
        if stream:
            body["stream"] = True
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
                    else {"type": "function", "name": choice}
                )
        out = request.output
        if out is not None and out.mode == "native":
            schema = strict_json_schema(out.schema) if out.strict else None
            fmt: dict[str, Any] = {
                "type": "json_schema",
                "name": schema_name(out.name),
                "schema": schema if schema is not None else out.schema,
                "strict": schema is not None,
            }
            if out.description:
                fmt["description"] = out.description
            body["text"] = {"format": fmt}
        if settings:
            for key in _PASS:
                if settings.get(key) is not None:
                    body[key] = settings[key]
            if settings.get("max_tokens") is not None:
                body["max_output_tokens"] = settings["max_tokens"]
            if settings.get("reasoning_effort") is not None:
                body["reasoning"] = {"effort": settings["reasoning_effort"], "summary": "auto"}
            extra = settings.get("extra_body")
            if isinstance(extra, Mapping):
                body.update(extra)
        return body

    def build_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        params = tool.parameters or {"type": "object", "properties": {}}
        out: dict[str, Any] = {
            "type": "function",
            "name": tool.name,
            "description": tool.description,
        }
        if tool.strict is not False and self.option("strict_tools", False):
            strict = strict_json_schema(params)
            if strict is not None:
                out["parameters"] = strict
                out["strict"] = True
                return out
        out["parameters"] = params
        out["strict"] = False
        return out

    def build_input(self, request: ModelRequest) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for m in request.messages:
            self._message(m, items)
        return items

    def _message(self, message: Message, items: list[dict[str, Any]]) -> None:
        role = message.role
        if role == "assistant":
            text = "".join(p.text for p in message.parts if type(p) is TextPart)
            if text:
                items.append({"role": "assistant", "content": text})
            for p in message.parts:
                if type(p) is ToolCallPart:
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": p.id,
                            "name": p.name,
                            "arguments": p.arguments_json(),
                        }
                    )
            return
        others: list[Part] = []
        for p in message.parts:
            if type(p) is ToolResultPart:
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": p.call_id,
                        "output": p.content_text(),
                    }
                )
            else:
                others.append(p)
        if not others:
            return
        if role == "tool":
            role = "user"
        if all(type(p) is TextPart for p in others):
            items.append({"role": role, "content": "".join(p.text for p in others)})  # type: ignore[union-attr]
            return
        content = [c for c in (self._part(p) for p in others) if c is not None]
        items.append({"role": role, "content": content})

    def _part(self, p: Part) -> dict[str, Any] | None:
        t = type(p)
        if t is TextPart:
            return {"type": "input_text", "text": p.text}  # type: ignore[union-attr]
        if t is ImagePart:
            return {"type": "input_image", "image_url": media_data_url(p)}  # type: ignore[arg-type]
        if t is FilePart:
            if p.url is not None and not p.url.startswith("data:"):  # type: ignore[union-attr]
                return {"type": "input_file", "file_url": p.url}  # type: ignore[union-attr]
            name = p.name or (p.path.rsplit("/", 1)[-1] if p.path else "file")  # type: ignore[union-attr]
            return {"type": "input_file", "filename": name, "file_data": media_data_url(p)}  # type: ignore[arg-type]
        if t is AudioPart:
            raise unsupported_part(self.protocol, p, "use the openai-chat protocol for audio input")
        if t is VideoPart:
            raise unsupported_part(self.protocol, p, "send frames as images or use a Gemini model")
        if t is ReasoningPart:
            return None
        raise UserError(f"cannot send a {t.__name__} in a {self.protocol} user message")

    # -- answers -----------------------------------------------------------------------------

    async def _request(self, request: ModelRequest) -> ModelResponse:
        body = self.build_body(request, stream=False)
        data = await self.endpoint.post_json(
            self.path, body, model=self.model_name, settings=request.settings
        )
        if not isinstance(data, dict) or "output" not in data:
            raise self._bad("the answer has no output", data)
        return self.parse_response(data)

    def parse_response(self, data: dict[str, Any]) -> ModelResponse:
        if data.get("status") == "failed" or data.get("error"):
            raise self._bad(_message(data.get("error")), data)
        parts: list[Part] = []
        refusal: list[str] = []
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCallPart] = []
        for item in data.get("output") or ():
            kind = item.get("type")
            if kind == "message":
                for c in item.get("content") or ():
                    if c.get("type") == "output_text":
                        text.append(c.get("text", ""))
                    elif c.get("type") == "refusal":
                        refusal.append(c.get("refusal", ""))
            elif kind == "function_call":
                calls.append(
                    ToolCallPart(
                        item.get("call_id") or new_call_id(),
                        item.get("name", ""),
                        item.get("arguments") or "{}",
                        {"item_id": item["id"]} if item.get("id") else None,
                    )
                )
            elif kind == "reasoning":
                for s in item.get("summary") or ():
                    reasoning.append(s.get("text", ""))
                for c in item.get("content") or ():
                    if c.get("type") == "reasoning_text":
                        reasoning.append(c.get("text", ""))
        if reasoning:
            parts.append(ReasoningPart("".join(reasoning), provider=self.provider))
        if text:
            parts.append(TextPart("".join(text)))
        parts += calls
        usage = responses_usage(data.get("usage"))
        usage.tool_calls = len(calls)
        finish, raw = _finish(data, bool(calls))
        return ModelResponse(
            parts,
            usage,
            finish,
            data.get("model") or self.model_name,
            self.provider,
            data.get("id"),
            "".join(refusal) or None,
            raw,
        )

    async def _stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        body = self.build_body(request, stream=True)
        text: list[str] = []
        reasoning: list[str] = []
        refusal: list[str] = []
        calls: dict[
            int, list[Any]
        ] = {}  # output_index -> [call_id, name, [pieces], item_id, final]
        final: dict[str, Any] | None = None
        events = self.endpoint.stream_sse(
            self.path, body, model=self.model_name, settings=request.settings
        )
        async with aclosing(events):
            async for event in events:
                data = event.data
                if data == "[DONE]":
                    continue
                try:
                    ev = _loads(data)
                except ValueError:
                    raise self._bad("malformed stream event (not JSON)", data) from None
                if type(ev) is not dict:
                    raise self._bad("malformed stream event (not an object)", data)
                kind = ev.get("type") or event.event
                if kind == "response.output_text.delta":
                    d = ev.get("delta") or ""
                    if d:
                        text.append(d)
                        yield TextDelta(d)
                elif kind in (
                    "response.reasoning_summary_text.delta",
                    "response.reasoning_text.delta",
                ):
                    d = ev.get("delta") or ""
                    if d:
                        reasoning.append(d)
                        yield ReasoningDelta(d)
                elif kind == "response.function_call_arguments.delta":
                    idx = ev.get("output_index", 0)
                    slot = calls.get(idx)
                    if slot is None:
                        slot = calls[idx] = [None, None, [], ev.get("item_id"), None]
                    d = ev.get("delta") or ""
                    slot[2].append(d)
                    yield ToolCallDelta(idx, None, None, d)
                elif kind == "response.output_item.added" or kind == "response.output_item.done":
                    item = ev.get("item") or {}
                    if item.get("type") == "function_call":
                        idx = ev.get("output_index", 0)
                        slot = calls.get(idx)
                        if slot is None:
                            slot = calls[idx] = [None, None, [], None, None]
                        slot[0] = item.get("call_id") or slot[0]
                        slot[1] = item.get("name") or slot[1]
                        slot[3] = item.get("id") or slot[3]
                        if kind == "response.output_item.done":
                            slot[4] = item.get("arguments")
                        else:
                            yield ToolCallDelta(idx, slot[0], slot[1], item.get("arguments") or "")
                            if item.get("arguments"):
                                slot[2].append(item["arguments"])
                elif kind == "response.function_call_arguments.done":
                    slot = calls.get(ev.get("output_index", 0))
                    if slot is not None and ev.get("arguments") is not None:
                        slot[4] = ev["arguments"]
                elif kind == "response.refusal.delta":
                    refusal.append(ev.get("delta") or "")
                elif kind in ("response.completed", "response.incomplete"):
                    final = ev.get("response") or {}
                elif kind == "response.failed":
                    resp = ev.get("response") or {}
                    raise StreamInterrupted(
                        self.endpoint.redact(
                            f"{self.provider}/{self.model_name}: the response failed: {_message(resp.get('error'))}"
                        ),
                        provider=self.provider,
                        model=self.model_name,
                        body=self.endpoint.redact(json_excerpt(data)),
                    )
                elif kind == "error":
                    raise StreamInterrupted(
                        self.endpoint.redact(
                            f"{self.provider}/{self.model_name} sent an error mid-stream: "
                            f"{ev.get('message') or _message(ev.get('error'))}"
                        ),
                        provider=self.provider,
                        model=self.model_name,
                        body=self.endpoint.redact(json_excerpt(data)),
                    )
        if final is None:
            raise StreamInterrupted(
                f"{self.provider}/{self.model_name}: the stream ended before the response completed",
                provider=self.provider,
                model=self.model_name,
            )
        parts: list[Part] = []
        if reasoning:
            parts.append(ReasoningPart("".join(reasoning), provider=self.provider))
        if text:
            parts.append(TextPart("".join(text)))
        for idx in sorted(calls):
            cid, name, pieces, item_id, done_args = calls[idx]
            args = done_args if done_args is not None else "".join(pieces)
            parts.append(
                ToolCallPart(
                    cid or new_call_id(),
                    name or "",
                    args or "{}",
                    {"item_id": item_id} if item_id else None,
                )
            )
        usage = responses_usage(final.get("usage"))
        usage.tool_calls = len(calls)
        finish, raw = _finish(final, bool(calls))
        yield ModelResponse(
            parts,
            usage,
            finish,
            final.get("model") or self.model_name,
            self.provider,
            final.get("id"),
            "".join(refusal) or None,
            raw,
        )

    def _bad(self, what: str, data: Any) -> ModelResponseError:
        text = data if isinstance(data, str) else json.dumps(data, default=str)
        return ModelResponseError(
            self.endpoint.redact(f"{self.provider}/{self.model_name}: {what}"),
            provider=self.provider,
            model=self.model_name,
            body=self.endpoint.redact(json_excerpt(text)),
        )


def _message(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or err)
    return str(err) if err else "unknown error"


def _finish(resp: Mapping[str, Any], has_calls: bool) -> tuple[FinishReason, str | None]:
    status = resp.get("status")
    if status == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason")
        return map_finish_reason(reason or "unknown"), reason
    if status in (None, "completed"):
        return ("tool_calls" if has_calls else "stop"), status
    return map_finish_reason(status, has_calls), status


def responses_usage(u: Any) -> Usage:
    """:class:`Usage` from a Responses ``usage`` object."""
    if not u:
        return Usage(requests=1)
    return Usage(
        input_tokens=u.get("input_tokens") or 0,
        output_tokens=u.get("output_tokens") or 0,
        cached_tokens=(u.get("input_tokens_details") or {}).get("cached_tokens") or 0,
        reasoning_tokens=(u.get("output_tokens_details") or {}).get("reasoning_tokens") or 0,
        requests=1,
    )
