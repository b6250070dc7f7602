"""Human-in-the-loop approvals, hooks and guardrails, cancellation."""

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

from vivace import Agent, Approve, GuardrailTripped, Hooks, PausedRun, Reject, tool
from vivace.errors import ResumeError, RunCancelled, RunNotFound
from vivace.messages import Message, TextPart
from vivace.testing import FunctionModel, ScriptedModel, call

sent: list[str] = []


@tool(requires_approval=True)
def send_email(to: str, body: str) -> str:
    """Send an email."""
    sent.append(to)
    return f"sent to {to}"


def lookup(name: str) -> str:
    return f"{name}@example.com"


@pytest.fixture(autouse=True)
def _clear():
    sent.clear()


async def test_pause_lists_pending_and_runs_the_rest():
    model = ScriptedModel(
        [
            [call("lookup", {"name": "bob"}), call("send_email", {"to": "bob@x", "body": "hi"})],
            "done",
        ]
    )
    agent = Agent(model=model, tools=[lookup, send_email])
    stream = agent.astream("email bob")
    events = [e async for e in stream]
    result = stream.result
    assert result.status == "paused"
    assert result.output is None
    assert [c.name for c in result.pending] == ["send_email"]
    assert events[-1].type == "run_paused"
    assert events[-1].pending[0]["name"] == "send_email"
    assert sent == []  # nothing sent before approval
    # the paused state is plain JSON
    paused_json = json.dumps(result.paused.to_dict())
    resumed = await agent.aresume(json.loads(paused_json), {result.pending[0].id: True})
    assert resumed.status == "completed" and resumed.output == "done"
    assert sent == ["bob@x"]
    assert resumed.run_id == result.run_id
    # tool results of both calls were given to the model in the original order
    tool_msg = model.requests[1].messages[-1]
    assert [r.name for r in tool_msg.tool_results] == ["lookup", "send_email"]
    assert resumed.usage.requests == 2


async def test_reject_with_reason_and_edited_arguments():
    agent = Agent(
        model=ScriptedModel(
            [
                [
                    call("send_email", {"to": "a@x", "body": "1"}, id="c1"),
                    call("send_email", {"to": "b@x", "body": "2"}, id="c2"),
                ],
                "ok",
            ]
        ),
        tools=[send_email],
    )
    paused = await agent.arun("x")
    result = await agent.aresume(
        paused.paused,
        {"c1": Reject("not this one"), "c2": Approve(arguments={"to": "c@x", "body": "2"})},
    )
    assert result.output == "ok"
    assert sent == ["c@x"]
    results = {r.call_id: r for r in agent.model.requests[1].messages[-1].tool_results}
    assert results["c1"].is_error and "not this one" in results["c1"].content
    assert results["c2"].content == "sent to c@x"


async def test_resume_by_run_id_in_process_and_bad_approvals():
    agent = Agent(
        model=ScriptedModel([call("send_email", {"to": "a", "body": "b"}, id="c1"), "ok"]),
        tools=[send_email],
    )
    paused = await agent.arun("x")
    with pytest.raises(ResumeError, match="not pending"):
        await agent.aresume(paused.paused, {"zzz": True})
    with pytest.raises(ResumeError, match="no decision"):
        await agent.aresume(paused.paused, {})
    with pytest.raises(ResumeError, match="edited arguments"):
        await agent.aresume(paused.paused, {"c1": Approve(arguments={"to": 5})})
    assert sent == []
    result = await agent.aresume(paused.run_id, {"c1": False})
    assert result.status == "completed"
    with pytest.raises(RunNotFound):
        await agent.aresume(paused.run_id, {"c1": True})


def test_resume_in_another_process(tmp_path):
    """The paused state written by one process is resumed by another."""
    script = textwrap.dedent(
        """
        import json, sys
        from vivace import Agent, tool
        from vivace.testing import ScriptedModel, call

        @tool(requires_approval=True)
        def pay(amount: int) -> str:
            return f"paid {amount}"

        model = ScriptedModel([call("pay", {"amount": 5}, id="p1"), "payment done"])
        agent = Agent(model=model, tools=[pay])
        if sys.argv[1] == "start":
            r = agent.run("pay 5")
            print(json.dumps(r.paused.to_dict()))
        else:
            model.position = 1
            paused = json.loads(open(sys.argv[2]).read())
            r = agent.resume(paused, {"p1": True})
            print(r.status, r.output, r.messages[-2].tool_results[0].content)
        """
    )
    path = tmp_path / "app.py"
    path.write_text(script)
    first = subprocess.run(
        [sys.executable, str(path), "start"], capture_output=True, text=True, check=True
    )
    state = tmp_path / "paused.json"
    state.write_text(first.stdout)
    second = subprocess.run(
        [sys.executable, str(path), "resume", str(state)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert second.stdout.strip() == "completed payment done paid 5"


class Recorder(Hooks):
    def __init__(self):
        self.calls = []

    def before_run(self, ctx, input):
        self.calls.append("before_run")
        return Message("user", [TextPart(input.text.upper())])

    async def before_model_request(self, ctx, request):
        self.calls.append("before_model_request")

    def after_model_request(self, ctx, response):
        self.calls.append("after_model_request")

    def before_tool_call(self, ctx, call, arguments):
        self.calls.append("before_tool_call")
        return {**arguments, "name": "patched"}

    def after_tool_call(self, ctx, call, result):
        self.calls.append("after_tool_call")
        return result + "!"

    def after_run(self, ctx, result):
        self.calls.append(f"after_run:{result.status}")


async def test_hooks_see_and_modify_everything():
    hooks = Recorder()
    model = ScriptedModel([call("lookup", {"name": "x"}), "ok"])
    result = await Agent(model=model, tools=[lookup], hooks=[hooks]).arun("hello")
    assert model.requests[0].messages[0].text == "HELLO"
    assert result.messages[2].tool_results[0].content == "patched@example.com!"
    assert hooks.calls == [
        "before_run",
        "before_model_request",
        "after_model_request",
        "before_tool_call",
        "after_tool_call",
        "before_model_request",
        "after_model_request",
        "after_run:completed",
    ]


class NoSecrets(Hooks):
    def before_run(self, ctx, input):
        if "password" in input.text:
            raise GuardrailTripped("input mentions a password")


class NoDeletes(Hooks):
    def before_tool_call(self, ctx, call, arguments):
        if call.name == "lookup" and arguments["name"] == "root":
            raise GuardrailTripped("root lookups are not allowed")


async def test_guardrails_block_cleanly():
    agent = Agent(model=ScriptedModel(["never"]), hooks=NoSecrets())
    stream = agent.astream("my password is hunter2")
    events = [e async for e in stream]
    result = stream.result
    assert result.status == "blocked"
    assert result.error.reason == "input mentions a password"
    assert events[-1].type == "run_failed" and events[-1].status == "blocked"
    assert agent.model.requests == []  # the model never saw it
    with pytest.raises(GuardrailTripped):
        _ = result.output

    agent = Agent(
        model=ScriptedModel([call("lookup", {"name": "root"})]), tools=[lookup], hooks=[NoDeletes()]
    )
    result = await agent.arun("x")
    assert result.status == "blocked" and "root" in result.error.reason


async def test_cancel_by_run_id():
    started = asyncio.Event()

    async def slow_model(messages, request):
        started.set()
        await asyncio.sleep(10)
        return "late"

    agent = Agent(model=FunctionModel(slow_model))
    task = asyncio.create_task(agent.arun("x", run_id="r-cancel"))
    await started.wait()
    assert Agent.cancel("r-cancel") is True
    result = await asyncio.wait_for(task, 2)
    assert result.status == "cancelled"
    assert isinstance(result.error, RunCancelled)
    assert Agent.cancel("r-cancel") is False  # no longer running


async def test_cancel_streaming_run():
    gate = asyncio.Event()

    async def slow_model(messages, request):
        gate.set()
        await asyncio.sleep(10)
        return "late"

    agent = Agent(model=FunctionModel(slow_model))
    stream = agent.astream("x", run_id="r-stream")
    first = await stream.__anext__()
    assert first.type == "run_started"

    async def consume():
        return [e async for e in stream]

    task = asyncio.create_task(consume())
    await gate.wait()
    import vivace

    assert vivace.cancel("r-stream")
    events = await asyncio.wait_for(task, 2)
    assert events[-1].type == "run_cancelled"
    assert stream.result.status == "cancelled"


async def test_cancel_while_the_reader_holds_an_event_leaves_the_reader_alone():
    # between two events the reader's task does its own work: cancel() must not interrupt
    # that; the run ends at the reader's next request
    async def model(messages, request):
        return "never seen"

    agent = Agent(model=FunctionModel(model))
    stream = agent.astream("x", run_id="r-held")
    assert (await stream.__anext__()).type == "run_started"
    import vivace

    assert vivace.cancel("r-held")
    await asyncio.sleep(0.05)  # the reader's own work: not cancelled
    rest = [e.type async for e in stream]
    assert rest[-1] == "run_cancelled"
    assert stream.result.status == "cancelled"


async def test_asyncio_cancellation_propagates():
    async def slow_model(messages, request):
        await asyncio.sleep(10)
        return "late"

    agent = Agent(model=FunctionModel(slow_model))
    task = asyncio.create_task(agent.arun("x"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_paused_run_round_trips_through_dataclass():
    agent = Agent(
        model=ScriptedModel([call("send_email", {"to": "a", "body": "b"})]), tools=[send_email]
    )
    result = await agent.arun("x", session_id="s", user_id="u")
    again = PausedRun.from_dict(json.loads(json.dumps(result.paused.to_dict())))
    assert again.to_dict() == result.paused.to_dict()
    assert again.session_id == "s" and again.user_id == "u"


async def test_resumed_run_continues_one_gap_free_event_stream():
    agent = Agent(
        model=ScriptedModel([call("send_email", {"to": "a", "body": "b"}, id="c1"), "ok"]),
        tools=[send_email],
    )
    first = agent.astream("x")
    events = [e async for e in first]
    stream = agent.aresume_stream(first.result.paused.to_dict(), {"c1": Reject("no")})
    events += [e async for e in stream]
    assert [e.seq for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[types.index("run_paused") + 1] == "run_resumed"
    assert events[types.index("run_resumed")].decisions == {"c1": "rejected"}
    assert types[-1] == "run_completed"


async def test_arun_counts_the_events_it_does_not_build():
    """``arun()`` builds no events (nobody reads them) but numbers them all the same: a run it
    pauses resumes as a stream at the seq the same run paused by ``astream()`` would have."""

    def make(*rest: str) -> Agent:
        script = rest or [
            "thinking out loud",  # a text-only turn that is not final (output_type below)
            [
                call("lookup", {"name": "bob"}, id="c0"),
                call("send_email", {"to": "bob@x", "body": "hi"}, id="c1"),
            ],
            '{"done": true}',
        ]
        return Agent(
            model=ScriptedModel(script),
            tools=[lookup, send_email],
            output_type=dict[str, bool],
            output_mode="native",
        )

    streamed = make().astream("email bob", stream_model=False)  # as arun() asks the model
    events = [e async for e in streamed]
    assert events[-1].type == "run_paused"
    ran = await make().arun("email bob")
    assert ran.status == "paused"
    assert ran.paused.seq == streamed.result.paused.seq == events[-1].seq + 1
    resumed = make('{"done": true}').aresume_stream(ran.paused.to_dict(), {"c1": Reject("no")})
    tail = [e async for e in resumed]
    assert [e.seq for e in tail] == list(range(events[-1].seq + 1, events[-1].seq + 1 + len(tail)))
    assert tail[-1].type == "run_completed" and tail[-1].output == {"done": True}
