"""Fuzz the API from its own OpenAPI document with schemathesis (bounded): no 5xx, responses
match the documented schemas and content types."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from vivace.server import VivaceApp  # noqa: E402
from vivace.storage import open_storage  # noqa: E402

from .apps import make_agents  # noqa: E402

_app = VivaceApp(
    # "gated" blocks; "broken" answers the OpenAI routes with its documented 502 (a failed
    # run), which the server-error check cannot tell from a crash (tested in test_retries)
    agents=[a for a in make_agents() if a.id not in ("gated", "broken")],
    storage=open_storage("memory://"),
    auth=False,
    max_body_bytes=64 * 1024,
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)


def _checks() -> Any:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_fuzz(case: Any) -> None:
    case.call_and_validate(checks=_checks())


# -- randomized, time-bounded: ids from all of Unicode through real HTTP -----------------------

FUZZ_SECONDS = 30.0
_RANGES = [
    (0x20, 0x7E),  # printable ASCII
    (0x00, 0x1F),  # C0 controls (NUL, \n, \r, BEL...)
    (0x7F, 0x9F),  # DEL and C1 controls
    (0xA0, 0x24F),  # Latin-1 and Latin extended
    (0x300, 0x36F),  # combining marks
    (0x2000, 0x206F),  # spaces and punctuation (zero-width, bidi marks)
    (0x4E00, 0x9FFF),  # CJK
    (0xD800, 0xDFFF),  # unpaired surrogates
    (0xE000, 0xF8FF),  # private use
    (0xFFF0, 0xFFFF),  # specials, noncharacters
    (0x1F300, 0x1FAFF),  # emoji
    (0x10000, 0x10FFFF),  # anything astral
]


def _text(rng: Any, surrogates: bool = True) -> str:
    out = []
    for _ in range(rng.randint(1, 24)):
        lo, hi = rng.choice(_RANGES if surrogates else [r for r in _RANGES if r[0] != 0xD800])
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def test_ids_from_all_of_unicode_randomized(thread_server: Any) -> None:
    """Random ids (a new seed each run; ``VIVACE_FUZZ_SEED`` replays one) in JSON bodies,
    forms, headers, paths and queries: valid ones round-trip, invalid ones are a 400 naming
    the field, nothing is a 5xx or a dropped connection."""
    import json
    import os
    import random
    import time
    from urllib.parse import quote

    import httpx

    from vivace.identifiers import is_identifier
    from vivace.server.ids import decode_header, encode_header

    seed = int(os.environ.get("VIVACE_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    app = VivaceApp(
        agents=[a for a in make_agents() if a.id == "echo"],
        storage=open_storage("memory://"),
        auth=False,
    )
    checked = 0
    with thread_server(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        deadline = time.monotonic() + FUZZ_SECONDS
        while time.monotonic() < deadline:
            kind = rng.randrange(6)
            value = _text(rng, surrogates=kind in (0, 3))
            if kind in (0, 3):  # as the server will read it: JSON joins surrogate pairs
                value = json.loads(json.dumps(value))
            valid = is_identifier(value)
            where = f"seed={seed} case={checked} kind={kind} value={value!a}"
            if kind == 0:  # JSON body (escaped: lone surrogates travel too)
                field = rng.choice(["session_id", "user_id"])
                body = json.dumps({"input": "x", field: value, "stream": rng.random() < 0.3})
                r = c.post(
                    "/agents/echo/runs",
                    content=body,
                    headers={"content-type": "application/json"},
                )
            elif kind == 1:  # form field
                field = rng.choice(["session_id", "user_id"])
                r = c.post("/agents/echo/runs", data={"input": "x", field: value})
            elif kind == 2:  # the session header, percent-encoded
                field = "x-vivace-session-id"
                r = c.post(
                    "/v1/chat/completions",
                    json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
                    headers={field: quote(value, safe="")},
                )
            elif kind == 3:  # the OpenAI user field
                field = "user"
                body = json.dumps({"model": "echo", "input": "x", "user": value})
                r = c.post(
                    "/v1/responses", content=body, headers={"content-type": "application/json"}
                )
            elif kind == 4:  # a path parameter
                if value in (".", ".."):  # the client drops dot segments: why they are no ids
                    continue
                field = "session_id"
                r = c.get("/sessions/" + quote(value, safe=""))
            else:  # a query parameter
                field = rng.choice(["user_id", "agent_id"])
                r = c.get("/sessions", params={field: value})
            assert r.status_code < 500, f"{where}: {r.status_code} {r.text}"
            if not valid:
                assert r.status_code == 400, f"{where}: {r.status_code} {r.text}"
                err = r.json()["error"]
                if err["code"] == "invalid_json":  # the JSON parser refuses lone surrogates
                    assert kind in (0, 3) and any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
                else:
                    assert (err["code"], err["param"]) == ("invalid_identifier", field), where
            elif kind == 4:  # an earlier case may have created this session
                if r.status_code == 200:
                    assert r.json()["session_id"] == value, where
                else:
                    assert r.status_code == 404, where
                    assert r.json()["error"]["code"] == "session_not_found", where
            elif r.status_code == 404:  # the random session belongs to another user
                assert r.json()["error"]["code"] == "session_not_found", where
            else:
                assert r.status_code == 200, f"{where}: {r.status_code} {r.text}"
                sid = r.headers.get("x-vivace-session-id")
                if field in ("session_id", "x-vivace-session-id") and kind != 5:
                    assert sid is not None and decode_header(sid, "h") == value, where
                    assert encode_header(value) == sid, where
            checked += 1
    assert checked > 50, f"only {checked} cases in {FUZZ_SECONDS} s"
