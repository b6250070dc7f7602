"""One client call, one run (issue 8 item 1): the official ``openai`` client at its default
retry settings never makes the server run an agent twice, and ``Idempotency-Key`` always
means the same run - through real HTTP against ``vivace serve``, and across two workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from vivace.server import VivaceApp
from vivace.storage import SQLiteStorage

from .apps import make_agents
from .conftest import parse_sse

KEY = "sk-retries"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from .conftest import ServeProcess

    db = tmp_path_factory.mktemp("retries") / "v.db"
    with ServeProcess(
        "tests.server.apps:app", "--storage", f"sqlite:///{db}", env={"VIVACE_API_KEY": KEY}
    ) as srv:
        yield srv


def stored_runs(url: str, agent_id: str) -> list[dict[str, Any]]:
    """Every stored run of ``agent_id``, read through the sessions API."""
    sessions = httpx.get(
        f"{url}/sessions", params={"agent_id": agent_id, "limit": 500}, headers=AUTH
    ).json()["sessions"]
    runs = []
    for s in sessions:
        runs += httpx.get(f"{url}/sessions/{s['session_id']}", headers=AUTH).json()["runs"]
    return runs


def default_client(url: str, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=KEY, **kw)  # default max_retries (2)


@pytest.mark.parametrize("route", ["chat", "responses"])
@pytest.mark.parametrize(
    ("agent_id", "error", "status"),
    [("approver", openai.ConflictError, 409), ("broken", openai.InternalServerError, 502)],
)
def test_one_call_one_stored_run(
    server: Any, route: str, agent_id: str, error: type[Exception], status: int
) -> None:
    client = default_client(server.url)
    assert client.max_retries == 2  # the official default: 409 and 5xx are retried
    before = len(stored_runs(server.url, agent_id))
    with pytest.raises(error) as caught:
        if route == "chat":
            client.chat.completions.create(
                model=agent_id, messages=[{"role": "user", "content": "go"}]
            )
        else:
            client.responses.create(model=agent_id, input="go")
    response = caught.value.response  # type: ignore[attr-defined]
    assert response.status_code == status
    assert response.headers["x-should-retry"] == "false"
    assert response.request.headers["x-stainless-retry-count"] == "0"  # no retry was sent
    runs = stored_runs(server.url, agent_id)
    assert len(runs) == before + 1
    assert runs[0]["status"] == ("paused" if agent_id == "approver" else "failed")


def test_idempotency_key_same_run_json_and_stream(server: Any) -> None:
    before = len(stored_runs(server.url, "weather"))
    h = {**AUTH, "Idempotency-Key": "order-42"}
    body = {"input": "weather?"}
    first = httpx.post(f"{server.url}/agents/weather/runs", json=body, headers=h)
    again = httpx.post(f"{server.url}/agents/weather/runs", json=body, headers=h)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    streamed = httpx.post(
        f"{server.url}/agents/weather/runs", json={**body, "stream": True}, headers=h
    )
    # the stream body differs from the JSON one, so the key was reused with another request
    assert streamed.status_code == 409
    assert streamed.json()["error"]["code"] == "idempotency_key_reused"
    h2 = {**AUTH, "Idempotency-Key": "order-43"}
    s1 = httpx.post(f"{server.url}/agents/weather/runs", json={**body, "stream": True}, headers=h2)
    s2 = httpx.post(f"{server.url}/agents/weather/runs", json={**body, "stream": True}, headers=h2)
    f1, f2 = parse_sse(s1.text), parse_sse(s2.text)
    assert [f["data"] for f in f2] == [f["data"] for f in f1]  # the same run's stream
    assert f1[-1]["event"] == "run_completed"
    assert len(stored_runs(server.url, "weather")) == before + 2
    # another principal's key never names this run
    other = httpx.post(
        f"{server.url}/agents/weather/runs",
        json={**body, "user_id": "someone"},
        headers={**h, "Idempotency-Key": "order-42"},
    )
    assert other.json()["run_id"] != first.json()["run_id"]


def test_idempotency_key_on_the_openai_routes(server: Any) -> None:
    client = default_client(server.url)
    before = len(stored_runs(server.url, "echo"))
    opts = {"extra_headers": {"Idempotency-Key": "chat-1"}}
    msgs = [{"role": "user", "content": "hello"}]
    a = client.chat.completions.create(model="echo", messages=msgs, **opts)  # type: ignore[arg-type]
    b = client.chat.completions.create(model="echo", messages=msgs, **opts)  # type: ignore[arg-type]
    assert a.id == b.id and a.choices[0].message.content == "echo: hello"
    r1 = client.responses.create(model="echo", input="hi", extra_headers={"Idempotency-Key": "r-1"})
    r2 = client.responses.create(model="echo", input="hi", extra_headers={"Idempotency-Key": "r-1"})
    assert r1.id == r2.id
    assert len(stored_runs(server.url, "echo")) == before + 2


def test_an_automatic_retry_after_a_timeout_attaches_to_the_run(
    tmp_path: Path, thread_server: Any, gate: threading.Event
) -> None:
    """The client times out while the run is still going, retries twice (the official
    defaults): every attempt is the same run, and it runs once."""
    app = VivaceApp(agents=make_agents(), storage=SQLiteStorage(tmp_path / "t.db"), auth=False)
    with thread_server(app) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(
                model="gated", messages=[{"role": "user", "content": "go"}]
            )
        assert time.monotonic() - started >= 1.5  # three attempts of 0.5 s
        gate.set()
        runs = stored_runs(srv.url, "gated")
        assert len(runs) == 1
        for _ in range(100):  # the one run finishes by itself
            if stored_runs(srv.url, "gated")[0]["status"] == "completed":
                break
            time.sleep(0.05)
        assert stored_runs(srv.url, "gated")[0]["status"] == "completed"


def test_idempotency_key_across_workers(tmp_path: Path, thread_server: Any) -> None:
    """Two workers sharing storage: the key names one run whichever worker gets the retry."""
    db = tmp_path / "shared.db"
    a = VivaceApp(agents=make_agents(), storage=SQLiteStorage(db), auth=False)
    b = VivaceApp(agents=make_agents(), storage=SQLiteStorage(db), auth=False)
    with thread_server(a) as wa, thread_server(b) as wb:
        h = {"Idempotency-Key": "cross-1"}
        first = httpx.post(f"{wa.url}/agents/weather/runs", json={"input": "w?"}, headers=h)
        again = httpx.post(f"{wb.url}/agents/weather/runs", json={"input": "w?"}, headers=h)
        assert again.status_code == 200, again.text
        assert again.json()["run_id"] == first.json()["run_id"]
        assert again.json()["output"] == first.json()["output"] == "done: sunny in Paris"
        assert again.headers["idempotent-replayed"] == "true"
        other = httpx.post(f"{wb.url}/agents/weather/runs", json={"input": "other"}, headers=h)
        assert other.status_code == 409  # the same key with another input
        assert len(stored_runs(wa.url, "weather")) == 1
