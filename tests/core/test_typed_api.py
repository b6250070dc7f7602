"""The typed public API: mypy infers output and dependency types without casts, run options
are real keyword arguments, and the streaming calls have one shape."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vivace import Agent, Reject, tool
from vivace.testing import ScriptedModel, call

SNIPPET = textwrap.dedent(
    """
    from dataclasses import dataclass

    from pydantic import BaseModel

    from vivace import Agent, RunContext


    class Forecast(BaseModel):
        city: str
        temp_c: int


    @dataclass
    class Deps:
        api_key: str


    def lookup(ctx: RunContext[Deps], city: str) -> str:
        return ctx.deps.api_key + city


    typed = Agent("test/echo", output_type=Forecast, deps=Deps("k"), tools=[lookup])
    plain = Agent("test/echo")
    listy = Agent("test/echo", output_type=list[str])


    async def main() -> None:
        reveal_type(typed)
        reveal_type(typed.run("x").output)
        reveal_type((await typed.arun("x")).output)
        reveal_type(plain.run("x").output)
        reveal_type(listy.run("x").output)
        stream = typed.astream("x")
        reveal_type(stream)
        resumed = typed.aresume_stream("run-id", {"c1": True})
        reveal_type(resumed)
        typed.run("x", sesion_id="s")
    """
)


def test_mypy_infers_output_and_deps_types(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    path = tmp_path / "snippet.py"
    path.write_text(SNIPPET)
    out, err, _status = mypy_api.run(
        [
            str(path),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--no-error-summary",
            "--hide-error-context",
            "--show-error-codes",
        ]
    )
    revealed = [
        line.split("Revealed type is ", 1)[1] for line in out.splitlines() if "Revealed" in line
    ]
    assert revealed == [
        '"vivace.agent.agent.Agent[snippet.Deps, snippet.Forecast]"',
        '"snippet.Forecast"',
        '"snippet.Forecast"',
        '"str"',
        '"list[str]"',
        '"vivace.agent.agent.RunStream[snippet.Forecast]"',
        '"vivace.agent.agent.RunStream[snippet.Forecast]"',
    ], out + err
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and 'Unexpected keyword argument "sesion_id"' in errors[0], out


def test_a_misspelled_run_option_names_the_public_method() -> None:
    agent = Agent(ScriptedModel(["x"]))
    with pytest.raises(
        TypeError, match=r"Agent\.run\(\) got an unexpected keyword argument 'sesion_id'"
    ):
        agent.run("x", sesion_id="s")  # type: ignore[call-arg]


async def test_astream_and_aresume_stream_are_called_the_same_way() -> None:
    @tool(requires_approval=True)
    def act() -> str:
        return "acted"

    agent = Agent(ScriptedModel([call("act", {}, id="c1"), "done"]), tools=[act])
    first = agent.astream("x")
    async for _ in first:
        pass
    assert first.result is not None and first.result.paused is not None
    second = agent.aresume_stream(first.result.paused.to_dict(), {"c1": Reject("no")})
    async for _ in second:
        pass
    assert second.result is not None and second.result.output == "done"
