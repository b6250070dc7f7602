"""AG-UI in the server: ``POST /agents/{id}/agui`` of a live ``vivace serve``, driven by the
official ``@ag-ui/client`` with the server's auth: a frontend tool the client executes (the run
pauses, the client's tool message resumes it) and an approval interrupt answered with
``resume`` entries, all one stored run; the thread continues on another worker."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("ag_ui")

from vivace.server import JWTAuth, VivaceApp

from .conftest import ServeProcess, parse_sse

KEY = "agui-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JS = Path(__file__).resolve().parents[1] / "js"
PICK_COLOR = {
    "name": "pick_color",
    "description": "Ask the user to pick a color.",
    "parameters": {
        "type": "object",
        "properties": {"options": {"type": "array", "items": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    db = tmp_path_factory.mktemp("agui") / "v.db"
    with ServeProcess(
        "tests.server.protocol_app:app",
        "--storage",
        f"sqlite:///{db}",
        env={"VIVACE_API_KEY": KEY},
    ) as srv:
        yield srv


def _session(js_modules: Path, url: str, **config: Any) -> tuple[int, dict[str, Any]]:
    out = subprocess.run(
        ["node", str(JS / "agui_session.mjs"), url, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    return out.returncode, json.loads(out.stdout or "{}")


def test_official_client_runs_a_frontend_tool_and_answers_an_interrupt(
    live: ServeProcess, js_modules: Path
) -> None:
    code, data = _session(
        js_modules,
        f"{live.url}/agents/shop/agui",
        headers=AUTH,
        threadId="cart-1",
        text="buy an apple",
        state={"cart": ["pear"]},
        tools=[PICK_COLOR],
        answers={"pick_color": "blue"},
        approve=True,
    )
    assert code == 0, data
    runs = [[e["type"] for e in r["events"]] for r in data["runs"]]
    outcomes = [
        next(e for e in r["events"] if e["type"] == "RUN_FINISHED")["outcome"] for r in data["runs"]
    ]
    # 1: add_item runs here, then the client's pick_color: the run finishes, one call pending
    assert runs[0] == [
        "RUN_STARTED",
        "STATE_SNAPSHOT",
        "STEP_STARTED",
        "STEP_FINISHED",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "STATE_DELTA",
        "STEP_STARTED",
        "STEP_FINISHED",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "RUN_FINISHED",
    ]
    assert outcomes[0] == {"type": "success", "pendingToolCallIds": ["f1"]}
    first = data["runs"][0]["events"]
    assert first[1]["snapshot"] == {"cart": ["pear"]}
    assert first[8]["delta"] == [{"op": "replace", "path": "/cart", "value": ["pear", "apple"]}]
    assert first[11]["toolCallName"] == "pick_color"
    # 2: the client's result resumed the run (no TOOL_CALL_RESULT echoed back); pay waits
    assert "TOOL_CALL_RESULT" not in runs[1] and outcomes[1]["type"] == "interrupt"
    (interrupt,) = outcomes[1]["interrupts"]
    assert interrupt["id"] == interrupt["toolCallId"] == "p1"
    assert interrupt["metadata"]["name"] == "pay"
    # 3: approved through `resume`: pay ran, the answer streams
    assert outcomes[2]["type"] == "success" and data["runs"][2]["result"] == "Paid in blue."
    texts = [e["delta"] for e in data["runs"][2]["events"] if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert "".join(texts) == "Paid in blue."
    messages = [(m["role"], m.get("content")) for m in data["messages"]]
    assert ("tool", "blue") in messages and ("tool", "paid 3") in messages
    assert data["state"] == {"cart": ["pear", "apple"]}
    # all of it is one stored run of the thread's session, with the model seeing "blue"
    with httpx.Client(base_url=live.url, headers=AUTH) as http:
        session = http.get("/sessions/cart-1").json()
    assert [r["status"] for r in session["runs"]] == ["completed"]
    tool_results = [
        p["content"] for m in session["messages"] if m["role"] == "tool" for p in m["parts"]
    ]
    assert tool_results == ["added apple", "blue", "paid 3"]


def test_rejecting_the_interrupt_reaches_the_model(live: ServeProcess, js_modules: Path) -> None:
    code, data = _session(
        js_modules,
        f"{live.url}/agents/shop/agui",
        headers=AUTH,
        threadId="cart-2",
        text="buy",
        tools=[PICK_COLOR],
        answers={"pick_color": "red"},
        approve=False,
    )
    assert code == 0, data
    assert data["runs"][-1]["result"] == "Paid in red."  # the scripted model answers anyway
    assert ("tool", "rejected: rejected by the user") in [
        (m["role"], m.get("content")) for m in data["messages"]
    ]


def test_without_credentials_the_servers_401(live: ServeProcess, js_modules: Path) -> None:
    body = {
        "threadId": "t",
        "runId": "r",
        "messages": [{"id": "1", "role": "user", "content": "x"}],
    }
    r = httpx.post(f"{live.url}/agents/shop/agui", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="vivace"'
    code, data = _session(js_modules, f"{live.url}/agents/shop/agui", text="x", threadId="t")
    assert code == 1 and "401" in data["error"]


def test_bad_inputs_are_typed_http_errors(live: ServeProcess) -> None:
    url = f"{live.url}/agents/shop/agui"
    with httpx.Client(headers=AUTH) as http:
        assert (
            http.post(url, content=b"{nope", headers={"content-type": "application/json"}).json()[
                "error"
            ]["code"]
            == "invalid_json"
        )
        r = http.post(url, json={"threadId": "t"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        msg = [{"id": "1", "role": "user", "content": "x"}]
        r = http.post(url, json={"threadId": "a\nb", "runId": "r", "messages": msg})
        assert r.status_code == 400 and r.json()["error"]["param"] == "threadId"
        r = http.post(
            url,
            json={
                "threadId": "fresh",
                "runId": "r",
                "messages": msg,
                "resume": [{"interruptId": "x1", "status": "resolved"}],
            },
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "no_interrupt"
        clash = {"name": "pay", "description": "the agent has its own pay"}
        r = http.post(url, json={"threadId": "c", "runId": "r", "messages": msg, "tools": [clash]})
        assert r.status_code == 409 and r.json()["error"]["code"] == "tool_clash"
        r = http.post(
            f"{live.url}/agents/nobody/agui", json={"threadId": "t", "runId": "r", "messages": msg}
        )
        assert r.status_code == 404
        # an unpaired surrogate in the text is not valid text: a 400 like every other route's
        # (it used to start the run, break its own stream and poison the thread's A2A tasks)
        raw = (
            b'{"threadId": "lone-surrogate", "runId": "r", "messages": '
            b'[{"id": "m", "role": "user", "content": "a \\ud800 b"}]}'
        )
        r = http.post(url, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        assert http.get(f"{live.url}/sessions/lone-surrogate").status_code == 404
        # a real pair written as escapes is fine
        raw = raw.replace(b"\\ud800", b"\\ud83d\\ude00")
        r = http.post(url, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 200 and "RUN_FINISHED" in r.text


def _body(thread: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"threadId": thread, "runId": f"r{time.monotonic_ns()}", "messages": messages, **extra}


def _events(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return [f["data"] for f in parse_sse(r.text)]


def test_a_thread_continues_on_another_worker(tmp_path: Path, thread_server: Any) -> None:
    """The frontend tool's result lands on another worker: it finds the paused run in storage."""
    from vivace.storage import SQLiteStorage

    from . import protocol_app

    def worker() -> VivaceApp:
        return VivaceApp(
            agents=[protocol_app.shop],
            storage=SQLiteStorage(str(tmp_path / "x.db")),
            auth=False,
            protocols=["agui"],
        )

    user = {"id": "u1", "role": "user", "content": "buy"}
    with thread_server(worker()) as one, thread_server(worker()) as two:
        first = _events(
            httpx.post(f"{one.url}/agents/shop/agui", json=_body("w", [user], tools=[PICK_COLOR]))
        )
        assert first[-1]["outcome"] == {"type": "success", "pendingToolCallIds": ["f1"]}
        call = {
            "id": "f1",
            "type": "function",
            "function": {"name": "pick_color", "arguments": "{}"},
        }
        history = [
            user,
            {"id": "a1", "role": "assistant", "toolCalls": [call]},
            {"id": "t1", "role": "tool", "toolCallId": "f1", "content": "green"},
        ]
        second = _events(
            httpx.post(f"{two.url}/agents/shop/agui", json=_body("w", history, tools=[PICK_COLOR]))
        )
        (interrupt,) = second[-1]["outcome"]["interrupts"]
        third = _events(
            httpx.post(
                f"{one.url}/agents/shop/agui",
                json=_body(
                    "w",
                    history,
                    tools=[PICK_COLOR],
                    resume=[{"interruptId": interrupt["id"], "status": "resolved"}],
                ),
            )
        )
        assert third[-1]["type"] == "RUN_FINISHED" and third[-1]["result"] == "Paid in green."


def test_another_users_thread_is_not_found(thread_server: Any) -> None:
    import jwt

    from vivace.storage import InMemoryStorage

    from . import protocol_app

    secret = "j" * 32

    def auth(user: str) -> dict[str, str]:
        claims = {"sub": user, "scope": "runs", "exp": time.time() + 600}
        return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}

    app = VivaceApp(
        agents=[protocol_app.forecaster],
        storage=InMemoryStorage(),
        auth=JWTAuth(secret),
        protocols=["agui"],
    )
    msg = [{"id": "1", "role": "user", "content": "Oslo"}]
    with thread_server(app) as srv:
        url = f"{srv.url}/agents/forecaster/agui"
        ok = httpx.post(url, json=_body("alice-thread", msg), headers=auth("alice"))
        assert _events(ok)[-1]["result"] == "It is sunny in Oslo, 21 C."
        assert ok.headers["x-vivace-run-id"]
        r = httpx.post(url, json=_body("alice-thread", msg), headers=auth("bob"))
        assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found"
