"""The protocols the shared suites run against: adding a protocol = adding one entry here.

Each :class:`Case` names a fake server class (a :class:`FakeProviderServer` subclass) and a
registry provider whose protocol the fake speaks. ``make_model`` builds the adapter aimed at
a running fake (retries fast, short timeouts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from vivace.models import Model
from vivace.models.router import get_model
from vivace.testing.fake_providers import (
    FakeAnthropic,
    FakeBedrock,
    FakeGemini,
    FakeOllama,
    FakeOpenAIChat,
    FakeOpenAIResponses,
    FakeProviderServer,
)

API_KEY = "sk-test-SECRET-0123456789abcdef"


@dataclass(frozen=True)
class Case:
    id: str
    fake: Callable[..., FakeProviderServer]
    provider: str  # a registry provider speaking this protocol
    model: str = "gpt-4o"
    supports_audio: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    # capabilities of the protocol (the shared tests skip or adapt what a protocol lacks)
    auth_header: tuple[str, str] = ("authorization", f"Bearer {API_KEY}")
    supports_video: bool = False
    supports_refusal: bool = True  # a refusal text distinct from the answer
    native_output: bool = True  # JSON-schema answers (else the agent's final-result tool)
    reports_cached_tokens: bool = True
    reports_reasoning_tokens: bool = True

    def make_model(self, srv: FakeProviderServer, **kw: Any) -> Model:
        kw.setdefault("max_retries", 2)
        kw.setdefault("api_key", API_KEY)
        return get_model(f"{self.provider}/{self.model}", base_url=srv.base_url, **kw)


CASES = [
    Case("openai-chat", FakeOpenAIChat, "openai"),
    Case("openai-responses", FakeOpenAIResponses, "openai-responses", supports_audio=False),
    Case(
        "anthropic",
        FakeAnthropic,
        "anthropic",
        model="claude-sonnet-4-5",
        supports_audio=False,
        auth_header=("x-api-key", API_KEY),
        reports_reasoning_tokens=False,  # thinking tokens are part of output_tokens
    ),
    Case(
        "gemini",
        FakeGemini,
        "google",
        model="gemini-2.5-flash",
        auth_header=("x-goog-api-key", API_KEY),
        supports_video=True,
        supports_refusal=False,  # a blocked answer is finishReason SAFETY, without text
    ),
    Case(
        "ollama",
        FakeOllama,
        "ollama",
        model="llama3.2",
        supports_audio=False,
        supports_refusal=False,
        reports_cached_tokens=False,
        reports_reasoning_tokens=False,
    ),
    Case(
        "bedrock",
        FakeBedrock,
        "bedrock",
        model="anthropic.claude-3-5-sonnet-20240620-v1:0",
        supports_audio=False,
        supports_video=True,
        supports_refusal=False,
        native_output=False,  # Converse: the agent's final-result tool
        reports_reasoning_tokens=False,
    ),
]

case_param = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
