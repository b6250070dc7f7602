"""The model catalog in use: per-model max_tokens defaults, input and structured-output checks
before any request, cost per response and per run (fallbacks included), lookups."""

from __future__ import annotations

import logging
import math

import pytest

from vivace import Agent, ImagePart, Message
from vivace.agent import events as ev
from vivace.errors import ModelConfigError
from vivace.messages import AudioPart, TextPart
from vivace.models import ModelRequest, OutputSpec, Usage
from vivace.models.catalog import load_catalog, model_info
from vivace.models.router import get_model
from vivace.testing.fake_providers import FakeAnthropic, FakeOpenAIChat, HTTPFault, ToolCall, Turn

KEY = "sk-test"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def chat(srv: FakeOpenAIChat, name: str, **kw) -> object:
    return get_model(f"openai/{name}", base_url=srv.base_url, api_key=KEY, max_retries=0, **kw)


# -- issue 8 item 15: Claude max_tokens defaults come from the model's limit -----------------


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("claude-3-haiku-20240307", 4096),
        ("claude-3-opus-20240229", 4096),
        ("claude-3-haiku", 4096),  # undated name: the dated entry's limit
        ("claude-sonnet-4-5", 8192),  # 64K allowed: the default stays 8192
        ("claude-not-in-the-catalog", 8192),  # unknown model: the provider default
    ],
)
async def test_claude_default_max_tokens_fits_the_model(name: str, sent: int) -> None:
    with FakeAnthropic() as srv:
        srv.script(Turn(text="ok"))
        model = get_model(f"anthropic/{name}", base_url=srv.base_url, api_key=KEY)
        result = await Agent(model=model).arun("hi")
        assert result.status == "completed", result.error
        assert srv.requests[0].json["max_tokens"] == sent


async def test_an_explicit_max_tokens_is_sent_as_given() -> None:
    with FakeAnthropic() as srv:
        srv.script(Turn(text="ok"))
        model = get_model("anthropic/claude-3-haiku-20240307", base_url=srv.base_url, api_key=KEY)
        await Agent(model=model, model_settings={"max_tokens": 300}).arun("hi")
        assert srv.requests[0].json["max_tokens"] == 300


# -- input modalities and native structured output: typed errors before any request ----------


async def test_image_to_a_text_only_model_fails_before_sending() -> None:
    with FakeOpenAIChat() as srv:
        srv.default = Turn(text="should not be asked")
        model = chat(srv, "gpt-3.5-turbo")  # text only, says the catalog
        req = ModelRequest([Message("user", [TextPart("what is it?"), ImagePart(data=PNG)])])
        with pytest.raises(ModelConfigError, match="does not take image input") as err:
            await model.request(req)
        assert err.value.details["capability"] == "image"
        with pytest.raises(ModelConfigError):
            async for _ in model.stream(req):
                pass
        result = await Agent(model=model).arun([TextPart("what?"), ImagePart(data=PNG)])
        assert result.status == "failed" and isinstance(result.error, ModelConfigError)
        assert srv.requests == []
        # a model that takes images sends it
        srv.script(Turn(text="a cat"))
        assert (await chat(srv, "gpt-4o-mini").request(req)).text == "a cat"
        # audio to gpt-4o-mini (text, image, pdf) is refused as well
        audio = ModelRequest([Message("user", [AudioPart(data=b"RIFF", media_type="audio/wav")])])
        with pytest.raises(ModelConfigError, match="audio"):
            await chat(srv, "gpt-4o-mini").request(audio)
        assert len(srv.requests) == 1


async def test_a_fallback_moves_to_a_model_that_takes_the_image() -> None:
    with FakeOpenAIChat() as srv:
        srv.script(Turn(text="a cat"))
        agent = Agent(model=[chat(srv, "gpt-3.5-turbo"), chat(srv, "gpt-4o-mini")])
        result = await agent.arun([TextPart("what?"), ImagePart(data=PNG)])
        assert result.output == "a cat"
        assert [r.json["model"] for r in srv.requests] == ["gpt-4o-mini"]


async def test_unknown_models_take_anything() -> None:
    with FakeOpenAIChat() as srv:
        srv.script(Turn(text="seen"))
        model = chat(srv, "my-local-vision-model")
        assert model.info is None
        req = ModelRequest([Message("user", [ImagePart(data=PNG)])])
        assert (await model.request(req)).text == "seen"


def test_native_output_follows_the_catalog() -> None:
    with FakeOpenAIChat() as srv:
        assert chat(srv, "gpt-4o-mini").supports_native_output  # catalog: structured output
        assert not chat(srv, "gpt-3.5-turbo").supports_native_output  # catalog: none
        assert chat(srv, "some-unknown-model").supports_native_output  # registry: openai has it
        assert chat(srv, "gpt-3.5-turbo", native_output=True).supports_native_output  # forced
        # Anthropic: the catalog, else the model name (4.5 and newer)
        claude = get_model("anthropic/claude-3-haiku-20240307", base_url=srv.base_url, api_key=KEY)
        assert not claude.supports_native_output
        sonnet = get_model("anthropic/claude-sonnet-4-5", base_url=srv.base_url, api_key=KEY)
        assert sonnet.supports_native_output


async def test_structured_output_uses_the_tool_on_models_without_native_output() -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str

    with FakeOpenAIChat() as srv:
        srv.script(Turn(tool_calls=[ToolCall("final_result", {"name": "Paris"})]))
        result = await Agent(model=chat(srv, "gpt-3.5-turbo"), output_type=City).arun("city?")
        assert result.output == City(name="Paris")
        body = srv.requests[0].json
        assert "response_format" not in body
        assert [t["function"]["name"] for t in body["tools"]] == ["final_result"]
        # forcing native mode on it is a typed error before any request
        forced = Agent(model=chat(srv, "gpt-3.5-turbo"), output_type=City, output_mode="native")
        result = await forced.arun("city?")
        assert result.status == "failed" and isinstance(result.error, ModelConfigError)
        assert result.error.details["capability"] == "structured_output"
        assert len(srv.requests) == 1
        spec = OutputSpec("City", City.model_json_schema(), "native")
        with pytest.raises(ModelConfigError, match="no native structured output"):
            await chat(srv, "gpt-3.5-turbo").request(
                ModelRequest([Message("user", [TextPart("x")])], output=spec)
            )


# -- cost -------------------------------------------------------------------------------------


def mini_cost(inp: int, out: int, cached: int) -> float:
    return ((inp - cached) * 0.15 + cached * 0.075 + out * 0.6) / 1e6


def lookup(city: str) -> str:
    """Weather for a city."""
    return f"Sunny in {city}"


async def test_cost_per_response_and_per_run() -> None:
    u1 = {"input_tokens": 1000, "output_tokens": 50, "cached_tokens": 200}
    u2 = {"input_tokens": 1200, "output_tokens": 300, "cached_tokens": 1000}
    with FakeOpenAIChat() as srv:
        srv.script(
            Turn(tool_calls=[ToolCall("lookup", {"city": "Paris"})], usage=u1),
            Turn(text="Sunny.", usage=u2),
        )
        agent = Agent(model=chat(srv, "gpt-4o-mini"), tools=[lookup])
        events = [e async for e in agent.astream("weather?")]
    step_costs = [e.usage["cost"] for e in events if isinstance(e, ev.ModelRequestCompleted)]
    assert step_costs == pytest.approx([mini_cost(1000, 50, 200), mini_cost(1200, 300, 1000)])
    done = events[-1]
    assert isinstance(done, ev.RunCompleted)
    assert done.usage["cost"] == pytest.approx(sum(step_costs))
    assert done.usage["input_tokens"] == 2200


async def test_run_result_cost_and_unknown_prices() -> None:
    with FakeOpenAIChat() as srv:
        srv.script(Turn(text="hi", usage={"input_tokens": 10, "output_tokens": 10}))
        result = await Agent(model=chat(srv, "gpt-4o-mini")).arun("hi")
        assert result.cost == pytest.approx(mini_cost(10, 10, 0))
        assert result.usage.cost == result.cost
        srv.script(Turn(text="hi"))
        unknown = await Agent(model=chat(srv, "not-a-catalog-model")).arun("hi")
        assert unknown.cost is None and "cost" not in unknown.usage.to_dict()


async def test_fallback_cost_is_the_price_of_the_model_that_answered() -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    with FakeOpenAIChat() as srv:
        srv.script(HTTPFault(503), Turn(text="from 4o", usage=usage))
        agent = Agent(model=[chat(srv, "gpt-4o-mini"), chat(srv, "gpt-4o")])
        result = await agent.arun("hi")
        assert result.output == "from 4o"
        assert result.cost == pytest.approx(2.5 + 10.0)  # gpt-4o's prices, not gpt-4o-mini's


def test_usage_sums_and_round_trips_cost() -> None:
    u = Usage(input_tokens=1)
    u += Usage(output_tokens=2)
    assert u.cost is None
    u += Usage(cost=0.25)
    assert u.cost == 0.25
    u += Usage(cost=None)
    u += Usage(cost=0.5)
    assert u.cost == 0.75
    d = u.to_dict()
    assert d["cost"] == 0.75
    back = Usage.from_dict(d)
    assert back == u and type(back.input_tokens) is int
    assert Usage.from_dict({"input_tokens": 3, "cost": None}) == Usage(input_tokens=3)
    assert (
        Usage.from_dict({"cost": 1}).cost == 1.0
        and type(Usage.from_dict({"cost": 1}).cost) is float
    )
    assert "cost" not in Usage().to_dict()


def test_price_math() -> None:
    info = model_info("openai", "gpt-4o-mini")
    assert info is not None
    assert info.cost(Usage(input_tokens=1000, output_tokens=100, cached_tokens=400)) == (
        pytest.approx((600 * 0.15 + 400 * 0.075 + 100 * 0.6) / 1e6)
    )
    no_cache_price = model_info("groq", "llama-3.3-70b-versatile")
    assert no_cache_price is not None and no_cache_price.price_cached is None
    assert no_cache_price.cost(Usage(input_tokens=100, cached_tokens=100)) == pytest.approx(
        100 * no_cache_price.price_input / 1e6  # type: ignore[operator]
    )


# -- issue 8 item 19: max_tokens reaches OpenAI-compatible servers ----------------------------


async def test_max_tokens_is_applied_by_a_server_that_reads_only_max_tokens() -> None:
    long = " ".join(f"w{i}" for i in range(200))
    with FakeOpenAIChat(max_tokens_fields=("max_tokens",)) as srv:
        srv.default = Turn(text=long)
        model = get_model("openai/gemma-3-270m", base_url=srv.base_url, api_key=KEY)
        result = await Agent(model=model, model_settings={"max_tokens": 24}).arun("talk")
        assert result.usage.output_tokens == 24
        assert len(result.output.split()) == 24
        body = srv.requests[0].json
        assert body["max_tokens"] == 24 and "max_completion_tokens" not in body


def test_openai_itself_gets_max_completion_tokens() -> None:
    req = ModelRequest([Message("user", [TextPart("x")])], settings={"max_tokens": 7})
    for url in ("https://api.openai.com/v1", "https://res.openai.azure.com/openai/v1"):
        body = get_model("openai/gpt-4o", base_url=url, api_key=KEY).build_body(req, False)
        assert body["max_completion_tokens"] == 7 and "max_tokens" not in body
    body = get_model("openai/gpt-4o", base_url="http://127.0.0.1:8080/v1", api_key=KEY)
    assert body.build_body(req, False)["max_tokens"] == 7


async def test_an_answer_longer_than_max_tokens_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with FakeOpenAIChat() as srv:  # this fake ignores every limit
        srv.script(Turn(text="long answer", usage={"output_tokens": 2000}))
        model = chat(srv, "gemma-3-270m")
        with caplog.at_level(logging.WARNING, logger="vivace.models"):
            await Agent(model=model, model_settings={"max_tokens": 24}).arun("talk")
        assert any(
            "2000 output tokens although max_tokens=24" in r.getMessage() for r in caplog.records
        )


# -- lookups ------------------------------------------------------------------------------------


def test_catalog_lookups() -> None:
    cat = load_catalog()
    assert cat.source and cat.source_date
    assert model_info("anthropic", "claude-3-haiku-20240307").max_output == 4096  # type: ignore[union-attr]
    assert model_info("openai", "GPT-4O-MINI").id == "gpt-4o-mini"  # type: ignore[union-attr]
    assert model_info("openai", "no-such-model") is None
    assert model_info("no-such-provider", "gpt-4o") is None
    found = cat.search("claude-3-haiku", ["anthropic"])
    assert [i.id for i in found] == ["claude-3-haiku-20240307"]
    # a registry provider reaches the catalog under another id
    responses = get_model("openai-responses/gpt-4o-mini", base_url="http://x/v1", api_key=KEY)
    assert responses.info is not None and responses.info.provider == "openai"  # type: ignore[attr-defined]
    assert math.isclose(responses.info.price_input, 0.15)  # type: ignore[attr-defined,arg-type]


def test_the_catalog_is_read_at_first_need_only() -> None:
    """``import vivace``, ``Agent(...)`` and resolving a model read no catalog; the first
    request does."""
    import subprocess
    import sys
    from pathlib import Path

    code = """
import sys
from vivace import Agent
from vivace.models.router import resolve_model
agent = Agent(model="openai/gpt-4o-mini", tools=[])
model = resolve_model("openai/gpt-4o-mini")
print("vivace.models.catalog" in sys.modules)
model.info
print("vivace.models.catalog" in sys.modules)
"""
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**__import__("os").environ, "OPENAI_API_KEY": "sk-x"},
        timeout=60,
    )
    assert p.stdout.split() == ["False", "True"], p.stderr


async def test_providers_registered_at_run_time_keep_working() -> None:
    from vivace.models.registry import PROVIDERS, register_provider
    from vivace.models.router import clear_model_cache

    with FakeOpenAIChat() as srv:
        srv.default = Turn(text="hello", usage={"input_tokens": 1_000_000, "output_tokens": 0})
        register_provider("corp-gw-test", base_url=srv.base_url)
        register_provider("corp-priced-test", base_url=srv.base_url, catalog="openai")
        try:
            plain = await Agent(model="corp-gw-test/gpt-4o-mini").arun("hi")
            assert plain.output == "hello" and plain.cost is None  # no catalog: no price
            priced = await Agent(model="corp-priced-test/gpt-4o-mini").arun("hi")
            assert priced.cost == pytest.approx(0.15)  # OpenAI's price for 1M input tokens
        finally:
            PROVIDERS.pop("corp-gw-test", None)
            PROVIDERS.pop("corp-priced-test", None)
            clear_model_cache()


def test_usage_difference_keeps_cost() -> None:
    before = Usage(input_tokens=10, output_tokens=5, requests=1, cost=0.25)
    after = Usage(input_tokens=30, output_tokens=9, requests=3, cost=1.0)
    spent = after - before
    assert spent == Usage(input_tokens=20, output_tokens=4, requests=2, cost=0.75)
    assert (Usage(input_tokens=2) - Usage(input_tokens=1)).cost is None
    assert (Usage(cost=0.5) - Usage()).cost == 0.5
