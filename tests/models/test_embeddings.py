"""Embeddings through the registry, against the fake OpenAI server."""

from __future__ import annotations

import pytest

from vivace.errors import ModelConfigError, ModelHTTPError
from vivace.models.embeddings import OpenAIEmbedder, aembed, embed, resolve_embedder
from vivace.testing.fake_providers import FakeOpenAIChat, HTTPFault, fake_embedding

from .cases import API_KEY


async def test_aembed_batches_and_keeps_order() -> None:
    texts = [f"text number {i}" for i in range(10)]
    with FakeOpenAIChat() as srv:
        vectors = await aembed(
            texts,
            "openai/text-embedding-3-small",
            batch_size=4,
            base_url=srv.base_url,
            api_key=API_KEY,
        )
        bodies = [r.json for r in srv.requests]
    assert vectors == [fake_embedding(t) for t in texts]
    assert sorted(len(b["input"]) for b in bodies) == [2, 4, 4]  # batches run concurrently
    assert all(b["model"] == "text-embedding-3-small" for b in bodies)
    assert all(r.path == "/v1/embeddings" for r in srv.requests)


def test_sync_embed_and_dimensions() -> None:
    with FakeOpenAIChat() as srv:
        out = embed(
            "one text",
            "openai/text-embedding-3-small",
            base_url=srv.base_url,
            api_key=API_KEY,
            dimensions=16,
        )
        assert srv.requests[0].json["dimensions"] == 16
    assert out == [fake_embedding("one text", 16)]


async def test_embed_errors_are_typed() -> None:
    with FakeOpenAIChat() as srv:
        srv.script(HTTPFault(400, "input too long"))
        with pytest.raises(ModelHTTPError, match="input too long"):
            await aembed(
                ["x"], "openai/text-embedding-3-small", base_url=srv.base_url, api_key=API_KEY
            )


async def test_embed_from_running_loop_is_refused() -> None:
    with pytest.raises(RuntimeError, match="aembed"):
        embed(["x"], "openai/text-embedding-3-small")


def test_clear_model_cache_forgets_embedders_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # after a base URL or key change, clear_model_cache() makes the next lookup read them
    # again (an embedder kept from before reached the old server)
    from vivace.models.router import clear_model_cache

    monkeypatch.setenv("OPENAI_API_KEY", "sk-e")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/first/v1")
    clear_model_cache()
    first = resolve_embedder("openai/text-embedding-3-small")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/second/v1")
    assert resolve_embedder("openai/text-embedding-3-small") is first  # cached meanwhile
    clear_model_cache()
    second = resolve_embedder("openai/text-embedding-3-small")
    assert second is not first and "second" in second.endpoint.base_url
    clear_model_cache()


def test_resolve_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-e")
    e = resolve_embedder("openai/text-embedding-3-small")
    assert isinstance(e, OpenAIEmbedder) and resolve_embedder("openai/text-embedding-3-small") is e
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    with pytest.raises(ModelConfigError, match="embeddings"):
        resolve_embedder("anthropic/claude")
