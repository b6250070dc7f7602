"""Fake Anthropic Messages server (``POST /v1/messages``).

Streams exactly as the API documents: ``message_start`` (usage with ``input_tokens`` and
cache counts, ``output_tokens: 1``), a ``ping``, then per content block
``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` - thinking blocks
with ``thinking_delta`` pieces and a final ``signature_delta``, text with ``text_delta``,
tool use with an empty ``input: {}`` in the start event and ``input_json_delta`` pieces whose
first ``partial_json`` is empty - then ``message_delta`` (stop reason, output usage) and
``message_stop``. Every data object repeats its ``type``; events carry ``event:`` names.
``ping_every=N`` adds a ``ping`` after every N events (pings may appear anywhere).
Parallel tool calls are sequential blocks (Anthropic never interleaves blocks).
A refusal is a text block with ``stop_reason: "refusal"``. Errors use
``{"type": "error", "error": {"type": ..., "message": ...}}`` bodies and events.
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

__all__ = ["FakeAnthropic"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class FakeAnthropic(FakeProviderServer):
    """Anthropic Messages wire format (see module docs)."""

    name = "anthropic"
    protocol_id = "anthropic"
    base_path = ""
    signature = "EqQBCkYIARgCIkD0fakeSignature=="

    def __init__(self, *, frame_bytes: int | None = None, ping_every: int = 0) -> None:
        super().__init__(frame_bytes=frame_bytes)
        self.ping_every = ping_every

    def handle(self, req: RecordedRequest) -> Reply | None:
        if req.path.endswith("/v1/messages") or req.path.endswith("Predict"):
            return None
        body = {
            "type": "error",
            "error": {"type": "not_found_error", "message": f"Not found: {req.path}"},
        }
        return Reply(404, {"content-type": "application/json"}, json.dumps(body).encode())

    # -- rendering ---------------------------------------------------------------------------

    def _stop(self, turn: Turn) -> str:
        if turn.finish_reason is not None:
            return "max_tokens" if turn.finish_reason == "length" else turn.finish_reason
        if turn.refusal:
            return "refusal"
        return "tool_use" if turn.tool_calls else "end_turn"

    @staticmethod
    def _usage(turn: Turn) -> dict[str, Any]:
        u = turn.usage_or_default()
        return {
            "input_tokens": u["input_tokens"] - u["cached_tokens"],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": u["cached_tokens"],
            "output_tokens": u["output_tokens"],
            "service_tier": "standard",
        }

    def _blocks(self, turn: Turn) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if turn.reasoning:
            blocks.append(
                {"type": "thinking", "thinking": turn.reasoning, "signature": self.signature}
            )
        text = turn.refusal if turn.refusal else turn.text
        if text:
            blocks.append({"type": "text", "text": text})
        for c in turn.tool_calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": c.id or self.next_id("toolu_fake"),
                    "name": c.name,
                    "input": json.loads(c.arguments_json()),
                }
            )
        return blocks

    def render_whole(self, turn: Turn, req: RecordedRequest) -> dict[str, Any]:
        return {
            "id": turn.response_id or self.next_id("msg_fake"),
            "type": "message",
            "role": "assistant",
            "model": (req.json or {}).get("model", "claude-fake"),
            "content": self._blocks(turn),
            "stop_reason": self._stop(turn),
            "stop_sequence": None,
            "usage": self._usage(turn),
        }

    def render_events(self, turn: Turn, req: RecordedRequest) -> list[bytes]:
        usage = self._usage(turn)

        def ev(data: dict[str, Any]) -> bytes:
            return sse(data, data["type"])

        start_usage = {**usage, "output_tokens": 1}
        out = [
            ev(
                {
                    "type": "message_start",
                    "message": {
                        "id": turn.response_id or self.next_id("msg_fake"),
                        "type": "message",
                        "role": "assistant",
                        "model": (req.json or {}).get("model", "claude-fake"),
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                }
            ),
            ev({"type": "ping"}),
        ]
        for i, block in enumerate(self._blocks(turn)):
            kind = block["type"]
            if kind == "thinking":
                out.append(
                    ev(
                        {
                            "type": "content_block_start",
                            "index": i,
                            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                        }
                    )
                )
                t, n = block["thinking"], max(1, turn.chunk_chars)
                for j in range(0, len(t), n):
                    out.append(
                        ev(
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "thinking_delta", "thinking": t[j : j + n]},
                            }
                        )
                    )
                out.append(
                    ev(
                        {
                            "type": "content_block_delta",
                            "index": i,
                            "delta": {"type": "signature_delta", "signature": block["signature"]},
                        }
                    )
                )
            elif kind == "text":
                out.append(
                    ev(
                        {
                            "type": "content_block_start",
                            "index": i,
                            "content_block": {"type": "text", "text": ""},
                        }
                    )
                )
                t, n = block["text"], max(1, turn.chunk_chars)
                for j in range(0, len(t), n):
                    out.append(
                        ev(
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "text_delta", "text": t[j : j + n]},
                            }
                        )
                    )
            else:
                out.append(
                    ev(
                        {
                            "type": "content_block_start",
                            "index": i,
                            "content_block": {
                                "type": "tool_use",
                                "id": block["id"],
                                "name": block["name"],
                                "input": {},
                            },
                        }
                    )
                )
                a, n = json.dumps(block["input"]), max(1, turn.args_chunk_chars)
                pieces = [""] + [a[j : j + n] for j in range(0, len(a), n)]  # empty first delta
                for piece in pieces:
                    out.append(
                        ev(
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "input_json_delta", "partial_json": piece},
                            }
                        )
                    )
            out.append(ev({"type": "content_block_stop", "index": i}))
        out.append(
            ev(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop(turn), "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                }
            )
        )
        out.append(ev({"type": "message_stop"}))
        if self.ping_every:
            spaced: list[bytes] = []
            for k, e in enumerate(out):
                spaced.append(e)
                if (k + 1) % self.ping_every == 0:
                    spaced.append(ev({"type": "ping"}))
            out = spaced
        return out

    def render_error(
        self, fault: HTTPFault, req: RecordedRequest
    ) -> tuple[int, dict[str, str], bytes]:
        etype = fault.error_type or _ERROR_TYPES.get(fault.status, "api_error")
        body = {"type": "error", "error": {"type": etype, "message": fault.message}}
        headers = {"content-type": "application/json", "request-id": "req_fake"}
        if fault.status == 429:
            headers["anthropic-ratelimit-requests-remaining"] = "0"
        return fault.status, headers, json.dumps(body).encode()

    def error_event(self, turn: Turn, req: RecordedRequest) -> bytes:
        return sse(
            {"type": "error", "error": {"type": "overloaded_error", "message": turn.error_message}},
            "error",
        )

    def malformed_event(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_del\n\n'

    # -- inspection --------------------------------------------------------------------------

    def summarize(self, req: RecordedRequest) -> RequestSummary:
        body = req.json or {}
        system = body.get("system")
        if isinstance(system, list):
            system = "".join(b.get("text", "") for b in system)
        user_texts: list[str] = []
        call_ids: list[str] = []
        result_ids: list[str] = []
        images = 0
        for m in body.get("messages", []):
            content = m.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            for b in content or []:
                kind = b.get("type")
                if m.get("role") == "user":
                    if kind == "text":
                        user_texts.append(b["text"])
                    elif kind == "image":
                        images += 1
                    elif kind == "tool_result":
                        result_ids.append(b["tool_use_id"])
                elif kind == "tool_use":
                    call_ids.append(b["id"])
        fmt = (body.get("output_config") or {}).get("format") or body.get("output_format") or {}
        return RequestSummary(
            model=body.get("model"),
            stream=bool(body.get("stream")),
            system=system,
            user_texts=user_texts,
            tool_names=[t["name"] for t in body.get("tools", [])],
            tool_call_ids=call_ids,
            tool_result_ids=result_ids,
            images=images,
            output_schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
        )
