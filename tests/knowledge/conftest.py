"""Knowledge fixtures: the real offline embedder (cached per text, so parametrized tests embed
each text once), and a knowledge store on each backend (in-memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


class CachingEmbedder:
    """The real all-MiniLM-L6-v2 embedder with a per-text cache (the vectors are real)."""

    def __init__(self) -> None:
        from vivace.knowledge.embedders.onnx import OnnxEmbedder

        self.inner = OnnxEmbedder()
        self.cache: dict[str, list[float]] = {}
        self.calls = 0
        self.dimensions = 384
        self.id = self.inner.id

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for t, v in zip(missing, await self.inner.embed(missing), strict=True):
                self.cache[t] = v
        return [self.cache[t] for t in texts]


_EMBEDDER: CachingEmbedder | None = None


@pytest.fixture
def embedder() -> CachingEmbedder:
    global _EMBEDDER
    if _EMBEDDER is None:
        _EMBEDDER = CachingEmbedder()
    return _EMBEDDER


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def kstore(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh knowledge store on each backend."""
    from vivace.knowledge.stores import (
        InMemoryKnowledgeStore,
        PostgresKnowledgeStore,
        SQLiteKnowledgeStore,
    )

    if request.param == "memory":
        store: Any = InMemoryKnowledgeStore()
    elif request.param == "sqlite":
        store = SQLiteKnowledgeStore(tmp_path / "knowledge.db")
    else:
        url = request.getfixturevalue("postgres_url")
        store = PostgresKnowledgeStore(url, schema=f"k_{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        await store.close()
        if request.param == "postgres":
            import asyncpg

            conn = await asyncpg.connect(store._dsn)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')
            finally:
                await conn.close()


CORPUS = {
    "install.md": (
        "# Installation\n\nInstall the package with `pip install vivace`. Python 3.11 or newer "
        "is required.\n\n## Extras\n\nThe knowledge extra adds the SQLite vector store: "
        "`pip install 'vivace[knowledge]'`.",
        {"year": 2024, "team": "core", "public": True},
    ),
    "cats.txt": (
        "Cats are small domesticated carnivorous mammals. A happy cat purrs and kneads "
        "with its paws.",
        {"year": 2019, "team": "pets", "public": True},
    ),
    "paris.txt": (
        "Paris is the capital and largest city of France, known for the Eiffel Tower and "
        "the Louvre museum.",
        {"year": 2021, "team": "geo", "public": False},
    ),
    "errors.txt": (
        "Error E4417 means the license key expired. Renew it in the admin console under Billing.",
        {"year": 2023, "team": "support", "public": False},
    ),
    "ocean.txt": (
        "The Pacific is the largest and deepest of the world's oceans, covering about a third "
        "of the surface of the Earth.",
        {"year": 2020, "team": "geo", "public": True, "score": 4.5},
    ),
}


def corpus_documents() -> list[Any]:
    from vivace.knowledge import Document

    return [
        Document(src, text, dict(meta), markdown=src.endswith(".md"))
        for src, (text, meta) in CORPUS.items()
    ]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/page":
            body = b"<html><head><title>Tides</title></head><body><p>The moon drives the tides.</p></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
        elif self.path == "/doc.md":
            body = b"# Comets\n\nComets have icy nuclei."
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
        elif self.path == "/big":
            body = b"x" * 5000
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
        elif self.path == "/slow":
            import time

            time.sleep(8)
            body = b"late"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
        else:
            body = b"nope"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.block_on_close = False  # the /slow handler may still sleep at teardown
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
