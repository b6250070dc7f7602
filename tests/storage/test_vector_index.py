"""The vector index memory's recall and the knowledge stores share (``vivace.storage.vectors``):
the exact in-process index, message search on every backend against an exact scan computed
here, pgvector's HNSW index per embedding size (present, used, approximate only at scale),
sqlite-vec on SQLite where Python's sqlite3 can load it, and upgrades of databases that
already hold message embeddings."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from vivace.messages import Message
from vivace.storage import MessageEmbedding, SQLiteStorage
from vivace.storage.sql import history
from vivace.storage.sql.memory import SQLMemory
from vivace.storage.vectors import ExactIndex, pack

DIMS = 16


@pytest.fixture
async def pg_factory(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """PostgreSQL storages sharing one fresh schema."""
    from tests.conftest import StorageFactory

    factory = StorageFactory("postgres", tmp_path, request)
    try:
        yield factory
    finally:
        await factory.aclose()


def vectors(n: int, dims: int = DIMS, seed: int = 5) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.gauss(0.0, 1.0) for _ in range(dims)] for _ in range(n)]


def cos(a: list[float], b: list[float]) -> float:
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(x * x for x in b))
    return (
        0.0
        if na == 0 or nb == 0
        else math.fsum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)
    )


def reference(
    rows: list[dict[str, Any]], query: list[float], k: int, threshold: float | None = None
) -> list[tuple[str, float]]:
    """The exact answer, computed here: (text, cosine), best first, ties by insertion."""
    scored = [(cos(query, r["vec"]), i, r["text"]) for i, r in enumerate(rows)]
    scored = [t for t in scored if threshold is None or t[0] >= threshold]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(text, s) for s, _, text in scored[:k]]


# -- the exact index ----------------------------------------------------------------------------


@pytest.mark.parametrize("use_numpy", [True, False])
def test_exact_index_ranks_like_cosine(use_numpy: bool) -> None:
    vecs = vectors(300)
    vecs[7] = [0.0] * DIMS  # a zero vector scores 0
    index = ExactIndex(DIMS, use_numpy=use_numpy)
    index.add_many((i, pack(v) if i % 2 else v) for i, v in enumerate(vecs))
    assert len(index) == 300
    rows = [{"text": i, "vec": v} for i, v in enumerate(vecs)]
    q = vectors(1, seed=9)[0]
    got = index.search(q, 10)
    want = reference(rows, q, 10)
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
    # candidates, a threshold, removals and replacements
    cands = list(range(0, 300, 3))
    got = index.search(q, 5, candidates=cands, threshold=0.1)
    want = reference([r for r in rows if r["text"] in set(cands)], q, 5, threshold=0.1)
    assert [i for i, _ in got] == [i for i, _ in want]
    best = got[0][0]
    index.remove([best])
    index.add_many([(1000, q)])  # the query itself: similarity 1
    got = index.search(q, 3, candidates=[*cands, 1000, 99999])
    assert got[0][0] == 1000 and got[0][1] == pytest.approx(1.0, abs=1e-6)
    assert best not in [i for i, _ in got]
    assert index.search([0.0] * DIMS, 2) == [(0, 0.0), (1, 0.0)]  # all tie at 0: by id
    assert index.search(q, 0) == [] and index.search(q, 3, candidates=[]) == []


# -- message search on every backend ----------------------------------------------------------


async def fill(storage: Any, n: int = 240) -> list[dict[str, Any]]:
    """n messages: sessions of 10, users of 60 (user "u0" also in an other size), runs of 5."""
    vecs = vectors(n)
    rows = [
        {
            "text": f"m{i}",
            "vec": v,
            "session": f"s{i // 10}",
            "user": f"u{i // 60}",
            "run": f"r{i // 5}",
        }
        for i, v in enumerate(vecs)
    ]
    await storage.memory.add_message_embeddings(
        [
            MessageEmbedding(
                r["session"], Message.user(r["text"]), r["vec"], run_id=r["run"], user_id=r["user"]
            )
            for r in rows
        ]
    )
    await storage.memory.add_message_embeddings(
        [MessageEmbedding("s0", Message.user("other size"), [1.0, 0.0, 0.0], user_id="u0")]
    )
    return rows


async def test_message_search_returns_what_an_exact_scan_returns(storage: Any) -> None:
    rows = await fill(storage)
    for qi, q in enumerate(vectors(6, seed=77)):
        for scope, pick in (
            ({"session_id": "s3"}, lambda r: r["session"] == "s3"),
            ({"user_id": "u1"}, lambda r: r["user"] == "u1"),
            ({"session_id": "s13", "user_id": "u2"}, lambda r: r["session"] == "s13"),
        ):
            excluded = [f"r{qi + 12}", "r13"]
            threshold = 0.05 if qi % 2 else None
            hits = await storage.memory.search_messages(
                q, top_k=4, threshold=threshold, exclude_run_ids=excluded, **scope
            )
            scoped = [r for r in rows if pick(r) and r["run"] not in excluded]
            want = reference(scoped, q, 4, threshold)
            assert [h.message.text for h in hits] == [t for t, _ in want], (scope, qi)
            assert [h.score for h in hits] == pytest.approx([s for _, s in want], abs=1e-5)
    [hit] = await storage.memory.search_messages([0.0, 2.0, 0.0], user_id="u0", top_k=3)
    assert hit.message.text == "other size" and hit.score == pytest.approx(0.0)


@pytest.mark.parametrize(
    "bad",
    [[1.0, float("nan")], [float("inf"), 0.0], [], ["x", 1.0]],
    ids=["nan", "inf", "empty", "text"],
)
async def test_a_bad_embedding_is_a_user_error_and_writes_nothing(storage: Any, bad: Any) -> None:
    from vivace.errors import UserError

    good = MessageEmbedding("s", Message.user("good"), [1.0, 0.0], user_id="u")
    with pytest.raises(UserError):
        await storage.memory.add_message_embeddings(
            [good, MessageEmbedding("s", Message.user("bad"), bad, user_id="u")]
        )
    assert await storage.memory.search_messages([1.0, 0.0], session_id="s") == []
    if bad:
        with pytest.raises(UserError):
            await storage.memory.search_messages(bad, session_id="s")


async def test_postgres_keeps_an_hnsw_index_per_embedding_size(pg_factory: Any) -> None:
    st = pg_factory()
    await fill(st)

    def indexes(conn: sa.Connection) -> dict[str, str]:
        rows = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'vivace_message_embeddings' AND indexdef LIKE '%hnsw%'"
        )
        return {r[0]: r[1] for r in rows}

    found = await st.run_sync(indexes)
    assert set(found) == {"ix_vivace_msg_emb_hnsw_16", "ix_vivace_msg_emb_hnsw_3"}
    assert "WHERE (dims = 16)" in found["ix_vivace_msg_emb_hnsw_16"]
    assert "vector(16)" in found["ix_vivace_msg_emb_hnsw_16"]
    # the statement the search runs can use it (its cast and its key match the index)
    index = st.memory._pg()
    sql = index.search_sql(16, 16, columns="t.id", where="t.user_id = $3::varchar")

    def plan(conn: sa.Connection) -> str:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        conn.exec_driver_sql("SET LOCAL enable_sort = off")
        assert "$1::real[]" not in sql  # memory sends the query as a binary vector
        raw = sql.replace("$1", "'[" + ",".join(["0.5"] * 16) + "]'")
        raw = raw.replace("$2", "4").replace("$3::varchar", "'u1'")
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + raw))

    assert "ix_vivace_msg_emb_hnsw_16" in await st.run_sync(plan)


async def test_postgres_recall_through_the_hnsw_index_finds_the_exact_neighbours(
    pg_factory: Any,
) -> None:
    """One user owning most of 3,000 messages: the planner searches the HNSW index (iterative
    scans fill k despite excluded runs), and at this size it finds the exact neighbours."""
    st = pg_factory()
    n = 3000
    vecs = vectors(n, seed=21)
    rows = [
        {"text": f"m{i}", "vec": v, "user": "heavy" if i % 10 else "light", "run": f"r{i % 50}"}
        for i, v in enumerate(vecs)
    ]
    for start in range(0, n, 500):
        await st.memory.add_message_embeddings(
            [
                MessageEmbedding(
                    f"s{i // 20}",
                    Message.user(r["text"]),
                    r["vec"],
                    run_id=r["run"],
                    user_id=r["user"],
                )
                for i, r in enumerate(rows[start : start + 500], start)
            ]
        )
    await st.run_sync(lambda c: c.exec_driver_sql("ANALYZE vivace_message_embeddings"))
    index = st.memory._pg()
    sql = index.search_sql(DIMS, DIMS, columns="t.id", where="t.user_id = $3::varchar")

    def plan(conn: sa.Connection) -> str:
        raw = sql.replace("$1", "'[" + ",".join(["0.5"] * DIMS) + "]'")
        raw = raw.replace("$2", "4").replace("$3::varchar", "'heavy'")
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + raw))

    assert f"ix_vivace_msg_emb_hnsw_{DIMS}" in await st.run_sync(plan)
    excluded = [f"r{i}" for i in range(1, 40)]  # most runs excluded: the scan must go on
    overlap = []
    for q in vectors(10, seed=31):
        hits = await st.memory.search_messages(
            q, user_id="heavy", top_k=4, exclude_run_ids=excluded
        )
        want = reference(
            [r for r in rows if r["user"] == "heavy" and r["run"] not in excluded], q, 4
        )
        assert len(hits) == 4
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        overlap.append(len({h.message.text for h in hits} & {t for t, _ in want}) / 4)
    assert sum(overlap) / len(overlap) >= 0.95


async def test_postgres_searches_vectors_too_large_for_hnsw_exactly(pg_factory: Any) -> None:
    st = pg_factory()
    vecs = vectors(5, dims=2001, seed=13)
    await st.memory.add_message_embeddings(
        [MessageEmbedding("s", Message.user(f"m{i}"), v, user_id="u") for i, v in enumerate(vecs)]
    )
    [hit] = await st.memory.search_messages(vecs[3], session_id="s", top_k=1)
    assert hit.message.text == "m3" and hit.score == pytest.approx(1.0, abs=1e-6)
    assert await st.memory.build_vector_indexes() == []

    def hnsw(conn: sa.Connection) -> int:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexdef LIKE '%hnsw%'"
            ).scalar()
            or 0
        )

    assert await st.run_sync(hnsw) == 0


# -- SQLite: sqlite-vec where Python's sqlite3 can load it ------------------------------------

_SQLITE_VEC_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from vivace.storage import SQLiteStorage
    from vivace.storage.vectors.sqlite import sqlite3_can_load

    async def main(path, queries):
        st = SQLiteStorage(path)
        out = []
        for q, scope in queries:
            hits = await st.memory.search_messages(q, top_k=5, threshold=-0.2, exclude_run_ids=["r3"], **scope)
            out.append([[h.message.text, h.score] for h in hits])
        loaded = await st.run_sync(lambda c: c.exec_driver_sql("SELECT vec_version()").scalar())
        can_load = sqlite3_can_load()
        await st.close()
        # an extension this SQLite cannot load: the same search, exactly in this process
        from vivace.storage.vectors import sqlite as vec_sqlite

        vec_sqlite._PATH[:] = [path + ".not-an-extension"]
        st = SQLiteStorage(path)
        q, scope = queries[0]
        hits = await st.memory.search_messages(q, top_k=5, threshold=-0.2, exclude_run_ids=["r3"], **scope)
        fallback = [[h.message.text, h.score] for h in hits]
        await st.close()
        return {"can_load": can_load, "vec_version": loaded, "hits": out,
                "fallback": fallback, "can_load_after": sqlite3_can_load()}

    args = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(main(args["path"], args["queries"]))))
    """
)


def extension_capable_python() -> str | None:
    """An interpreter of this Python version whose sqlite3 can load extensions (this one, or
    the system's), able to import this venv's packages."""
    code = "import sqlite3, sys; sqlite3.connect(':memory:').enable_load_extension(True)"
    for exe in (
        sys.executable,
        shutil.which(f"python{sys.version_info[0]}.{sys.version_info[1]}"),
        "/usr/bin/python3",
    ):
        if not exe or not os.path.exists(exe):
            continue
        version = subprocess.run(
            [exe, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if version.stdout.strip() != str(tuple(sys.version_info[:2])):
            continue
        if subprocess.run([exe, "-c", code], capture_output=True).returncode == 0:
            return exe
    return None


async def test_sqlite_message_search_runs_in_sqlite_vec_where_sqlite3_loads_it(
    tmp_path: Path,
) -> None:
    """The storage's own sqlite3 connections load sqlite-vec (never a second SQLite library
    on the same file) and return the exact scan's hits."""
    pytest.importorskip("sqlite_vec")
    exe = extension_capable_python()
    if exe is None:
        pytest.skip("no Python here whose sqlite3 can load extensions")
    path = str(tmp_path / "vivace.db")
    st = SQLiteStorage(path)
    rows = await fill(st)
    await st.close()
    queries = [(q, {"user_id": "u1"}) for q in vectors(3, seed=41)] + [
        (vectors(1, seed=42)[0], {"session_id": "s2"})
    ]
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *site])}
    proc = subprocess.run(
        [exe, "-c", _SQLITE_VEC_SCRIPT],
        input=json.dumps({"path": path, "queries": queries}),
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["can_load"] and out["vec_version"].startswith("v")
    assert not out["can_load_after"]
    assert [h[0] for h in out["fallback"]] == [h[0] for h in out["hits"][0]]
    for (q, scope), hits in zip(queries, out["hits"], strict=True):
        key, value = next(iter(scope.items()))
        pick = [r for r in rows if r[key.replace("_id", "")] == value and r["run"] != "r3"]
        want = reference(pick, q, 5, threshold=-0.2)
        assert [h[0] for h in hits] == [t for t, _ in want]
        assert [h[1] for h in hits] == pytest.approx([s for _, s in want], abs=1e-5)


# -- upgrades ---------------------------------------------------------------------------------


async def old_database_with_embeddings(factory: Any, vecs: list[list[float]]) -> None:
    """A schema-2 database (the first with message embeddings) holding ``vecs``, written the
    way that version wrote them: float32 BLOBs, and no pgvector copy."""
    st = factory()

    def build(conn: sa.Connection) -> None:
        if factory.kind == "postgres":
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{factory.schema}"')
        history.create_schema(conn, 2)
        conn.execute(
            sa.text(
                "INSERT INTO vivace_message_embeddings (session_id, run_id, user_id, message, "
                "dims, embedding, created_at) VALUES ('old', :run, 'u', :msg, :dims, :emb, 1.0)"
            ),
            [
                {
                    "run": f"r{i}",
                    "msg": json.dumps(Message.user(f"old {i}").to_dict()),
                    "dims": len(v),
                    "emb": pack(v),
                }
                for i, v in enumerate(vecs)
            ],
        )

    await st.run_sync(build, setup=False)
    await st.close()


async def test_an_upgraded_database_keeps_its_message_embeddings_searchable(
    sql_factory: Any,
) -> None:
    vecs = vectors(40, seed=3)
    await old_database_with_embeddings(sql_factory, vecs)
    st = sql_factory()
    q = vectors(1, seed=4)[0]
    rows = [{"text": f"old {i}", "vec": v} for i, v in enumerate(vecs)]
    hits = await st.memory.search_messages(q, session_id="old", top_k=5)
    want = reference(rows, q, 5)
    assert [h.message.text for h in hits] == [t for t, _ in want]
    assert [h.score for h in hits] == pytest.approx([s for _, s in want], abs=1e-5)
    # new embeddings land beside the old ones and are found with them
    await st.memory.add_message_embeddings(
        [MessageEmbedding("old", Message.user("new"), q, user_id="u")]
    )
    hits = await st.memory.search_messages(q, user_id="u", top_k=2)
    assert [h.message.text for h in hits] == ["new", want[0][0]]
    if sql_factory.kind == "postgres":

        def state(conn: sa.Connection) -> tuple[int, bool]:
            missing = conn.exec_driver_sql(
                "SELECT count(*) FROM vivace_message_embeddings WHERE embedding_vec IS NULL"
            ).scalar()
            indexed = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
                f"AND indexname = 'ix_vivace_msg_emb_hnsw_{DIMS}'"
            ).scalar()
            return int(missing or 0), bool(indexed)

        assert await st.run_sync(state) == (0, True)  # pgvector's copies filled in, indexed


async def test_a_large_upgraded_table_is_searched_exactly_until_its_index_is_built(
    pg_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Building an HNSW index over many existing rows takes minutes: it is not done on a
    run's path. The search stays exact (and correct) until build_vector_indexes()."""
    monkeypatch.setattr(SQLMemory, "AUTO_INDEX_ROWS", 10)
    vecs = vectors(30, seed=8)
    await old_database_with_embeddings(pg_factory, vecs)
    st = pg_factory()
    q = vectors(1, seed=9)[0]
    want = reference([{"text": f"old {i}", "vec": v} for i, v in enumerate(vecs)], q, 3)
    with caplog.at_level(logging.WARNING, logger="vivace.storage"):
        hits = await st.memory.search_messages(q, user_id="u", top_k=3)
    assert [h.message.text for h in hits] == [t for t, _ in want]
    assert "build_vector_indexes" in caplog.text

    def has_index(conn: sa.Connection) -> bool:
        return bool(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
                f"AND indexname = 'ix_vivace_msg_emb_hnsw_{DIMS}'"
            ).scalar()
        )

    assert not await st.run_sync(has_index)
    assert await st.memory.build_vector_indexes() == [DIMS]
    assert await st.run_sync(has_index)
    assert await st.memory.build_vector_indexes() == []  # nothing left to build
    hits = await st.memory.search_messages(q, user_id="u", top_k=3)
    assert [h.message.text for h in hits] == [t for t, _ in want]


async def test_postgres_connections_that_searched_keep_serving_every_statement(
    pg_factory: Any,
) -> None:
    """A search gives the pooled connection pgvector's binary codec (the query vector goes
    as a binary ``vector``): writes, reads and searches after it, on the same connections,
    still work and agree with an exact scan."""
    st = pg_factory()
    vecs = vectors(40, seed=41)
    first = [MessageEmbedding("s1", Message.user(f"a{i}"), v, user_id="u") for i, v in enumerate(vecs[:20])]  # fmt: skip
    await st.memory.add_message_embeddings(first)
    for _ in range(3):  # every pooled connection the searches touch gets the codec
        await asyncio.gather(*(st.memory.search_messages(v, user_id="u") for v in vecs[:8]))
    later = [MessageEmbedding("s2", Message.user(f"b{i}"), v, user_id="u") for i, v in enumerate(vecs[20:])]  # fmt: skip
    await st.memory.add_message_embeddings(later)
    rows = [{"text": f"a{i}", "vec": v} for i, v in enumerate(vecs[:20])] + [
        {"text": f"b{i}", "vec": v} for i, v in enumerate(vecs[20:])
    ]
    for q in vecs[15:25]:
        hits = await st.memory.search_messages(q, user_id="u", top_k=3)
        assert [h.message.text for h in hits] == [t for t, _ in reference(rows, q, 3)]
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    # the session's own rows, and other statements on those connections
    hits = await st.memory.search_messages(vecs[30], session_id="s2", top_k=1)
    assert [h.message.text for h in hits] == ["b10"]
    assert await st.sessions.get_session("missing") is None
