"""The package's layering: data flows one way (server/cli -> agent, features -> tools, models ->
storage -> messages, errors), no part imports a part above it - not even inside a function -
and parts of one layer never import each other in a cycle.

``TYPE_CHECKING`` imports are left out (they are annotations, not dependencies)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import vivace

PACKAGE = Path(vivace.__file__).parent

# lower number = lower layer; a part may import parts of a lower layer, or of its own layer
# when that makes no cycle. A new part must be placed here.
LAYERS: dict[str, int] = {
    "errors": 0,
    "identifiers": 0,
    "trace_hook": 0,
    "compact_json": 0,
    "messages": 1,
    "storage": 2,
    "models": 3,
    "tools": 4,
    "testing": 4,
    "agent": 5,
    "memory": 6,
    "knowledge": 6,
    "teams": 6,
    "workflows": 6,
    "mcp": 6,
    "a2a": 6,
    "agui": 6,
    "observability": 6,
    "server": 7,
    "studio": 8,
    "examples": 9,
    "cli": 10,
}


def _part(module: str) -> str | None:
    """``vivace.storage.sql.x`` -> ``storage``; the package root itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "vivace" else None


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _edges() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the modules where it happens."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        package = ".".join(rel[:-1])
        source = _part(module)
        if source is None:
            continue
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            for t in targets:
                dest = _part(t) if t.startswith("vivace.") else None
                if dest is not None and dest != source and dest != "__version__":
                    edges[(source, dest)].append(module)
    return edges


def test_every_part_has_a_layer() -> None:
    parts = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    parts |= {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    missing = sorted(parts - set(LAYERS))
    assert missing == [], f"place these parts in LAYERS: {missing}"


def test_no_part_imports_a_part_above_it() -> None:
    upward = {
        f"{a} -> {b}": sorted(set(mods))
        for (a, b), mods in _edges().items()
        if LAYERS[b] > LAYERS[a]
    }
    assert upward == {}


def test_parts_of_one_layer_import_each_other_without_cycles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in _edges():
        if LAYERS[a] == LAYERS[b]:
            graph[a].add(b)
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif len(path) < len(LAYERS):
                visit(nxt, [*path, nxt])

    for start in list(graph):
        visit(start, [start])
    assert cycles == []
