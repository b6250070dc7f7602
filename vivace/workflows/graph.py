"""A workflow as a graph (for the Studio) and as Mermaid text.

``build_graph(wf)`` returns ``{"id", "nodes", "edges"}``. Each node has ``id`` (its path
pattern, unique: ``loop[].inner.step``; containers get ``kind@position``), ``kind``
(``function``, ``agent``, ``tool``, ``workflow``, ``parallel``, ``branch``, ``loop``,
``foreach``, ``map``, ``sleep``, ``wait``), ``label``, ``parent`` (the container or nested
workflow it belongs to), the JSON Schemas of its ``input``/``output``/``resume`` and
kind-specific fields (``concurrency``, ``until``, ``event``, ``seconds``). Edges are
``{"source", "target", "label"}`` in execution order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .nodes import (
    BranchNode,
    ForeachNode,
    LoopNode,
    MapNode,
    Node,
    ParallelNode,
    SleepNode,
    StepNode,
    WaitNode,
)
from .typecheck import json_schema, type_name

if TYPE_CHECKING:
    from .builder import Workflow
    from .steps import Step

__all__ = ["build_graph", "to_mermaid"]


def _join(prefix: str, seg: str) -> str:
    return seg if not prefix else f"{prefix}.{seg}"


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []

    def node(self, **fields: Any) -> str:
        self.nodes.append(fields)
        return str(fields["id"])

    def edge(self, source: str, target: str, label: str | None = None) -> None:
        self.edges.append({"source": source, "target": target, "label": label})

    def step(self, s: Step[Any, Any], path: str, parent: str | None, **extra: Any) -> str:
        node = self.node(
            id=path,
            kind=s.kind,
            label=s.id,
            parent=parent,
            description=s.description,
            input=json_schema(s.input_type),
            output=json_schema(s.output_type),
            input_type=type_name(s.input_type),
            output_type=type_name(s.output_type),
            resume=json_schema(s.resume_type) if s.resume_type is not None else None,
            retries=s.retries,
            timeout=s.timeout,
            **extra,
        )
        if s.kind == "workflow":
            self.sequence(s.target.nodes, path, node)
        return node

    def sequence(
        self, nodes: list[Node], prefix: str, parent: str | None
    ) -> tuple[list[str], list[str]]:
        """Add ``nodes`` in order; returns (entry ids, exit ids)."""
        entries: list[str] = []
        exits: list[str] = []
        for index, n in enumerate(nodes):
            heads, tails = self.one(n, prefix, parent, index)
            for e in exits:
                for h in heads:
                    self.edge(e, h)
            if not entries:
                entries = heads
            exits = tails
        return entries, exits

    def one(
        self, n: Node, prefix: str, parent: str | None, index: int
    ) -> tuple[list[str], list[str]]:
        where = f"{prefix}@{index}" if prefix else f"@{index}"
        if isinstance(n, StepNode):
            node = self.step(n.step, _join(prefix, n.step.id), parent)
            return [node], [node]
        if isinstance(n, ParallelNode | BranchNode):
            kind = "parallel" if isinstance(n, ParallelNode) else "branch"
            fork = self.node(id=f"{kind}{where}", kind=kind, label=kind, parent=parent)
            tails = []
            children = n.steps if isinstance(n, ParallelNode) else [s for _, s in n.cases]
            for i, s in enumerate(children):
                child = self.step(s, _join(prefix, s.id), fork)
                label = None
                if isinstance(n, BranchNode):
                    cond = n.cases[i][0]
                    label = getattr(cond, "__name__", "condition")
                    if label == "<lambda>":
                        label = f"case {i + 1}"
                self.edge(fork, child, label)
                tails.append(child)
            return [fork], tails
        if isinstance(n, LoopNode | ForeachNode):
            seg = f"{n.id or n.step.id}[]"
            if isinstance(n, LoopNode):
                kind, extra = "loop", {"until": n.until, "max_iterations": n.max_iterations}
            else:
                kind, extra = "foreach", {"concurrency": n.concurrency}
            container = self.node(
                id=f"{kind}{where}", kind=kind, label=n.id, parent=parent, **extra
            )
            child = self.step(n.step, _join(prefix, seg), container)
            self.edge(container, child)
            if isinstance(n, LoopNode):
                self.edge(child, child, "until" if n.until else "while")
            return [container], [child]
        if isinstance(n, MapNode):
            node = self.node(
                id=f"map{where}",
                kind="map",
                label=getattr(n.fn, "__name__", "map"),
                parent=parent,
                output=json_schema(n.output_type),
                output_type=type_name(n.output_type),
            )
            return [node], [node]
        if isinstance(n, SleepNode):
            node = self.node(
                id=_join(prefix, n.id or "sleep"),
                kind="sleep",
                label=n.id,
                parent=parent,
                seconds=n.seconds,
                until=n.until.isoformat() if n.until else None,
            )
            return [node], [node]
        if isinstance(n, WaitNode):
            node = self.node(
                id=_join(prefix, n.id or n.event),
                kind="wait",
                label=n.id,
                parent=parent,
                event=n.event,
                resume=json_schema(n.output_type),
            )
            return [node], [node]
        raise TypeError(f"unknown node {n!r}")


def build_graph(wf: Workflow[Any, Any]) -> dict[str, Any]:
    b = _Builder()
    b.sequence(wf.nodes, "", None)
    return {"id": wf.id, "nodes": b.nodes, "edges": b.edges}


def _mid(node_id: str) -> str:
    out = []
    for ch in node_id:
        out.append(ch if ch.isalnum() or ch == "_" else f"_{ord(ch):x}_")
    return "n_" + "".join(out)


def _label(text: str) -> str:
    return text.replace('"', "&quot;")


def to_mermaid(wf: Workflow[Any, Any]) -> str:
    g = build_graph(wf)
    lines = ["flowchart TD"]
    shapes = {
        "parallel": ('{{"', '"}}'),
        "branch": ('{"', '"}'),
        "loop": ('(["', '"])'),
        "foreach": ('(["', '"])'),
        "map": ('[/"', '"/]'),
        "sleep": ('(("', '"))'),
        "wait": ('(("', '"))'),
        "agent": ('[["', '"]]'),
    }
    children: dict[str | None, list[dict[str, Any]]] = {}
    for n in g["nodes"]:
        children.setdefault(n["parent"], []).append(n)

    def emit(parent: str | None, indent: str) -> None:
        for n in children.get(parent, []):
            text = n["label"] or n["id"]
            if n["kind"] == "foreach":
                text = f"foreach {text} (x{n.get('concurrency', 1)})"
            elif n["kind"] == "loop":
                text = f"{'dountil' if n.get('until') else 'dowhile'} {text}"
            elif n["kind"] == "wait":
                text = f"wait for {n.get('event')}"
            elif n["kind"] == "sleep":
                text = f"sleep {n.get('seconds') or n.get('until')}"
            if n["kind"] == "workflow":
                lines.append(f'{indent}subgraph {_mid(n["id"])}["{_label(text)}"]')
                emit(n["id"], indent + "  ")
                lines.append(f"{indent}end")
                continue
            left, right = shapes.get(n["kind"], ('["', '"]'))
            lines.append(f"{indent}{_mid(n['id'])}{left}{_label(text)}{right}")
            if n["kind"] in ("parallel", "branch", "loop", "foreach"):
                emit(n["id"], indent)

    emit(None, "  ")
    for e in g["edges"]:
        arrow = f"-->|{_label(e['label'])}|" if e["label"] else "-->"
        lines.append(f"  {_mid(e['source'])} {arrow} {_mid(e['target'])}")
    return "\n".join(lines) + "\n"
