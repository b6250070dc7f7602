"""The embedded knowledge store imports nothing heavy it does not use: sqlite-vec is found
and loaded without importing its Python package (which imports numpy), and numpy is
imported only for a knowledge base large enough for the in-process vector copy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import asyncio, sys
from vivace.knowledge import Document, KnowledgeBase
from vivace.knowledge.stores import SQLiteKnowledgeStore
from vivace.storage.vectors.sqlite import sqlite_vec_path


class LetterEmbedder:
    '''Letters counted into 16 dimensions (no numpy anywhere).'''

    dimensions = 16
    id = "letters-16"

    async def embed(self, texts):
        out = []
        for t in texts:
            v = [0.0] * 16
            for ch in t.lower():
                v[ord(ch) % 16] += 1.0
            out.append(v)
        return out


async def main(path):
    store = SQLiteKnowledgeStore(path)
    kb = KnowledgeBase("notes", store=store, embedder=LetterEmbedder())
    report = await kb.aadd(
        Document("tea.md", "Green tea 绿茶 is steeped at 80 degrees 🍵"),
        Document("bike.txt", "Inflate road bike tyres to seven bar"),
    )
    hits = await kb.asearch("green tea 绿茶", top_k=1)
    await store.close()
    numpy_loaded = "numpy" in sys.modules
    import sqlite_vec  # now, to compare: the package's own answer

    same = sqlite_vec_path() == sqlite_vec.loadable_path()
    print(report.added, hits[0].source, same, numpy_loaded)


asyncio.run(main(sys.argv[1]))
"""


def test_the_sqlite_store_searches_with_sqlite_vec_without_importing_numpy(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "kb.db")],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    added, source, same_path, numpy_loaded = p.stdout.split()
    assert (added, source) == ("2", "tea.md")  # searched through sqlite-vec (apsw loads it)
    assert same_path == "True"  # the file the package itself names
    assert numpy_loaded == "False"
