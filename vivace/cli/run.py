"""``vivace run module:agent "message"``: stream one run to the terminal."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from ._load import TargetError, load

__all__ = ["run"]


def _pick_agent(obj: Any, name: str | None) -> Any:
    from ..agent import Agent
    from ..server import VivaceApp

    if isinstance(obj, Agent):
        return obj
    agents: dict[str, Any] = {}
    if isinstance(obj, VivaceApp):
        agents = obj.agents
    elif isinstance(obj, list | tuple):
        agents = {a.id: a for a in obj if isinstance(a, Agent)}
    if not agents:
        raise TargetError(f"{obj!r} is not an Agent")
    if name is not None:
        if name not in agents:
            raise TargetError(f"no agent {name!r}; agents: {', '.join(agents)}")
        return agents[name]
    if len(agents) > 1:
        raise TargetError(f"several agents ({', '.join(agents)}): pick one with --agent")
    return next(iter(agents.values()))


def run(args: Any) -> int:
    try:
        obj = load(args.target)
        from .workflows import is_workflow_target, pick_workflow, run_workflow

        if args.agent is None and is_workflow_target(obj, getattr(args, "workflow", None)):
            return run_workflow(pick_workflow(obj, getattr(args, "workflow", None)), args)
        agent = _pick_agent(obj, args.agent)
    except TargetError as exc:
        print(f"vivace run: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(agent, args))
    except KeyboardInterrupt:
        return 130


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _run(agent: Any, args: Any) -> int:
    from ..agent.result import Approve, Reject

    options: dict[str, Any] = {}
    if args.session:
        options["session_id"] = args.session
    if args.user:
        options["user_id"] = args.user
    stream = agent.astream(args.message, **options)
    out = sys.stdout
    while True:
        in_text = False
        async for event in stream:
            if args.json:
                out.write(json.dumps(event.to_dict(), ensure_ascii=False, default=str) + "\n")
                out.flush()
                continue
            t = event.type
            if t == "text_delta":
                out.write(event.text)
                in_text = True
            elif t == "tool_call_started":
                out.write(
                    ("\n" if in_text else "") + f"→ {event.name}({_short(event.arguments)})\n"
                )
                in_text = False
            elif t == "tool_call_completed":
                mark = "✗" if event.is_error else "←"
                out.write(f"  {mark} {_short(event.result)}\n")
            elif t == "run_failed":
                err = event.error or {}
                out.write("\n" if in_text else "")
                print(f"run {event.status}: {err.get('message', '')}", file=sys.stderr)
            elif t == "run_cancelled":
                print(f"\nrun cancelled: {event.reason}", file=sys.stderr)
            out.flush()
        if in_text:
            out.write("\n")
        result = stream.result
        if result is None:
            return 1
        if result.status != "paused":
            return 0 if result.status == "completed" else 1
        approvals: dict[str, Any] = {}
        for call in result.pending:
            if args.yes:
                approvals[call.id] = Approve()
                continue
            if not sys.stdin.isatty():
                print(
                    f"the run is waiting for approval of {call.name} (run id {result.run_id}); "
                    "pass --yes to approve tool calls",
                    file=sys.stderr,
                )
                return 3
            answer = input(f"approve {call.name}({_short(call.arguments)})? [y/N] ")
            approvals[call.id] = Approve() if answer.strip().lower() in ("y", "yes") else Reject()
        stream = agent.aresume_stream(result.paused or result.run_id, approvals)
