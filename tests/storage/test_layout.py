"""The storage layer's shape: it imports nothing above it, modules use each other only through
public names, and the shared rules (run status, session rows) are defined once."""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path

import vivace.storage

STORAGE = Path(vivace.storage.__file__).parent
UPPER = ("vivace.models", "vivace.agent", "vivace.tools", "vivace.server", "vivace.cli")
UPPER += ("vivace.memory", "vivace.workflows", "vivace.testing")


def modules() -> list[tuple[str, ast.Module]]:
    """(package the module's relative imports start from, parsed source) per module."""
    out = []
    for path in sorted(STORAGE.rglob("*.py")):
        parts = path.relative_to(STORAGE.parent.parent).with_suffix("").parts
        package = ".".join(parts[:-1])
        out.append((package, ast.parse(path.read_text(), str(path))))
    return out


def imports(package: str, tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every import, also inside functions."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            if not node.level:
                mod = node.module or ""
            else:
                mod = f"{base}.{node.module}" if node.module else base
            out.append((mod, [a.name for a in node.names]))
    return out


def test_storage_imports_nothing_above_it() -> None:
    bad = [
        (name, mod)
        for name, tree in modules()
        for mod, _ in imports(name, tree)
        if mod.startswith(UPPER)
    ]
    assert bad == []


def is_module(dotted: str) -> bool:
    path = STORAGE.parent.parent / Path(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_no_private_names_cross_storage_modules() -> None:
    """A private module (``_engine``) may be imported; a private name (``_SQLSessions``) not."""
    bad = [
        (name, mod, n)
        for name, tree in modules()
        for mod, names in imports(name, tree)
        if mod.startswith("vivace")
        for n in names
        if n.startswith("_") and not is_module(f"{mod}.{n}")
    ]
    assert bad == []
    source = "".join(p.read_text() for p in STORAGE.rglob("*.py"))
    assert "hasattr(" not in source


def test_storing_and_reading_a_run_does_not_load_the_models_package() -> None:
    code = (
        "import asyncio, sys\n"
        "from vivace.storage import InMemoryStorage, RunRecord\n"
        "async def main():\n"
        "    st = InMemoryStorage()\n"
        "    rec = RunRecord('r', 's', status='completed', usage={'input_tokens': 3})\n"
        "    await st.sessions.finish_run(rec)\n"
        "    assert (await st.sessions.get_run('r')).usage == {'input_tokens': 3}\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith(('vivace.models', 'vivace.agent'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_run_status_and_one_session_row_reader() -> None:
    from vivace.agent import result

    assert result.RunStatus is vivace.storage.RunStatus
    assert "incomplete" in typing.get_args(vivace.storage.RunStatus)
    builders = [
        (path.name, node.lineno)
        for path in STORAGE.rglob("*.py")
        if path.name != "records.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SessionRecord"
    ]
    assert len(builders) == 1, builders
