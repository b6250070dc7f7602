"""Issue 8 item 16: the library prints nothing by itself (a NullHandler on ``vivace``), and
fallback messages say what actually happens (the last model is called the last)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from vivace import Agent
from vivace.errors import ModelHTTPError
from vivace.models import ModelRequest, ModelResponse
from vivace.testing import FunctionModel

REPO = Path(__file__).resolve().parents[2]


def failing(name: str) -> FunctionModel:
    def fn(messages: object, request: ModelRequest) -> ModelResponse:
        raise ModelHTTPError(f"{name} is down", status=503)

    return FunctionModel(fn, model_name=name)


async def test_fallback_messages_name_the_next_model_and_the_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = Agent(model=[failing("first"), failing("second"), failing("third")])
    with caplog.at_level(logging.WARNING, logger="vivace.models"):
        result = await agent.arun("hi")
    assert result.status == "failed"
    messages = [r.getMessage() for r in caplog.records if r.name == "vivace.models"]
    assert len(messages) == 3
    assert "(1 of 3), trying test/second next" in messages[0]
    assert "(2 of 3), trying test/third next" in messages[1]
    assert "it was the last of 3 models" in messages[2]
    assert not any("trying" in m for m in messages[2:])


async def test_streamed_fallback_logs_the_same(caplog: pytest.LogCaptureFixture) -> None:
    agent = Agent(model=[failing("first"), failing("second")])
    with caplog.at_level(logging.WARNING, logger="vivace.models"):
        events = [e async for e in agent.astream("hi")]
    assert events[-1].type == "run_failed"
    messages = [r.getMessage() for r in caplog.records if r.name == "vivace.models"]
    assert "trying test/second next" in messages[0]
    assert "it was the last of 2 models" in messages[1]


def test_a_failing_fallback_prints_nothing_to_stderr() -> None:
    """Without logging configured by the application, a library must stay silent (Python's
    last-resort handler would print WARNING records to stderr)."""
    code = """
from vivace import Agent
from vivace.errors import ModelHTTPError
from vivace.testing import FunctionModel

def down(messages, request):
    raise ModelHTTPError("down", status=503)

result = Agent(model=[FunctionModel(down), FunctionModel(down)]).run("hi")
print(result.status)
"""
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert p.stdout.strip() == "failed", p.stderr
    assert p.stderr == ""
