"""The app the open-protocol tests serve with ``vivace serve`` (MCP, A2A, AG-UI, a team).

Every model is a :class:`FunctionModel` that decides from the conversation alone, so a
server process answers the same way after a restart, on any worker.
"""

from __future__ import annotations

from typing import Any

from vivace import Agent, RunContext, tool
from vivace.server import VivaceApp
from vivace.teams import Team
from vivace.testing import FunctionModel, call
from vivace.workflows import StepContext, Workflow, step


def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return {"city": city, "sky": "sunny", "celsius": 21}


def _forecaster(messages: Any, request: Any) -> Any:
    last = messages[-1]
    if last.role == "user":
        return call("get_weather", {"city": last.text})
    report = last.parts[0].content
    return f"It is {report['sky']} in {report['city']}, {report['celsius']} C."


@tool(requires_approval=True)
def transfer(amount: int) -> str:
    """Send money (needs an approval).

    Args:
        amount: How much.
    """
    return f"sent {amount}"


def _bank(messages: Any, request: Any) -> Any:
    last = messages[-1]
    if last.role == "user":
        if last.text.startswith("slow"):
            return call("wait", {"seconds": 30})
        return call("transfer", {"amount": 9}, id="t1")
    result = last.parts[0]
    return f"Transfer: {result.content}"


async def wait(seconds: float) -> str:
    """Wait a while.

    Args:
        seconds: How long.
    """
    import asyncio

    await asyncio.sleep(seconds)
    return "waited"


def add_item(ctx: RunContext[Any], item: str) -> str:
    """Add an item to the cart.

    Args:
        item: What to add.
    """
    ctx.session_state.setdefault("cart", []).append(item)
    return f"added {item}"


@tool(requires_approval=True)
def pay(amount: int) -> str:
    """Pay (needs an approval).

    Args:
        amount: How much.
    """
    return f"paid {amount}"


def _shop(messages: Any, request: Any) -> Any:
    """add_item, then the client's pick_color (a frontend tool), then pay, then answer."""
    last = messages[-1]
    if last.role == "user":
        return call("add_item", {"item": "apple"}, id="c1")
    done = {p.name: p.content for m in messages if m.role == "tool" for p in m.parts}
    if "pick_color" not in done:
        return call("pick_color", {"options": ["red", "blue"]}, id="f1")
    if "pay" not in done:
        return call("pay", {"amount": 3}, id="p1")
    return f"Paid in {done['pick_color']}."


forecaster = Agent(
    model=FunctionModel(_forecaster),
    name="forecaster",
    description="Answers questions about the weather in a city.",
    tools=[get_weather],
)
bank = Agent(model=FunctionModel(_bank), name="bank", tools=[transfer, wait])
shop = Agent(model=FunctionModel(_shop), name="shop", tools=[add_item, pay])
weather = Agent(model=FunctionModel(lambda m, r: "sunny today"), name="weather")
desk = Team(
    name="desk",
    members=[weather],
    mode="route",
    model=FunctionModel(lambda m, r: call("weather", {"task": "forecast"})),
)


@step
def double(n: int) -> int:
    return n * 2


@step
async def ask(n: int, ctx: StepContext) -> int:
    await ctx.suspend({"n": n})
    return n


doubler = Workflow("doubler", input=int, description="Doubles a number.").then(double)
asker = Workflow("asker", input=int).then(ask)

app = VivaceApp(
    agents=[forecaster, bank, shop, desk], tools=[get_weather], workflows=[doubler, asker]
)
