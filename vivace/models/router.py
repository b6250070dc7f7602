"""Resolve a model spec to a :class:`~vivace.models.Model`.

* ``"provider/model"`` (``"openai/gpt-4o-mini"``, ``"groq/llama-3.3-70b-versatile"``); the
  model part may contain more slashes (``"openrouter/anthropic/claude-sonnet-4.5"``,
  ``"huggingface/meta-llama/Llama-3.3-70B-Instruct"``);
* a :class:`Model` instance (returned as is);
* a list of those: a :class:`FallbackModel` that tries each in turn.

Strings resolve once per process: the Model is cached per spec, so the per-run cost is one
dict lookup. Resolution reads the registry (:mod:`vivace.models.registry`), checks the API
key **at resolution time** (a missing key raises :class:`~vivace.errors.ModelConfigError`
naming the variable before any request is sent) and loads the protocol adapter module on
first use (``import vivace.models`` never imports httpx). Keys are read when a spec is first
resolved; call :func:`clear_model_cache` after changing them in ``os.environ``.

For explicit settings use :func:`get_model` (not cached)::

    model = get_model("openai/gpt-4o", base_url="http://127.0.0.1:8000/v1", api_key="...")

Adapters per protocol are listed in :data:`ADAPTERS` (``"module:Class"``); a new protocol is
one line there plus the adapter module. Provider ids handled by a factory function instead of
the registry (the offline ``"test"`` provider) go through :func:`register_model_factory`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import trace_hook
from ..errors import AllModelsFailed, ModelConfigError, ModelError, ModelNotFoundError, VivaceError
from . import registry
from .base import Model, ModelRequest, ModelResponse, StreamEvent

__all__ = [
    "ADAPTERS",
    "FallbackModel",
    "ModelSpec",
    "ProviderRow",
    "clear_model_cache",
    "get_model",
    "list_providers",
    "register_model_factory",
    "resolve_model",
    "split_spec",
]

log = logging.getLogger("vivace.models")
# A library never configures output: without this, a warning (a fallback) would reach
# stderr through logging's last-resort handler. Applications add their own handlers.
logging.getLogger("vivace").addHandler(logging.NullHandler())

ModelSpec = str | Model | Sequence[str | Model]

ADAPTERS: dict[str, str] = {
    "openai-chat": "vivace.models.protocols.openai_chat:OpenAIChatModel",
    "openai-responses": "vivace.models.protocols.openai_responses:OpenAIResponsesModel",
    "anthropic": "vivace.models.protocols.anthropic:AnthropicModel",
    "gemini": "vivace.models.protocols.gemini:GeminiModel",
    "bedrock": "vivace.models.protocols.bedrock:BedrockModel",
    "ollama": "vivace.models.protocols.ollama:OllamaModel",
    "llamacpp": "vivace.models.local.llamacpp:LlamaCppModel",
}
"""Protocol id -> ``"module:Class"`` of its adapter (a :class:`~.protocols.base.HTTPModel`
subclass, or any class with the same ``from_provider`` classmethod)."""

ModelFactory = Callable[[str], Model]
_FACTORIES: dict[str, ModelFactory | str] = {
    # The offline test provider: ``"test/<anything>"``. The hook is a function in
    # vivace.testing taking the part after "test/" and returning a deterministic Model.
    "test": "vivace.testing:test_model",
}
_CACHE: dict[Any, Model] = {}
_CACHED_FOR = 0  # the registry version the cached models were built with


def register_model_factory(provider_id: str, factory: ModelFactory | str) -> None:
    """Make ``"<provider_id>/<name>"`` resolve to ``factory(name)`` (no HTTP, no registry).

    ``factory`` may be a ``"module:function"`` string, imported on first use.
    """
    _FACTORIES[provider_id] = factory
    clear_model_cache()


def clear_model_cache() -> None:
    """Forget resolved models and embedders (after changing keys, base URLs or the
    registry)."""
    _CACHE.clear()
    embeddings = sys.modules.get("vivace.models.embeddings")  # loaded only if it was used
    if embeddings is not None:
        embeddings._CACHE.clear()


def split_spec(spec: str) -> tuple[str, str]:
    """``"provider/model"`` -> ``(provider, model)``; the model part may contain ``/``."""
    provider, sep, name = spec.partition("/")
    provider = provider.strip()
    name = name.strip()
    if not sep or not provider or not name:
        raise ModelNotFoundError(
            f"model {spec!r} is not of the form 'provider/model'{_guess(spec)}",
            spec=spec,
        )
    return provider, name


def _guess(name: str) -> str:
    n = name.lower()
    for prefix, provider in (
        ("gpt", "openai"),
        ("o1", "openai"),
        ("o3", "openai"),
        ("o4", "openai"),
        ("text-embedding", "openai"),
        ("claude", "anthropic"),
        ("gemini", "google"),
        ("mistral", "mistral"),
        ("llama", "ollama"),
        ("deepseek", "deepseek"),
        ("grok", "xai"),
        ("command", "cohere"),
    ):
        if n.startswith(prefix):
            return f"; did you mean '{provider}/{name}'?"
    return " (e.g. 'openai/gpt-4o-mini')"


def _load(path: str) -> Any:
    import importlib

    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def resolve_model(spec: ModelSpec | None) -> Model:
    """Return the :class:`Model` for ``spec`` (cached per spec string / list of strings)."""
    global _CACHED_FOR
    if registry._version != _CACHED_FOR:  # a provider was registered or replaced
        _CACHE.clear()
        _CACHED_FOR = registry._version
    if type(spec) is str:
        model = _CACHE.get(spec)
        if model is None:
            model = _CACHE[spec] = build_model(spec)
        return model
    if isinstance(spec, Model):
        return spec
    if spec is None:
        raise ModelNotFoundError("no model given: pass model= to the Agent or to the run")
    if isinstance(spec, Sequence) and not isinstance(spec, str | bytes):
        items = list(spec)
        if not items:
            raise ModelNotFoundError("the model fallback list is empty")
        if len(items) == 1:
            return resolve_model(items[0])
        key = tuple(items) if all(type(s) is str for s in items) else None
        if key is not None:
            cached = _CACHE.get(key)
            if cached is not None:
                return cached
        model = FallbackModel([resolve_model(s) for s in items])
        if key is not None:
            _CACHE[key] = model
        return model
    raise ModelNotFoundError(
        f"a model must be a 'provider/model' string, a Model or a list of them, "
        f"not {type(spec).__name__}"
    )


def build_model(spec: str, **overrides: Any) -> Model:
    """Build (uncached) the model for ``"provider/model"``; see :func:`get_model`."""
    provider, name = split_spec(spec)
    factory = _FACTORIES.get(provider)
    if factory is not None:
        if overrides:
            raise ModelConfigError(f"provider {provider!r} takes no settings", provider=provider)
        if isinstance(factory, str):
            try:
                factory = _load(factory)
            except (ImportError, AttributeError) as exc:
                raise ModelConfigError(
                    f"provider {provider!r} is not available ({factory} cannot be loaded)",
                    provider=provider,
                ) from exc
            assert callable(factory)
        return factory(name)
    get_provider = registry.get_provider

    info = get_provider(provider)
    if not info.chat:
        raise ModelConfigError(
            f"provider {provider!r} serves embeddings only, not chat models: use "
            f"vivace.models.embed('{provider}/{name}', texts) for embeddings, and another "
            "provider for the agent's model",
            provider=provider,
            model=name,
            capability="chat",
        )
    adapter_path = ADAPTERS.get(info.protocol)
    if adapter_path is None:
        raise ModelConfigError(
            f"provider {provider!r} uses protocol {info.protocol!r}, which has no adapter",
            provider=provider,
        )
    try:
        cls = _load(adapter_path)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("vivace."):
            raise ModelConfigError(
                f"the {info.protocol!r} protocol adapter is not available yet "
                f"(needed by provider {provider!r})",
                provider=provider,
            ) from exc
        raise ModelConfigError(
            f"provider {provider!r} needs the optional package {exc.name!r}: "
            f"pip install 'vivace[{info.protocol}]'",
            provider=provider,
        ) from exc
    model: Model = cls.from_provider(info, name, **overrides)
    return model


def get_model(
    spec: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> Model:
    """A model for ``"provider/model"`` with explicit connection settings (not cached).

    ``base_url``/``api_key``/``headers`` override the registry; ``timeout`` is the read
    timeout and ``max_retries`` the retry count of every request; other keyword arguments
    are adapter options (e.g. ``native_output=True``, ``stream_usage=False``).
    """
    overrides: dict[str, Any] = {}
    for k, v in (
        ("base_url", base_url),
        ("api_key", api_key),
        ("headers", headers),
        ("timeout", timeout),
        ("connect_timeout", connect_timeout),
        ("max_retries", max_retries),
    ):
        if v is not None:
            overrides[k] = v
    if options:
        overrides["options"] = options
    return build_model(spec, **overrides)


# -- fallbacks ------------------------------------------------------------------------------

_FALLBACK_ERRORS = (ModelError, ModelConfigError)


class FallbackModel(Model):
    """Tries each model in turn; moves on when one fails (after its own retries).

    Any :class:`~vivace.errors.ModelError` (HTTP errors, timeouts, broken streams) or
    :class:`~vivace.errors.ModelConfigError` (e.g. a part the protocol cannot carry) moves
    to the next model; when all fail, :class:`~vivace.errors.AllModelsFailed` carries every
    error. A stream falls back only if the failing model had not yielded anything yet;
    after that the error is raised (the caller already showed part of the answer).
    """

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ModelNotFoundError("FallbackModel needs at least one model")
        self.models = list(models)
        self.provider = "fallback"
        self.model_name = ",".join(m.id for m in self.models)
        self.supports_tools = all(m.supports_tools for m in self.models)

    @property
    def supports_native_output(self) -> bool:  # type: ignore[override]
        """Native structured output only when every model has it."""
        return all(m.supports_native_output for m in self.models)

    @property
    def id(self) -> str:
        return self.models[0].id

    def __repr__(self) -> str:
        return f"<FallbackModel {' -> '.join(m.id for m in self.models)}>"

    def _fail(self, errors: list[VivaceError]) -> AllModelsFailed:
        detail = "; ".join(
            f"{m.id}: {e.message}" for m, e in zip(self.models, errors, strict=False)
        )
        return AllModelsFailed(f"all {len(self.models)} models failed ({detail})", errors)

    def _log_failure(self, i: int, exc: VivaceError) -> None:
        m, n = self.models[i], len(self.models)
        if i + 1 < n:
            hook = trace_hook.HOOK
            if hook is not None:  # tracing: the next model's attempt gets its own span
                hook.model_fallback(m, self.models[i + 1], exc)
            log.warning(
                "model %s failed (%d of %d), trying %s next: %s",
                m.id,
                i + 1,
                n,
                self.models[i + 1].id,
                exc.message,
            )
        else:
            log.warning(
                "model %s failed, and it was the last of %d models: %s", m.id, n, exc.message
            )

    async def request(self, request: ModelRequest) -> ModelResponse:
        errors: list[VivaceError] = []
        for i, m in enumerate(self.models):
            try:
                return await m.request(request)
            except _FALLBACK_ERRORS as exc:
                self._log_failure(i, exc)
                errors.append(exc)
        raise self._fail(errors)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        errors: list[VivaceError] = []
        for i, m in enumerate(self.models):
            started = False
            try:
                async for event in m.stream(request):
                    started = True
                    yield event
                return
            except _FALLBACK_ERRORS as exc:
                if started:
                    raise
                self._log_failure(i, exc)
                errors.append(exc)
        raise self._fail(errors)


# -- listing --------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ProviderRow:
    """One row of ``vivace models``."""

    id: str
    protocol: str
    key_env: str | None
    key_set: bool
    key_required: bool
    base_url: str
    models: int = 0
    catalog: str | None = None
    chat: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "protocol": self.protocol,
            "key_env": self.key_env,
            "key_set": self.key_set,
            "key_required": self.key_required,
            "base_url": self.base_url,
            "models": self.models,
            "catalog": self.catalog,
            "chat": self.chat,
        }


def list_providers() -> list[ProviderRow]:
    """Every provider (the registry's and the model catalog's): id, protocol, key variable,
    whether the key is set, how many models the catalog lists for it.

    ``key_env`` is the variable that is set, else the first one to set (``None`` when the
    provider takes no key). ``base_url`` is the raw template (nothing is expanded).
    ``catalog`` is the catalog provider its models come from (``None``: none).
    """
    from .catalog import load_catalog

    get_provider, provider_ids = registry.get_provider, registry.provider_ids

    cat = load_catalog()
    rows = []
    for pid in sorted(provider_ids()):
        info = get_provider(pid)
        _, set_name = info.env_key()
        cid = next((c for c in info.catalog_ids if c in cat.providers), None)
        rows.append(
            ProviderRow(
                id=pid,
                protocol=info.protocol,
                key_env=set_name or (info.key_env[0] if info.key_env else None),
                key_set=set_name is not None,
                key_required=info.key_required,
                base_url=info.base_url,
                models=len(cat.providers[cid]["models"]) if cid else 0,
                catalog=cid,
                chat=info.chat,
            )
        )
    return rows
