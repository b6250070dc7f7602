"""Run the ```python blocks of Markdown files as tests (see tests/docs/test_docs_examples.py).

The convention (BRIEF.md): every fenced ```python block of docs/*.md and README.md runs;
the blocks of one file run in order in one namespace (a later block may use what an earlier
one defined), offline, in a temporary working directory. A block that cannot run offline
has ``<!-- doctest: skip (why) -->`` on the line above its fence; the reason is required.
Top-level ``await`` is allowed: such a block runs as one coroutine (like a notebook cell),
so it cannot also call the synchronous ``agent.run()``/``embed()``: split it.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Block", "DocFile", "blocks_of"]

_FENCE = re.compile(r"^(\s*)```\s*python\b.*$")
_END = re.compile(r"^\s*```\s*$")
_SKIP = re.compile(r"^\s*<!--\s*doctest:\s*skip\b\s*(?:\((?P<why>.*)\))?\s*-->\s*$")


@dataclass
class Block:
    """One ```python block: where it is, its code, and why it is skipped (if it is)."""

    path: Path
    rel: str  # the path shown in reports (relative to the repository)
    line: int  # line number of the opening fence
    code: str
    skip: str | None = None
    skip_marker_without_reason: bool = False

    @property
    def where(self) -> str:
        return f"{self.rel}:{self.line}"


def blocks_of(path: Path, rel: str) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence_line = i + 1
        indent = len(m.group(1))
        body: list[str] = []
        i += 1
        while i < len(lines) and not _END.match(lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        j = fence_line - 2  # the line above the fence (0-based), blank lines skipped
        while j >= 0 and not lines[j].strip():
            j -= 1
        skip_m = _SKIP.match(lines[j]) if j >= 0 else None
        block = Block(path, rel, fence_line, "\n".join(body))
        if skip_m:
            why = (skip_m.group("why") or "").strip()
            block.skip = why or None
            block.skip_marker_without_reason = not why
        out.append(block)
        i += 1
    return out


@dataclass
class DocFile:
    """The shared state of one file's blocks: namespace, working directory, progress."""

    blocks: list[Block]
    cwd: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__main__"})
    done: int = 0  # blocks run so far (in order)
    failed: Block | None = None

    def run_through(self, index: int) -> None:
        """Run blocks up to ``index`` (earlier ones first, each once). Raises
        ``AssertionError`` naming file and line when a block fails."""
        while self.done <= index:
            block = self.blocks[self.done]
            self.done += 1
            if self.failed is not None:
                raise AssertionError(
                    f"{block.where}: not run because an earlier block of the file "
                    f"({self.failed.where}) failed; the blocks share one namespace"
                )
            if block.skip is not None:
                continue
            if block.skip_marker_without_reason:
                self.failed = block
                raise AssertionError(
                    f"{block.where}: a skip marker needs a reason: "
                    "<!-- doctest: skip (why it cannot run offline) -->"
                )
            try:
                self._exec(block)
            except BaseException as exc:
                self.failed = block
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise AssertionError(_report(block, exc)) from None

    def _exec(self, block: Block) -> None:
        from vivace.agent.agent import run_sync

        # pad so that tracebacks and syntax errors carry the Markdown line numbers
        source = "\n" * block.line + block.code
        code = compile(
            source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
        )
        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            if code.co_flags & inspect.CO_COROUTINE:
                run_sync(eval(code, self.namespace))
            else:
                exec(code, self.namespace)
        finally:
            os.chdir(old)


def _report(block: Block, exc: BaseException) -> str:
    frames = [
        f"  {block.rel}:{fs.lineno}: {(fs.line or '').strip()}"
        for fs in traceback.extract_tb(exc.__traceback__)
        if fs.filename == str(block.path)
    ]
    if isinstance(exc, SyntaxError) and exc.filename == str(block.path):
        frames.append(f"  {block.rel}:{exc.lineno}: {(exc.text or '').strip()}")
    where = "\n".join(frames) or f"  {block.where}"
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return (
        f"{block.where}: this ```python block failed\n{where}\n{detail}\n"
        "(fix the example, or mark it `<!-- doctest: skip (why) -->` if it cannot run offline)"
    )
