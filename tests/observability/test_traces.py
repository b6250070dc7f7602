"""Traces of agent runs, read back through a real OTLP/HTTP collector on 127.0.0.1."""

from __future__ import annotations

import pytest

from vivace import Agent, Approve, tool
from vivace.errors import ModelHTTPError
from vivace.observability import OTLPExporter, Tracer, Tracing, configure
from vivace.testing import ScriptedModel, call

from .collectors import Collector


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {city}"


def _attrs(span, *keys):
    return {k: span.attributes.get(k) for k in keys}


def test_run_with_a_tool_exports_genai_spans_nested(collector: Collector) -> None:
    tracer = configure(OTLPExporter(collector.url), delay=0.01)
    agent = Agent(
        model=ScriptedModel([call("get_weather", {"city": "Paris"}), "Sunny."]),
        tools=[get_weather],
        name="weather",
        model_settings={"temperature": 0.2, "max_tokens": 64},
    )
    result = agent.run("Weather in Paris?", session_id="s-1", user_id="u-1")
    assert tracer.force_flush()

    [run] = collector.by_name("invoke_agent ")
    assert run.name == "invoke_agent weather"
    assert (run.trace_id, run.span_id) == (result.trace_id, result.span_id)
    assert run.parent_span_id is None
    assert _attrs(run, "gen_ai.operation.name", "gen_ai.agent.name", "gen_ai.conversation.id") == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "weather",
        "gen_ai.conversation.id": "s-1",
    }
    assert run.attributes["vivace.run_id"] == result.run_id
    assert run.attributes["gen_ai.usage.input_tokens"] == result.usage.input_tokens
    assert run.attributes["gen_ai.usage.output_tokens"] == result.usage.output_tokens
    assert run.resource["service.name"] == "vivace"

    chats = sorted(collector.by_name("chat "), key=lambda s: s.start_ns)
    assert [c.name for c in chats] == ["chat scripted", "chat scripted"]
    for c in chats:
        assert c.parent_span_id == run.span_id and c.trace_id == run.trace_id
        assert c.kind == 3  # CLIENT
        assert c.attributes["gen_ai.operation.name"] == "chat"
        assert c.attributes["gen_ai.provider.name"] == "test"
        assert c.attributes["gen_ai.request.model"] == "scripted"
        assert c.attributes["gen_ai.request.temperature"] == 0.2
        assert c.attributes["gen_ai.request.max_tokens"] == 64
    assert chats[0].attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert chats[1].attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert (
        sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats) == result.usage.input_tokens
    )
    assert (
        sum(c.attributes["gen_ai.usage.output_tokens"] for c in chats) == result.usage.output_tokens
    )

    [t] = collector.by_name("execute_tool ")
    assert t.name == "execute_tool get_weather"
    assert t.parent_span_id == run.span_id
    call_id = result.messages[1].tool_calls[0].id
    assert _attrs(t, "gen_ai.operation.name", "gen_ai.tool.name", "gen_ai.tool.call.id") == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": call_id,
    }
    # the tool ran between the two model requests
    assert chats[0].end_ns <= t.start_ns <= t.end_ns <= chats[1].start_ns
    assert run.start_ns <= chats[0].start_ns and chats[1].end_ns <= run.end_ns
    # deprecated names are never written
    for s in collector.spans:
        assert not {"gen_ai.system", "gen_ai.usage.prompt_tokens"} & set(s.attributes)


def test_json_encoding_is_accepted_too(collector: Collector) -> None:
    tracer = configure(OTLPExporter(collector.url, encoding="json"), delay=0.01)
    result = Agent(model=ScriptedModel(["hi"]), name="a").run("x")
    tracer.force_flush()
    assert collector.headers[0]["content-type"] == "application/json"
    [run] = collector.by_name("invoke_agent")
    assert run.trace_id == result.trace_id and run.status_code == 1


def test_a_subagent_run_nests_inside_the_parent_tool_call(collector: Collector) -> None:
    tracer = configure(OTLPExporter(collector.url), delay=0.01)
    researcher = Agent(
        model=ScriptedModel([call("get_weather", {"city": "Oslo"}), "Cold."]),
        tools=[get_weather],
        name="researcher",
    )

    @tool
    async def research(question: str) -> str:
        """Ask the researcher."""
        return (await researcher.arun(question)).output

    lead = Agent(
        model=ScriptedModel([call("research", {"question": "Oslo?"}), "It is cold."]),
        tools=[research],
        name="lead",
    )
    result = lead.run("Weather in Oslo?")
    tracer.force_flush()

    spans = {s.span_id: s for s in collector.spans}
    assert {s.trace_id for s in spans.values()} == {result.trace_id}
    [outer] = [s for s in collector.by_name("execute_tool research")]
    [inner_run] = collector.by_name("invoke_agent researcher")
    assert inner_run.parent_span_id == outer.span_id
    assert inner_run.attributes["vivace.parent_run_id"] == result.run_id
    [inner_tool] = collector.by_name("execute_tool get_weather")
    assert inner_tool.parent_span_id == inner_run.span_id
    assert outer.start_ns <= inner_run.start_ns and inner_run.end_ns <= outer.end_ns
    # every span's parent is in the trace, one root
    roots = [s for s in spans.values() if s.parent_span_id is None]
    assert [r.name for r in roots] == ["invoke_agent lead"]
    assert all(s.parent_span_id in spans for s in spans.values() if s.parent_span_id)


def test_failures_mark_the_spans(collector: Collector) -> None:
    tracer = configure(OTLPExporter(collector.url), delay=0.01)

    @tool
    def flaky(x: int) -> str:
        """Fails."""
        raise ValueError("disk on fire")

    boom = ModelHTTPError("upstream said no", status=500, provider="test", model="scripted")
    agent = Agent(model=ScriptedModel([call("flaky", {"x": 1}), boom]), tools=[flaky], name="f")
    result = agent.run("go")
    assert result.status == "failed"
    tracer.force_flush()
    [t] = collector.by_name("execute_tool flaky")
    assert t.status_code == 2 and "disk on fire" in t.status_message
    assert t.attributes["error.type"] == "tool_error"
    chats = sorted(collector.by_name("chat"), key=lambda s: s.start_ns)
    assert chats[0].status_code == 1
    assert chats[1].status_code == 2 and "upstream said no" in chats[1].status_message
    [run] = collector.by_name("invoke_agent")
    assert run.status_code == 2 and run.attributes["vivace.run.status"] == "failed"
    assert run.attributes["error.type"] == result.error.code


def test_a_paused_run_and_its_resume_are_one_trace(collector: Collector) -> None:
    tracer = configure(OTLPExporter(collector.url), delay=0.01)

    @tool(requires_approval=True)
    def delete_file(path: str) -> str:
        """Delete a file."""
        return f"deleted {path}"

    agent = Agent(
        model=ScriptedModel([call("delete_file", {"path": "/tmp/x"}), "Done."]),
        tools=[delete_file],
        name="ops",
    )
    paused = agent.run("clean up")
    assert paused.status == "paused"
    done = agent.resume(paused.paused, {paused.paused.pending[0].id: Approve()})
    assert done.status == "completed"
    tracer.force_flush()
    first, second = sorted(collector.by_name("invoke_agent ops"), key=lambda s: s.start_ns)
    assert first.attributes["vivace.run.status"] == "paused"
    assert first.span_id == paused.span_id
    assert second.trace_id == first.trace_id == done.trace_id
    assert second.parent_span_id == first.span_id and second.attributes["vivace.resumed"] is True
    [t] = collector.by_name("execute_tool delete_file")
    assert t.parent_span_id == second.span_id


async def test_streamed_runs_are_traced(collector: Collector) -> None:
    tracer = configure(OTLPExporter(collector.url), delay=0.01)
    agent = Agent(model=ScriptedModel(["a streamed answer"]), name="s")
    async for _ in agent.astream("hi"):
        pass
    tracer.force_flush()
    assert [s.name for s in sorted(collector.spans, key=lambda s: s.start_ns)] == [
        "invoke_agent s",
        "chat scripted",
    ]


def test_content_is_recorded_only_on_opt_in(collector: Collector) -> None:
    def run(capture: bool) -> None:
        tracer = configure(OTLPExporter(collector.url), delay=0.01, capture_content=capture)
        Agent(
            model=ScriptedModel([call("get_weather", {"city": "Lima"}), "Warm in Lima."]),
            tools=[get_weather],
            instructions="Be brief.",
            name="c",
        ).run("Weather in Lima?")
        tracer.force_flush()

    run(False)
    content_keys = {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
    }
    assert not any(content_keys & set(s.attributes) for s in collector.spans)
    assert not any(b"Lima" in body for body in collector.bodies)
    collector.spans.clear()
    run(True)
    [t] = collector.by_name("execute_tool")
    assert t.attributes["gen_ai.tool.call.arguments"] == '{"city": "Lima"}'
    assert t.attributes["gen_ai.tool.call.result"] == '"Sunny in Lima"'
    first = min(collector.by_name("chat"), key=lambda s: s.start_ns)
    assert "Weather in Lima?" in first.attributes["gen_ai.input.messages"]
    assert first.attributes["gen_ai.system_instructions"] == '"Be brief."'
    [run_span] = collector.by_name("invoke_agent")
    assert "Warm in Lima." in run_span.attributes["gen_ai.output.messages"]


def test_per_agent_tracing_capability(collector: Collector) -> None:
    tracer = Tracer([OTLPExporter(collector.url)], delay=0.01)
    traced = Agent(model=ScriptedModel(["a"]), name="traced", capabilities=[Tracing(tracer)])
    plain = Agent(model=ScriptedModel(["b"]), name="plain")
    traced.run("x")
    plain.run("y")
    tracer.force_flush()
    assert [s.name for s in collector.by_name("invoke_agent")] == ["invoke_agent traced"]
    tracer.shutdown()


def test_explicit_spans_nest_runs_given_their_trace(collector: Collector) -> None:
    """What a workflow engine does: a step span, and the agent run inside it joins it."""
    tracer = configure(OTLPExporter(collector.url), delay=0.01)
    agent = Agent(model=ScriptedModel(["step output"]), name="writer")
    with (
        tracer.span(
            "invoke_workflow docs", attributes={"gen_ai.operation.name": "invoke_workflow"}
        ) as wf,
        tracer.span("step draft") as step,
    ):
        result = agent.run("draft", trace_id=wf.trace_id)
    tracer.force_flush()
    [run] = collector.by_name("invoke_agent writer")
    assert run.trace_id == wf.trace_id == result.trace_id
    assert run.parent_span_id == step.span_id
    [w] = collector.by_name("invoke_workflow")
    assert w.parent_span_id is None


def test_a_span_opened_inside_a_tool_nests_under_the_tool_call(collector: Collector) -> None:
    tracer = configure(OTLPExporter(collector.url), delay=0.01)

    @tool
    def lookup(key: str) -> str:
        """Looks something up."""
        with tracer.span("db.query", attributes={"db.system": "sqlite"}):
            return key.upper()

    Agent(model=ScriptedModel([call("lookup", {"key": "k"}), "K"]), tools=[lookup]).run("go")
    tracer.force_flush()
    [t] = collector.by_name("execute_tool lookup")
    [db] = collector.by_name("db.query")
    assert db.parent_span_id == t.span_id and db.trace_id == t.trace_id


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_sampling_keeps_error_traces_always(collector: Collector, ratio: float) -> None:
    tracer = configure(OTLPExporter(collector.url), delay=0.01, sample_ratio=ratio)
    ok = Agent(model=ScriptedModel(["fine"] * 5), name="ok")
    bad = Agent(model=ScriptedModel([RuntimeError("model exploded")] * 5), name="bad")
    for _ in range(5):
        ok.run("x")
        bad.run("x")
    tracer.force_flush()
    names = [s.name for s in collector.spans]
    assert names.count("invoke_agent bad") == 5
    assert names.count("invoke_agent ok") == (5 if ratio == 1.0 else 0)
    # an error trace is exported whole (its successful spans too)
    assert len(collector.by_name("chat")) == (10 if ratio == 1.0 else 5)


def test_sampling_ratio_decides_by_trace_id() -> None:
    tracer = Tracer([], sample_ratio=0.25)
    ids = [f"{i:032x}" for i in range(0, 1 << 64, (1 << 64) // 1000)]
    ids = [i[:16] + f"{int(i, 16):016x}"[-16:] for i in ids]
    kept = sum(tracer.sampled(i) for i in ids)
    assert 200 <= kept <= 300
    assert all(tracer.sampled(i) == tracer.sampled(i) for i in ids[:50])
    with pytest.raises(Exception, match="sample_ratio"):
        Tracer([], sample_ratio=1.5)
