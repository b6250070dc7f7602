"""Google Gemini (``generateContent`` / ``streamGenerateContent?alt=sse``), streaming and not.

Paths: ``{base}/v1beta/models/{model}:generateContent`` for the Gemini API (registry option
``api_version``, default ``v1beta``) and ``{base}/models/{model}:...`` on Vertex AI (whose
base URL already ends in ``/publishers/google``).

Request mapping: ``instructions`` and system messages -> ``systemInstruction``; user parts ->
``text``, ``inlineData`` (image, audio, video, PDF... inline or from a path) or ``fileData``
(remote URLs, e.g. ``gs://`` or Files API URIs); assistant tool calls -> whole
``functionCall`` parts; tool results -> ``functionResponse`` parts in a ``user`` turn
(``response`` is the result when it is a JSON object, else ``{"result": ...}``, or
``{"error": ...}`` for failed calls).

Call ids: older API versions send no ``functionCall.id``. The adapter then synthesizes a
stable id (a hash of the response id, position, name and arguments) and does not send it
back: Gemini matches ``functionResponse`` parts by name and order. When the API does send
an id it is kept and echoed in both ``functionCall`` and ``functionResponse``.

Thought signatures: a ``thoughtSignature`` on a ``functionCall`` part is kept in
``ToolCallPart.meta["thought_signature"]`` and sent back on the same part (Gemini 3 rejects
a function-calling history without them). Thought-summary parts (``thought: true``) become
:class:`~vivace.messages.ReasoningPart` (with the part's signature when present) and are
echoed back only when they carry one; a signature on a plain text part is not kept.

Tools: ``tools: [{"functionDeclarations": [...]}]``; ``parameters`` is Gemini's OpenAPI
subset, so schemas are adapted (:func:`gemini_schema`): local ``$ref`` inlined
(:func:`vivace.models.protocols.base.inline_refs`), ``additionalProperties``, ``$schema``, ``$id``,
``const`` (-> ``enum``), ``examples``, ``if``/``then``/``else``... removed, ``oneOf`` ->
``anyOf``, ``["string", "null"]`` -> ``type`` + ``nullable``. Native structured output
(``supports_native_output`` is on): ``generationConfig.responseMimeType =
"application/json"`` with ``responseJsonSchema`` (full JSON Schema; registry option
``json_schema_field`` may select the older ``responseSchema``, then adapted like tools).

Settings: ``temperature``, ``top_p``, ``top_k``, ``max_tokens`` -> ``maxOutputTokens``,
``stop`` -> ``stopSequences``, ``seed``, ``presence_penalty``, ``frequency_penalty``,
``thinking_budget`` / ``reasoning_effort`` (-> ``thinkingConfig``, with
``includeThoughts``), ``tool_choice`` (-> ``toolConfig.functionCallingConfig``),
``safety_settings``, ``cached_content``; ``extra_body`` is merged last.

Finish reasons: ``STOP`` (``tool_calls`` when calls were made), ``MAX_TOKENS`` -> ``length``,
``SAFETY``/``RECITATION``/``BLOCKLIST``/``PROHIBITED_CONTENT``/``SPII``/``IMAGE_SAFETY`` ->
``content_filter``, ``MALFORMED_FUNCTION_CALL`` -> ``error``; a prompt blocked by
``promptFeedback.blockReason`` -> ``content_filter``. Usage: ``promptTokenCount`` (includes
cached), ``candidatesTokenCount + thoughtsTokenCount`` as output, ``cachedContentTokenCount``,
``thoughtsTokenCount`` as reasoning.

Streams: every SSE record is a whole ``GenerateContentResponse``; the stream must reach a
``finishReason`` (else :class:`~vivace.errors.StreamInterrupted`); an ``{"error": ...}``
record raises :class:`StreamInterrupted`.

Vertex AI auth (registry ``auth: "google-adc"``): the OAuth access token comes from
``api_key=`` or ``GOOGLE_CLOUD_ACCESS_TOKEN`` (e.g. ``gcloud auth print-access-token``);
Application Default Credentials are not refreshed automatically.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, ClassVar

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
from ..http import json_excerpt
from ..registry import ProviderInfo
from .base import HTTPModel, inline_refs, map_finish_reason, strict_json_schema

__all__ = ["GeminiModel", "gemini_schema", "gemini_usage", "google_access_token"]

_loads = json.loads
_PROVIDERS = ("google", "gemini", "vertex")
_FINISH: dict[str, FinishReason] = {
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "FINISH_REASON_UNSPECIFIED": "unknown",
    "OTHER": "unknown",
}


def google_access_token(info: ProviderInfo, api_key: str | None = None) -> str:
    """The OAuth token for a ``google-adc`` provider: ``api_key`` or ``GOOGLE_CLOUD_ACCESS_TOKEN``."""
    token = api_key or os.environ.get("GOOGLE_CLOUD_ACCESS_TOKEN")
    if not token:
        raise ModelConfigError(
            f"provider {info.id!r} needs a Google Cloud access token: set "
            "GOOGLE_CLOUD_ACCESS_TOKEN (e.g. `gcloud auth print-access-token`) or pass api_key=",
            provider=info.id,
            env_var="GOOGLE_CLOUD_ACCESS_TOKEN",
        )
    return token


# -- schema adaptation ------------------------------------------------------------------------

_DROP = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$anchor",
        "additionalProperties",
        "unevaluatedProperties",
        "patternProperties",
        "propertyNames",
        "examples",
        "if",
        "then",
        "else",
        "not",
        "dependentRequired",
        "dependentSchemas",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "contentEncoding",
        "contentMediaType",
        "readOnly",
        "writeOnly",
        "deprecated",
        "discriminator",
        "prefixItems",
    }
)


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` adapted to Gemini's OpenAPI subset (``parameters`` / ``responseSchema``)."""

    node = dict(schema)
    if "$defs" in node or "definitions" in node:
        if "definitions" in node and "$defs" not in node:
            node["$defs"] = node.pop("definitions")
        node = inline_refs(node)
    out = _adapt(copy.deepcopy(node))
    return out if isinstance(out, dict) else {"type": "object", "properties": {}}


def _adapt(node: Any) -> Any:
    if isinstance(node, list):
        return [_adapt(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in _DROP or k in ("$defs", "definitions", "$ref"):
            continue
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: _adapt(sub) for name, sub in v.items()}
        elif k in ("items", "anyOf"):
            out[k] = _adapt(v)
        elif k == "oneOf":
            out["anyOf"] = _adapt(v)
        elif k == "allOf" and isinstance(v, list):
            for sub in v:
                sub = _adapt(sub)
                if isinstance(sub, dict):
                    for sk, sv in sub.items():
                        if sk == "properties" and isinstance(sv, dict):
                            out.setdefault("properties", {}).update(sv)
                        elif sk == "required" and isinstance(sv, list):
                            out.setdefault("required", [])
                            out["required"] += [r for r in sv if r not in out["required"]]
                        else:
                            out.setdefault(sk, sv)
        elif k == "const":
            out["enum"] = [v]
        elif k == "type" and isinstance(v, list):
            types = [t for t in v if t != "null"]
            if len(types) < len(v):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        else:
            out[k] = v
    if "anyOf" in out and isinstance(out["anyOf"], list):
        alts = [a for a in out["anyOf"] if not (isinstance(a, dict) and a.get("type") == "null")]
        if len(alts) < len(out["anyOf"]):
            out["nullable"] = True
        if len(alts) == 1 and isinstance(alts[0], dict):
            del out["anyOf"]
            for ak, av in alts[0].items():
                out.setdefault(ak, av)
        else:
            out["anyOf"] = alts
    if "enum" in out and isinstance(out["enum"], list):
        if None in out["enum"]:
            out["nullable"] = True
            out["enum"] = [e for e in out["enum"] if e is not None]
        if "type" not in out or out["type"] == "string":
            out["enum"] = [str(e) for e in out["enum"]]
            out["type"] = "string"
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    return out


def _json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A schema for ``responseJsonSchema``/``parametersJsonSchema`` (full JSON Schema)."""
    return {k: v for k, v in schema.items() if k != "$schema"}


def _call_id(response_id: str | None, index: int, name: str, args: str) -> str:
    digest = hashlib.sha1(f"{response_id}|{index}|{name}|{args}".encode()).hexdigest()[:20]
    return f"call_{digest}"


class GeminiModel(HTTPModel):
    """Google Gemini ``generateContent`` over :class:`~vivace.models.http.Endpoint`."""

    protocol: ClassVar[str] = "gemini"

    __slots__ = ()

    native_output_default: ClassVar[bool] = True

    @classmethod
    def from_provider(cls, info: ProviderInfo, model_name: str, **kw: Any) -> HTTPModel:
        if info.auth == "google-adc":
            token = google_access_token(info, kw.pop("api_key", None))
            headers = {"authorization": f"Bearer {token}", **(kw.pop("headers", None) or {})}
            options = {"api_version": "", **(kw.pop("options", None) or {})}
            return super().from_provider(
                info, model_name, api_key=token, headers=headers, options=options, **kw
            )
        return super().from_provider(info, model_name, **kw)

    def _path(self, stream: bool) -> str:
        version = self.option("api_version", "v1beta")
        name = self.model_name if "/" in self.model_name else f"models/{self.model_name}"
        prefix = f"{version}/{name}" if version else name
        return f"{prefix}:streamGenerateContent?alt=sse" if stream else f"{prefix}:generateContent"

    # -- request building --------------------------------------------------------------------

    def build_body(self, request: ModelRequest, stream: bool = False) -> dict[str, Any]:
        """The JSON body for ``request`` (the same for both endpoints)."""
        settings = request.settings or {}
        system, contents = self.build_contents(request)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": self.tool_entries(request.tools)}]
            choice = settings.get("tool_choice")
            if choice is not None:
                fcc: dict[str, Any]
                if choice == "auto":
                    fcc = {"mode": "AUTO"}
                elif choice == "none":
                    fcc = {"mode": "NONE"}
                elif choice == "required":
                    fcc = {"mode": "ANY"}
                else:
                    fcc = {"mode": "ANY", "allowedFunctionNames": [str(choice)]}
                body["toolConfig"] = {"functionCallingConfig": fcc}
        gen: dict[str, Any] = {}
        out = request.output
        if out is not None and out.mode == "native":
            gen["responseMimeType"] = "application/json"
            field = self.option("json_schema_field", "responseJsonSchema")
            if field == "responseSchema":
                gen["responseSchema"] = gemini_schema(out.schema)
            else:
                schema = strict_json_schema(out.schema) if out.strict else None
                gen["responseJsonSchema"] = _json_schema(schema or out.schema)
        for key, name in (
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("top_k", "topK"),
            ("max_tokens", "maxOutputTokens"),
            ("seed", "seed"),
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"),
        ):
            if settings.get(key) is not None:
                gen[name] = settings[key]
        stop = settings.get("stop")
        if stop:
            gen["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        thinking: dict[str, Any] = {}
        if settings.get("thinking_budget") is not None:
            thinking = {"thinkingBudget": int(settings["thinking_budget"]), "includeThoughts": True}
        elif settings.get("reasoning_effort"):
            thinking = {"thinkingLevel": str(settings["reasoning_effort"]), "includeThoughts": True}
        if thinking:
            gen["thinkingConfig"] = thinking
        if gen:
            body["generationConfig"] = gen
        if settings.get("safety_settings"):
            body["safetySettings"] = settings["safety_settings"]
        if settings.get("cached_content"):
            body["cachedContent"] = settings["cached_content"]
        extra = settings.get("extra_body")
        if isinstance(extra, Mapping):
            body.update(extra)
        return body

    def build_tool(self, tool: ToolDefinition) -> dict[str, Any]:
        decl: dict[str, Any] = {"name": tool.name, "description": tool.description}
        params = tool.parameters or {}
        if params.get("properties"):
            decl["parameters"] = gemini_schema(params)
        return decl

    def build_contents(self, request: ModelRequest) -> tuple[str | None, list[dict[str, Any]]]:
        """``(system text, contents)``."""
        system: list[str] = [request.instructions] if request.instructions else []
        # call ids the API itself gave (echoed back); synthesized ones are not sent
        provider_ids: set[str] = set()
        for m in request.messages:
            p: Any
            for p in m.parts:
                if type(p) is ToolCallPart and p.meta and p.meta.get("gemini_id"):
                    provider_ids.add(p.id)
        contents: list[dict[str, Any]] = []
        for message in request.messages:
            if message.role == "system":
                if message.text:
                    system.append(message.text)
                continue
            role = "model" if message.role == "assistant" else "user"
            parts = (
                self._model_parts(message)
                if role == "model"
                else self._user_parts(message, provider_ids)
            )
            if not parts:
                continue
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
        return ("\n\n".join(system) or None), contents

    def _model_parts(self, message: Message) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        p: Any
        for p in message.parts:
            t = type(p)
            if t is TextPart:
                if p.text:
                    parts.append({"text": p.text})
            elif t is ToolCallPart:
                try:
                    args = p.arguments_dict()
                except ValueError:
                    args = {}
                fc: dict[str, Any] = {"name": p.name, "args": args}
                meta = p.meta or {}
                if meta.get("gemini_id"):
                    fc["id"] = p.id
                part: dict[str, Any] = {"functionCall": fc}
                if meta.get("thought_signature"):
                    part["thoughtSignature"] = meta["thought_signature"]
                parts.append(part)
            elif t is ReasoningPart:
                rp: Any = p
                if rp.signature and rp.provider in (*_PROVIDERS, self.provider):
                    parts.append(
                        {"text": rp.text, "thought": True, "thoughtSignature": rp.signature}
                    )
        return parts

    def _user_parts(self, message: Message, provider_ids: set[str]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        p: Any
        for p in message.parts:
            t = type(p)
            if t is ToolResultPart:
                content = p.content
                if p.is_error:
                    response: Any = {
                        "error": content if isinstance(content, dict) else p.content_text()
                    }
                elif isinstance(content, dict):
                    response = content
                else:
                    response = {"result": content if _jsonable(content) else p.content_text()}
                fr: dict[str, Any] = {"name": p.name, "response": response}
                if p.call_id in provider_ids:
                    fr["id"] = p.call_id
                results.append({"functionResponse": fr})
            elif t is TextPart:
                if p.text:
                    parts.append({"text": p.text})
            elif t in (ImagePart, AudioPart, VideoPart, FilePart):
                mp: Any = p
                mt = mp.media_type or "application/octet-stream"
                if mp.url is not None and not mp.url.startswith("data:"):
                    parts.append({"fileData": {"mimeType": mt, "fileUri": mp.url}})
                else:
                    parts.append({"inlineData": {"mimeType": mt, "data": mp.base64()}})
            elif t is ReasoningPart or t is ToolCallPart:
                continue
            else:
                raise UserError(f"cannot send a {t.__name__} in a {self.protocol} user message")
        return results + parts

    # -- responses ---------------------------------------------------------------------------

    async def _request(self, request: ModelRequest) -> ModelResponse:
        body = self.build_body(request)
        data = await self.endpoint.post_json(
            self._path(False), body, model=self.model_name, settings=request.settings
        )
        if not isinstance(data, dict):
            raise self._bad(f"expected a JSON object, got {type(data).__name__}", data)
        if data.get("error"):
            raise self._bad(_error_message(data["error"]), data)
        acc = _Accumulator(self)
        for _ in acc.feed(data):
            pass
        if acc.finish is None and not acc.blocked and not data.get("candidates"):
            raise self._bad("the answer has no candidates", data)
        return acc.response()

    async def _stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        body = self.build_body(request, stream=True)
        acc = _Accumulator(self)
        events = self.endpoint.stream_sse(
            self._path(True), body, model=self.model_name, settings=request.settings
        )
        async with aclosing(events):
            async for event in events:
                data = event.data
                if not data or data == "[DONE]":
                    continue
                try:
                    chunk = _loads(data)
                except ValueError:
                    raise self._bad("malformed stream chunk (not JSON)", data) from None
                if isinstance(chunk, list) and len(chunk) == 1:
                    chunk = chunk[0]
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
                for delta in acc.feed(chunk):
                    yield delta
        if acc.finish is None and not acc.blocked:
            raise StreamInterrupted(
                f"{self.provider}/{self.model_name}: the stream ended before the answer was complete",
                provider=self.provider,
                model=self.model_name,
            )
        yield acc.response()

    def _bad(self, what: str, data: Any) -> ModelResponseError:
        text = data if isinstance(data, str) else json.dumps(data, default=str)
        return ModelResponseError(
            self.endpoint.redact(f"{self.provider}/{self.model_name}: {what}"),
            provider=self.provider,
            model=self.model_name,
            body=self.endpoint.redact(json_excerpt(text)),
        )


class _Accumulator:
    """Builds one response from one or more ``GenerateContentResponse`` chunks."""

    __slots__ = (
        "blocked",
        "calls",
        "finish",
        "model",
        "model_version",
        "parts",
        "reasoning",
        "response_id",
        "text",
        "usage",
    )

    def __init__(self, model: GeminiModel) -> None:
        self.model = model
        self.parts: list[Part] = []
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls = 0
        self.finish: str | None = None
        self.blocked: str | None = None
        self.usage: Any = None
        self.response_id: str | None = None
        self.model_version: str | None = None

    def _flush_text(self) -> None:
        if self.reasoning:
            self.parts.append(ReasoningPart("".join(self.reasoning), None, self.model.provider))
            self.reasoning = []
        if self.text:
            self.parts.append(TextPart("".join(self.text)))
            self.text = []

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self.response_id = self.response_id or chunk.get("responseId")
        self.model_version = self.model_version or chunk.get("modelVersion")
        if chunk.get("usageMetadata"):
            self.usage = chunk["usageMetadata"]
        feedback = chunk.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            self.blocked = feedback["blockReason"]
        candidates = chunk.get("candidates") or []
        if not candidates:
            return out
        cand = candidates[0]
        for part in (cand.get("content") or {}).get("parts") or ():
            sig = part.get("thoughtSignature")
            if "functionCall" in part:
                self._flush_text()
                fc = part["functionCall"] or {}
                name = fc.get("name", "")
                args = json.dumps(fc.get("args") or {})
                meta: dict[str, Any] = {}
                if fc.get("id"):
                    cid = fc["id"]
                    meta["gemini_id"] = True
                else:
                    cid = _call_id(self.response_id, self.calls, name, args)
                if sig:
                    meta["thought_signature"] = sig
                self.parts.append(ToolCallPart(cid, name, args, meta or None))
                out.append(ToolCallDelta(self.calls, cid, name, args))
                self.calls += 1
            elif part.get("thought"):
                if self.text:
                    self._flush_text()
                t = part.get("text") or ""
                if t:
                    self.reasoning.append(t)
                    out.append(ReasoningDelta(t))
                if sig:
                    self.parts.append(
                        ReasoningPart("".join(self.reasoning), sig, self.model.provider)
                    )
                    self.reasoning = []
            elif "text" in part:
                if self.reasoning:
                    self._flush_text()
                t = part.get("text") or ""
                if t:
                    self.text.append(t)
                    out.append(TextDelta(t))
            elif "inlineData" in part or "fileData" in part:
                continue  # generated media is not mapped (text models)
        if cand.get("finishReason"):
            self.finish = cand["finishReason"]
        return out

    def response(self) -> ModelResponse:
        self._flush_text()
        raw = self.finish or self.blocked
        if self.blocked and not self.finish:
            finish: FinishReason = "content_filter"
        elif raw in _FINISH:
            finish = _FINISH[raw]
        else:
            finish = map_finish_reason(raw, self.calls > 0)
        if finish == "stop" and self.calls:
            finish = "tool_calls"
        usage = gemini_usage(self.usage)
        usage.tool_calls = self.calls
        m = self.model
        return ModelResponse(
            self.parts,
            usage,
            finish,
            self.model_version or m.model_name,
            m.provider,
            self.response_id,
            None,
            raw,
        )


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def _error_message(err: Any) -> str:
    if isinstance(err, dict):
        msg = err.get("message") or err.get("status") or err
        return f"{msg} ({err['status']})" if err.get("status") and err.get("message") else str(msg)
    return str(err)


def gemini_usage(u: Any) -> Usage:
    """:class:`Usage` from Gemini ``usageMetadata`` (output includes thought tokens)."""
    if not u:
        return Usage(requests=1)
    thoughts = u.get("thoughtsTokenCount") or 0
    return Usage(
        input_tokens=(u.get("promptTokenCount") or 0) + (u.get("toolUsePromptTokenCount") or 0),
        output_tokens=(u.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=u.get("cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
        requests=1,
    )
