"""The embedded knowledge store: one SQLite file with full text (FTS5, BM25) and vectors
(``sqlite-vec``), through ``apsw`` - an SQLite binding that can load extensions (Python's
``sqlite3`` here cannot). Needs the ``knowledge`` extra.

Per knowledge base: a ``vec0`` table of its vectors (exact cosine KNN; metadata filters
become an ``id IN (...)`` constraint the KNN applies while it scans) and an FTS5 table of
its chunks (BM25 statistics per knowledge base). Chunks, documents, vectors and full text
of one write are one transaction. Any number of processes may share the file (WAL). The
vector side is the index memory's recall shares (:mod:`vivace.storage.vectors`): its
sqlite-vec statements, and its exact in-process index for large knowledge bases.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ...errors import NotFound, StorageError, UserError
from ...storage.vectors import ExactIndex, numpy_or_none
from ...storage.vectors.sqlite import apsw_connect, vec0_create_sql, vec0_knn_sql
from ..errors import missing
from ..filters import Condition
from .base import BaseInfo, DocumentWrite, KnowledgeStore, StoredChunk, query_terms
from .sqlsql import sqlite_conditions, sqlite_json_path

__all__ = ["SQLiteKnowledgeStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kb_bases(
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, dims INTEGER NOT NULL,
    embedder TEXT NOT NULL, filters TEXT NOT NULL, created_at REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS kb_documents(
    kb INTEGER NOT NULL, source TEXT NOT NULL, hash TEXT NOT NULL, metadata TEXT NOT NULL,
    chunks INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (kb, source)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kb_chunks(
    id INTEGER PRIMARY KEY, kb INTEGER NOT NULL, source TEXT NOT NULL, position INTEGER NOT NULL,
    content TEXT NOT NULL, metadata TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS kb_chunks_source ON kb_chunks(kb, source);
CREATE TABLE IF NOT EXISTS kb_jobs(
    job_id TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL);
"""


def _row(r: Sequence[Any]) -> StoredChunk:
    return StoredChunk(r[0], r[1], r[2], r[3], r[4])  # JSON: decoded for hits only


class SQLiteKnowledgeStore(KnowledgeStore):
    """Knowledge bases in the SQLite file at ``path`` (``":memory:"`` is not shared between
    threads, so use a file; the directory is created).

    ``cache_vectors``: a knowledge base of :attr:`CACHE_MIN_CHUNKS` chunks or more is
    searched exactly from a numpy copy of its vectors kept in this process (its size: 1.5 KiB
    per 384-dimension chunk), reloaded when any process has changed the knowledge base (a
    version number written with every change); smaller ones, or without numpy, are searched
    by sqlite-vec in the database.
    """

    CACHE_MIN_CHUNKS = 20_000
    """Knowledge bases at least this large are searched from an in-process copy of their
    vectors (see ``cache_vectors``)."""

    def __init__(self, path: str | os.PathLike[str], *, cache_vectors: bool = True) -> None:
        self.path = os.fspath(path)
        self.cache_vectors = cache_vectors
        self._vcache: dict[int, Any] = {}
        self._vcache_lock = threading.Lock()
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        self._ready = False
        self._ids: dict[str, tuple[int, int]] = {}  # name -> (id, dims)

    # -- connections ----------------------------------------------------------------------

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = apsw_connect(self.path)
        except ImportError as exc:
            raise missing(exc.name or "apsw", "knowledge", "the SQLite knowledge store") from None
        with self._conns_lock:
            self._conns.append(conn)
        self._local.conn = conn
        if not self._ready:
            conn.execute(_SCHEMA)
            cols = {r[1] for r in conn.execute("PRAGMA table_info(kb_bases)")}
            if "version" not in cols:  # a file made before knowledge bases had versions
                conn.execute("ALTER TABLE kb_bases ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
            self._ready = True
        return conn

    async def _run(self, fn: Callable[[Any], T]) -> T:
        def call() -> T:
            conn = self._conn()
            try:
                return fn(conn)
            except (UserError, NotFound):
                raise
            except Exception as exc:
                import apsw

                if isinstance(exc, apsw.Error):
                    raise StorageError(
                        f"knowledge store {self.path}: {type(exc).__name__}: {exc}"
                    ) from exc
                raise

        return await asyncio.to_thread(call)

    @staticmethod
    def _write(conn: Any, fn: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = fn()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return out

    # -- knowledge bases ------------------------------------------------------------------------

    def _base_id(self, conn: Any, name: str, *, required: bool = True) -> tuple[int, int] | None:
        got = self._ids.get(name)
        if got is not None:
            return got
        row = conn.execute("SELECT id, dims FROM kb_bases WHERE name = ?", (name,)).fetchone()
        if row is None:
            if required:
                raise NotFound(f"no knowledge base {name!r}", knowledge_base=name)
            return None
        self._ids[name] = (row[0], row[1])
        return self._ids[name]

    def _info(self, conn: Any, row: Sequence[Any]) -> BaseInfo:
        kid = row[0]
        docs = conn.execute(
            "SELECT count(*), coalesce(sum(chunks), 0) FROM kb_documents WHERE kb = ?", (kid,)
        ).fetchone()
        return BaseInfo(row[1], row[2], row[3], json.loads(row[4]), docs[0], docs[1], row[5])

    async def ensure_base(
        self, name: str, *, dims: int, embedder: str, filters: Mapping[str, str]
    ) -> BaseInfo:
        def fn(conn: Any) -> BaseInfo:
            def create() -> BaseInfo:
                row = conn.execute(
                    "SELECT id, name, dims, embedder, filters, created_at FROM kb_bases WHERE name = ?",
                    (name,),
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO kb_bases(name, dims, embedder, filters, created_at) VALUES (?, ?, ?, ?, ?)",
                        (name, dims, embedder, json.dumps(dict(filters)), time.time()),
                    )
                    kid = conn.last_insert_rowid()
                    conn.execute(vec0_create_sql(f"kb_vec_{int(kid)}", dims))
                    conn.execute(
                        f"CREATE VIRTUAL TABLE kb_fts_{kid} USING fts5(content, content='', "
                        "contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2')"
                    )
                    row = conn.execute(
                        "SELECT id, name, dims, embedder, filters, created_at FROM kb_bases WHERE id = ?",
                        (kid,),
                    ).fetchone()
                elif row[2] != dims:
                    raise UserError(
                        f"knowledge base {name!r} holds {row[2]}-dimension vectors; this embedder makes {dims}",
                        knowledge_base=name,
                    )
                else:
                    merged = {**json.loads(row[4]), **filters}
                    if merged != json.loads(row[4]):
                        conn.execute(
                            "UPDATE kb_bases SET filters = ? WHERE id = ?",
                            (json.dumps(merged), row[0]),
                        )
                        row = (*row[:4], json.dumps(merged), row[5])
                self._filter_indexes(conn, row[0], json.loads(row[4]))
                return self._info(conn, row)

            return self._write(conn, create)

        return await self._run(fn)

    @staticmethod
    def _filter_indexes(conn: Any, kid: int, filters: Mapping[str, str]) -> None:
        """An expression index per declared filter field, so a filter picks its candidate
        chunks without reading every chunk's metadata."""
        import hashlib

        for field in filters:
            path = sqlite_json_path(field)
            tag = hashlib.blake2b(field.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
            conn.execute(  # the type too: filters check it, and the index answers alone
                f"CREATE INDEX IF NOT EXISTS kb_chunks_t{int(kid)}_{tag} ON kb_chunks("
                f"kb, json_type(metadata, {path}), json_extract(metadata, {path}))"
            )

    async def get_base(self, name: str) -> BaseInfo | None:
        def fn(conn: Any) -> BaseInfo | None:
            row = conn.execute(
                "SELECT id, name, dims, embedder, filters, created_at FROM kb_bases WHERE name = ?",
                (name,),
            ).fetchone()
            return self._info(conn, row) if row else None

        return await self._run(fn)

    async def list_bases(self) -> list[BaseInfo]:
        def fn(conn: Any) -> list[BaseInfo]:
            rows = conn.execute(
                "SELECT id, name, dims, embedder, filters, created_at FROM kb_bases ORDER BY name"
            ).fetchall()
            return [self._info(conn, r) for r in rows]

        return await self._run(fn)

    async def drop_base(self, name: str) -> bool:
        def fn(conn: Any) -> bool:
            def drop() -> bool:
                got = self._base_id(conn, name, required=False)
                if got is None:
                    return False
                kid = got[0]
                conn.execute(f"DROP TABLE IF EXISTS kb_vec_{kid}")
                conn.execute(f"DROP TABLE IF EXISTS kb_fts_{kid}")
                conn.execute("DELETE FROM kb_chunks WHERE kb = ?", (kid,))
                conn.execute("DELETE FROM kb_documents WHERE kb = ?", (kid,))
                conn.execute("DELETE FROM kb_bases WHERE id = ?", (kid,))
                return True

            try:
                return self._write(conn, drop)
            finally:
                got = self._ids.pop(name, None)
                if got is not None:
                    self._vcache.pop(got[0], None)

        return await self._run(fn)

    # -- documents ------------------------------------------------------------------------------

    async def document_hashes(self, name: str, sources: Sequence[str]) -> dict[str, str]:
        def fn(conn: Any) -> dict[str, str]:
            got = self._base_id(conn, name, required=False)
            if got is None or not sources:
                return {}
            out: dict[str, str] = {}
            srcs = list(sources)
            for i in range(0, len(srcs), 500):
                part = srcs[i : i + 500]
                q = f"SELECT source, hash FROM kb_documents WHERE kb = ? AND source IN ({','.join('?' * len(part))})"
                out.update(dict(conn.execute(q, (got[0], *part)).fetchall()))
            return out

        return await self._run(fn)

    @staticmethod
    def _remove(conn: Any, kid: int, source: str) -> None:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM kb_chunks WHERE kb = ? AND source = ?", (kid, source)
            )
        ]
        if ids:
            conn.executemany(f"DELETE FROM kb_fts_{kid} WHERE rowid = ?", [(i,) for i in ids])
            conn.executemany(f"DELETE FROM kb_vec_{kid} WHERE id = ?", [(i,) for i in ids])
            conn.execute("DELETE FROM kb_chunks WHERE kb = ? AND source = ?", (kid, source))
        conn.execute("DELETE FROM kb_documents WHERE kb = ? AND source = ?", (kid, source))

    async def write_documents(self, name: str, docs: Sequence[DocumentWrite]) -> None:
        if not docs:
            return

        def fn(conn: Any) -> None:
            kid, dims = self._base_id(conn, name)  # type: ignore[misc]
            for d in docs:
                if len(d.vectors) != len(d.chunks):
                    raise UserError(
                        f"{d.source}: {len(d.chunks)} chunks but {len(d.vectors)} vectors"
                    )
                for v in d.vectors:
                    if len(v) != 4 * dims:
                        raise UserError(
                            f"{d.source}: a vector has {len(v) // 4} dimensions, not {dims}"
                        )

            def write() -> None:
                now = time.time()
                next_id = (
                    (conn.execute("SELECT coalesce(max(id), 0) FROM kb_chunks").fetchone()[0]) + 1
                )
                chunk_rows: list[tuple[Any, ...]] = []
                fts_rows: list[tuple[Any, ...]] = []
                vec_rows: list[tuple[Any, ...]] = []
                doc_rows: list[tuple[Any, ...]] = []
                for d in docs:
                    self._remove(conn, kid, d.source)
                    for c, v in zip(d.chunks, d.vectors, strict=True):
                        chunk_rows.append(
                            (next_id, kid, d.source, c.position, c.text,
                             json.dumps(c.metadata, ensure_ascii=False, default=str), c.start, c.end)
                        )  # fmt: skip
                        fts_rows.append((next_id, c.text))
                        vec_rows.append((next_id, v))
                        next_id += 1
                    doc_rows.append(
                        (
                            kid,
                            d.source,
                            d.hash,
                            json.dumps(d.metadata, ensure_ascii=False, default=str),
                            len(d.chunks),
                            now,
                        )
                    )
                conn.execute("UPDATE kb_bases SET version = version + 1 WHERE id = ?", (kid,))
                conn.executemany(
                    "INSERT INTO kb_chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", chunk_rows
                )
                conn.executemany(
                    f"INSERT INTO kb_fts_{kid}(rowid, content) VALUES (?, ?)", fts_rows
                )
                conn.executemany(f"INSERT INTO kb_vec_{kid}(id, embedding) VALUES (?, ?)", vec_rows)
                conn.executemany("INSERT INTO kb_documents VALUES (?, ?, ?, ?, ?, ?)", doc_rows)

            self._write(conn, write)

        await self._run(fn)

    async def delete_documents(
        self, name: str, *, sources: Sequence[str] | None = None, conds: Sequence[Condition] = ()
    ) -> int:
        def fn(conn: Any) -> int:
            got = self._base_id(conn, name, required=False)
            if got is None:
                return 0
            kid = got[0]

            def delete() -> int:
                where, params = "d.kb = ?", list[Any]([kid])
                if sources is not None:
                    if not sources:
                        return 0
                    where += f" AND d.source IN ({','.join('?' * len(sources))})"
                    params += list(sources)
                if conds:
                    sql, p = sqlite_conditions(conds, "d")
                    where += " AND " + sql
                    params += p
                picked = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT d.source FROM kb_documents d WHERE {where}", params
                    )
                ]
                for s in picked:
                    self._remove(conn, kid, s)
                if picked:
                    conn.execute("UPDATE kb_bases SET version = version + 1 WHERE id = ?", (kid,))
                return len(picked)

            return self._write(conn, delete)

        return await self._run(fn)

    async def list_documents(
        self, name: str, *, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        def fn(conn: Any) -> list[dict[str, Any]]:
            got = self._base_id(conn, name, required=False)
            if got is None:
                return []
            rows = conn.execute(
                "SELECT source, hash, chunks, metadata, updated_at FROM kb_documents WHERE kb = ? "
                "ORDER BY source LIMIT ? OFFSET ?",
                (got[0], limit, offset),
            ).fetchall()
            return [
                {
                    "source": r[0],
                    "hash": r[1],
                    "chunks": r[2],
                    "metadata": json.loads(r[3]),
                    "updated_at": r[4],
                }
                for r in rows
            ]

        return await self._run(fn)

    # -- search -----------------------------------------------------------------------------------

    async def vector_search(
        self, name: str, vector: bytes, k: int, conds: Sequence[Condition] = ()
    ) -> list[tuple[StoredChunk, float]]:
        def fn(conn: Any) -> list[tuple[StoredChunk, float]]:
            kid, dims = self._base_id(conn, name)  # type: ignore[misc]
            if len(vector) != 4 * dims:
                raise UserError(f"the query vector has {len(vector) // 4} dimensions, not {dims}")
            cached = (
                self._cached_search(conn, kid, vector, k, conds) if self.cache_vectors else None
            )
            if cached is not None:
                return cached
            params: list[Any] = [vector, k]
            candidates = ""
            if conds:
                sql, p = sqlite_conditions(conds, "c")
                candidates = f"SELECT c.id FROM kb_chunks c WHERE c.kb = ? AND {sql}"
                params += [kid, *p]
            knn = vec0_knn_sql(
                f"kb_vec_{int(kid)}",
                rows="kb_chunks",
                columns="c.id, c.source, c.position, c.content, c.metadata",
                candidates=candidates,
            )
            rows = conn.execute(knn, params).fetchall()
            return [(_row(r), 1.0 - float(r[5])) for r in rows]

        return await self._run(fn)

    def _cached_search(
        self, conn: Any, kid: int, vector: bytes, k: int, conds: Sequence[Condition]
    ) -> list[tuple[StoredChunk, float]] | None:
        """Exact cosine search over the in-process copy of the vectors (None: not used)."""
        conn.execute("BEGIN")  # one snapshot for the version, the vectors and the candidates
        try:
            version, count = conn.execute(
                "SELECT b.version, (SELECT coalesce(sum(chunks), 0) FROM kb_documents WHERE kb = b.id) "
                "FROM kb_bases b WHERE b.id = ?",
                (kid,),
            ).fetchone()
            if count < self.CACHE_MIN_CHUNKS:
                return None  # (and numpy is not imported for it)
            np = numpy_or_none()
            if np is None:
                return None
            cache = self._vcache.get(kid)
            if cache is None or cache[0] != version:
                with self._vcache_lock:
                    cache = self._vcache.get(kid)
                    if cache is None or cache[0] != version:
                        rows = conn.execute(f"SELECT id, embedding FROM kb_vec_{kid}").fetchall()
                        index = ExactIndex.from_blobs(len(vector) // 4, rows, use_numpy=True)
                        del rows
                        cache = (version, index)
                        self._vcache[kid] = cache
            index = cache[1]
            candidates = None
            if conds:
                sql, p = sqlite_conditions(conds, "c")
                candidates = np.fromiter(
                    (
                        r[0]
                        for r in conn.execute(
                            f"SELECT c.id FROM kb_chunks c WHERE c.kb = ? AND {sql}", [kid, *p]
                        )
                    ),
                    dtype=np.int64,
                )
            found = index.search(vector, k, candidates=candidates)
            if not found:
                return []
            scores = dict(found)
            marks = ",".join("?" * len(scores))
            rows = conn.execute(
                f"SELECT id, source, position, content, metadata FROM kb_chunks WHERE id IN ({marks})",
                list(scores),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        out = [(_row(r), scores[r[0]]) for r in rows]
        out.sort(key=lambda t: (-t[1], t[0].id))
        return out

    async def text_search(
        self, name: str, query: str, k: int, conds: Sequence[Condition] = ()
    ) -> list[tuple[StoredChunk, float]]:
        terms = query_terms(query)
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)

        def fn(conn: Any) -> list[tuple[StoredChunk, float]]:
            kid, _ = self._base_id(conn, name)  # type: ignore[misc]
            params: list[Any] = [match]
            extra = ""
            if conds:
                sql, p = sqlite_conditions(conds, "c")
                extra = " AND " + sql
                params += p
            params.append(k)
            rows = conn.execute(
                f"SELECT c.id, c.source, c.position, c.content, c.metadata, -f.rank "
                f"FROM kb_fts_{kid} f JOIN kb_chunks c ON c.id = f.rowid "
                f"WHERE kb_fts_{kid} MATCH ?{extra} ORDER BY f.rank LIMIT ?",
                params,
            ).fetchall()
            return [(_row(r), float(r[5])) for r in rows]

        return await self._run(fn)

    async def save_job(self, job: dict[str, Any]) -> None:
        data = json.dumps(job, default=str)

        def fn(conn: Any) -> None:
            now = time.time()
            conn.execute(
                "INSERT OR REPLACE INTO kb_jobs VALUES (?, ?, ?)", (job["job_id"], data, now)
            )
            conn.execute("DELETE FROM kb_jobs WHERE updated_at < ?", (now - 7 * 86400,))

        await self._run(fn)

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        def fn(conn: Any) -> dict[str, Any] | None:
            row = conn.execute("SELECT data FROM kb_jobs WHERE job_id = ?", (job_id,)).fetchone()
            return json.loads(row[0]) if row else None

        return await self._run(fn)

    async def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
        self._local = threading.local()
