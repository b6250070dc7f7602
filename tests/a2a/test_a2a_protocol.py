"""A2A 1.0: a Vivace agent served with the official a2a-sdk server parts, checked with the
official Python client (a2a-sdk), the JS client (@a2a-js/sdk) and raw JSON-RPC; and a remote
A2A agent used as a tool and a team member."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("a2a")

from a2a.client import ClientConfig, create_client
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)

from vivace import Agent, tool
from vivace.agent.events import NestedEvent
from vivace.testing import FunctionModel, ScriptedModel, Stream, call

JS = Path(__file__).resolve().parents[1] / "js"


def _msg(text: str | None = None, **kw: Any) -> Message:
    parts = [Part(text=text)] if text is not None else kw.pop("parts")
    return Message(message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=parts, **kw)


def _echo_agent(storage: Any = None) -> Agent:
    return Agent(
        model=FunctionModel(lambda m, r: f"you said: {m[-1].text}"),
        name="echo",
        description="Repeats what you say.",
        storage=storage,
    )


async def test_card_and_raw_jsonrpc_with_the_version_header(serve_a2a: Any) -> None:
    base = serve_a2a(_echo_agent())
    async with httpx.AsyncClient(base_url=base) as http:
        card = (await http.get("/.well-known/agent-card.json")).json()
        for key in (
            "name",
            "description",
            "version",
            "supportedInterfaces",
            "capabilities",
            "defaultInputModes",
            "defaultOutputModes",
            "skills",
        ):
            assert key in card
        assert card["supportedInterfaces"][0] == {
            "url": f"{base}/",
            "protocolBinding": "JSONRPC",
            "protocolVersion": "1.0",
        }
        assert card["capabilities"]["streaming"] is True
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hello"}]}
            },
        }
        ok = (await http.post("/", json=body, headers={"A2A-Version": "1.0"})).json()
        task = ok["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"
        assert task["artifacts"][-1]["parts"][0]["text"] == "you said: hello"
        old = (await http.post("/", json=body)).json()  # no header: a 0.3 client
        assert old["error"]["code"] == -32009
        missing = (
            await http.post(
                "/",
                json={**body, "id": 2, "method": "GetTask", "params": {"id": "nope"}},
                headers={"A2A-Version": "1.0"},
            )
        ).json()
        assert missing["error"]["code"] == -32001


async def test_stored_tasks_with_odd_ids_and_text(serve_a2a: Any, tmp_path: Path) -> None:
    """With storage (tasks are runs): a task id no run can have (control characters, too
    long, "..") is an unknown task (-32001) on every method, not an internal error; a run
    whose stored text has an unpaired surrogate (a Python caller can store one) does not
    break GetTask or ListTasks: the character arrives as U+FFFD."""
    from vivace.storage import SQLiteStorage

    storage = SQLiteStorage(str(tmp_path / "a2a.db"))
    agent = _echo_agent(storage)
    await agent.arun("a \ud800 b 中文 😀", session_id="odd", run_id="odd-run")
    base = serve_a2a(agent)
    h = {"A2A-Version": "1.0"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
            r = await http.post(
                "/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers=h
            )
            assert r.status_code == 200
            body = r.text
            if body.startswith("data:"):  # a streaming method's first (and only) frame
                body = body.split("\n", 1)[0][5:]
            return dict(json.loads(body))

        for bad in ["bad\x00id", "bell\x07", "x" * 300, ".."]:
            message = {"messageId": "m", "role": "ROLE_USER", "taskId": bad, "parts": [{"text": "hi"}]}  # fmt: skip
            for method, params in [
                ("GetTask", {"id": bad}),
                ("CancelTask", {"id": bad}),
                ("SubscribeToTask", {"id": bad}),
                ("SendMessage", {"message": message}),
            ]:
                out = await rpc(method, params)
                assert out.get("error", {}).get("code") == -32001, (method, bad, out)
        task = (await rpc("GetTask", {"id": "odd-run"}))["result"]
        said = [p["text"] for m in task["history"] for p in m["parts"]]
        assert said[0] == "a \ufffd b 中文 😀" and task["status"]["state"] == "TASK_STATE_COMPLETED"
        for params in ({}, {"contextId": "odd"}):
            listed = (await rpc("ListTasks", params))["result"]
            assert [t["id"] for t in listed["tasks"]] == ["odd-run"]
    await storage.close()


async def test_official_python_client_send_stream_get_list(serve_a2a: Any) -> None:
    agent = Agent(model=ScriptedModel([Stream("one ", "two ", "three"), "plain"]), name="counter")
    base = serve_a2a(agent)
    client = await create_client(base, client_config=ClientConfig(streaming=True))
    kinds, chunks, final = [], [], None
    async for ev in client.send_message(SendMessageRequest(message=_msg("count"))):
        kind = ev.WhichOneof("payload")
        kinds.append(kind)
        if kind == "artifact_update":
            text = ev.artifact_update.artifact.parts[0].text
            (chunks if not ev.artifact_update.last_chunk else [None]).append(text)
            if ev.artifact_update.last_chunk:
                final = text
        if kind == "task":
            task_id = ev.task.id
        if kind == "status_update":
            state = ev.status_update.status.state
    assert kinds[0] == "task" and "artifact_update" in kinds
    assert chunks == ["one ", "two ", "three"] and final == "one two three"
    assert state == TaskState.TASK_STATE_COMPLETED
    got = await client.get_task(GetTaskRequest(id=task_id))
    assert got.status.state == TaskState.TASK_STATE_COMPLETED
    assert got.artifacts[-1].parts[0].text == "one two three"
    listed = await client.list_tasks(ListTasksRequest())
    assert task_id in [t.id for t in listed.tasks]
    blocking = await create_client(base, client_config=ClientConfig(streaming=False))
    events = [ev async for ev in blocking.send_message(SendMessageRequest(message=_msg("again")))]
    assert len(events) == 1 and events[0].task.artifacts[-1].parts[0].text == "plain"
    await client.close()
    await blocking.close()


async def test_every_update_names_the_run_and_its_trace(serve_a2a: Any) -> None:
    """Status updates and artifacts carry ``metadata.trace_id`` (the run's trace, as in the
    Studio and the tracing backends) and ``metadata.run_id``: a client error leads to the
    trace."""
    agent = Agent(model=ScriptedModel([Stream("你好 ", "👋")]), name="greeter")
    base = serve_a2a(agent)
    client = await create_client(base, client_config=ClientConfig(streaming=True))
    metas: list[tuple[str, dict[str, Any]]] = []
    async for ev in client.send_message(SendMessageRequest(message=_msg("hi"))):
        kind = ev.WhichOneof("payload")
        if kind == "task":
            task_id = ev.task.id
        elif kind in ("status_update", "artifact_update"):
            update = getattr(ev, kind)
            meta = update.artifact.metadata if kind == "artifact_update" else update.metadata
            metas.append((kind, dict(meta)))
    await client.close()
    kinds = {k for k, _ in metas}
    assert kinds == {"status_update", "artifact_update"}
    traces = {m.get("trace_id") for _, m in metas}
    assert len(traces) == 1
    trace = traces.pop()
    assert isinstance(trace, str) and len(trace) == 32 and int(trace, 16) >= 0
    assert {m.get("run_id") for _, m in metas} == {task_id}


async def test_input_required_for_an_approval_then_completed(serve_a2a: Any) -> None:
    ran: list[int] = []

    @tool(requires_approval=True)
    def transfer(amount: int) -> str:
        ran.append(amount)
        return "sent"

    agent = Agent(
        model=ScriptedModel([call("transfer", {"amount": 9}, id="t1"), "Transferred 9."]),
        tools=[transfer],
        name="bank",
    )
    base = serve_a2a(agent)
    client = await create_client(base, client_config=ClientConfig(streaming=True))
    states, task_id, ctx_id = [], None, None
    async for ev in client.send_message(SendMessageRequest(message=_msg("send 9"))):
        if ev.WhichOneof("payload") == "task":
            task_id, ctx_id = ev.task.id, ev.task.context_id
        if ev.WhichOneof("payload") == "status_update":
            states.append(ev.status_update.status.state)
            pending_msg = ev.status_update.status.message
    assert states[-1] == TaskState.TASK_STATE_INPUT_REQUIRED and ran == []
    from google.protobuf.json_format import MessageToDict

    data = MessageToDict(next(p for p in pending_msg.parts if p.HasField("data")).data)
    assert data["pending"][0]["id"] == "t1" and data["pending"][0]["name"] == "transfer"
    from vivace.a2a.server import _data_part

    reply = _msg(
        parts=[_data_part({"approvals": {"t1": True}})], task_id=task_id, context_id=ctx_id
    )
    final = None
    async for ev in client.send_message(SendMessageRequest(message=reply)):
        if ev.WhichOneof("payload") == "status_update":
            final = ev.status_update.status.state
    assert final == TaskState.TASK_STATE_COMPLETED and ran == [9]
    got = await client.get_task(GetTaskRequest(id=task_id))
    assert got.artifacts[-1].parts[0].text == "Transferred 9."
    await client.close()


@pytest.mark.parametrize("stored", [False, True], ids=["in-memory", "sqlite"])
async def test_an_answer_that_decides_nothing_keeps_the_task_waiting(
    serve_a2a: Any, tmp_path: Path, stored: bool
) -> None:
    """Only a one-word approval (or approvals naming exactly the pending calls) runs a call
    that needs approval: a sentence that starts with "ok" or "yes", or a data part naming
    the wrong calls, leaves the task INPUT_REQUIRED with a message saying why."""
    from google.protobuf.json_format import MessageToDict

    from vivace.a2a.tasks import data_part
    from vivace.storage import SQLiteStorage

    ran: list[str] = []

    @tool(requires_approval=True)
    def delete_file(path: str) -> str:
        ran.append(path)
        return f"deleted {path}"

    storage = SQLiteStorage(str(tmp_path / "a2a.db")) if stored else None
    agent = Agent(
        model=FunctionModel(
            lambda m, r: (
                f"done: {m[-1].parts[0].content}"
                if m[-1].role == "tool"
                else call("delete_file", {"path": "/important/文件"}, id="d1")
            )
        ),
        tools=[delete_file],
        name="files",
        storage=storage,
    )
    base = serve_a2a(agent)
    client = await create_client(base, client_config=ClientConfig(streaming=True))

    async def send(message: Message) -> tuple[Any, Any, str, str]:
        state = text = None
        task_id = ctx = ""
        async for ev in client.send_message(SendMessageRequest(message=message)):
            kind = ev.WhichOneof("payload")
            if kind == "task":
                task_id, ctx = ev.task.id, ev.task.context_id
                state, text = ev.task.status.state, ev.task.status.message
            elif kind == "status_update":
                state, text = ev.status_update.status.state, ev.status_update.status.message
        return state, text, task_id, ctx

    state, _, task_id, ctx = await send(_msg("delete it"))
    assert state == TaskState.TASK_STATE_INPUT_REQUIRED
    undecided = [
        [Part(text="okay NO do not do it")],
        [Part(text="Yesterday you deleted the wrong one, stop")],
        [Part(text="yes, but first: what does it delete? 🤔")],
        [Part(text="")],
        [data_part({"approvals": {"nosuch": True}})],
        [data_part({"approvals": {}})],
        [data_part({"approvals": {"d1": "yes"}})],
        [data_part({"something": 1})],
    ]
    for parts in undecided:
        state, message, _, _ = await send(_msg(parts=parts, task_id=task_id, context_id=ctx))
        assert state == TaskState.TASK_STATE_INPUT_REQUIRED, parts
        said = message.parts[0].text
        assert "approve or reject" in said.lower()
        data = MessageToDict(next(p for p in message.parts if p.HasField("data")).data)
        assert [p["id"] for p in data["pending"]] == ["d1"]
        got = await client.get_task(GetTaskRequest(id=task_id))
        assert got.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert ran == []
    # the unknown id is named, with what is pending
    state, message, _, _ = await send(
        _msg(parts=[data_part({"approvals": {"nosuch": True}})], task_id=task_id, context_id=ctx)
    )
    assert "'nosuch'" in message.parts[0].text and "'d1'" in message.parts[0].text
    # a clear answer still works after all that
    state, _, _, _ = await send(_msg(" Approve. ", task_id=task_id, context_id=ctx))
    assert state == TaskState.TASK_STATE_COMPLETED and ran == ["/important/文件"]
    # and a one-word "No" rejects
    state, _, task2, ctx2 = await send(_msg("delete it again"))
    assert state == TaskState.TASK_STATE_INPUT_REQUIRED
    state, _, _, _ = await send(_msg("No", task_id=task2, context_id=ctx2))
    assert state == TaskState.TASK_STATE_COMPLETED and ran == ["/important/文件"]
    await client.close()
    if storage is not None:
        await storage.close()


async def test_cancel_a_running_task(serve_a2a: Any) -> None:
    started = asyncio.Event()

    async def slow(messages: Any, request: Any) -> str:
        await asyncio.sleep(30)
        return "late"

    base = serve_a2a(Agent(model=FunctionModel(slow), name="slow"))
    client = await create_client(base, client_config=ClientConfig(streaming=True))
    task_id = None
    states = []

    async def consume() -> None:
        nonlocal task_id
        async for ev in client.send_message(SendMessageRequest(message=_msg("go"))):
            if ev.WhichOneof("payload") == "task":
                task_id = ev.task.id
            if ev.WhichOneof("payload") == "status_update":
                states.append(ev.status_update.status.state)
                if ev.status_update.status.state == TaskState.TASK_STATE_WORKING:
                    started.set()

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    other = await create_client(base, client_config=ClientConfig(streaming=False))
    cancelled = await other.cancel_task(CancelTaskRequest(id=task_id))
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    await asyncio.wait_for(consumer, 10)
    got = await other.get_task(GetTaskRequest(id=task_id))
    assert got.status.state == TaskState.TASK_STATE_CANCELED
    await client.close()
    await other.close()


def test_official_js_client_streams_a_run(serve_a2a: Any, js_modules: Path) -> None:
    agent = Agent(model=ScriptedModel([Stream("Hello ", "from ", "vivace")]), name="helper")
    base = serve_a2a(agent)
    out = subprocess.run(
        ["node", str(JS / "a2a_client.mjs"), base, "hi"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    payloads = [x["stream"]["payload"] for x in lines if "stream" in x]
    assert payloads[0]["$case"] == "task"
    history = payloads[0]["value"]["history"][0]["parts"][0]["content"]
    assert history == {"$case": "text", "value": "hi"}
    arts = [p["value"] for p in payloads if p["$case"] == "artifactUpdate"]
    assert [a["artifact"]["parts"][0]["content"]["value"] for a in arts if not a["lastChunk"]] == [
        "Hello ",
        "from ",
        "vivace",
    ]
    assert (
        arts[-1]["lastChunk"]
        and arts[-1]["artifact"]["parts"][0]["content"]["value"] == "Hello from vivace"
    )
    states = [p["value"]["status"]["state"] for p in payloads if p["$case"] == "statusUpdate"]
    assert states[-1] == 3  # TASK_STATE_COMPLETED
    card = next(x["card"] for x in lines if "card" in x)
    assert card["name"] == "helper" and card["supportedInterfaces"][0]["protocolVersion"] == "1.0"


async def test_remote_agent_as_a_tool_and_a_team_member(serve_a2a: Any) -> None:
    from vivace.a2a import A2AAgent
    from vivace.teams import Team

    remote_agent = Agent(model=ScriptedModel([Stream("remote ", "answer")] * 3), name="far")
    base = serve_a2a(remote_agent)
    remote = A2AAgent(base, name="far", description="A remote helper.")
    assert await remote.arun("hi") == "remote answer"
    team = Team(members=[remote], mode="route", model=ScriptedModel([call("far", {"task": "q"})]))
    stream = team.astream("ask far")
    events = [e async for e in stream]
    assert stream.result is not None and stream.result.output == "remote answer"
    nested = [e.event.text for e in events if isinstance(e, NestedEvent)]  # type: ignore[union-attr]
    assert nested == ["remote ", "answer"]
    await remote.aclose()


async def test_a_remote_approval_surfaces_and_resumes(serve_a2a: Any) -> None:
    from vivace import Approve
    from vivace.a2a import A2AAgent

    @tool(requires_approval=True)
    def launch() -> str:
        return "launched"

    far = Agent(
        model=ScriptedModel([call("launch", {}, id="L"), "launched it"]), tools=[launch], name="far"
    )
    remote = A2AAgent(serve_a2a(far), name="far")
    top = Agent(
        model=ScriptedModel([call("far", {"task": "launch"}, id="T"), "done"]),
        tools=[remote.as_tool()],
    )
    paused = await top.arun("go")
    assert [c.id for c in paused.pending] == ["T/L"]
    done = await top.aresume(paused.paused, {"T/L": Approve()})  # type: ignore[arg-type]
    assert done.output == "done"
    assert top.model.requests[-1].messages[-1].parts[0].content == "launched it"  # type: ignore[union-attr]
    await remote.aclose()
