"""Fake AWS Bedrock runtime: ``POST /model/{modelId}/converse`` and ``/converse-stream``.

ConverseStream answers are binary ``application/vnd.amazon.eventstream`` frames, encoded
here independently of the adapter's decoder: ``total length | headers length | prelude
CRC32 | headers (:event-type, :content-type, :message-type) | JSON payload | message CRC32``.
Payloads are the documented event bodies (``messageStart``, ``contentBlockStart`` with
``start.toolUse``, ``contentBlockDelta`` with ``delta.text`` / ``delta.toolUse.input`` /
``delta.reasoningContent``, ``contentBlockStop``, ``messageStop``, ``metadata``), each with
the ``p`` padding field Bedrock adds. Errors mid-stream are exception frames
(``:message-type: exception``); HTTP errors carry ``x-amzn-errortype`` and
``{"message": ...}``.

SigV4: with ``credentials={access_key_id: secret}`` the server verifies every request's
``Authorization`` header itself (its own canonical-request code) and answers 403
``InvalidSignatureException`` when it does not match; ``verified`` counts the good ones.
A request with ``Authorization: Bearer`` (a Bedrock API key) is accepted as is.
``corrupt_crc_at=N`` flips a byte of the N-th frame's payload (the CRC no longer matches).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zlib
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from .base import (
    FakeProviderServer,
    HTTPFault,
    RecordedRequest,
    Reply,
    RequestSummary,
    Turn,
)

__all__ = ["FakeBedrock", "encode_frame"]

_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream frame with string headers and correct CRCs."""
    hb = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        hb += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    head = prelude + struct.pack(">I", zlib.crc32(prelude))
    body = head + hb + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    data = {**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGH"[: 4 + len(kind) % 20]}
    return encode_frame(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(data, separators=(",", ":")).encode(),
    )


class FakeBedrock(FakeProviderServer):
    """Bedrock Converse wire format (see module docs)."""

    name = "bedrock"
    protocol_id = "bedrock"
    base_path = ""
    stream_content_type = "application/vnd.amazon.eventstream"

    def __init__(
        self,
        *,
        frame_bytes: int | None = None,
        credentials: dict[str, str] | None = None,
        region: str = "us-east-1",
        corrupt_crc_at: int | None = None,
    ) -> None:
        super().__init__(frame_bytes=frame_bytes)
        self.credentials = credentials
        self.region = region
        self.corrupt_crc_at = corrupt_crc_at
        self.verified = 0

    # -- routes and auth ---------------------------------------------------------------------

    def handle(self, req: RecordedRequest) -> Reply | None:
        if not (req.path.endswith("/converse") or req.path.endswith("/converse-stream")):
            return self._err(404, "UnknownOperationException", f"no route {req.path}")
        auth = req.headers.get("authorization", "")
        if self.credentials is not None and not auth.startswith("Bearer "):
            problem = self.check_signature(req)
            if problem:
                return self._err(403, "InvalidSignatureException", problem)
            self.verified += 1
        return None

    def _err(self, status: int, etype: str, message: str) -> Reply:
        return Reply(
            status,
            {
                "content-type": "application/json",
                "x-amzn-errortype": f"{etype}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            },
            json.dumps({"message": message}).encode(),
        )

    def check_signature(self, req: RecordedRequest) -> str | None:
        """``None`` when the SigV4 ``Authorization`` header is right, else what is wrong."""
        auth = req.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "Missing Authentication Token"
        fields = dict(
            item.strip().split("=", 1) for item in auth[len("AWS4-HMAC-SHA256 ") :].split(",")
        )
        access, date, region, service, term = fields["Credential"].split("/")
        secret = (self.credentials or {}).get(access)
        if secret is None:
            return "The security token included in the request is invalid."
        if region != self.region or term != "aws4_request":
            return f"Credential should be scoped to a valid region ({region})"
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return "host and x-amz-date must be signed"
        amz_date = req.headers.get("x-amz-date", "")
        if amz_date[:8] != date:
            return "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date"
        # canonical request from what actually arrived
        segments = [quote(unquote(s), safe="-_.~") for s in req.path.split("/")]
        canonical_uri = quote("/".join(segments), safe="/~")  # non-S3: encoded twice
        pairs = sorted(parse_qsl(req.query, keep_blank_values=True))
        canonical_query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs
        )
        headers = "".join(f"{h}:{' '.join(req.headers.get(h, '').split())}\n" for h in signed)
        canonical = "\n".join(
            [
                req.method,
                canonical_uri,
                canonical_query,
                headers,
                ";".join(signed),
                hashlib.sha256(req.body).hexdigest(),
            ]
        )
        scope = f"{date}/{region}/{service}/aws4_request"
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
            + hashlib.sha256(canonical.encode()).hexdigest()
        )
        key = ("AWS4" + secret).encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return "The request signature we calculated does not match the signature you provided."
        return None

    def is_stream(self, req: RecordedRequest) -> bool:
        return req.path.endswith("/converse-stream")

    # -- rendering ---------------------------------------------------------------------------

    def _stop(self, turn: Turn) -> str:
        if turn.finish_reason is not None:
            return "max_tokens" if turn.finish_reason == "length" else turn.finish_reason
        return "tool_use" if turn.tool_calls else "end_turn"

    @staticmethod
    def _usage(turn: Turn) -> dict[str, Any]:
        u = turn.usage_or_default()
        out = {
            "inputTokens": u["input_tokens"] - u["cached_tokens"],
            "outputTokens": u["output_tokens"],
            "totalTokens": u["input_tokens"] + u["output_tokens"],
        }
        if u["cached_tokens"]:
            out["cacheReadInputTokens"] = u["cached_tokens"]
            out["cacheWriteInputTokens"] = 0
        return out

    def _ids(self, turn: Turn) -> list[str]:
        return [c.id or self.next_id("tooluse_fake") for c in turn.tool_calls]

    def render_whole(self, turn: Turn, req: RecordedRequest) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if turn.reasoning:
            content.append(
                {
                    "reasoningContent": {
                        "reasoningText": {"text": turn.reasoning, "signature": "sig-fake"}
                    }
                }
            )
        if turn.text or turn.refusal:
            content.append({"text": turn.text or turn.refusal})
        for c, cid in zip(turn.tool_calls, self._ids(turn), strict=True):
            content.append(
                {
                    "toolUse": {
                        "toolUseId": cid,
                        "name": c.name,
                        "input": json.loads(c.arguments_json()),
                    }
                }
            )
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self._stop(turn),
            "usage": self._usage(turn),
            "metrics": {"latencyMs": 123},
        }

    def render_events(self, turn: Turn, req: RecordedRequest) -> list[bytes]:
        out = [_event("messageStart", {"role": "assistant"})]
        idx = 0
        if turn.reasoning:
            for piece in turn.reasoning_pieces():
                out.append(
                    _event(
                        "contentBlockDelta",
                        {"contentBlockIndex": idx, "delta": {"reasoningContent": {"text": piece}}},
                    )
                )
            out.append(
                _event(
                    "contentBlockDelta",
                    {
                        "contentBlockIndex": idx,
                        "delta": {"reasoningContent": {"signature": "sig-fake"}},
                    },
                )
            )
            out.append(_event("contentBlockStop", {"contentBlockIndex": idx}))
            idx += 1
        text = turn.text or turn.refusal
        if text:
            for piece in turn.text_pieces() if turn.text else [text]:
                out.append(
                    _event(
                        "contentBlockDelta", {"contentBlockIndex": idx, "delta": {"text": piece}}
                    )
                )
            out.append(_event("contentBlockStop", {"contentBlockIndex": idx}))
            idx += 1
        for c, cid in zip(turn.tool_calls, self._ids(turn), strict=True):
            out.append(
                _event(
                    "contentBlockStart",
                    {
                        "contentBlockIndex": idx,
                        "start": {"toolUse": {"toolUseId": cid, "name": c.name}},
                    },
                )
            )
            for piece in turn.arg_pieces(c):
                out.append(
                    _event(
                        "contentBlockDelta",
                        {"contentBlockIndex": idx, "delta": {"toolUse": {"input": piece}}},
                    )
                )
            out.append(_event("contentBlockStop", {"contentBlockIndex": idx}))
            idx += 1
        out.append(_event("messageStop", {"stopReason": self._stop(turn)}))
        out.append(_event("metadata", {"usage": self._usage(turn), "metrics": {"latencyMs": 123}}))
        if self.corrupt_crc_at is not None and self.corrupt_crc_at < len(out):
            frame = bytearray(out[self.corrupt_crc_at])
            frame[-6] ^= 0x01  # inside the payload: the message CRC no longer matches
            out[self.corrupt_crc_at] = bytes(frame)
        return out

    def render_error(
        self, fault: HTTPFault, req: RecordedRequest
    ) -> tuple[int, dict[str, str], bytes]:
        etype = fault.error_type or _ERRORS.get(fault.status, "InternalServerException")
        return (
            fault.status,
            {"content-type": "application/json", "x-amzn-errortype": etype},
            json.dumps({"message": fault.message}).encode(),
        )

    def error_event(self, turn: Turn, req: RecordedRequest) -> bytes:
        return encode_frame(
            {
                ":exception-type": "modelStreamErrorException",
                ":content-type": "application/json",
                ":message-type": "exception",
            },
            json.dumps({"message": turn.error_message, "originalStatusCode": 503}).encode(),
        )

    def malformed_event(self) -> bytes:
        return encode_frame(
            {
                ":event-type": "contentBlockDelta",
                ":content-type": "application/json",
                ":message-type": "event",
            },
            b'{"contentBlockIndex":0,"delta":{"text":"unterminated',
        )

    # -- inspection --------------------------------------------------------------------------

    def summarize(self, req: RecordedRequest) -> RequestSummary:
        body = req.json or {}
        user_texts: list[str] = []
        call_ids: list[str] = []
        result_ids: list[str] = []
        images = 0
        for m in body.get("messages", []):
            for b in m.get("content", []):
                if m.get("role") == "user":
                    if "text" in b:
                        user_texts.append(b["text"])
                    elif "image" in b:
                        images += 1
                    elif "toolResult" in b:
                        result_ids.append(b["toolResult"]["toolUseId"])
                elif "toolUse" in b:
                    call_ids.append(b["toolUse"]["toolUseId"])
        system = "".join(s.get("text", "") for s in body.get("system", [])) or None
        model = unquote(req.path.split("/model/", 1)[-1].rsplit("/", 1)[0])
        tools = (body.get("toolConfig") or {}).get("tools", [])
        return RequestSummary(
            model=model,
            stream=self.is_stream(req),
            system=system,
            user_texts=user_texts,
            tool_names=[t["toolSpec"]["name"] for t in tools],
            tool_call_ids=call_ids,
            tool_result_ids=result_ids,
            images=images,
            output_schema=None,
        )
