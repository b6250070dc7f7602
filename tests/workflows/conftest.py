"""Fixtures for the workflow tests: storages per backend, worker processes, step logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

PROC = str(Path(__file__).with_name("proc.py"))


@pytest.fixture
def step_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A file every step of ``flows.py`` appends its path to (here and in subprocesses)."""
    path = str(tmp_path / "steps.log")
    monkeypatch.setenv("VIVACE_WF_LOG", path)
    return path


@pytest.fixture
async def wf_storage(storage_factory: Any) -> AsyncIterator[Any]:
    """A storage on each backend (memory, SQLite, PostgreSQL), closed by its factory."""
    yield storage_factory()


@pytest.fixture
async def sql_spec(sql_factory: Any) -> AsyncIterator[dict[str, Any]]:
    """How a subprocess opens a SQL database (SQLite and PostgreSQL)."""
    yield sql_factory.spec()


def run_proc(
    spec: dict[str, Any], *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> Any:
    """Run ``proc.py`` to the end and return its RESULT JSON."""
    done = subprocess.run(
        [sys.executable, PROC, json.dumps(spec), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return parse_result(done.stdout, done.stderr)


def start_proc(spec: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.Popen(
        [sys.executable, PROC, json.dumps(spec), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def parse_result(stdout: str, stderr: str = "") -> Any:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"no result from the worker process\nstdout:\n{stdout}\nstderr:\n{stderr}")


@pytest.fixture
def proc() -> Callable[..., Any]:
    return run_proc
