"""``vivace workflows`` and ``vivace run`` for workflows, as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def vivace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vivace.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )


def test_list_workflows() -> None:
    r = vivace("workflows", "tests.workflows.cli_app:workflows")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["id", "engine", "steps", "input", "schedule", "description"]
    assert any(line.startswith("simple") and "Double, then describe." in line for line in lines)
    assert any(line.startswith("nightly") and "0 3 * * *" in line for line in lines)
    r = vivace("workflows", "tests.workflows.cli_app:workflows", "--json")
    assert [d["id"] for d in json.loads(r.stdout)] == ["simple", "asking", "nightly"]


def test_run_a_workflow_with_the_step_view() -> None:
    r = vivace("run", "tests.workflows.cli_app:simple", "21")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "▶ double running" in out and "▶ describe running" in out
    assert any(line.startswith("✓ double completed") and "→ 42" in line for line in out)
    assert out[-1] == "completed (2 steps): got 42"
    r = vivace("run", "tests.workflows.cli_app:workflows", "4", "--workflow", "simple", "--json")
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[0]["type"] == "workflow_started" and events[-1]["type"] == "workflow_completed"
    assert events[-1]["output"] == "got 8"


def test_a_suspended_run_without_a_terminal_says_how_to_resume() -> None:
    r = vivace("run", "tests.workflows.cli_app:asking", "hello")
    assert r.returncode == 3
    assert "⏸ ask suspended" in r.stdout
    assert "is suspended at ask" in r.stderr
    r = vivace("run", "tests.workflows.cli_app:workflows", "1")
    assert r.returncode == 2 and "several workflows" in r.stderr
