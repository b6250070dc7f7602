"""``vivace workflows TARGET`` (list them) and ``vivace run TARGET INPUT`` for a workflow: the
run's events streamed to the terminal with a live view of each step's status.

On a terminal the step board is redrawn in place as events arrive; otherwise (a pipe, a log)
one line is printed per step event. A suspended run asks for each suspended step's data
(JSON) on a terminal and resumes; ``--json`` prints the raw events, one per line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, TextIO

from ._load import TargetError, load

__all__ = ["pick_workflow", "run_workflow", "workflows"]

_MARKS = {
    "running": "▶",
    "completed": "✓",
    "failed": "✗",
    "retrying": "↻",
    "suspended": "⏸",
    "skipped": "·",
}


def _collect(obj: Any) -> dict[str, Any]:
    from ..server import VivaceApp
    from ..workflows import Workflow

    if isinstance(obj, Workflow):
        return {obj.id: obj}
    if isinstance(obj, VivaceApp):
        return dict(obj.workflows)
    if isinstance(obj, list | tuple | dict):
        items = obj.values() if isinstance(obj, dict) else obj
        return {w.id: w for w in items if isinstance(w, Workflow)}
    return {}


def is_workflow_target(obj: Any, name: str | None) -> bool:
    from ..workflows import Workflow

    if isinstance(obj, Workflow):
        return True
    found = _collect(obj)
    return bool(found) and (name is None or name in found)


def pick_workflow(obj: Any, name: str | None) -> Any:
    found = _collect(obj)
    if not found:
        raise TargetError(f"{obj!r} has no workflows")
    if name is not None:
        if name not in found:
            raise TargetError(f"no workflow {name!r}; workflows: {', '.join(found)}")
        return found[name]
    if len(found) > 1:
        raise TargetError(f"several workflows ({', '.join(found)}): pick one with --workflow")
    return next(iter(found.values()))


def workflows(args: Any) -> int:
    """``vivace workflows TARGET``: the workflows of a module, an app or a list."""
    try:
        found = _collect(load(args.target))
    except TargetError as exc:
        print(f"vivace workflows: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([w.describe() for w in found.values()], ensure_ascii=False, default=str))
        return 0
    if not found:
        print("no workflows", file=sys.stderr)
        return 1
    rows = [("id", "engine", "steps", "input", "schedule", "description")]
    for w in found.values():
        from ..workflows.typecheck import type_name

        rows.append(
            (
                w.id,
                w.engine,
                str(len(w.steps)),
                type_name(w.input_type) if w.input_type is not None else "Any",
                w.schedule or "",
                (w.description or "")[:60],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(wd) for c, wd in zip(r, widths, strict=True)).rstrip())
    return 0


def _parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class Board:
    """The steps of a run and their status, printed as lines or redrawn in place."""

    def __init__(self, out: TextIO, live: bool) -> None:
        self.out = out
        self.live = live
        self.steps: dict[str, tuple[str, str]] = {}
        self.drawn = 0

    def update(self, path: str, status: str, note: str = "") -> None:
        self.steps[path] = (status, note)
        if self.live:
            self.redraw()
        else:
            self.out.write(
                f"{_MARKS.get(status, '?')} {path} {status}{' ' + note if note else ''}\n"
            )
            self.out.flush()

    def redraw(self) -> None:
        out = self.out
        if self.drawn:
            out.write(f"\x1b[{self.drawn}F")  # back to the board's first line
        for path, (status, note) in self.steps.items():
            out.write(f"\x1b[2K{_MARKS.get(status, '?')} {path:<40} {status:<10} {note}\n")
        self.drawn = len(self.steps)
        out.flush()

    def say(self, text: str) -> None:
        """A line below the board (a later update draws the board again under it)."""
        self.out.write(text + "\n")
        self.out.flush()
        self.drawn = 0


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_workflow(wf: Any, args: Any) -> int:
    try:
        return asyncio.run(_run(wf, args))
    except KeyboardInterrupt:
        return 130


async def _run(wf: Any, args: Any) -> int:
    out = sys.stdout
    options: dict[str, Any] = {}
    if getattr(args, "user", None):
        options["user_id"] = args.user
    if getattr(args, "run_id", None):
        options["run_id"] = args.run_id
    if wf.engine == "dbos":
        result = await wf.arun(_parse_input(args.message), **options)
        out.write(json.dumps(result.to_dict(), ensure_ascii=False, default=str) + "\n")
        return 0 if result.status in ("completed", "bailed") else 1
    stream = wf.astream(_parse_input(args.message), **options)
    board = Board(out, live=out.isatty() and not args.json)
    while True:
        async for event in stream:
            if args.json:
                out.write(json.dumps(event.to_dict(), ensure_ascii=False, default=str) + "\n")
                out.flush()
                continue
            _show(board, event)
        result = stream.result
        if result is None:
            return 1
        if result.status not in ("suspended", "waiting"):
            if not args.json:
                board.say(_summary(result))
            return 0 if result.status in ("completed", "bailed") else 1
        if args.json or not sys.stdin.isatty():
            paths = ", ".join(s.path for s in result.suspended)
            print(
                f"run {result.run_id} is {result.status} at {paths}; resume it with "
                "Workflow.aresume or the server's resume route",
                file=sys.stderr,
            )
            return 3
        s = result.suspended[0]
        prompt = f"event {s.event!r}" if s.kind == "event" else f"step {s.path}"
        raw = input(f"{prompt} asks {_short(s.payload)}\ndata (JSON): ")
        board.drawn = 0  # the prompt moved the cursor: draw the board afresh below it
        data = _parse_input(raw)
        if s.kind == "event":
            done = await wf.send_event(result.run_id, s.event, data)
            board.say(_summary(done))
            return 0 if done.status in ("completed", "bailed") else 1
        stream = wf.aresume_stream(result.run_id, step=s.path, data=data)


def _show(board: Board, event: Any) -> None:
    t = event.type
    path = getattr(event, "path", "")
    if t == "step_started":
        board.update(path, "running")
    elif t == "step_completed":
        board.update(
            path, "completed", f"{event.duration * 1000:.0f} ms  → {_short(event.output, 50)}"
        )
    elif t == "step_failed":
        board.update(path, "failed", _short(event.error.get("message", ""), 70))
    elif t == "step_retrying":
        board.update(path, "retrying", f"attempt {event.attempt} in {event.delay:.1f}s")
    elif t == "step_suspended":
        board.update(path, "suspended", _short(event.payload, 60))
    elif t == "step_skipped":
        board.update(path, "skipped")
    elif t == "workflow_failed":
        board.say(f"✗ failed: {event.error.get('message', '')}")
    elif t == "workflow_cancelled":
        board.say(f"✗ cancelled: {event.reason}")


def _summary(result: Any) -> str:
    steps = len(result.steps)
    if result.status in ("completed", "bailed"):
        return f"{result.status} ({steps} steps): {_short(result.to_dict()['output'], 200)}"
    return f"{result.status} ({steps} steps)"
