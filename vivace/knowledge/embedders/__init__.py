"""Embedders for knowledge bases.

Any object with ``async embed(texts) -> list[list[float]]`` works (the model router's
:class:`~vivace.models.embeddings.Embedder`\\ s, memory's embedders). :func:`resolve` turns a
spec into one: ``"local"`` (or ``"local/all-MiniLM-L6-v2"``) is the offline
:class:`~.onnx.OnnxEmbedder`; ``"provider/model"`` goes through the model router
(OpenAI-compatible, Gemini, Ollama...: batched, retried by the router's HTTP layer).
"""

from __future__ import annotations

from typing import Any

from ...errors import UserError

__all__ = ["LOCAL", "OnnxEmbedder", "resolve"]

LOCAL = "local/all-MiniLM-L6-v2"

_LOCAL_DEFAULT: Any = None


def resolve(spec: Any) -> Any:
    """The embedder for ``spec``: an object with ``embed`` as is, ``"local"`` the shared
    offline embedder, ``"provider/model"`` the router's embedder."""
    global _LOCAL_DEFAULT
    if spec is None or (isinstance(spec, str) and spec in ("local", LOCAL)):
        if _LOCAL_DEFAULT is None:
            from .onnx import OnnxEmbedder

            _LOCAL_DEFAULT = OnnxEmbedder()
        return _LOCAL_DEFAULT
    if isinstance(spec, str):
        from ...models.embeddings import resolve_embedder

        return resolve_embedder(spec)
    if not callable(getattr(spec, "embed", None)):
        raise UserError(f"{spec!r} is not an embedder (it needs an async embed(texts) method)")
    return spec


def embedder_id(e: Any) -> str:
    """A name for an embedder (stored with the knowledge base, so a query is never compared
    with vectors of another model)."""
    ident = getattr(e, "id", None)
    if isinstance(ident, str):
        return ident
    return type(e).__name__


def __getattr__(name: str) -> Any:
    if name == "OnnxEmbedder":
        from .onnx import OnnxEmbedder

        return OnnxEmbedder
    raise AttributeError(name)
