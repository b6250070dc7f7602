"""Embeddings through the same registry: ``embed(["a", "b"], model="openai/text-embedding-3-small")``.

* :func:`aembed` (async) and :func:`embed` (sync; not callable from a running loop) return
  one ``list[float]`` per text, in input order, batching ``batch_size`` texts per request.
* :func:`resolve_embedder` turns ``"provider/model"`` into an :class:`Embedder` (cached per
  spec), using :data:`EMBEDDERS` keyed by the provider's protocol.
* :class:`Embedder` is the interface: implement ``async embed_batch(texts) -> vectors``
  (one request; order preserved) and ``from_provider`` (same arguments as
  :meth:`~vivace.models.protocols.base.HTTPModel.from_provider`). :meth:`Embedder.embed`
  does the batching (and runs batches concurrently up to ``concurrency``).
* :class:`OpenAIEmbedder` speaks ``POST {base}/embeddings`` (OpenAI and every compatible
  server: Azure, Mistral, Together, Fireworks, vLLM, llama.cpp server, Ollama's ``/v1``...).

* :class:`GeminiEmbedder` speaks Gemini's ``:batchEmbedContents``, :class:`OllamaEmbedder`
  Ollama's native ``/api/embed``.

To add another protocol: subclass :class:`Embedder`, then add
``EMBEDDERS["<protocol>"] = "module:Class"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ModelConfigError, ModelResponseError

if TYPE_CHECKING:
    from .http import Endpoint
    from .registry import ProviderInfo

__all__ = [
    "EMBEDDERS",
    "Embedder",
    "GeminiEmbedder",
    "OllamaEmbedder",
    "OpenAIEmbedder",
    "aembed",
    "embed",
    "resolve_embedder",
]

DEFAULT_EMBEDDING_MODEL = "openai/text-embedding-3-small"

EMBEDDERS: dict[str, str] = {
    "openai-chat": "vivace.models.embeddings:OpenAIEmbedder",
    "openai-responses": "vivace.models.embeddings:OpenAIEmbedder",
    "gemini": "vivace.models.embeddings:GeminiEmbedder",
    "ollama": "vivace.models.embeddings:OllamaEmbedder",
}
"""Protocol id -> ``"module:Class"`` of its :class:`Embedder`."""

_CACHE: dict[str, Embedder] = {}
_CACHED_FOR = 0  # the registry version the cached embedders were built with


class Embedder:
    """Turns texts into vectors. Subclasses implement :meth:`embed_batch`."""

    protocol: ClassVar[str] = "unknown"
    provider: str = "unknown"
    model_name: str = "unknown"
    batch_size: int = 128
    concurrency: int = 4
    dimensions: int | None = None

    async def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed one batch with one request; vectors in input order."""
        raise NotImplementedError

    async def embed(
        self, texts: Sequence[str], *, batch_size: int | None = None
    ) -> list[list[float]]:
        """Embed any number of texts, ``batch_size`` per request, order preserved."""
        texts = list(texts)
        if not texts:
            return []
        size = max(1, batch_size or self.batch_size)
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        if len(batches) == 1:
            return await self.embed_batch(batches[0])
        sem = asyncio.Semaphore(max(1, self.concurrency))

        async def one(batch: list[str]) -> list[list[float]]:
            async with sem:
                return await self.embed_batch(batch)

        out: list[list[float]] = []
        for vectors in await asyncio.gather(*(one(b) for b in batches)):
            out += vectors
        return out

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model_name}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


class OpenAIEmbedder(Embedder):
    """``POST {base}/embeddings`` (OpenAI-compatible)."""

    protocol: ClassVar[str] = "openai-embeddings"

    def __init__(
        self,
        model_name: str,
        endpoint: Endpoint,
        *,
        provider: str | None = None,
        batch_size: int = 128,
        dimensions: int | None = None,
        concurrency: int = 4,
    ) -> None:
        self.model_name = model_name
        self.endpoint = endpoint
        self.provider = provider or endpoint.provider
        self.batch_size = batch_size
        self.dimensions = dimensions
        self.concurrency = concurrency

    @classmethod
    def from_provider(
        cls,
        info: ProviderInfo,
        model_name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 128,
        dimensions: int | None = None,
        max_retries: int | None = None,
    ) -> OpenAIEmbedder:
        from .http import Endpoint, RetryPolicy

        key = info.resolve_key(api_key)
        endpoint = Endpoint(
            info.id,
            info.resolve_base_url(base_url),
            headers={**info.auth_headers(key), **info.resolve_headers(headers)},
            secrets=(key,) if key else (),
            retry=RetryPolicy(max_retries=max_retries) if max_retries is not None else None,
        )
        return cls(
            model_name, endpoint, provider=info.id, batch_size=batch_size, dimensions=dimensions
        )

    async def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "input": list(texts),
            "encoding_format": "float",
        }
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        data = await self.endpoint.post_json("embeddings", body, model=self.model_name)
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list) or len(rows) != len(texts):
            raise ModelResponseError(
                f"{self.id}: expected {len(texts)} embeddings, got "
                f"{len(rows) if isinstance(rows, list) else 'none'}",
                provider=self.provider,
                model=self.model_name,
            )
        rows = sorted(rows, key=lambda r: r.get("index", 0))
        return [[float(x) for x in r["embedding"]] for r in rows]


def _check_count(e: Embedder, rows: Any, n: int) -> list[Any]:
    if not isinstance(rows, list) or len(rows) != n:
        raise ModelResponseError(
            f"{e.id}: expected {n} embeddings, got {len(rows) if isinstance(rows, list) else 'none'}",
            provider=e.provider,
            model=e.model_name,
        )
    return rows


class GeminiEmbedder(OpenAIEmbedder):
    """Gemini API ``POST {base}/v1beta/models/{model}:batchEmbedContents`` (100 texts a batch).

    ``dimensions`` -> ``outputDimensionality``. Vertex AI's ``:predict`` embeddings are not
    covered (use ``google/...`` with a Gemini API key).
    """

    protocol: ClassVar[str] = "gemini-embeddings"
    batch_size = 100

    @classmethod
    def from_provider(cls, info: ProviderInfo, model_name: str, **kw: Any) -> OpenAIEmbedder:
        if info.auth == "google-adc":
            raise ModelConfigError(
                f"provider {info.id!r}: Vertex AI embeddings are not supported; use "
                "'google/<model>' with GOOGLE_API_KEY",
                provider=info.id,
            )
        kw.setdefault("batch_size", 100)
        return super().from_provider(info, model_name, **kw)

    async def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        name = (
            self.model_name
            if self.model_name.startswith("models/")
            else f"models/{self.model_name}"
        )
        requests: list[dict[str, Any]] = []
        for t in texts:
            r: dict[str, Any] = {"model": name, "content": {"parts": [{"text": t}]}}
            if self.dimensions is not None:
                r["outputDimensionality"] = self.dimensions
            requests.append(r)
        data = await self.endpoint.post_json(
            f"v1beta/{name}:batchEmbedContents", {"requests": requests}, model=self.model_name
        )
        rows = _check_count(
            self, data.get("embeddings") if isinstance(data, dict) else None, len(texts)
        )
        return [[float(x) for x in r["values"]] for r in rows]


class OllamaEmbedder(OpenAIEmbedder):
    """Ollama's native ``POST {base}/api/embed`` (``input`` list -> ``embeddings``)."""

    protocol: ClassVar[str] = "ollama-embeddings"

    async def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.model_name, "input": list(texts)}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        data = await self.endpoint.post_json("api/embed", body, model=self.model_name)
        rows = _check_count(
            self, data.get("embeddings") if isinstance(data, dict) else None, len(texts)
        )
        return [[float(x) for x in r] for r in rows]


def resolve_embedder(spec: str | Embedder = DEFAULT_EMBEDDING_MODEL, **overrides: Any) -> Embedder:
    """The :class:`Embedder` for ``"provider/model"`` (cached when no overrides are given)."""
    if isinstance(spec, Embedder):
        return spec
    from . import registry

    global _CACHED_FOR
    if registry._version != _CACHED_FOR:  # a provider was registered or replaced
        _CACHE.clear()
        _CACHED_FOR = registry._version
    if not overrides:
        cached = _CACHE.get(spec)
        if cached is not None:
            return cached
    from .registry import get_provider
    from .router import _load, split_spec

    provider, name = split_spec(spec)
    info = get_provider(provider)
    path = EMBEDDERS.get(info.protocol)
    if path is None:
        raise ModelConfigError(
            f"provider {provider!r} ({info.protocol}) has no embeddings adapter", provider=provider
        )
    embedder: Embedder = _load(path).from_provider(info, name, **overrides)
    if not overrides:
        _CACHE[spec] = embedder
    return embedder


async def aembed(
    texts: Sequence[str] | str,
    model: str | Embedder = DEFAULT_EMBEDDING_MODEL,
    *,
    batch_size: int | None = None,
    **overrides: Any,
) -> list[list[float]]:
    """Embed ``texts`` (a string counts as one text) with ``model``."""
    if isinstance(texts, str):
        texts = [texts]
    return await resolve_embedder(model, **overrides).embed(texts, batch_size=batch_size)


def embed(
    texts: Sequence[str] | str,
    model: str | Embedder = DEFAULT_EMBEDDING_MODEL,
    *,
    batch_size: int | None = None,
    **overrides: Any,
) -> list[list[float]]:
    """Sync :func:`aembed` (raises :class:`RuntimeError` inside a running event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(aembed(texts, model, batch_size=batch_size, **overrides))
    raise RuntimeError("embed() was called from a running event loop; use `await aembed(...)`")
