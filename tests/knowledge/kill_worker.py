"""A process that ingests 400 one-chunk documents in batches of 16 chunks and kills itself
with SIGKILL once a batch brought the chunks written to ``argv[2]``
(``tests/knowledge/test_kill_mid_ingest.py``)."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from collections.abc import Sequence

from vivace.knowledge import Document, IngestProgress, KnowledgeBase

N_DOCS = 400


class HashEmbedder:
    """Deterministic 8-dimension vectors (the same in every process)."""

    id = "test/hash-8"
    dimensions = 8

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for t in texts:
            digest = hashlib.sha256(t.encode()).digest()
            out.append([b / 255 + 0.01 for b in digest[:8]])
        return out


def documents() -> list[Document]:
    return [
        Document(f"doc{i}.txt", f"第{i}段 token{i}x 文档 🚀 ctl\x01 line {i}. " * 3, {"i": i})
        for i in range(N_DOCS)
    ]


def main() -> None:
    url, kill_after = sys.argv[1], int(sys.argv[2])

    def progress(p: IngestProgress) -> None:
        if kill_after and p.chunks >= kill_after:  # after a batch was written
            os.kill(os.getpid(), signal.SIGKILL)

    kb = KnowledgeBase("killed", store=url, embedder=HashEmbedder(), filters={"i": int})
    kb.add(*documents(), batch_chunks=16, concurrency=1, on_progress=progress)


if __name__ == "__main__":
    main()
