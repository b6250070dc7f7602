"""Every registered provider string - the hand-written registry and every provider of the
model catalog - runs the agent's tool loop against the fake server of its wire protocol
(with the base URL and key overridden, as a user with a proxy would)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vivace import Agent
from vivace.errors import ModelConfigError
from vivace.models.catalog import load_catalog
from vivace.models.registry import PROVIDERS, get_provider, provider_ids
from vivace.models.router import get_model, resolve_model
from vivace.testing.fake_providers import (
    FakeAnthropic,
    FakeBedrock,
    FakeGemini,
    FakeOllama,
    FakeOpenAIChat,
    FakeOpenAIResponses,
    FakeProviderServer,
    ToolCall,
    Turn,
)

FAKES: dict[str, type[FakeProviderServer]] = {
    "openai-chat": FakeOpenAIChat,
    "openai-responses": FakeOpenAIResponses,
    "anthropic": FakeAnthropic,
    "gemini": FakeGemini,
    "bedrock": FakeBedrock,
    "ollama": FakeOllama,
}

ALL = provider_ids()
HTTP_PROVIDERS = [p for p in ALL if get_provider(p).protocol in FAKES and get_provider(p).chat]
EMBEDDINGS_ONLY = [p for p in ALL if not get_provider(p).chat]


def test_most_providers_speak_a_faked_protocol() -> None:
    assert len(HTTP_PROVIDERS) >= 200
    assert set(EMBEDDINGS_ONLY) == {"voyage", "jina"}


def test_the_catalog_is_at_scale_and_every_catalog_provider_is_reachable() -> None:
    cat = load_catalog()
    assert len(cat.providers) >= 90 and cat.model_count >= 3000
    for pid in cat.provider_ids():
        info = get_provider(pid)  # by its own id: a registry entry, an alias or the catalog's
        assert info.protocol in FAKES, pid
        assert pid in info.catalog_ids, pid  # and its models' data is found through it
    catalog_only = [p for p in ALL if p not in PROVIDERS]
    assert len(catalog_only) >= 100


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeProviderServer]]:
    running: dict[str, FakeProviderServer] = {}
    try:
        for protocol, fake in FAKES.items():
            running[protocol] = fake().start()
        yield running
    finally:
        for srv in running.values():
            srv.stop()


def lookup(city: str) -> str:
    """Weather for a city."""
    return f"Sunny in {city}"


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
async def test_provider_runs_the_tool_loop(
    provider: str, servers: dict[str, FakeProviderServer]
) -> None:
    srv = servers[get_provider(provider).protocol]
    srv.queue.clear()
    srv.script(
        Turn(tool_calls=[ToolCall("lookup", {"city": "Paris"}, id="c1")]),
        Turn(text="Paris is sunny."),
    )
    seen = len(srv.requests)
    model = get_model(
        f"{provider}/some-model", base_url=srv.base_url, api_key="k-test", max_retries=0
    )
    result = await Agent(model=model, tools=[lookup]).arun("Weather in Paris?")
    assert result.status == "completed", result.error
    assert result.output == "Paris is sunny."
    assert len(srv.requests) == seen + 2
    assert "Sunny in Paris" in srv.requests[-1].body.decode()


@pytest.mark.parametrize("provider", EMBEDDINGS_ONLY)
async def test_embeddings_only_provider_refuses_a_chat_model(provider: str) -> None:
    with pytest.raises(ModelConfigError, match="serves embeddings only") as err:
        resolve_model(f"{provider}/some-model")
    assert err.value.details["capability"] == "chat"
    result = await Agent(model=f"{provider}/rerank-2").arun("hi")
    assert result.status == "failed" and isinstance(result.error, ModelConfigError)


async def test_a_chat_run_on_an_embeddings_only_provider_sends_nothing() -> None:
    from vivace.models.registry import register_provider
    from vivace.models.router import clear_model_cache

    with FakeOpenAIChat() as srv:
        srv.default = Turn(text="should not be asked")
        register_provider("emb-only-test", base_url=srv.base_url, chat=False)
        try:
            result = await Agent(model="emb-only-test/embedder").arun("hi")
            assert result.status == "failed" and "embeddings only" in str(result.error)
            assert srv.requests == []
        finally:
            PROVIDERS.pop("emb-only-test", None)
            clear_model_cache()
