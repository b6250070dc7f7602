"""Fake OpenAI Chat Completions server (``/v1/chat/completions`` and ``/v1/embeddings``).

Streams exactly as OpenAI does: every chunk is a ``chat.completion.chunk`` with ``id``,
``created``, ``model`` and ``system_fingerprint``; the first delta carries the role and an
empty content; tool calls open with id, type and name and empty arguments, then argument
pieces keyed by ``index``; a finish chunk with an empty delta; a usage-only chunk with
``choices: []`` when ``stream_options.include_usage`` was sent; then ``data: [DONE]``.
Reasoning is sent as ``delta.reasoning_content`` (the DeepSeek/vLLM convention).
Embeddings answer deterministically (a hash of the text) unless an :class:`HTTPFault` is
queued first.

``FakeOpenAIChat(max_tokens_fields=("max_tokens",))`` behaves like a server that applies a
length limit read from those request fields only (llama.cpp's server reads ``max_tokens``,
not ``max_completion_tokens``): a word counts as a token, the answer text is cut to the
limit with finish reason ``length``, and ``completion_tokens`` is the number of words sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import time
from collections.abc import Sequence
from typing import Any

from .base import (
    FakeProviderServer,
    HTTPFault,
    RecordedRequest,
    Reply,
    RequestSummary,
    ToolCall,
    Turn,
    sse,
)

__all__ = ["FakeOpenAIChat", "fake_embedding"]


def fake_embedding(text: str, dims: int = 8) -> list[float]:
    """The deterministic vector the fake returns for ``text``."""
    out: list[float] = []
    seed = text.encode()
    i = 0
    while len(out) < dims:
        digest = hashlib.sha256(seed + struct.pack(">I", i)).digest()
        out += [(b - 128) / 128 for b in digest]
        i += 1
    return out[:dims]


class FakeOpenAIChat(FakeProviderServer):
    """OpenAI Chat Completions wire format (see module docs)."""

    name = "openai-chat"
    protocol_id = "openai-chat"
    base_path = "/v1"

    def __init__(self, *, max_tokens_fields: Sequence[str] = (), **kw: Any) -> None:
        super().__init__(**kw)
        self.max_tokens_fields = tuple(max_tokens_fields)

    def _limited(self, turn: Turn, req: RecordedRequest) -> Turn:
        """``turn`` cut to the request's length limit (see the module docs)."""
        if not self.max_tokens_fields or not turn.text:
            return turn
        body = req.json or {}
        limit = next(
            (body[f] for f in self.max_tokens_fields if isinstance(body.get(f), int)), None
        )
        words = turn.text.split()
        usage = dict(turn.usage or {})
        if limit is not None and len(words) > limit:
            usage["output_tokens"] = limit
            return dataclasses.replace(
                turn, text=" ".join(words[:limit]), usage=usage, finish_reason="length"
            )
        usage["output_tokens"] = len(words)
        return dataclasses.replace(turn, usage=usage)

    # -- routes ------------------------------------------------------------------------------

    def handle(self, req: RecordedRequest) -> Reply | None:
        if req.path.endswith("/embeddings"):
            if self.queue and isinstance(self.queue[0], HTTPFault):
                return None
            body = req.json or {}
            inputs = body.get("input", [])
            if isinstance(inputs, str):
                inputs = [inputs]
            dims = int(body.get("dimensions") or 8)
            data = [
                {"object": "embedding", "index": i, "embedding": fake_embedding(t, dims)}
                for i, t in enumerate(inputs)
            ]
            data.reverse()  # the API does not promise order: clients must sort by index
            tokens = sum(len(t.split()) for t in inputs)
            answer = {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
            return Reply(200, {"content-type": "application/json"}, json.dumps(answer).encode())
        if not req.path.endswith("/chat/completions"):
            err = {
                "error": {
                    "message": f"Invalid URL (POST {req.path})",
                    "type": "invalid_request_error",
                }
            }
            return Reply(404, {"content-type": "application/json"}, json.dumps(err).encode())
        return None

    # -- rendering ---------------------------------------------------------------------------

    def _ids(self, turn: Turn, req: RecordedRequest) -> tuple[str, str, int]:
        rid = turn.response_id or self.next_id("chatcmpl-fake")
        model = (req.json or {}).get("model", "fake-model")
        return rid, model, int(time.time())

    def _finish(self, turn: Turn) -> str:
        if turn.finish_reason is not None:
            return turn.finish_reason
        return "tool_calls" if turn.tool_calls else "stop"

    def _call_ids(self, turn: Turn) -> list[str]:
        return [c.id or self.next_id("call_fake") for c in turn.tool_calls]

    @staticmethod
    def _usage(turn: Turn) -> dict[str, Any]:
        u = turn.usage_or_default()
        return {
            "prompt_tokens": u["input_tokens"],
            "completion_tokens": u["output_tokens"],
            "total_tokens": u["input_tokens"] + u["output_tokens"],
            "prompt_tokens_details": {"cached_tokens": u["cached_tokens"], "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": u["reasoning_tokens"],
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def render_whole(self, turn: Turn, req: RecordedRequest) -> dict[str, Any]:
        turn = self._limited(turn, req)
        rid, model, created = self._ids(turn, req)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": turn.text,
            "refusal": turn.refusal,
            "annotations": [],
        }
        if turn.reasoning:
            message["reasoning_content"] = turn.reasoning
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    "id": cid,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_json()},
                }
                for c, cid in zip(turn.tool_calls, self._call_ids(turn), strict=True)
            ]
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish(turn),
                }
            ],
            "usage": self._usage(turn),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def render_events(self, turn: Turn, req: RecordedRequest) -> list[bytes]:
        turn = self._limited(turn, req)
        rid, model, created = self._ids(turn, req)
        head = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse(
                {
                    **head,
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                    ],
                }
            )

        out = [chunk({"role": "assistant", "content": "", "refusal": None})]
        out += [chunk({"reasoning_content": p}) for p in turn.reasoning_pieces()]
        out += [chunk({"content": p}) for p in turn.text_pieces()]
        if turn.refusal:
            out.append(chunk({"refusal": turn.refusal}))
        ids = self._call_ids(turn)
        opens = [
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": cid,
                            "type": "function",
                            "function": {"name": c.name, "arguments": ""},
                        }
                    ]
                }
            )
            for i, (c, cid) in enumerate(zip(turn.tool_calls, ids, strict=True))
        ]
        pieces = [
            [
                chunk({"tool_calls": [{"index": i, "function": {"arguments": a}}]})
                for a in turn.arg_pieces(c)
            ]
            for i, c in enumerate(turn.tool_calls)
        ]
        if turn.interleave_tool_calls:
            out += opens
            longest = max((len(p) for p in pieces), default=0)
            for j in range(longest):
                out += [p[j] for p in pieces if j < len(p)]
        else:
            for open_, ps in zip(opens, pieces, strict=True):
                out.append(open_)
                out += ps
        out.append(chunk({}, self._finish(turn)))
        opts = (req.json or {}).get("stream_options") or {}
        if opts.get("include_usage"):
            out.append(sse({**head, "choices": [], "usage": self._usage(turn)}))
        out.append(b"data: [DONE]\n\n")
        return out

    def render_error(
        self, fault: HTTPFault, req: RecordedRequest
    ) -> tuple[int, dict[str, str], bytes]:
        etype = fault.error_type or {
            400: "invalid_request_error",
            401: "invalid_request_error",
            404: "invalid_request_error",
            429: "rate_limit_exceeded",
        }.get(fault.status, "server_error")
        body = {"error": {"message": fault.message, "type": etype, "param": None, "code": None}}
        headers = {"content-type": "application/json"}
        if fault.status == 429:
            headers["x-ratelimit-remaining-requests"] = "0"
        return fault.status, headers, json.dumps(body).encode()

    def error_event(self, turn: Turn, req: RecordedRequest) -> bytes:
        return sse(
            {
                "error": {
                    "message": turn.error_message,
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        )

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
            content = m.get("content")
            if role in ("system", "developer"):
                system = content
            elif role == "user":
                if isinstance(content, str):
                    user_texts.append(content)
                else:
                    for c in content or []:
                        if c.get("type") == "text":
                            user_texts.append(c["text"])
                        elif c.get("type") == "image_url":
                            images += 1
            elif role == "assistant":
                call_ids += [tc["id"] for tc in m.get("tool_calls") or []]
            elif role == "tool":
                result_ids.append(m.get("tool_call_id"))
        rf = body.get("response_format") or {}
        schema = (
            (rf.get("json_schema") or {}).get("schema") if rf.get("type") == "json_schema" else None
        )
        return RequestSummary(
            model=body.get("model"),
            stream=bool(body.get("stream")),
            system=system,
            user_texts=user_texts,
            tool_names=[t["function"]["name"] for t in body.get("tools", [])],
            tool_call_ids=call_ids,
            tool_result_ids=result_ids,
            images=images,
            output_schema=schema,
        )


# re-exported for convenience
__all__ += ["ToolCall", "Turn"]
