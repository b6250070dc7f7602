"""Knowledge routes over real HTTP (uvicorn): list, add content (multipart files and URLs, in
the background with a job to poll), search, documents, delete; scopes enforced."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
import pytest

from tests.server.conftest import ThreadServer
from vivace import Agent
from vivace.knowledge import KnowledgeBase
from vivace.server import JWTAuth, VivaceApp
from vivace.testing import ScriptedModel, call

from .test_readers import _pdf

SECRET = "knowledge-test-secret-long-enough-for-hs256"


def _token(scope: str) -> dict[str, str]:
    tok = jwt.encode({"sub": "alice", "scope": scope, "exp": int(time.time()) + 600}, SECRET)
    return {"Authorization": f"Bearer {tok}"}


def _wait(c: httpx.Client, location: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job = c.get(location, headers=headers).json()
        if job["status"] != "running":
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


@pytest.fixture
def served(embedder, tmp_path) -> Any:
    handbook = KnowledgeBase(
        "handbook", store=f"sqlite:///{tmp_path}/kb.db", embedder=embedder, filters={"team": str}
    )
    extra = KnowledgeBase("extra", store="memory", embedder=embedder)
    agent = Agent(
        ScriptedModel([call("search_knowledge", {"query": "x"}), "ok"]),
        name="helper",
        knowledge=handbook,
    )
    app = VivaceApp([agent], auth=JWTAuth(SECRET), knowledge=[extra])
    with ThreadServer(app) as server:
        yield server, handbook


def test_add_search_and_delete_over_http(served, http_base) -> None:
    server, handbook = served
    rw = _token("knowledge knowledge:write")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.get("/knowledge", headers=rw)
        assert r.status_code == 200
        names = [k["name"] for k in r.json()["knowledge_bases"]]
        assert names == ["extra", "handbook"]
        files = [
            (
                "files",
                ("vpn.md", b"# VPN\n\nUse the WireGuard profile from the portal.", "text/markdown"),
            ),
            (
                "files",
                (
                    "report.pdf",
                    _pdf(["Revenue grew nine percent this quarter."]),
                    "application/pdf",
                ),
            ),
            ("files", ("photo.png", b"\x89PNG\r\n", "image/png")),
        ]
        data = {
            "urls": f"{http_base}/page {http_base}/missing",
            "metadata": json.dumps({"team": "it"}),
        }
        r = c.post("/knowledge/handbook/content", files=files, data=data, headers=rw)
        assert r.status_code == 202, r.text
        job = _wait(c, r.headers["location"], rw)
        assert job["status"] == "completed" and job["items"] == 5 and job["done"] == 5
        status = {i["source"].rsplit("/", 1)[-1]: i for i in job["report"]["items"]}
        assert status["vpn.md"]["status"] == "added" and status["report.pdf"]["status"] == "added"
        assert status["page"]["status"] == "added"
        assert status["photo.png"]["error"]["code"] == "unsupported_content"
        assert status["missing"]["error"]["code"] == "fetch_error"
        # JSON texts too, and the same content again changes nothing
        body = {
            "texts": [{"source": "note", "text": "Lunch is at noon.", "metadata": {"team": "hr"}}]
        }
        job = _wait(
            c, c.post("/knowledge/handbook/content", json=body, headers=rw).headers["location"], rw
        )
        assert job["report"]["added"] == 1
        job = _wait(
            c, c.post("/knowledge/handbook/content", json=body, headers=rw).headers["location"], rw
        )
        assert job["report"]["unchanged"] == 1

        r = c.post(
            "/knowledge/handbook/search",
            json={"query": "how did revenue change", "top_k": 1},
            headers=rw,
        )
        [hit] = r.json()["hits"]
        assert (
            hit["source"] == "report.pdf"
            and hit["metadata"]["page"] == 1
            and hit["metadata"]["team"] == "it"
        )
        r = c.post(
            "/knowledge/handbook/search",
            json={"query": "food", "filters": {"team": "hr"}},
            headers=rw,
        )
        assert [h["source"] for h in r.json()["hits"]] == ["note"]
        r = c.post(
            "/knowledge/handbook/search",
            json={"query": "x", "filters": {"team": {"gt": 1}}},
            headers=rw,
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_filter"

        docs = c.get("/knowledge/handbook/documents", headers=rw).json()["documents"]
        assert sorted(d["source"] for d in docs) == sorted(
            ["vpn.md", "report.pdf", f"{http_base}/page", "note"]
        )
        info = c.get("/knowledge/handbook", headers=rw).json()
        assert (
            info["documents"] == 4 and info["dims"] == 384 and info["filters"] == {"team": "string"}
        )

        r = c.delete("/knowledge/handbook/documents", params={"source": "vpn.md"}, headers=rw)
        assert r.json() == {"deleted": 1}
        r = c.post(
            "/knowledge/handbook/documents/delete", json={"filters": {"team": "it"}}, headers=rw
        )
        assert r.json() == {"deleted": 2}
        assert [
            d["source"]
            for d in c.get("/knowledge/handbook/documents", headers=rw).json()["documents"]
        ] == ["note"]

        # the agent serving over HTTP uses the same stored knowledge base
        assert handbook.search("lunch time", top_k=1)[0].source == "note"

        assert c.get("/knowledge/nope", headers=rw).status_code == 404
        assert c.get("/knowledge/handbook/jobs/nope", headers=rw).status_code == 404


def test_knowledge_scopes(served) -> None:
    server, _ = served
    read = _token("knowledge")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/knowledge").status_code == 401
        assert c.get("/knowledge", headers=_token("runs")).status_code == 403
        assert c.get("/knowledge", headers=read).status_code == 200
        assert (
            c.post("/knowledge/handbook/search", json={"query": "x"}, headers=read).status_code
            == 200
        )
        r = c.post(
            "/knowledge/handbook/content",
            json={"texts": [{"source": "a", "text": "b"}]},
            headers=read,
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
        r = c.delete("/knowledge/handbook/documents", params={"source": "a"}, headers=read)
        assert r.status_code == 403


def test_knowledge_routes_are_in_the_openapi_document(served) -> None:
    server, _ = served
    with httpx.Client(base_url=server.url, timeout=30) as c:
        spec = c.get("/openapi.json").json()
    paths = spec["paths"]
    assert (
        "multipart/form-data" in paths["/knowledge/{kb}/content"]["post"]["requestBody"]["content"]
    )
    assert {"/knowledge", "/knowledge/{kb}/search", "/knowledge/{kb}/documents"} <= set(paths)


async def test_any_worker_answers_for_an_ingest_job(tmp_path, embedder) -> None:
    """Two apps (two workers) on one knowledge store: a job started on one is polled on the
    other."""
    import asyncio

    from vivace.knowledge.stores import SQLiteKnowledgeStore

    def worker() -> VivaceApp:
        kb = KnowledgeBase(
            "shared", store=SQLiteKnowledgeStore(tmp_path / "kb.db"), embedder=embedder
        )
        return VivaceApp([], knowledge=[kb], auth=False)

    a, b = worker(), worker()
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(a), base_url="http://a") as ca,
        httpx.AsyncClient(transport=httpx.ASGITransport(b), base_url="http://b") as cb,
    ):
        body = {"texts": [{"source": f"n{i}", "text": f"Note {i} about rivers."} for i in range(5)]}
        r = await ca.post("/knowledge/shared/content", json=body)
        assert r.status_code == 202
        location = r.headers["location"]
        for _ in range(600):
            job = (await cb.get(location)).json()
            if job.get("status") == "completed":
                break
            await asyncio.sleep(0.05)
        assert job["status"] == "completed" and job["report"]["added"] == 5, job
        assert (await cb.get("/knowledge/shared/jobs/unknown")).status_code == 404
