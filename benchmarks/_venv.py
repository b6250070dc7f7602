"""The throwaway virtualenv the benchmark scripts run in (``.bench-venv/`` in the repo root).

Every ``benchmarks/bench_*.py`` script measures Vivace against other runtimes (Agno, ...)
installed into one shared, gitignored virtualenv, never into the project's own ``.venv``.
The repo itself is put on that venv's path with a ``.pth`` file (the same effect as
``pip install -e .`` without building a wheel), and the project's runtime dependencies from
``pyproject.toml`` are installed next to the comparison packages.

Typical use at the top of a script's ``main()``::

    from _venv import reexec_in_venv

    reexec_in_venv(["agno==3.1.10", "openai"])  # no-op once running inside the venv

API:

* :func:`ensure_venv` creates/reuses the venv, installs what is missing, returns its python.
* :func:`reexec_in_venv` re-runs the current script (same argv) with that python.
* :func:`in_venv` / :func:`venv_python` / :data:`REPO_ROOT` / :data:`VENV_DIR`.

Requirements already installed are remembered in ``.bench-venv/bench-requirements.txt``,
so a second run (or another script asking for the same packages) starts at once. Creation
and installs hold a file lock, so two scripts started together do not race.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "REPO_ROOT",
    "VENV_DIR",
    "ensure_venv",
    "in_venv",
    "reexec_in_venv",
    "repo_dependencies",
    "venv_python",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = REPO_ROOT / ".bench-venv"
_STAMP = "bench-requirements.txt"
_PTH = "_vivace_repo.pth"


def venv_python(venv_dir: Path = VENV_DIR) -> Path:
    """The venv's python executable (it may not exist yet)."""
    return venv_dir / "bin" / "python"


def in_venv(venv_dir: Path = VENV_DIR) -> bool:
    """Whether the running interpreter is the venv's."""
    return Path(sys.prefix).resolve() == venv_dir.resolve()


def repo_dependencies() -> list[str]:
    """The project's runtime dependencies, from ``pyproject.toml``."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        data = tomllib.load(f)
    return list(data.get("project", {}).get("dependencies", []))


@contextlib.contextmanager
def _locked(venv_dir: Path) -> Iterator[None]:
    venv_dir.mkdir(parents=True, exist_ok=True)
    with (venv_dir / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _log(msg: str) -> None:
    print(f"[bench-venv] {msg}", file=sys.stderr, flush=True)


def ensure_venv(
    requirements: Sequence[str] = (),
    *,
    venv_dir: Path = VENV_DIR,
    with_repo: bool = True,
    base_python: str = sys.executable,
) -> Path:
    """Create or reuse ``venv_dir`` with ``requirements`` installed; return its python.

    With ``with_repo`` (the default) the repo is importable in the venv (a ``.pth`` file)
    and its ``pyproject.toml`` dependencies are installed too. Only requirement strings not
    installed by an earlier call are passed to pip, in one ``pip install`` so the resolver
    sees them together. Raises :class:`subprocess.CalledProcessError` if pip fails.
    """
    py = venv_python(venv_dir)
    wanted = list(dict.fromkeys([*(repo_dependencies() if with_repo else []), *requirements]))
    with _locked(venv_dir):
        if not py.exists():
            _log(f"creating {venv_dir}")
            subprocess.run([base_python, "-m", "venv", str(venv_dir)], check=True)
        stamp = venv_dir / _STAMP
        done = set(stamp.read_text().split("\n")) if stamp.exists() else set()
        missing = [r for r in wanted if r not in done]
        if missing:
            _log(f"pip install {' '.join(missing)}")
            proc = subprocess.run(
                [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *missing],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                proc.check_returncode()
            with stamp.open("a") as f:
                f.writelines(f"{r}\n" for r in missing)
        if with_repo:
            purelib = subprocess.run(
                [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            pth = Path(purelib) / _PTH
            if not pth.exists() or pth.read_text().strip() != str(REPO_ROOT):
                pth.write_text(f"{REPO_ROOT}\n")
    return py


def reexec_in_venv(requirements: Sequence[str] = (), *, venv_dir: Path = VENV_DIR) -> None:
    """Unless already inside ``venv_dir``, ensure it and re-run this script there.

    Replaces the current process (``os.execv``) with ``<venv>/bin/python <sys.argv...>``;
    returns normally when already running inside the venv.
    """
    if in_venv(venv_dir):
        return
    py = ensure_venv(requirements, venv_dir=venv_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(str(py), [str(py), *sys.argv])
