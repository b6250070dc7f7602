"""Shared base and helpers for HTTP protocol adapters.

Writing an adapter for a new protocol (Anthropic, Gemini, Bedrock, Ollama...):

1. Subclass :class:`HTTPModel`; set ``protocol = "<id>"``; implement ``async _request()``
   and ``async _stream()`` using ``self.endpoint`` (:class:`vivace.models.http.Endpoint`:
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

What :class:`HTTPModel` does around every adapter, in one place (:meth:`HTTPModel.request`
and :meth:`HTTPModel.stream` wrap ``_request``/``_stream``): before the request, it checks
the request against the model catalog (:mod:`vivace.models.catalog`): images, audio, video
or PDFs sent to a model that does not take them, and native structured output asked of a
model without it, raise :class:`~vivace.errors.ModelConfigError` before anything is sent;
after the answer, it sets ``usage.cost`` from the catalog price of this model (looked up once
per model object) and logs a warning when the answer has more tokens than ``max_tokens``
allowed (the server ignored the limit).
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ...errors import ModelConfigError
from ...messages import AudioPart, FilePart, ImagePart, MediaPart, VideoPart
from ..base import FinishReason, Model, ModelRequest, ModelResponse, StreamEvent, ToolDefinition
from ..http import Endpoint, RetryPolicy, Timeouts
from ..registry import ProviderInfo

if TYPE_CHECKING:
    from ..catalog import ModelInfo

log = logging.getLogger("vivace.models")
_UNSET: Any = object()
_MEDIA_KINDS: dict[type, str] = {
    ImagePart: "image",
    AudioPart: "audio",
    VideoPart: "video",
    FilePart: "pdf",
}

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
    """A model reached over HTTP through an :class:`Endpoint`. Cheap, stateless, shareable.

    ``catalog_ids``: the model catalog providers to look the model up under (default: the
    provider id). ``native_output``: force (or forbid) native structured output, whatever
    the catalog and the registry say.
    """

    protocol: ClassVar[str] = "unknown"
    native_output_default: ClassVar[bool] = False
    """Whether unknown models of this protocol take a JSON schema (registry option
    ``native_output`` and the catalog come first)."""
    native_output_capable: ClassVar[bool] = True
    """Whether the adapter can send a JSON schema at all."""

    __slots__ = (
        "_catalog_ids",
        "_default_max",
        "_info",
        "_native",
        "_native_explicit",
        "_reject",
        "_tool_entries",
        "endpoint",
        "model_name",
        "options",
        "provider",
    )

    def __init__(
        self,
        model_name: str,
        endpoint: Endpoint,
        *,
        provider: str | None = None,
        options: Mapping[str, Any] | None = None,
        catalog_ids: tuple[str, ...] | None = None,
        native_output: bool | None = None,
    ) -> None:
        self.model_name = model_name
        self.endpoint = endpoint
        self.provider = provider or endpoint.provider
        self.options = dict(options or {})
        self._catalog_ids = catalog_ids if catalog_ids is not None else (self.provider,)
        self._native_explicit = native_output
        self._native: bool | None = None
        self._info: Any = _UNSET
        self._reject: Any = _UNSET
        self._default_max: int | None = None
        self._tool_entries: dict[int, tuple[ToolDefinition, Any]] = {}

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def build_tool(self, tool: ToolDefinition) -> Any:
        """The wire form of one tool (adapters that send tools implement it)."""
        raise NotImplementedError

    def tool_entries(self, tools: Sequence[ToolDefinition]) -> list[Any]:
        """:meth:`build_tool` of each tool, built once per tool definition (a tool hands out
        the same definition object for every run; the entries are shared by the request
        bodies, so nothing may change them)."""
        cache = self._tool_entries
        out = []
        for tool in tools:
            hit = cache.get(id(tool))
            if hit is None or hit[0] is not tool:
                if len(cache) >= 256:  # per-run definitions (dynamic toolsets): bounded
                    cache.clear()
                hit = cache[id(tool)] = (tool, self.build_tool(tool))
            out.append(hit[1])
        return out

    # -- what the catalog knows (looked up once per model object) ----------------------------

    @property
    def info(self) -> ModelInfo | None:
        """What the model catalog knows about this model (``None`` for an unknown model:
        the provider's defaults apply)."""
        info = self._info
        if info is _UNSET:
            info = self._info = self._lookup_info()
        return info

    def _lookup_info(self) -> ModelInfo | None:
        from ..catalog import load_catalog

        try:
            cat = load_catalog()
        except (OSError, ValueError, EOFError) as exc:  # a broken install: run without it
            log.warning("the model catalog cannot be read (%s); limits and prices unknown", exc)
            return None
        for cid in self._catalog_ids:
            found = cat.model(cid, self.model_name)
            if found is not None:
                return found
        return None

    @property
    def supports_native_output(self) -> bool:
        """Whether the agent may ask for a JSON-schema answer: ``native_output=`` given to
        :func:`~vivace.models.router.get_model` decides; else the catalog's
        ``structured_output`` for this model (unless the registry turned it off); else the
        registry option ``native_output``; else the protocol's default."""
        v = self._native
        if v is None:
            v = self._native = self._decide_native()
        return v

    @supports_native_output.setter
    def supports_native_output(self, value: bool) -> None:
        self._native = bool(value)

    def _decide_native(self) -> bool:
        if not self.native_output_capable:
            return False
        if self._native_explicit is not None:
            return bool(self._native_explicit)
        declared = self.options.get("native_output")
        info = self.info
        if info is not None and info.structured_output is not None:
            return info.structured_output and declared is not False
        if declared is not None:
            return bool(declared)
        return self.default_native_output()

    def default_native_output(self) -> bool:
        """Native structured output for a model the catalog says nothing about."""
        return self.native_output_default

    def default_max_tokens(self, cap: int = 8192) -> int:
        """A ``max_tokens`` for protocols that require one: the registry option
        ``default_max_tokens``, else ``cap`` lowered to the model's output limit."""
        n = self._default_max
        if n is None:
            n = self.options.get("default_max_tokens")
            if n is None:
                info = self.info
                n = min(cap, info.max_output) if info is not None and info.max_output else cap
            n = self._default_max = int(n)
        return n

    # -- around every request ----------------------------------------------------------------

    async def request(self, request: ModelRequest) -> ModelResponse:
        self.check_request(request)
        return self._finish(await self._request(request), request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        self.check_request(request)
        # aclosing: a consumer that stops early closes the adapter's stream (and its HTTP
        # response) now, not whenever the generator is collected
        stream = cast("AsyncGenerator[StreamEvent, None]", self._stream(request))
        async with aclosing(stream) as events:
            async for event in events:
                if type(event) is ModelResponse:
                    self._finish(event, request)
                yield event

    async def _request(self, request: ModelRequest) -> ModelResponse:
        """Send ``request`` and return the whole answer (the adapter's part)."""
        final: ModelResponse | None = None
        async for event in self._stream(request):
            if type(event) is ModelResponse:
                final = event
        if final is None:
            raise NotImplementedError(
                f"{type(self).__name__} implements neither _request nor _stream"
            )
        return final

    async def _stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream the answer to ``request``, the whole response last (the adapter's part)."""
        yield await self._request(request)

    def check_request(self, request: ModelRequest) -> None:
        """Raise :class:`ModelConfigError` for what this model cannot take (see module docs)."""
        out = request.output
        if out is not None and out.mode == "native" and not self.supports_native_output:
            raise ModelConfigError(
                f"{self.id} has no native structured output (JSON schema answers): let the "
                "agent use its final-result tool (output_mode='tool', the default for such "
                "models), or pass native_output=True to get_model() if the provider has it",
                provider=self.provider,
                model=self.model_name,
                capability="structured_output",
            )
        reject = self._reject
        if reject is _UNSET:
            reject = self._reject = self._rejected_kinds()
        if reject:
            for message in request.messages:
                for part in message.parts:
                    kind = _MEDIA_KINDS.get(type(part))
                    if kind is not None and kind in reject:
                        if kind == "pdf" and getattr(part, "media_type", None) != "application/pdf":
                            continue
                        assert self.info is not None
                        raise ModelConfigError(
                            f"{self.id} does not take {kind} input (it takes "
                            f"{', '.join(self.info.input)}, says the model catalog); send it "
                            "to a model that does, or pass check_input=False to get_model() "
                            "if the catalog is wrong",
                            provider=self.provider,
                            model=self.model_name,
                            capability=kind,
                        )

    def _rejected_kinds(self) -> frozenset[str]:
        info = self.info
        if info is None or self.options.get("check_input") is False:
            return frozenset()
        return frozenset(k for k in ("image", "audio", "video", "pdf") if k not in info.input)

    def _finish(self, response: ModelResponse, request: ModelRequest) -> ModelResponse:
        usage = response.usage
        info = self.info
        if info is not None:
            usage.cost = info.cost(usage)
        settings = request.settings
        if settings:
            limit = settings.get("max_tokens")
            if limit and usage.output_tokens > limit:
                log.warning(
                    "%s answered with %d output tokens although max_tokens=%s: the server did "
                    "not apply the limit",
                    self.id,
                    usage.output_tokens,
                    limit,
                )
        return response

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
            model_name,
            endpoint,
            provider=info.id,
            options={**info.options, **(options or {})},
            catalog_ids=info.catalog_ids,
            native_output=(options or {}).get("native_output"),
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


_STRICT: dict[int, tuple[Mapping[str, Any], dict[str, Any] | None]] = {}


def strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """``schema`` made to meet OpenAI strict mode (a new dict), or ``None`` if it cannot.

    Strict mode wants every object to list all its properties as ``required`` and to set
    ``additionalProperties: false``; ``default`` values are dropped (the model always sends
    a value). Schemas with open objects (``additionalProperties`` true or a schema) or
    keywords strict mode rejects return ``None``: send those non-strict.

    Schemas are built once and reused (tools, output types), so the result is cached per
    schema object and shared: treat it as read-only, like the schema itself.
    """
    hit = _STRICT.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    out: dict[str, Any] | None = copy.deepcopy(dict(schema))
    try:
        _strictify(out)
    except _NotStrict:
        out = None
    if len(_STRICT) >= 1024:
        _STRICT.clear()
    _STRICT[id(schema)] = (schema, out)
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
