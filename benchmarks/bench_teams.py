"""Teams and MCP: delegation overhead and memory vs Agno 3.1.10 Teams; an MCP tool call
through Vivace's MCPToolset vs the official ``mcp`` client session on the same server.

Run from the repo root (creates/reuses ``.bench-venv/`` with agno 3.1.10 + mcp)::

    python benchmarks/bench_teams.py            # 3 alternating rounds
    python benchmarks/bench_teams.py --quick    # 1 shorter round

Teams: the same two members and in-process scripted models on both sides (no network, no
tokens), so the time of a team run is the runtime's own overhead: a route-mode run (the
leader delegates to one member whose answer is the team's) and a coordinate-mode run (the
leader calls both members in one turn, then answers). Memory: bytes kept per team
construction (members built once, shared). MCP: one ``echo`` call over stdio to
``@modelcontextprotocol/server-everything`` (tests/js) through each client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PROFILE_ENV,
    Row,
    atime_per_call,
    kept_bytes_per_object,
    machine_note,
    print_table,
    profiled,
    run_worker,
)
from _venv import REPO_ROOT, reexec_in_venv

REQUIREMENTS = ["agno==3.1.10", "openai", "mcp>=2.3"]
EVERYTHING = (
    REPO_ROOT / "tests/js/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
)


def _sizes(quick: bool) -> tuple[int, int]:
    return (100, 5) if quick else (300, 7)


def worker_vivace(quick: bool) -> dict[str, Any]:
    from vivace import Agent
    from vivace.messages import ToolCallPart
    from vivace.teams import Team
    from vivace.testing import FunctionModel

    number, repeat = _sizes(quick)

    def member_model(messages: Any, request: Any) -> Any:
        return "member answer"

    a = Agent(model=FunctionModel(member_model), name="a")
    b = Agent(model=FunctionModel(member_model), name="b")

    def route_leader(messages: Any, request: Any) -> Any:
        return ToolCallPart("c1", "a", {"task": "do it"})

    def coord_leader(messages: Any, request: Any) -> Any:
        if messages[-1].role == "user":
            return [ToolCallPart("c1", "a", {"task": "x"}), ToolCallPart("c2", "b", {"task": "y"})]
        return "combined"

    route = Team(members=[a, b], mode="route", model=FunctionModel(route_leader))
    coord = Team(members=[a, b], mode="coordinate", model=FunctionModel(coord_leader))
    out: dict[str, Any] = {}

    async def go() -> None:
        assert (await route.arun("q")).output == "member answer"
        assert (await coord.arun("q")).output == "combined"
        out["route"] = (
            await atime_per_call(lambda: route.arun("q"), number=number, repeat=repeat, warmup=20)
        )[0]
        out["coordinate"] = (
            await atime_per_call(lambda: coord.arun("q"), number=number, repeat=repeat, warmup=20)
        )[0]

    asyncio.run(go())
    leader_model = FunctionModel(route_leader)
    out["team_bytes"] = kept_bytes_per_object(
        lambda: Team(members=[a, b], mode="coordinate", model=leader_model), 2000
    )
    return out


def _agno_model(script: Any) -> Any:
    from dataclasses import dataclass

    from agno.metrics import MessageMetrics
    from agno.models.base import Model
    from agno.models.response import ModelResponse

    @dataclass
    class ScriptedAgnoModel(Model):
        id: str = "scripted"
        name: str = "Scripted"
        provider: str = "test"

        def _answer(self, messages: list[Any]) -> ModelResponse:
            r = ModelResponse(role="assistant")
            content, calls = script(messages)
            r.content = content
            if calls:
                r.tool_calls = [
                    {
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {"name": n, "arguments": json.dumps(args)},
                    }
                    for i, (n, args) in enumerate(calls)
                ]
            r.response_usage = MessageMetrics(input_tokens=10, output_tokens=5, total_tokens=15)
            return r

        def invoke(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            return self._answer(messages)

        async def ainvoke(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            return self._answer(messages)

        def invoke_stream(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            yield self._answer(messages)

        async def ainvoke_stream(
            self, messages: list[Any], assistant_message: Any, **kw: Any
        ) -> Any:
            yield self._answer(messages)

        def _parse_provider_response(self, response: Any, **kw: Any) -> Any:
            return response

        def _parse_provider_response_delta(self, response: Any) -> Any:
            return response

    return ScriptedAgnoModel()


def worker_agno(quick: bool) -> dict[str, Any]:
    import os

    os.environ["AGNO_TELEMETRY"] = "false"
    from agno.agent import Agent
    from agno.team import Team

    number, repeat = _sizes(quick)
    member_model = _agno_model(lambda m: ("member answer", None))
    a = Agent(model=member_model, name="a", telemetry=False)
    b = Agent(model=member_model, name="b", telemetry=False)
    route_model = _agno_model(
        lambda m: (None, [("delegate_task_to_member", {"member_id": "a", "task": "do it"})])
    )

    def coord(m: list[Any]) -> Any:
        if m[-1].role != "tool":
            return None, [
                ("delegate_task_to_member", {"member_id": "a", "task": "x"}),
                ("delegate_task_to_member", {"member_id": "b", "task": "y"}),
            ]
        return "combined", None

    route = Team(members=[a, b], mode="route", model=route_model, telemetry=False)
    coordinate = Team(members=[a, b], mode="coordinate", model=_agno_model(coord), telemetry=False)
    out: dict[str, Any] = {}

    async def go() -> None:
        r = await route.arun("q")
        assert "member answer" in str(r.content), r.content
        c = await coordinate.arun("q")
        assert c.content == "combined", c.content
        out["route"] = (
            await atime_per_call(
                lambda: route.arun("q"), number=number // 5, repeat=repeat, warmup=5
            )
        )[0]
        out["coordinate"] = (
            await atime_per_call(
                lambda: coordinate.arun("q"), number=number // 5, repeat=repeat, warmup=5
            )
        )[0]

    asyncio.run(go())
    out["team_bytes"] = kept_bytes_per_object(
        lambda: Team(members=[a, b], mode="coordinate", model=route_model, telemetry=False), 500
    )
    return out


def worker_mcp(quick: bool) -> dict[str, Any]:
    """One echo call through Vivace's MCPToolset vs the official client session, same server."""
    import mcp
    from mcp.client.stdio import StdioServerParameters

    from vivace.mcp import MCPToolset

    number, repeat = (200, 5) if quick else (500, 7)
    cmd = ["node", str(EVERYTHING), "stdio"]
    out: dict[str, Any] = {}

    async def go() -> None:
        # both connections open at once, batches alternated: the two server processes and the
        # machine's load drift alike for both sides (sequential blocks gave -42% to +48%)
        params = StdioServerParameters(command=cmd[0], args=cmd[1:])
        async with mcp.Client(params) as client, MCPToolset(cmd[0], cmd[1:]) as ts:

            async def direct() -> Any:
                return await client.call_tool("echo", {"message": "hi"})

            async def through() -> Any:
                return await ts.call_tool("echo", {"message": "hi"})

            times: dict[str, list[float]] = {"direct": [], "vivace": []}
            for _ in range(repeat):
                for key, fn in (("direct", direct), ("vivace", through)):
                    t, _ = await atime_per_call(fn, number=number, repeat=1, warmup=20)
                    times[key].append(t)
            out["direct"] = statistics.median(times["direct"])
            out["vivace"] = statistics.median(times["vivace"])
            from vivace.tools import RunContext

            ctx = RunContext("bench")
            first = await ts.tools_for_run(ctx)
            out["listing_cached"] = first is await ts.tools_for_run(ctx)

    asyncio.run(go())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int)
    p.add_argument("--markdown", action="store_true")
    p.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of Vivace's measured work (top functions)",
    )
    p.add_argument("--worker", choices=["vivace", "agno", "mcp"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.profile:
        os.environ[PROFILE_ENV] = "1"
    if args.worker:
        sys.path.insert(0, str(REPO_ROOT))
        fn = {"vivace": worker_vivace, "agno": worker_agno, "mcp": worker_mcp}[args.worker]
        if args.worker == "vivace":
            print(json.dumps(profiled(lambda: fn(args.quick), "vivace teams")))
        else:
            print(json.dumps(fn(args.quick)))
        return
    reexec_in_venv(REQUIREMENTS)
    print(f"bench_teams: {machine_note()}")
    extra = ["--quick"] if args.quick else []
    rounds = args.rounds or (1 if args.quick else 3)
    vs, ags, ms = [], [], []
    for i in range(rounds):
        print(f"round {i + 1}/{rounds}...", flush=True)
        vs.append(run_worker(__file__, "vivace", extra))
        ags.append(run_worker(__file__, "agno", extra))
        if EVERYTHING.exists():
            ms.append(run_worker(__file__, "mcp", extra))

    def med(rs: list[dict[str, Any]], k: str) -> float:
        return statistics.median(r[k] for r in rs)

    rows = [
        Row(
            "route-mode team run (leader + 1 member)",
            med(vs, "route"),
            med(ags, "route"),
            "time",
            10,
        ),
        Row(
            "coordinate-mode run (2 member calls + answer)",
            med(vs, "coordinate"),
            med(ags, "coordinate"),
            "time",
            10,
        ),
        Row(
            "memory kept per Team construction",
            med(vs, "team_bytes"),
            med(ags, "team_bytes"),
            "bytes",
            10,
        ),
    ]
    print("\nVivace vs Agno 3.1.10 Teams (ratio = Agno / Vivace)\n")
    print_table(rows, "Agno")
    if args.markdown:
        print()
        print_table(rows, "Agno 3.1.10", markdown=True)
    if ms:
        direct, viv = med(ms, "direct"), med(ms, "vivace")
        added = (viv - direct) / direct * 100
        print(
            f"\nMCP echo over stdio (server-everything): official client session {direct * 1e6:.0f} us, "
            f"through MCPToolset {viv * 1e6:.0f} us: Vivace adds {added:+.1f}% (target <= 20%); "
            f"tool listing cached per connection: {all(m['listing_cached'] for m in ms)}"
        )
    else:
        print("\nMCP: skipped (run the tests once so tests/js/node_modules is installed)")


if __name__ == "__main__":
    main()
