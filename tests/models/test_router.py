"""Registry and router: spec parsing, caching, errors, fallbacks, runtime registration."""

from __future__ import annotations

import pytest

from vivace.errors import AllModelsFailed, ModelConfigError, ModelNotFoundError, UserError
from vivace.messages import Message
from vivace.models import Model, ModelRequest, TextDelta
from vivace.models import router as router_mod
from vivace.models.registry import PROVIDERS, get_provider, register_provider
from vivace.models.router import FallbackModel, get_model, list_providers, resolve_model
from vivace.testing.fake_providers import FakeOpenAIChat, HTTPFault, Turn

from .cases import API_KEY

REQ = ModelRequest([Message.user("hi")])

AGNO_FAMILIES = [
    "openai", "azure", "anthropic", "google", "vertex", "bedrock", "mistral", "groq", "together",
    "fireworks", "deepseek", "xai", "cohere", "cerebras", "openrouter", "perplexity", "deepinfra",
    "nebius", "sambanova", "nvidia", "huggingface", "dashscope", "siliconflow", "moonshot",
    "ollama", "lmstudio", "vllm", "llamacpp-server", "llamacpp", "litellm", "portkey",
]  # fmt: skip


def test_registry_covers_the_provider_families() -> None:
    assert len(PROVIDERS) >= 50
    missing = [p for p in AGNO_FAMILIES if p not in PROVIDERS]
    assert missing == []
    for pid in PROVIDERS:
        info = get_provider(pid)
        assert info.protocol in (
            "openai-chat",
            "openai-responses",
            "anthropic",
            "gemini",
            "bedrock",
            "ollama",
            "llamacpp",
            "test",
        )
        if info.key_required:
            assert info.key_env, pid


def test_aliases_resolve() -> None:
    assert get_provider("gemini").id == "google"
    assert get_provider("qwen").id == "dashscope"
    assert get_provider("lm-studio").id == "lmstudio"


def test_unknown_provider_names_closest(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("opnai/gpt-4o")
    assert "'openai'" in info.value.message
    with pytest.raises(ModelNotFoundError, match="'groq'"):
        resolve_model("groqq/x")
    with pytest.raises(ModelNotFoundError, match="openai/gpt-4o"):
        resolve_model("gpt-4o")  # no provider: suggest one


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    with pytest.raises(ModelConfigError, match="GROQ_API_KEY") as info:
        resolve_model("groq/llama-3.3-70b-versatile")
    assert info.value.details["env_var"] == "GROQ_API_KEY"
    monkeypatch.setenv("GROQ_API_KEY", "gsk-x")
    model = resolve_model("groq/llama-3.3-70b-versatile")
    assert model.id == "groq/llama-3.3-70b-versatile"
    assert "gsk-x" not in repr(model)


def test_base_url_template_needs_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k" * 10)
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    with pytest.raises(ModelConfigError, match="AZURE_OPENAI_ENDPOINT"):
        resolve_model("azure/gpt-4o")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/")
    router_mod.clear_model_cache()
    model = resolve_model("azure/gpt-4o")
    assert model.endpoint.base_url == "https://res.openai.azure.com/openai/v1"  # type: ignore[attr-defined]


def test_local_providers_need_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    m = resolve_model("ollama/llama3.2")  # native API or its /v1 endpoint: either way no key
    assert m.endpoint.base_url.startswith("http://localhost:11434")  # type: ignore[attr-defined]
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:11434")  # no scheme: http:// is added
    router_mod.clear_model_cache()
    assert resolve_model("ollama/llama3.2").endpoint.base_url.startswith("http://10.0.0.5:11434")  # type: ignore[attr-defined]


def test_spec_with_slashes_and_caching(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "or-key-123")
    m = resolve_model("openrouter/anthropic/claude-sonnet-4.5")
    assert (m.provider, m.model_name) == ("openrouter", "anthropic/claude-sonnet-4.5")
    assert resolve_model("openrouter/anthropic/claude-sonnet-4.5") is m
    assert resolve_model(m) is m


def test_errors_for_bad_specs() -> None:
    with pytest.raises(ModelNotFoundError):
        resolve_model(None)
    with pytest.raises(ModelNotFoundError):
        resolve_model([])
    with pytest.raises(ModelNotFoundError):
        resolve_model("openai/")
    with pytest.raises(ModelNotFoundError):
        resolve_model(42)  # type: ignore[arg-type]


def test_protocol_without_adapter_yet_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(router_mod.ADAPTERS, "anthropic", "vivace.models.protocols.not_there:X")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    with pytest.raises(ModelConfigError, match="anthropic"):
        resolve_model("anthropic/claude-sonnet-4-5")


def test_test_provider_hook() -> None:
    class Echo(Model):
        provider = "test"

        def __init__(self, name: str) -> None:
            self.model_name = name

    router_mod.register_model_factory("test", Echo)
    try:
        m = resolve_model("test/anything")
        assert isinstance(m, Echo) and m.id == "test/anything"
    finally:
        router_mod.register_model_factory("test", "vivace.testing:test_model")


def test_list_providers_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", "m-key")
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.setenv("COHERE_API_KEY", "c-key")
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    rows = {r.id: r for r in list_providers()}
    assert len(rows) >= 50
    assert rows["mistral"].key_set and rows["mistral"].key_env == "MISTRAL_API_KEY"
    assert rows["cohere"].key_set and rows["cohere"].key_env == "COHERE_API_KEY"
    assert not rows["groq"].key_set and rows["groq"].key_env == "GROQ_API_KEY"
    assert rows["ollama"].protocol in ("ollama", "openai-chat") and not rows["ollama"].key_required
    assert rows["anthropic"].protocol == "anthropic"
    assert "m-key" not in repr(rows)


def test_register_provider_at_runtime_and_invalidate_cache() -> None:
    with FakeOpenAIChat() as srv:
        srv.default = Turn(text="from the corp gateway")
        register_provider(
            "corp",
            base_url=srv.base_url,
            key_env="CORP_KEY_UNSET",
            key_required=False,
            headers={"x-team": "a"},
        )
        try:
            m = resolve_model("corp/llama")
            import asyncio

            assert asyncio.run(m.request(REQ)).text == "from the corp gateway"
            assert srv.requests[0].headers["x-team"] == "a"
            assert "authorization" not in srv.requests[0].headers
            register_provider("corp", base_url=srv.base_url + "/", key_required=False)
            assert resolve_model("corp/llama") is not m
        finally:
            PROVIDERS.pop("corp", None)
    with pytest.raises(UserError):
        register_provider("bad/id", base_url="http://x")
    with pytest.raises(UserError):
        register_provider("x", protocol="smoke-signals", base_url="http://x")


def test_headers_and_custom_auth_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTKEY_API_KEY", "pk-123456")
    monkeypatch.setenv("PORTKEY_PROVIDER", "@openai-prod")
    monkeypatch.delenv("PORTKEY_VIRTUAL_KEY", raising=False)
    with FakeOpenAIChat() as srv:
        srv.script(Turn(text="ok"))
        m = get_model("portkey/gpt-4o", base_url=srv.base_url)
        import asyncio

        asyncio.run(m.request(REQ))
        h = srv.requests[0].headers
    assert h["x-portkey-api-key"] == "pk-123456" and h["x-portkey-provider"] == "@openai-prod"
    assert "x-portkey-virtual-key" not in h and "authorization" not in h


async def test_fallback_moves_on_and_collects_errors() -> None:
    with FakeOpenAIChat() as a, FakeOpenAIChat() as b:
        a.default = HTTPFault(503, "primary down")
        b.script(Turn(text="from backup"), Turn(text="streamed backup"))
        ma = get_model("openai/gpt-4o", base_url=a.base_url, api_key=API_KEY, max_retries=1)
        mb = get_model("openai/gpt-4o-mini", base_url=b.base_url, api_key=API_KEY)
        fb = resolve_model([ma, mb])
        assert isinstance(fb, FallbackModel)
        assert (await fb.request(REQ)).text == "from backup"
        assert len(a.requests) == 2  # primary used its retries first
        texts = [e.text async for e in fb.stream(REQ) if isinstance(e, TextDelta)]
        assert "".join(texts) == "streamed backup"
        b.default = HTTPFault(400, "backup rejects")
        with pytest.raises(AllModelsFailed) as info:
            await fb.request(REQ)
    errs = info.value.errors
    assert [getattr(e, "status", None) for e in errs] == [503, 400]
    assert "primary down" in info.value.message and "backup rejects" in info.value.message


async def test_fallback_list_of_strings_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-a")
    monkeypatch.setenv("MISTRAL_API_KEY", "m-b")
    spec = ["openai/gpt-4o", "mistral/mistral-large-latest"]
    fb = resolve_model(spec)
    assert resolve_model(spec) is fb
    assert fb.supports_native_output


def test_replacing_a_provider_drops_the_models_resolved_with_it() -> None:
    """The router sees a new registry version; the registry does not reach into the router."""
    from vivace.models import resolve_model
    from vivace.models.registry import PROVIDERS, register_provider

    try:
        register_provider("swap-test", base_url="http://127.0.0.1:1/v1")
        first = resolve_model("swap-test/m")
        assert resolve_model("swap-test/m") is first  # cached
        register_provider("swap-test", base_url="http://127.0.0.1:2/v1")
        second = resolve_model("swap-test/m")
        assert second is not first
        assert "127.0.0.1:2" in second.endpoint.base_url  # type: ignore[attr-defined]
    finally:
        PROVIDERS.pop("swap-test", None)
