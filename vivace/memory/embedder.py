"""The embedder interface semantic recall uses, and a deterministic offline embedder."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..storage._vec import words

__all__ = ["Embedder", "HashEmbedder"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors (one per text, all the same length)."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class HashEmbedder:
    """A deterministic bag-of-words embedder (hashed words, L2-normalized).

    No model and no network: texts sharing words get similar vectors. Meant for tests and
    offline demos, not for real semantic similarity.
    """

    def __init__(self, dims: int = 256) -> None:
        self.dims = dims

    def embed_one(self, text: str) -> list[float]:
        vec = [0.0] * self.dims
        for w in words(text):
            h = hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest()
            idx = int.from_bytes(h[:4], "little") % self.dims
            vec[idx] += 1.0 if h[4] & 1 else -1.0
        n = math.sqrt(sum(x * x for x in vec))
        return [x / n for x in vec] if n else vec

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(t) for t in texts]
