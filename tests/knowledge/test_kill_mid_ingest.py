"""An ingest killed with SIGKILL keeps every batch it finished, whole, and the next ``add``
of the same documents writes only the rest (SQLite and PostgreSQL, separate processes)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.knowledge.kill_worker import N_DOCS, HashEmbedder, documents
from vivace.knowledge import KnowledgeBase

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kb.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"k_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}schema={schema}"

    async def drop() -> None:
        import asyncpg
        from sqlalchemy.engine import make_url

        u = make_url(base)
        conn = await asyncpg.connect(
            user=u.username, host=u.query.get("host") or u.host, database=u.database
        )
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


async def test_killed_ingest_keeps_whole_batches_and_resumes(store_url: str) -> None:
    child = subprocess.run(
        [sys.executable, "-m", "tests.knowledge.kill_worker", store_url, "100"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr

    kb = KnowledgeBase("killed", store=store_url, embedder=HashEmbedder(), filters={"i": int})
    try:
        listed = await kb.adocuments(limit=1000)
        kept = {d["source"] for d in listed}
        assert 100 <= len(kept) < N_DOCS  # the batches reported done, nothing after the kill
        assert all(d["chunks"] == 1 for d in listed)  # every kept document whole
        some = sorted(kept, key=lambda s: int(s[3:-4]))[-1]
        i = int(some[3:-4])
        hits = await kb.asearch(f"token{i}x", top_k=1, filters={"i": i})
        assert [h.source for h in hits] == [some] and "🚀" in hits[0].text

        report = await kb.aadd(*documents())
        assert (report.added, report.unchanged) == (N_DOCS - len(kept), len(kept))
        assert report.failed == []
        last = await kb.asearch(f"token{N_DOCS - 1}x", top_k=1, filters={"i": N_DOCS - 1})
        assert [h.source for h in last] == [f"doc{N_DOCS - 1}.txt"]
    finally:
        await kb.store.close()
