"""The lead's Agent running the full loop against the fake servers."""

from __future__ import annotations

import pytest

from vivace import Agent
from vivace.testing.fake_providers import FakeProviderServer, ToolCall, Turn

from .cases import Case, case_param


def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"Sunny in {city}"


@case_param
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_agent_tools_loop(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    srv.script(
        Turn(
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}, id="call_p"),
                ToolCall("get_weather", {"city": "Oslo"}, id="call_o"),
            ]
        ),
        Turn(text="Paris and Oslo are sunny."),
    )
    agent = Agent(model=case.make_model(srv), tools=[get_weather], instructions="Be brief.")
    if stream:
        s = agent.astream("Weather?")
        deltas = [e.text async for e in s if getattr(e, "type", "") == "text_delta"]
        result = s.result
        assert result is not None and "".join(deltas) == "Paris and Oslo are sunny."
    else:
        result = await agent.arun("Weather?")
    assert result.output == "Paris and Oslo are sunny."
    second = srv.summaries()[1]
    assert second.tool_result_ids == ["call_p", "call_o"]
    assert second.system == "Be brief."
    assert "Sunny in Paris" in srv.requests[1].body.decode()
    assert result.usage.requests == 2
    assert result.usage.tool_calls == 2  # executed calls, not also the model's own count


@case_param
async def test_agent_structured_output(case: Case, srv: FakeProviderServer) -> None:
    from pydantic import BaseModel

    class Report(BaseModel):
        city: str
        temp: float

    if case.native_output:
        srv.script(Turn(text='{"city": "Paris", "temp": 21.5}'))
    else:
        srv.script(Turn(tool_calls=[ToolCall("final_result", {"city": "Paris", "temp": 21.5})]))
    agent = Agent(model=case.make_model(srv), output_type=Report)
    result = await agent.arun("Report?")
    assert result.output == Report(city="Paris", temp=21.5)
    sent = srv.summaries()[0]
    assert (sent.output_schema is not None) == case.native_output
    assert case.native_output or sent.tool_names == ["final_result"]


@case_param
def test_agent_sync_run_with_registered_provider(case: Case, srv: FakeProviderServer) -> None:
    pid = srv.register()
    srv.script(Turn(text="one"), Turn(text="two"))
    agent = Agent(model=f"{pid}/some-model")
    assert agent.run("a").output == "one"
    assert agent.run("b").output == "two"  # a second loop: a fresh pooled client
