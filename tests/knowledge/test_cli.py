"""``vivace knowledge``: add (progress, idempotent, failures reported), search, list, delete,
through the real command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vivace.cli", "knowledge", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), "VIVACE_KNOWLEDGE_URL": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_add_search_list_delete(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees for two minutes.")
    (docs / "bikes.txt").write_text("Inflate road bike tyres to about seven bar.")
    (docs / "photo.png").write_bytes(b"\x89PNG\r\n")
    store = f"sqlite:///{tmp_path}/kb.db"
    p = _cli(
        "add",
        "notes",
        str(docs),
        "--store",
        store,
        "--meta",
        "team=home",
        "--filter-field",
        "team:str",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert "notes: 2 added, 0 updated, 0 unchanged, 1 failed; 2 chunks written" in p.stdout
    assert "photo.png" in p.stderr and "unsupported_content" in p.stderr
    assert "[##############################] 3/3 items" in p.stderr  # the progress bar
    p = _cli(
        "add",
        "notes",
        str(docs / "tea.md"),
        str(docs / "bikes.txt"),
        "--store",
        store,
        "--meta",
        "team=home",
        cwd=tmp_path,
    )
    assert "0 added, 0 updated, 2 unchanged" in p.stdout
    p = _cli(
        "search",
        "notes",
        "what temperature for green tea",
        "--store",
        store,
        "--top-k",
        "1",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("1. ") and "tea.md #0" in p.stdout and "80 degrees" in p.stdout
    p = _cli(
        "search",
        "notes",
        "tyre pressure",
        "--store",
        store,
        "--json",
        "--filter",
        '{"team": "home"}',
        cwd=tmp_path,
    )
    hits = json.loads(p.stdout)
    assert hits[0]["source"].endswith("bikes.txt") and hits[0]["metadata"]["team"] == "home"
    p = _cli("list", "--store", store, cwd=tmp_path)
    assert (
        p.stdout.strip()
        == "notes  2 documents, 2 chunks, 384 dims, embedder local/all-MiniLM-L6-v2"
    )
    p = _cli("delete", "notes", (docs / "bikes.txt").as_posix(), "--store", store, cwd=tmp_path)
    assert p.stdout.strip() == "1 documents deleted from notes"
    p = _cli("list", "notes", "--store", store, cwd=tmp_path)
    assert p.stdout.strip() == f"{(docs / 'tea.md').as_posix()}  1 chunks"


def test_errors_are_one_line(tmp_path: Path) -> None:
    p = _cli(
        "search",
        "nothing-here",
        "query",
        "--store",
        f"sqlite:///{tmp_path}/kb.db",
        "--filter",
        '{"year": {"between": 1}}',
        cwd=tmp_path,
    )
    assert p.returncode == 1 and p.stderr.startswith("error: ") and "operator" in p.stderr
    p = _cli(
        "add",
        "kb",
        str(tmp_path / "missing.txt"),
        "--store",
        f"sqlite:///{tmp_path}/kb.db",
        cwd=tmp_path,
    )
    assert p.returncode == 1 and "no such file" in p.stderr
