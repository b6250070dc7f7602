"""Fake Google Gemini server (``/v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``, plus ``:batchEmbedContents``).

Streams as the API does: every ``data:`` record is a whole ``GenerateContentResponse``
(``candidates``, ``usageMetadata``, ``modelVersion``, ``responseId``); thought summaries are
parts with ``thought: true``; function calls arrive whole, one part each, the first one
carrying a ``thoughtSignature``; the last record carries ``finishReason``. A
:class:`~vivace.testing.fake_providers.ToolCall` with an ``id`` is sent with
``functionCall.id`` (newer API versions); without one no id is sent (older versions).
A refusal is rendered as ``finishReason: "SAFETY"`` with no content. Errors are Google's
``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import json
from typing import Any

from .base import (
    FakeProviderServer,
    HTTPFault,
    RecordedRequest,
    Reply,
    RequestSummary,
    Turn,
    sse,
)
from .openai_chat import fake_embedding

__all__ = ["FakeGemini"]

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class FakeGemini(FakeProviderServer):
    """Gemini ``generateContent`` wire format (see module docs)."""

    name = "gemini"
    protocol_id = "gemini"
    base_path = ""
    thought_signature = "CiQBVKhc7vFakeThoughtSignature/AAAA=="

    def handle(self, req: RecordedRequest) -> Reply | None:
        if req.path.endswith(":batchEmbedContents"):
            if self.queue and isinstance(self.queue[0], HTTPFault):
                return None
            body = req.json or {}
            out = []
            for r in body.get("requests", []):
                text = "".join(p.get("text", "") for p in (r.get("content") or {}).get("parts", []))
                dims = int(r.get("outputDimensionality") or 8)
                out.append({"values": fake_embedding(text, dims)})
            return Reply(
                200, {"content-type": "application/json"}, json.dumps({"embeddings": out}).encode()
            )
        if ":generateContent" in req.path or ":streamGenerateContent" in req.path:
            return None
        err = {"error": {"code": 404, "message": f"Not found: {req.path}", "status": "NOT_FOUND"}}
        return Reply(404, {"content-type": "application/json"}, json.dumps(err).encode())

    def is_stream(self, req: RecordedRequest) -> bool:
        return ":streamGenerateContent" in req.path

    # -- rendering ---------------------------------------------------------------------------

    def _finish(self, turn: Turn) -> str:
        if turn.finish_reason is not None:
            return "MAX_TOKENS" if turn.finish_reason == "length" else turn.finish_reason
        return "SAFETY" if turn.refusal else "STOP"

    @staticmethod
    def _usage(turn: Turn) -> dict[str, Any]:
        u = turn.usage_or_default()
        candidates = u["output_tokens"] - u["reasoning_tokens"]
        out: dict[str, Any] = {
            "promptTokenCount": u["input_tokens"],
            "candidatesTokenCount": candidates,
            "totalTokenCount": u["input_tokens"] + u["output_tokens"],
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u["input_tokens"]}],
        }
        if u["cached_tokens"]:
            out["cachedContentTokenCount"] = u["cached_tokens"]
        if u["reasoning_tokens"]:
            out["thoughtsTokenCount"] = u["reasoning_tokens"]
        return out

    def _call_parts(self, turn: Turn) -> list[dict[str, Any]]:
        parts = []
        for i, c in enumerate(turn.tool_calls):
            fc: dict[str, Any] = {"name": c.name, "args": json.loads(c.arguments_json())}
            if c.id:
                fc["id"] = c.id
            part: dict[str, Any] = {"functionCall": fc}
            if i == 0:
                part["thoughtSignature"] = self.thought_signature
            parts.append(part)
        return parts

    def _envelope(
        self, turn: Turn, req: RecordedRequest, rid: str, parts: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        cand: dict[str, Any] = {"index": 0}
        if parts is not None:
            cand["content"] = {"parts": parts, "role": "model"}
        return {
            "candidates": [cand],
            "modelVersion": req.path.rsplit("/", 1)[-1].split(":", 1)[0],
            "responseId": rid,
        }

    def render_whole(self, turn: Turn, req: RecordedRequest) -> dict[str, Any]:
        rid = turn.response_id or self.next_id("resp-fake")
        parts: list[dict[str, Any]] = []
        if turn.reasoning:
            parts.append({"text": turn.reasoning, "thought": True})
        if turn.text and not turn.refusal:
            parts.append({"text": turn.text})
        parts += self._call_parts(turn)
        out = self._envelope(turn, req, rid, parts or None)
        out["candidates"][0]["finishReason"] = self._finish(turn)
        out["usageMetadata"] = self._usage(turn)
        return out

    def render_events(self, turn: Turn, req: RecordedRequest) -> list[bytes]:
        rid = turn.response_id or self.next_id("resp-fake")
        records: list[dict[str, Any]] = []
        partial_usage = {**self._usage(turn)}
        partial_usage.pop("candidatesTokenCount", None)
        for piece in turn.reasoning_pieces():
            records.append(self._envelope(turn, req, rid, [{"text": piece, "thought": True}]))
        if not turn.refusal:
            for piece in turn.text_pieces():
                records.append(self._envelope(turn, req, rid, [{"text": piece}]))
        for part in self._call_parts(turn):  # whole calls, one per record
            records.append(self._envelope(turn, req, rid, [part]))
        for r in records:
            r["usageMetadata"] = partial_usage
        if records and not turn.refusal:
            last = records[-1]
        else:
            last = self._envelope(turn, req, rid, [{"text": ""}] if not turn.refusal else None)
            records.append(last)
        last["candidates"][0]["finishReason"] = self._finish(turn)
        last["usageMetadata"] = self._usage(turn)
        return [sse(r) for r in records]

    def render_error(
        self, fault: HTTPFault, req: RecordedRequest
    ) -> tuple[int, dict[str, str], bytes]:
        status = fault.error_type or _STATUS.get(fault.status, "UNKNOWN")
        body = {"error": {"code": fault.status, "message": fault.message, "status": status}}
        return (
            fault.status,
            {"content-type": "application/json; charset=UTF-8"},
            json.dumps(body).encode(),
        )

    def error_event(self, turn: Turn, req: RecordedRequest) -> bytes:
        return sse({"error": {"code": 503, "message": turn.error_message, "status": "UNAVAILABLE"}})

    def malformed_event(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": "unterminated\n\n'

    # -- inspection --------------------------------------------------------------------------

    def summarize(self, req: RecordedRequest) -> RequestSummary:
        body = req.json or {}
        si = body.get("systemInstruction") or {}
        system = "".join(p.get("text", "") for p in si.get("parts", [])) or None
        user_texts: list[str] = []
        call_ids: list[str] = []
        result_ids: list[str] = []
        images = 0
        for c in body.get("contents", []):
            for p in c.get("parts", []):
                if c.get("role") == "user":
                    if "text" in p:
                        user_texts.append(p["text"])
                    elif "inlineData" in p and p["inlineData"]["mimeType"].startswith("image/"):
                        images += 1
                    elif "functionResponse" in p:
                        result_ids.append(
                            p["functionResponse"].get("id") or p["functionResponse"]["name"]
                        )
                elif "functionCall" in p:
                    call_ids.append(p["functionCall"].get("id") or p["functionCall"]["name"])
        gen = body.get("generationConfig") or {}
        schema = gen.get("responseJsonSchema") or gen.get("responseSchema")
        names = [
            d["name"] for t in body.get("tools", []) for d in t.get("functionDeclarations", [])
        ]
        return RequestSummary(
            model=req.path.rsplit("/", 1)[-1].split(":", 1)[0],
            stream=self.is_stream(req),
            system=system,
            user_texts=user_texts,
            tool_names=names,
            tool_call_ids=call_ids,
            tool_result_ids=result_ids,
            images=images,
            output_schema=schema,
        )
