"""Shared base and helpers for HTTP protocol adapters.

Writing an adapter for a new protocol (Anthropic, Gemini, Bedrock, Ollama...):

1. Subclass :class:`HTTPModel`; set ``protocol = "<id>"``; implement ``async request()``
   and ``async stream()`` using ``self.endpoint`` (:class:`vivace.models.http.Endpoint`:
   ``post_json``, ``stream_sse``, ``stream_lines``, ``stream_bytes``). The endpoint already
   gives typed errors, retries, pooling, timeouts and key redaction.
2. Keep no per-run state on the instance: everything for one request lives in locals (a
   model is shared by concurrent runs). Use ``self.option("name", default)`` for registry
   quirks.
3. Map parts with the helpers here: :func:`media_data_url`, :func:`media_format`,
   :func:`unsupported_part`; finish reasons with :func:`map_finish_reason`; tool schemas
   with :func:`strict_json_schema` where the provider has a strict mode.
4. Streams must end with exactly one :class:`~vivace.models.base.ModelResponse`, or raise
   :class:`~vivace.errors.StreamInterrupted` when the provider did not say it was done.
5. Register the protocol in :data:`vivace.models.router.ADAPTERS` and add a fake server in
   :mod:`vivace.testing.fake_providers` plus one entry in ``tests/models/cases.py``.

Override :meth:`HTTPModel.from_provider` when auth is not a static header (SigV4, Google ADC:
pass ``sign=`` to the :class:`~vivace.models.http.Endpoint`).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from ...errors import ModelConfigError
from ...messages import MediaPart
from ..base import FinishReason, Model
from ..http import Endpoint, RetryPolicy, Timeouts
from ..registry import ProviderInfo

__all__ = [
    "HTTPModel",
    "map_finish_reason",
    "media_data_url",
    "media_format",
    "new_call_id",
    "schema_name",
    "strict_json_schema",
    "unsupported_part",
]


class HTTPModel(Model):
    """A model reached over HTTP through an :class:`Endpoint`. Cheap, stateless, shareable."""

    protocol: ClassVar[str] = "unknown"

    __slots__ = ("endpoint", "model_name", "options", "provider", "supports_native_output")

    def __init__(
        self,
        model_name: str,
        endpoint: Endpoint,
        *,
        provider: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.model_name = model_name
        self.endpoint = endpoint
        self.provider = provider or endpoint.provider
        self.options = dict(options or {})
        self.supports_native_output = bool(self.options.get("native_output", False))

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.provider}/{self.model_name} at {self.endpoint.base_url}>"
        )

    @classmethod
    def from_provider(
        cls,
        info: ProviderInfo,
        model_name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> HTTPModel:
        """Build the model for a registry entry (key checked now, see the router docs)."""
        key = info.resolve_key(api_key)
        hdrs = {**info.auth_headers(key), **info.resolve_headers(headers)}
        t = Timeouts()
        if timeout is not None or connect_timeout is not None:
            t = Timeouts(
                connect=connect_timeout if connect_timeout is not None else t.connect,
                read=timeout if timeout is not None else t.read,
                write=t.write,
                pool=t.pool,
            )
        retry = RetryPolicy(max_retries=max_retries) if max_retries is not None else RetryPolicy()
        endpoint = Endpoint(
            info.id,
            info.resolve_base_url(base_url),
            headers=hdrs,
            secrets=(key,) if key else (),
            timeouts=t,
            retry=retry,
        )
        return cls(
            model_name, endpoint, provider=info.id, options={**info.options, **(options or {})}
        )


# -- helpers ----------------------------------------------------------------------------------

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "completed": "stop",
    "STOP": "stop",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "model_length": "length",
    "MAX_TOKENS": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "BLOCKLIST": "content_filter",
    "SPII": "content_filter",
    "error": "error",
}


def map_finish_reason(raw: str | None, has_tool_calls: bool = False) -> FinishReason:
    """Map a provider's finish/stop reason to :data:`FinishReason` (``unknown`` if new)."""
    if raw is None:
        return "tool_calls" if has_tool_calls else "stop"
    mapped = _FINISH.get(raw)
    if mapped is None:
        mapped = _FINISH.get(raw.lower(), "unknown")
    if mapped == "stop" and has_tool_calls:
        return "tool_calls"
    return mapped


def new_call_id() -> str:
    """A tool call id for providers that send none."""
    return f"call_{uuid.uuid4().hex[:24]}"


def media_data_url(part: MediaPart, *, allow_remote: bool = True) -> str:
    """``data:<type>;base64,...`` for inline data or a path; remote URLs pass through."""
    if part.url is not None and not part.url.startswith("data:"):
        if allow_remote:
            return part.url
        raise ModelConfigError(
            f"{type(part).__name__} from a remote URL cannot be sent here: {part.url}"
        )
    if part.url is not None:
        return part.url
    media_type = part.media_type or "application/octet-stream"
    return f"data:{media_type};base64,{part.base64()}"


_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "audio/webm": "webm",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
}


def media_format(part: MediaPart) -> str:
    """A short audio format name (``wav``, ``mp3``...) from the part's media type."""
    mt = (part.media_type or "").lower()
    return _AUDIO_FORMATS.get(mt) or (mt.split("/", 1)[1] if "/" in mt else "wav")


def unsupported_part(protocol: str, part: Any, hint: str = "") -> ModelConfigError:
    """The error for a part a protocol cannot carry."""
    return ModelConfigError(
        f"the {protocol} protocol cannot carry a {type(part).__name__}"
        + (f" ({hint})" if hint else ""),
        protocol=protocol,
        part=getattr(part, "kind", type(part).__name__),
    )


_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def schema_name(name: str) -> str:
    """A schema/tool name providers accept: ``[a-zA-Z0-9_-]{1,64}``."""
    return (_NAME_BAD.sub("_", name) or "output")[:64]


_UNSUPPORTED_STRICT = (
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
)


def strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """A copy of ``schema`` meeting OpenAI strict mode, or ``None`` if it cannot.

    Strict mode wants every object to list all its properties as ``required`` and to set
    ``additionalProperties: false``; ``default`` values are dropped (the model always sends
    a value). Schemas with open objects (``additionalProperties`` true or a schema) or
    keywords strict mode rejects return ``None``: send those non-strict.
    """
    out = copy.deepcopy(dict(schema))
    try:
        _strictify(out)
    except _NotStrict:
        return None
    return out


class _NotStrict(Exception):
    pass


def _strictify(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _strictify(item)
        return
    if not isinstance(node, dict):
        return
    for kw in _UNSUPPORTED_STRICT:
        if kw in node:
            raise _NotStrict(kw)
    node.pop("default", None)
    t = node.get("type")
    is_object = t == "object" or (isinstance(t, list) and "object" in t) or "properties" in node
    if is_object:
        ap = node.get("additionalProperties", False)
        if ap not in (False, None):
            raise _NotStrict("additionalProperties")
        props = node.get("properties") or {}
        node["properties"] = props
        node["additionalProperties"] = False
        node["required"] = list(props)
        for sub in props.values():
            _strictify(sub)
    for key in ("items", "anyOf", "oneOf", "prefixItems"):
        if key in node:
            _strictify(node[key])
    if "oneOf" in node:  # strict mode knows anyOf, not oneOf
        node["anyOf"] = node.pop("oneOf")
    for key in ("$defs", "definitions"):
        if key in node and isinstance(node[key], dict):
            for sub in node[key].values():
                _strictify(sub)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``schema`` with local ``$ref``s to ``$defs`` inlined.

    For providers that reject ``$ref``. Recursive models cannot be inlined and raise
    :class:`~vivace.errors.ModelConfigError`.
    """
    defs = schema.get("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                key = ref[len("#/$defs/") :]
                if key in seen:
                    raise ModelConfigError(f"recursive schema {key!r} cannot be inlined")
                merged = {**defs[key], **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged, (*seen, key))
            return {k: resolve(v, seen) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    return resolve(schema, ())
