"""Fake Ollama server: native ``POST /api/chat`` (NDJSON streaming) and ``POST /api/embed``.

Streams as Ollama does: one JSON object per line (``application/x-ndjson``), each with
``model``, ``created_at``, ``message`` (``role``, ``content``, optional ``thinking`` and
whole ``tool_calls``) and ``done: false``; the last line has ``done: true``, an empty
message, ``done_reason`` and the counts and durations (``prompt_eval_count``,
``eval_count``...). ``stream`` defaults to true as in Ollama. Tool calls carry an ``id``
when the scripted :class:`ToolCall` has one (newer Ollama versions), else none. Errors are
``{"error": "..."}`` bodies and lines.
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
)
from .openai_chat import fake_embedding

__all__ = ["FakeOllama"]

_CREATED = "2026-01-01T00:00:00.000000Z"


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class FakeOllama(FakeProviderServer):
    """Ollama native chat wire format (see module docs)."""

    name = "ollama"
    protocol_id = "ollama"
    base_path = ""
    stream_content_type = "application/x-ndjson"

    def handle(self, req: RecordedRequest) -> Reply | None:
        if req.path == "/api/embed":
            if self.queue and isinstance(self.queue[0], HTTPFault):
                return None
            body = req.json or {}
            inputs = body.get("input", [])
            if isinstance(inputs, str):
                inputs = [inputs]
            dims = int(body.get("dimensions") or 8)
            answer = {
                "model": body.get("model"),
                "embeddings": [fake_embedding(t, dims) for t in inputs],
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_count": sum(len(t.split()) for t in inputs),
            }
            return Reply(200, {"content-type": "application/json"}, json.dumps(answer).encode())
        if req.path == "/api/chat":
            return None
        return Reply(404, {"content-type": "text/plain"}, b"404 page not found")

    def is_stream(self, req: RecordedRequest) -> bool:
        body = req.json
        return bool(isinstance(body, dict) and body.get("stream", True))

    # -- rendering ---------------------------------------------------------------------------

    def _calls(self, turn: Turn) -> list[dict[str, Any]]:
        out = []
        for i, c in enumerate(turn.tool_calls):
            call: dict[str, Any] = {
                "function": {
                    "index": i,
                    "name": c.name,
                    "arguments": json.loads(c.arguments_json()),
                }
            }
            if c.id:
                call["id"] = c.id
            out.append(call)
        return out

    def _final(self, turn: Turn, model: str) -> dict[str, Any]:
        u = turn.usage_or_default()
        reason = turn.finish_reason or "stop"
        return {
            "model": model,
            "created_at": _CREATED,
            "done": True,
            "done_reason": reason,
            "total_duration": 123456789,
            "load_duration": 1234567,
            "prompt_eval_count": u["input_tokens"],
            "prompt_eval_duration": 2345678,
            "eval_count": u["output_tokens"],
            "eval_duration": 3456789,
        }

    def render_whole(self, turn: Turn, req: RecordedRequest) -> dict[str, Any]:
        model = (req.json or {}).get("model", "fake")
        msg: dict[str, Any] = {"role": "assistant", "content": turn.text or turn.refusal or ""}
        if turn.reasoning:
            msg["thinking"] = turn.reasoning
        if turn.tool_calls:
            msg["tool_calls"] = self._calls(turn)
        return {"model": model, "created_at": _CREATED, "message": msg, **self._final(turn, model)}

    def render_events(self, turn: Turn, req: RecordedRequest) -> list[bytes]:
        model = (req.json or {}).get("model", "fake")

        def chunk(**message: Any) -> bytes:
            return _line(
                {
                    "model": model,
                    "created_at": _CREATED,
                    "message": {"role": "assistant", "content": "", **message},
                    "done": False,
                }
            )

        out = [chunk(thinking=p) for p in turn.reasoning_pieces()]
        text = turn.text or turn.refusal or ""
        n = max(1, turn.chunk_chars)
        out += [chunk(content=text[i : i + n]) for i in range(0, len(text), n)]
        calls = self._calls(turn)
        if calls:
            out.append(chunk(tool_calls=calls))  # whole calls, in one line
        final = self._final(turn, model)
        final["message"] = {"role": "assistant", "content": ""}
        out.append(_line(final))
        return out

    def render_error(
        self, fault: HTTPFault, req: RecordedRequest
    ) -> tuple[int, dict[str, str], bytes]:
        return (
            fault.status,
            {"content-type": "application/json; charset=utf-8"},
            json.dumps({"error": fault.message}).encode(),
        )

    def error_event(self, turn: Turn, req: RecordedRequest) -> bytes:
        return _line({"error": turn.error_message})

    def malformed_event(self) -> bytes:
        return b'{"model":"fake","message":{"role":"assistant","content":"unterminated\n'

    # -- inspection --------------------------------------------------------------------------

    def summarize(self, req: RecordedRequest) -> RequestSummary:
        body = req.json or {}
        system = None
        user_texts: list[str] = []
        call_ids: list[str] = []
        result_ids: list[str] = []
        images = 0
        for m in body.get("messages", []):
            role = m.get("role")
            if role == "system":
                system = m.get("content")
            elif role == "user":
                if m.get("content"):
                    user_texts.append(m["content"])
                images += len(m.get("images") or [])
            elif role == "assistant":
                call_ids += [tc.get("id") for tc in m.get("tool_calls") or []]
            elif role == "tool":
                result_ids.append(m.get("tool_call_id"))
        fmt = body.get("format")
        return RequestSummary(
            model=body.get("model"),
            stream=self.is_stream(req),
            system=system,
            user_texts=user_texts,
            tool_names=[t["function"]["name"] for t in body.get("tools", [])],
            tool_call_ids=call_ids,
            tool_result_ids=result_ids,
            images=images,
            output_schema=fmt if isinstance(fmt, dict) else None,
        )
