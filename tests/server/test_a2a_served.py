"""A2A in the server: ``/a2a/{agent_id}/`` (JSON-RPC) and the agent cards of a live
``vivace serve``, checked with the official ``a2a-sdk`` Python client and ``@a2a-js/sdk``
with the server's auth; tasks are the stored runs, so they survive a restart and every
worker sees them (a cancel sent to one worker stops the run on another)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
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
    SubscribeToTaskRequest,
    TaskState,
)

from vivace.server import JWTAuth, VivaceApp

from .conftest import ServeProcess

KEY = "a2a-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JS = Path(__file__).resolve().parents[1] / "js"
RPC = {"A2A-Version": "1.0", **AUTH}


def _msg(text: str | None = None, **kw: Any) -> Message:
    parts = [Part(text=text)] if text is not None else kw.pop("parts")
    return Message(message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=parts, **kw)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("a2a") / "v.db"


def serve(db: Path) -> ServeProcess:
    return ServeProcess(
        "tests.server.protocol_app:app",
        "--storage",
        f"sqlite:///{db}",
        env={"VIVACE_API_KEY": KEY},
    )


@pytest.fixture(scope="module")
def live(db: Path) -> Iterator[ServeProcess]:
    with serve(db) as srv:
        yield srv


async def _client(base: str, streaming: bool = True) -> Any:
    return await create_client(
        base,
        client_config=ClientConfig(
            streaming=streaming, httpx_client=httpx.AsyncClient(headers=AUTH, timeout=30)
        ),
        resolver_http_kwargs={"headers": AUTH},
    )


async def test_official_python_client_with_the_servers_auth(live: ServeProcess) -> None:
    base = f"{live.url}/a2a/forecaster/"
    async with httpx.AsyncClient() as http:
        card_url = base + ".well-known/agent-card.json"
        assert (await http.get(card_url)).status_code == 401
        card = (await http.get(card_url, headers=AUTH)).json()
        assert card["supportedInterfaces"] == [
            {"url": base, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ]
        assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "bearer"
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
        denied = await http.post(base, json=rpc, headers={"A2A-Version": "1.0"})
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == 'Bearer realm="vivace"'
    client = await _client(base)
    kinds, chunks, task_id, state = [], [], None, None
    async for ev in client.send_message(SendMessageRequest(message=_msg("Lyon"))):
        kind = ev.WhichOneof("payload")
        kinds.append(kind)
        if kind == "task":
            task_id = ev.task.id
        if kind == "artifact_update" and not ev.artifact_update.last_chunk:
            chunks.append(ev.artifact_update.artifact.parts[0].text)
        if kind == "status_update":
            state = ev.status_update.status.state
    assert kinds[0] == "task" and state == TaskState.TASK_STATE_COMPLETED
    assert "".join(chunks) == "It is sunny in Lyon, 21 C."
    got = await client.get_task(GetTaskRequest(id=task_id))
    assert got.status.state == TaskState.TASK_STATE_COMPLETED
    assert got.artifacts[-1].parts[0].text == "It is sunny in Lyon, 21 C."
    assert [m.parts[0].text for m in got.history] == ["Lyon", "It is sunny in Lyon, 21 C."]
    listed = await client.list_tasks(ListTasksRequest(context_id=got.context_id))
    assert [t.id for t in listed.tasks] == [task_id]
    await client.close()
    # the task is a server run: its events replay from the REST route, its session is there
    async with httpx.AsyncClient(base_url=live.url, headers=AUTH) as http:
        events = await http.get(f"/agents/forecaster/runs/{task_id}/events")
        assert "event: run_completed" in events.text
        session = (await http.get(f"/sessions/{got.context_id}")).json()
        assert [r["run_id"] for r in session["runs"]] == [task_id]


def test_official_js_client_with_the_servers_auth(live: ServeProcess, js_modules: Path) -> None:
    base = f"{live.url}/a2a/forecaster/"
    out = subprocess.run(
        ["node", str(JS / "a2a_client.mjs"), base, "Rome", json.dumps(AUTH)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    payloads = [x["stream"]["payload"] for x in lines if "stream" in x]
    assert payloads[0]["$case"] == "task"
    arts = [p["value"] for p in payloads if p["$case"] == "artifactUpdate"]
    assert arts[-1]["lastChunk"]
    assert arts[-1]["artifact"]["parts"][0]["content"]["value"] == "It is sunny in Rome, 21 C."
    states = [p["value"]["status"]["state"] for p in payloads if p["$case"] == "statusUpdate"]
    assert states[-1] == 3  # TASK_STATE_COMPLETED
    card = next(x["card"] for x in lines if "card" in x)
    assert card["name"] == "forecaster"
    # without the key the JS client cannot even read the card
    out = subprocess.run(
        ["node", str(JS / "a2a_client.mjs"), base, "Rome"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "401" in out.stderr


async def test_an_input_required_task_survives_a_restart(db: Path, live: ServeProcess) -> None:
    """The task waits for an approval; the server stops; a new server process finds the
    task in storage (GetTask, ListTasks) and the answer completes it."""
    base = "/a2a/bank/"
    send = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "go"}]}},
    }
    with serve(db) as first:
        r = httpx.post(first.url + base, json=send, headers=RPC, timeout=30).json()
        task = r["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
        data = next(p["data"] for p in task["status"]["message"]["parts"] if "data" in p)
        assert [(p["id"], p["name"]) for p in data["pending"]] == [("t1", "transfer")]
    with serve(db) as second:  # a restarted server: nothing of the first in memory
        client = await _client(second.url + base, streaming=False)
        got = await client.get_task(GetTaskRequest(id=task["id"]))
        assert got.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert got.context_id == task["contextId"]
        listed = await client.list_tasks(ListTasksRequest(status=got.status.state))
        assert task["id"] in [t.id for t in listed.tasks]
        from vivace.a2a.tasks import data_part

        answer = _msg(
            parts=[data_part({"approvals": {"t1": True}})],
            task_id=task["id"],
            context_id=task["contextId"],
        )
        events = [ev async for ev in client.send_message(SendMessageRequest(message=answer))]
        done = events[-1].task
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        assert done.artifacts[-1].parts[0].text == "Transfer: sent 9"
        got = await client.get_task(GetTaskRequest(id=task["id"]))
        assert got.status.state == TaskState.TASK_STATE_COMPLETED
        await client.close()


async def test_a_cancel_sent_to_another_worker_stops_the_run(
    tmp_path: Path, thread_server: Any
) -> None:
    """Two workers (apps with the storage-backed event log) on one SQLite file: a task runs on
    the first; the second sees it working, streams it (SubscribeToTask, read from storage)
    and cancels it there through storage."""
    from vivace.storage import SQLiteStorage

    from . import protocol_app

    def worker() -> VivaceApp:
        return VivaceApp(
            agents=[protocol_app.bank],
            storage=SQLiteStorage(str(tmp_path / "x.db")),
            auth=False,
            event_log="storage",
            protocols=["a2a"],
        )

    with thread_server(worker()) as one, thread_server(worker()) as two:
        first = await create_client(f"{one.url}/a2a/bank/", client_config=ClientConfig())
        task_id: str | None = None
        states: list[int] = []
        working = asyncio.Event()

        async def consume() -> None:
            nonlocal task_id
            async for ev in first.send_message(SendMessageRequest(message=_msg("slow"))):
                if ev.WhichOneof("payload") == "task":
                    task_id = ev.task.id
                if ev.WhichOneof("payload") == "status_update":
                    states.append(ev.status_update.status.state)
                    working.set()

        consumer = asyncio.create_task(consume())
        await asyncio.wait_for(working.wait(), 20)
        second = await create_client(f"{two.url}/a2a/bank/", client_config=ClientConfig())
        seen = await second.get_task(GetTaskRequest(id=task_id))
        assert seen.status.state == TaskState.TASK_STATE_WORKING  # running on the other worker
        followed: list[Any] = []

        async def follow() -> None:
            async for ev in second.subscribe(SubscribeToTaskRequest(id=task_id)):
                followed.append(ev)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        cancelled = await second.cancel_task(CancelTaskRequest(id=task_id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        await asyncio.wait_for(consumer, 20)  # the run ended on its worker: its stream too
        assert states[-1] == TaskState.TASK_STATE_CANCELED
        await asyncio.wait_for(follower, 20)  # the other worker's stream ended with it
        assert followed[0].WhichOneof("payload") == "task"
        assert followed[0].task.status.state == TaskState.TASK_STATE_WORKING
        last = followed[-1]
        assert last.WhichOneof("payload") == "status_update"
        assert last.status_update.status.state == TaskState.TASK_STATE_CANCELED
        for c in (first, second):
            got = await c.get_task(GetTaskRequest(id=task_id))
            assert got.status.state == TaskState.TASK_STATE_CANCELED
            await c.close()


async def test_tasks_belong_to_the_tokens_user(thread_server: Any) -> None:
    import jwt

    from vivace.storage import InMemoryStorage

    from . import protocol_app

    secret = "k" * 32

    def auth(user: str) -> dict[str, str]:
        claims = {"sub": user, "scope": "runs", "exp": time.time() + 600}
        return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}

    app = VivaceApp(
        agents=[protocol_app.forecaster],
        storage=InMemoryStorage(),
        auth=JWTAuth(secret),
        protocols=["a2a"],
    )
    with thread_server(app) as srv:
        base = f"{srv.url}/a2a/forecaster/"
        send = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "Oslo"}]}
            },
        }
        v = {"A2A-Version": "1.0"}
        alice = httpx.post(base, json=send, headers={**v, **auth("alice")}).json()["result"]
        task_id = alice["task"]["id"]
        get = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
        mine = httpx.post(base, json=get, headers={**v, **auth("alice")}).json()
        assert mine["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
        theirs = httpx.post(base, json=get, headers={**v, **auth("bob")}).json()
        assert theirs["error"]["code"] == -32001  # another user's task: not found
        listing = {"jsonrpc": "2.0", "id": 3, "method": "ListTasks", "params": {}}
        assert (
            httpx.post(base, json=listing, headers={**v, **auth("bob")}).json()["result"]["tasks"]
            == []
        )
        # bob cannot continue alice's context either: the task fails, naming no session
        send["params"]["message"]["contextId"] = alice["task"]["contextId"]  # type: ignore[index]
        refused = httpx.post(base, json=send, headers={**v, **auth("bob")}).json()["result"]
        assert refused["task"]["status"]["state"] == "TASK_STATE_FAILED"
        message = refused["task"]["status"]["message"]["parts"][0]["text"]
        assert message == f"no session {alice['task']['contextId']!r}"


async def test_the_root_card_is_the_only_agents(thread_server: Any) -> None:
    from . import protocol_app

    one = VivaceApp(agents=[protocol_app.forecaster], auth=False, protocols=["a2a"])
    two = VivaceApp(
        agents=[protocol_app.forecaster, protocol_app.bank], auth=False, protocols=["a2a"]
    )
    with thread_server(one) as a, thread_server(two) as b:
        card = httpx.get(f"{a.url}/.well-known/agent-card.json").json()
        assert card["name"] == "forecaster"
        assert card["supportedInterfaces"][0]["url"] == f"{a.url}/a2a/forecaster/"
        assert "securitySchemes" not in card  # an open server asks for no credentials
        r = httpx.get(f"{b.url}/.well-known/agent-card.json")
        assert r.status_code == 404 and "/a2a/bank/.well-known/agent-card.json" in r.text
        assert httpx.get(f"{b.url}/a2a/nope/.well-known/agent-card.json").status_code == 404


async def test_a_vivace_agent_calls_a_served_agent_with_a2a_agent(live: ServeProcess) -> None:
    from vivace import Agent
    from vivace.a2a import A2AAgent
    from vivace.testing import ScriptedModel, call

    remote = A2AAgent(f"{live.url}/a2a/forecaster/", name="forecaster", headers=AUTH)
    assert await remote.arun("Nice") == "It is sunny in Nice, 21 C."
    lead = Agent(
        model=ScriptedModel([call("forecaster", {"task": "Paris"}), "Done."]),
        tools=[remote.as_tool()],
    )
    result = await lead.arun("weather in Paris?")
    assert result.output == "Done."
    tool_result = result.messages[-2].parts[0]
    assert tool_result.content == "It is sunny in Paris, 21 C."
    await remote.aclose()
    anonymous = A2AAgent(f"{live.url}/a2a/forecaster/", name="forecaster")
    with pytest.raises(Exception, match="401"):
        await anonymous.arun("Nice")
    await anonymous.aclose()
