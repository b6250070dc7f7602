"""Workflows for the CLI tests (``vivace workflows`` / ``vivace run``)."""

from __future__ import annotations

from typing import Any

from vivace.workflows import StepContext, Workflow, step


@step
def double(n: int) -> int:
    return n * 2


@step
async def describe(n: int) -> str:
    return f"got {n}"


@step(resume=str)
async def ask(text: str, ctx: StepContext) -> str:
    answer = await ctx.suspend({"question": text})
    return f"{text} / {answer}"


simple = (
    Workflow("simple", input=int, description="Double, then describe.").then(double).then(describe)
)
asking = Workflow("asking", input=str).then(ask)
nightly = Workflow("nightly", input=int, schedule="0 3 * * *").then(double)
workflows: list[Any] = [simple, asking, nightly]
