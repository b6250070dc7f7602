"""Fake OpenAI Responses server (``/v1/responses``).

Streams named SSE events (``event:`` + ``data:``, each object repeating its ``type`` and a
``sequence_number``, no ``[DONE]``): ``response.created``, ``response.in_progress``, per
output item ``response.output_item.added`` / content part / deltas / ``...done``, and
``response.completed`` (or ``response.incomplete`` for ``length``/``content_filter``/unknown
finish reasons). Errors mid-stream are ``event: error``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .base import FakeProviderServer, HTTPFault, RecordedRequest, Reply, RequestSummary, Turn, sse

__all__ = ["FakeOpenAIResponses"]


class FakeOpenAIResponses(FakeProviderServer):
    """OpenAI Responses wire format."""

    name = "openai-responses"
    protocol_id = "openai-responses"
    base_path = "/v1"

    def handle(self, req: RecordedRequest) -> Reply | None:
        if not req.path.endswith("/responses"):
            err = {
                "error": {
                    "message": f"Invalid URL (POST {req.path})",
                    "type": "invalid_request_error",
                }
            }
            return Reply(404, {"content-type": "application/json"}, json.dumps(err).encode())
        return None

    def _status(self, turn: Turn) -> tuple[str, dict[str, Any] | None]:
        fr = turn.finish_reason
        if fr in (None, "stop", "tool_calls"):
            return "completed", None
        reason = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(fr, fr)
        return "incomplete", {"reason": reason}

    def _usage(self, turn: Turn) -> dict[str, Any]:
        u = turn.usage_or_default()
        return {
            "input_tokens": u["input_tokens"],
            "input_tokens_details": {"cached_tokens": u["cached_tokens"]},
            "output_tokens": u["output_tokens"],
            "output_tokens_details": {"reasoning_tokens": u["reasoning_tokens"]},
            "total_tokens": u["input_tokens"] + u["output_tokens"],
        }

    def _items(self, turn: Turn) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if turn.reasoning:
            items.append(
                {
                    "type": "reasoning",
                    "id": self.next_id("rs_fake"),
                    "summary": [{"type": "summary_text", "text": turn.reasoning}],
                }
            )
        if turn.text is not None or turn.refusal:
            content: list[dict[str, Any]] = []
            if turn.text is not None:
                content.append(
                    {"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}
                )
            if turn.refusal:
                content.append({"type": "refusal", "refusal": turn.refusal})
            items.append(
                {
                    "type": "message",
                    "id": self.next_id("msg_fake"),
                    "status": "completed",
                    "role": "assistant",
                    "content": content,
                }
            )
        for c in turn.tool_calls:
            items.append(
                {
                    "type": "function_call",
                    "id": self.next_id("fc_fake"),
                    "call_id": c.id or self.next_id("call_fake"),
                    "name": c.name,
                    "arguments": c.arguments_json(),
                    "status": "completed",
                }
            )
        return items

    def _response(
        self, turn: Turn, req: RecordedRequest, items: list[dict[str, Any]], status: str
    ) -> dict[str, Any]:
        body = req.json or {}
        st, details = self._status(turn)
        return {
            "id": turn.response_id or "resp_fake",
            "object": "response",
            "created_at": int(time.time()),
            "status": status if status == "in_progress" else st,
            "incomplete_details": details if status != "in_progress" else None,
            "error": None,
            "model": body.get("model", "fake-model"),
            "output": items,
            "parallel_tool_calls": True,
            "usage": self._usage(turn) if status != "in_progress" else None,
        }

    def render_whole(self, turn: Turn, req: RecordedRequest) -> dict[str, Any]:
        return self._response(turn, req, self._items(turn), "completed")

    def render_events(self, turn: Turn, req: RecordedRequest) -> list[bytes]:
        seq = 0
        out: list[bytes] = []

        def emit(kind: str, payload: dict[str, Any]) -> None:
            nonlocal seq
            out.append(sse({"type": kind, "sequence_number": seq, **payload}, kind))
            seq += 1

        items = self._items(turn)
        emit("response.created", {"response": self._response(turn, req, [], "in_progress")})
        emit("response.in_progress", {"response": self._response(turn, req, [], "in_progress")})
        call_events: list[list[tuple[str, dict[str, Any]]]] = []
        for oi, item in enumerate(items):
            kind = item["type"]
            if kind == "reasoning":
                emit(
                    "response.output_item.added",
                    {"output_index": oi, "item": {**item, "summary": []}},
                )
                emit(
                    "response.reasoning_summary_part.added",
                    {
                        "item_id": item["id"],
                        "output_index": oi,
                        "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""},
                    },
                )
                for p in turn.reasoning_pieces():
                    emit(
                        "response.reasoning_summary_text.delta",
                        {"item_id": item["id"], "output_index": oi, "summary_index": 0, "delta": p},
                    )
                emit(
                    "response.reasoning_summary_text.done",
                    {
                        "item_id": item["id"],
                        "output_index": oi,
                        "summary_index": 0,
                        "text": turn.reasoning,
                    },
                )
                emit("response.output_item.done", {"output_index": oi, "item": item})
            elif kind == "message":
                emit(
                    "response.output_item.added",
                    {"output_index": oi, "item": {**item, "status": "in_progress", "content": []}},
                )
                for ci, part in enumerate(item["content"]):
                    if part["type"] == "output_text":
                        emit(
                            "response.content_part.added",
                            {
                                "item_id": item["id"],
                                "output_index": oi,
                                "content_index": ci,
                                "part": {**part, "text": ""},
                            },
                        )
                        for p in turn.text_pieces():
                            emit(
                                "response.output_text.delta",
                                {
                                    "item_id": item["id"],
                                    "output_index": oi,
                                    "content_index": ci,
                                    "delta": p,
                                    "logprobs": [],
                                },
                            )
                        emit(
                            "response.output_text.done",
                            {
                                "item_id": item["id"],
                                "output_index": oi,
                                "content_index": ci,
                                "text": part["text"],
                            },
                        )
                    else:
                        emit(
                            "response.content_part.added",
                            {
                                "item_id": item["id"],
                                "output_index": oi,
                                "content_index": ci,
                                "part": {"type": "refusal", "refusal": ""},
                            },
                        )
                        emit(
                            "response.refusal.delta",
                            {
                                "item_id": item["id"],
                                "output_index": oi,
                                "content_index": ci,
                                "delta": part["refusal"],
                            },
                        )
                        emit(
                            "response.refusal.done",
                            {
                                "item_id": item["id"],
                                "output_index": oi,
                                "content_index": ci,
                                "refusal": part["refusal"],
                            },
                        )
                    emit(
                        "response.content_part.done",
                        {
                            "item_id": item["id"],
                            "output_index": oi,
                            "content_index": ci,
                            "part": part,
                        },
                    )
                emit("response.output_item.done", {"output_index": oi, "item": item})
            else:
                evs = [
                    (
                        "response.output_item.added",
                        {
                            "output_index": oi,
                            "item": {**item, "arguments": "", "status": "in_progress"},
                        },
                    )
                ]
                args = item["arguments"]
                n = max(1, turn.args_chunk_chars)
                evs += [
                    (
                        "response.function_call_arguments.delta",
                        {"item_id": item["id"], "output_index": oi, "delta": args[i : i + n]},
                    )
                    for i in range(0, len(args), n)
                ]
                evs.append(
                    (
                        "response.function_call_arguments.done",
                        {"item_id": item["id"], "output_index": oi, "arguments": args},
                    )
                )
                evs.append(("response.output_item.done", {"output_index": oi, "item": item}))
                call_events.append(evs)
        if turn.interleave_tool_calls:
            longest = max((len(e) for e in call_events), default=0)
            for j in range(longest):
                for evs in call_events:
                    if j < len(evs):
                        emit(*evs[j])
        else:
            for evs in call_events:
                for e in evs:
                    emit(*e)
        st, _ = self._status(turn)
        emit(
            "response.completed" if st == "completed" else "response.incomplete",
            {"response": self._response(turn, req, items, "done")},
        )
        return out

    def render_error(
        self, fault: HTTPFault, req: RecordedRequest
    ) -> tuple[int, dict[str, str], bytes]:
        body = {
            "error": {
                "message": fault.message,
                "type": fault.error_type or "server_error",
                "param": None,
                "code": None,
            }
        }
        return fault.status, {"content-type": "application/json"}, json.dumps(body).encode()

    def error_event(self, turn: Turn, req: RecordedRequest) -> bytes:
        return sse(
            {
                "type": "error",
                "code": "server_error",
                "message": turn.error_message,
                "param": None,
                "sequence_number": 99,
            },
            "error",
        )

    def malformed_event(self) -> bytes:
        return b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta": \n\n'

    def summarize(self, req: RecordedRequest) -> RequestSummary:
        body = req.json or {}
        user_texts: list[str] = []
        call_ids: list[str] = []
        result_ids: list[str] = []
        images = 0
        for item in body.get("input", []):
            t = item.get("type")
            if t == "function_call":
                call_ids.append(item["call_id"])
            elif t == "function_call_output":
                result_ids.append(item["call_id"])
            elif item.get("role") == "user":
                content = item.get("content")
                if isinstance(content, str):
                    user_texts.append(content)
                else:
                    for c in content or []:
                        if c.get("type") == "input_text":
                            user_texts.append(c["text"])
                        elif c.get("type") == "input_image":
                            images += 1
        fmt = (body.get("text") or {}).get("format") or {}
        return RequestSummary(
            model=body.get("model"),
            stream=bool(body.get("stream")),
            system=body.get("instructions"),
            user_texts=user_texts,
            tool_names=[t["name"] for t in body.get("tools", [])],
            tool_call_ids=call_ids,
            tool_result_ids=result_ids,
            images=images,
            output_schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
        )
