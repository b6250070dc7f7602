"""Auth: localhost-only default, API key, JWT HS256/RS256 with scopes and user binding, CORS."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from vivace.server import APIKeyAuth, JWTAuth, MultiAuth

SECRET = "test-secret-that-is-long-enough-for-hs256"


def token(sub: str = "alice", scope: str = "runs sessions", **claims: Any) -> str:
    payload = {"sub": sub, "scope": scope, "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def _client(app: Any, host: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, client=(host, 5555)), base_url="http://t"
    )


def _no_leak(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("application/json")
    text = r.text
    assert "Traceback" not in text and SECRET not in text and "jwt" not in text.lower()


async def test_default_is_open_on_localhost_only(make_app: Any, monkeypatch: Any) -> None:
    for k in ("VIVACE_API_KEY", "VIVACE_JWT_SECRET", "VIVACE_JWT_PUBLIC_KEY"):
        monkeypatch.delenv(k, raising=False)
    app = make_app(auth=None)
    async with _client(app) as c:
        assert (await c.get("/agents")).status_code == 200
    async with _client(app, host="203.0.113.9") as c:
        r = await c.get("/agents")
        assert r.status_code == 401
        _no_leak(r)
        assert (await c.get("/health")).status_code == 200  # health stays public


async def test_api_key_from_env(make_app: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("VIVACE_API_KEY", "k-123")
    app = make_app(auth=None)
    async with _client(app, host="203.0.113.9") as c:
        r = await c.get("/agents")
        # RFC 6750: no credentials, no error code; refused ones: invalid_token
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="vivace"'
        _no_leak(r)
        bad = await c.get("/agents", headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"] == (
            'Bearer realm="vivace", error="invalid_token", error_description="invalid API key"'
        )
        ok = await c.get("/agents", headers={"Authorization": "Bearer k-123"})
        assert ok.status_code == 200


async def test_jwt_hs256_scopes(make_app: Any) -> None:
    app = make_app(auth=JWTAuth(SECRET))
    async with _client(app) as c:
        assert (await c.get("/agents")).status_code == 401
        h = {"Authorization": f"Bearer {token(scope='runs')}"}
        assert (await c.get("/agents", headers=h)).status_code == 200
        r = await c.post("/agents/echo/runs", json={"input": "hi"}, headers=h)
        assert r.status_code == 200 and r.json()["user_id"] == "alice"
        # runs-only token cannot touch sessions
        r = await c.get("/sessions", headers=h)
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        assert 'scope="sessions"' in r.headers["www-authenticate"]
        _no_leak(r)
        # sessions-only token cannot start runs
        hs = {"Authorization": f"Bearer {token(scope='sessions')}"}
        assert (
            await c.post("/agents/echo/runs", json={"input": "x"}, headers=hs)
        ).status_code == 403


async def test_jwt_user_binding(make_app: Any) -> None:
    app = make_app(auth=JWTAuth(SECRET))
    async with _client(app) as c:
        alice = {"Authorization": f"Bearer {token('alice')}"}
        bob = {"Authorization": f"Bearer {token('bob')}"}
        admin = {"Authorization": f"Bearer {token('root', scope='admin')}"}
        r = await c.post("/agents/echo/runs", json={"input": "x", "user_id": "bob"}, headers=alice)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_user"
        r = await c.post("/agents/echo/runs", json={"input": "x", "user_id": "bob"}, headers=admin)
        assert r.status_code == 200 and r.json()["user_id"] == "bob"
        # alice's run cannot be read or cancelled by bob
        r = await c.post("/agents/echo/runs", json={"input": "mine"}, headers=alice)
        run_id = r.json()["run_id"]
        url = f"/agents/echo/runs/{run_id}/events"
        assert (await c.get(url, headers=bob)).status_code == 404
        assert (await c.get(url, headers=alice)).status_code == 200
        # paused runs too
        r = await c.post("/agents/approver/runs", json={"input": "x"}, headers=alice)
        call_id = r.json()["paused"]["pending"][0]["id"]
        resume = f"/agents/approver/runs/{r.json()['run_id']}/resume"
        body = {"approvals": {call_id: True}}
        assert (await c.post(resume, json=body, headers=bob)).status_code == 404
        assert (await c.post(resume, json=body, headers=alice)).json()["status"] == "completed"


@pytest.mark.parametrize(
    "bad",
    [
        "not.a.jwt",
        jwt.encode({"sub": "a", "scope": "runs", "exp": int(time.time()) - 10}, SECRET),
        jwt.encode(
            {"sub": "a", "scope": "runs", "exp": int(time.time()) + 60},
            "other-secret-xxxxxxxxxxxxxxxxxxxxxxxx",
        ),
        jwt.encode({"scope": "runs", "exp": int(time.time()) + 60}, SECRET),
        jwt.encode({"sub": "a", "scope": "runs"}, SECRET),  # no exp
        jwt.encode(
            {"sub": "a", "scope": "runs", "exp": int(time.time()) + 60}, SECRET, algorithm="HS512"
        ),
    ],
)
async def test_jwt_rejections(make_app: Any, bad: str) -> None:
    app = make_app(auth=JWTAuth(SECRET))
    async with _client(app) as c:
        r = await c.get("/agents", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
        _no_leak(r)


async def test_jwt_rs256(make_app: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    app = make_app(auth=JWTAuth(public_key=public))
    tok = jwt.encode(
        {"sub": "carol", "scopes": ["runs"], "exp": int(time.time()) + 60}, key, algorithm="RS256"
    )
    async with _client(app) as c:
        r = await c.post(
            "/agents/echo/runs", json={"input": "x"}, headers={"Authorization": f"Bearer {tok}"}
        )
        assert r.status_code == 200 and r.json()["user_id"] == "carol"
        # an HS256 token signed with the public key as secret must not pass (alg confusion)
        forged = jwt.encode({"sub": "x", "scope": "runs", "exp": int(time.time()) + 60}, SECRET)
        r = await c.get("/agents", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401


async def test_multi_auth_key_or_jwt(make_app: Any) -> None:
    app = make_app(auth=MultiAuth(APIKeyAuth("k1"), JWTAuth(SECRET)))
    async with _client(app) as c:
        assert (await c.get("/agents", headers={"Authorization": "Bearer k1"})).status_code == 200
        h = {"Authorization": f"Bearer {token()}"}
        assert (await c.get("/agents", headers=h)).status_code == 200
        assert (await c.get("/agents", headers={"Authorization": "Bearer k2"})).status_code == 401


async def test_cors(make_app: Any) -> None:
    app = make_app(cors=["https://app.example"])
    async with _client(app) as c:
        r = await c.options(
            "/agents/echo/runs",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = await c.get("/agents", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
