"""Every registered provider string runs the agent's tool loop against the fake server of
its wire protocol (with the base URL and key overridden, as a user with a proxy would)."""

from __future__ import annotations

import pytest

from vivace import Agent
from vivace.models.registry import get_provider, provider_ids
from vivace.models.router import get_model
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

HTTP_PROVIDERS = [p for p in provider_ids() if get_provider(p).protocol in FAKES]


def test_most_providers_speak_a_faked_protocol() -> None:
    assert len(HTTP_PROVIDERS) >= 50


def lookup(city: str) -> str:
    """Weather for a city."""
    return f"Sunny in {city}"


@pytest.mark.parametrize("provider", HTTP_PROVIDERS)
async def test_provider_runs_the_tool_loop(provider: str) -> None:
    protocol = get_provider(provider).protocol
    with FAKES[protocol]() as srv:
        srv.script(
            Turn(tool_calls=[ToolCall("lookup", {"city": "Paris"}, id="c1")]),
            Turn(text="Paris is sunny."),
        )
        model = get_model(
            f"{provider}/some-model", base_url=srv.base_url, api_key="k-test", max_retries=0
        )
        result = await Agent(model=model, tools=[lookup]).arun("Weather in Paris?")
        assert result.status == "completed", result.error
        assert result.output == "Paris is sunny."
        assert "Sunny in Paris" in srv.requests[1].body.decode()
