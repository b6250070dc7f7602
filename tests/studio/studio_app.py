"""The app the Studio's browser tests serve: agents on a test model that calls tools when
asked (weather; deleting a file needs approval), an order workflow (an approval that waits
for a person, a parallel fan-out with a slow branch, an agent step), SQLite storage, tracing
into it."""

from __future__ import annotations

import asyncio
import json
import os

from pydantic import BaseModel

from vivace import Agent, tool
from vivace.messages import Message
from vivace.models import ModelRequest
from vivace.server import VivaceApp
from vivace.studio import Studio
from vivace.testing import FunctionModel, call
from vivace.workflows import StepContext, Workflow, step


@tool
def get_weather(city: str, unit: str = "C") -> dict:
    """Current weather for a city.

    Args:
        city: The city name.
        unit: C or F.
    """
    return {"city": city, "temperature": 22 if unit == "C" else 72, "unit": unit, "sky": "sunny"}


@tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file (asks for approval).

    Args:
        path: The file to delete.
    """
    return f"deleted {path}"


def assistant_model(messages: list[Message], request: ModelRequest) -> object:
    last = messages[-1]
    if last.role == "tool":
        results = [p for p in last.parts if p.kind == "tool_result"]
        r = results[0]
        if r.is_error:
            return f"The {r.name} call did not happen: {r.content}"
        content = r.content if isinstance(r.content, str) else json.dumps(r.content)
        return f"Done: {r.name} returned {content}"
    text = last.text if hasattr(last, "text") else ""
    low = text.lower()
    if "weather" in low:
        city = text.rsplit(" ", 1)[-1].strip("?.!") or "Paris"
        return call("get_weather", {"city": city})
    if "delete" in low:
        return call("delete_file", {"path": text.rsplit(" ", 1)[-1]})
    if "handbook" in low:
        return call("search_knowledge", {"query": text})
    return f"You said: {text}"


class Order(BaseModel):
    id: str
    amount: float


class Approval(BaseModel):
    ok: bool
    by: str = ""


@step
def load_order(order_id: str) -> Order:
    return Order(id=order_id, amount=1250.0 if order_id.startswith("big") else 80.0)


@step(resume=Approval, description="a person approves orders over 1000")
async def approve(order: Order, ctx: StepContext) -> Order:
    if order.amount > 1000:
        decision = await ctx.suspend({"order": order.id, "amount": order.amount})
        if not decision.ok:
            ctx.bail(Order(id=order.id, amount=0))
    return order


@step
def price(order: Order) -> float:
    return round(order.amount * 1.2, 2)


@step
async def stock(order: Order) -> int:
    await asyncio.sleep(1.0)  # slow enough to be seen running
    return 7


def summarize(messages: list[Message], request: ModelRequest) -> str:
    return "Summary: " + messages[-1].text


def orders_workflow() -> Workflow:
    writer = Agent(model=FunctionModel(summarize, model_name="writer-model"), name="writer")
    return (
        Workflow("orders", description="Approve, check and summarize an order")
        .then(load_order)
        .then(approve)
        .parallel([price, stock])
        .map(lambda r: f"price {r['price']}, stock {r['stock']}", output=str)
        .then(writer)
    )


def build() -> object:
    storage = os.environ.get("VIVACE_STORAGE_URL", "sqlite:///.vivace/studio-test.db")
    assistant = Agent(
        model=FunctionModel(assistant_model, model_name="studio-test"),
        name="assistant",
        description="A test assistant with weather and file tools",
        tools=[get_weather, delete_file],
    )
    echo = Agent(model="test/echo", name="echo", description="Echoes the input")
    from vivace.knowledge import Document, KnowledgeBase
    from vivace.memory import HashEmbedder

    # the Studio shows the passages a knowledge search returned (the embedder's quality is
    # not what this app tests, so a deterministic offline one)
    kb = KnowledgeBase("handbook", store="memory", embedder=HashEmbedder(64))
    kb.add(
        Document("vpn.md", "Connect to the VPN with the WireGuard profile."),
        Document("leave.md", "Employees get 25 days of paid leave."),
    )
    librarian = Agent(
        model=FunctionModel(assistant_model, model_name="studio-test"),
        name="librarian",
        description="Answers from the handbook",
        knowledge=kb,
    )
    return VivaceApp(
        [assistant, echo, librarian],
        storage=storage,
        workflows=[orders_workflow()],
        extensions=[Studio()],
    )


app = build()
