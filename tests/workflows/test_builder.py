"""Building workflows: types checked at build time, ids, graph and Mermaid export."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from pydantic import BaseModel

from vivace import Agent
from vivace.testing import EchoModel
from vivace.workflows import (
    StepContext,
    Workflow,
    WorkflowDefinitionError,
    WorkflowTypeError,
    step,
)


class Order(BaseModel):
    id: str
    amount: float


class Quote(BaseModel):
    price: float
    stock: int


class Prices(TypedDict):
    price: float
    stock: int


@step
def parse(text: str) -> Order:
    return Order(id=text, amount=1.0)


@step
def price(order: Order) -> float:
    return order.amount * 2


@step
def stock(order: Order) -> int:
    return 3


@step
def needs_quote(q: Quote) -> str:
    return f"{q.price}/{q.stock}"


@step
def needs_prices(p: Prices) -> str:
    return str(p)


@step
def count(n: int) -> int:
    return n + 1


@step
def as_text(n: int) -> str:
    return str(n)


@step
def floats(x: float) -> float:
    return x


@step
def optional(x: int | None) -> int:
    return x or 0


@step
def anything(x) -> int:  # type: ignore[no-untyped-def]
    return 1


def test_mismatch_names_both_steps_and_both_types():
    wf = Workflow("orders").then(parse)
    with pytest.raises(WorkflowTypeError) as info:
        wf.then(count)
    err = info.value
    assert err.source == "parse" and err.target == "count"
    assert err.details["source_type"] == "Order"
    assert err.details["target_type"] == "int"
    assert "'count'" in err.message and "'parse'" in err.message
    assert "Order" in err.message and "int" in err.message
    assert len(wf.nodes) == 1  # nothing was added


def test_workflow_input_type_is_checked_against_the_first_step():
    with pytest.raises(WorkflowTypeError) as info:
        Workflow("w", input=str).then(count)
    assert "workflow input" in info.value.source


def test_accepted_shapes():
    Workflow("a", input=int).then(floats)  # int -> float
    Workflow("b", input=int).then(optional)  # int -> int | None
    Workflow("c", input=str).then(anything)  # untyped input accepts anything
    Workflow("d", input=int).then(count).then(as_text)
    # no silent coercion: str is not an int, float is not an int
    with pytest.raises(WorkflowTypeError):
        Workflow("e", input=float).then(count)
    with pytest.raises(WorkflowTypeError):
        Workflow("f", input=int | None).then(count)


def test_containers_check_item_and_field_types():
    # parallel outputs {id: output}: a model or TypedDict with those fields accepts it
    Workflow("p1").then(parse).parallel([price, stock]).then(needs_quote)
    Workflow("p2").then(parse).parallel([price, stock]).then(needs_prices)
    with pytest.raises(WorkflowTypeError):
        Workflow("p3").then(parse).parallel([price, count.with_id("stock")])

    @step
    def label(o: Order) -> str:
        return o.id

    with pytest.raises(WorkflowTypeError) as info:  # stock: str is not Quote's int
        Workflow("p4").then(parse).parallel([price, label.with_id("stock")]).then(needs_quote)
    assert info.value.target == "needs_quote"
    # foreach needs a list whose items the step accepts
    Workflow("f1", input=list[int]).foreach(count)
    with pytest.raises(WorkflowTypeError) as info:
        Workflow("f2", input=list[str]).foreach(count)
    assert "items" in info.value.message
    with pytest.raises(WorkflowTypeError):
        Workflow("f3", input=int).foreach(count)
    # foreach output is a list of the step's outputs
    with pytest.raises(WorkflowTypeError):
        Workflow("f4", input=list[int]).foreach(count).then(count)
    # a loop feeds the step its own output
    Workflow("l1", input=int).dowhile(count, lambda n: n < 3)
    with pytest.raises(WorkflowTypeError):
        Workflow("l2", input=int).dowhile(as_text, lambda s: False)
    # map's return annotation is the new type
    Workflow("m1").then(parse).map(lambda o: o.id, output=str).then(parse.with_id("again"))
    with pytest.raises(WorkflowTypeError):
        Workflow("m2").then(parse).map(lambda o: o.id, output=str).then(count)


def test_agents_tools_and_nested_workflows_have_types():
    class Out(BaseModel):
        answer: str

    agent = Agent(EchoModel(), name="writer", output_type=Out)
    Workflow("a1", input=str).then(agent)
    with pytest.raises(WorkflowTypeError):
        Workflow("a2", input=str).then(agent).then(count)  # Out is not int
    inner = Workflow("inner", input=int).then(count).then(as_text)
    Workflow("n1", input=int).then(inner).then(parse)
    with pytest.raises(WorkflowTypeError) as info:
        Workflow("n2", input=int).then(inner).then(count)
    assert info.value.source == "inner"


def test_state_type_is_checked():
    class State(BaseModel):
        total: int = 0

    class Other(BaseModel):
        x: int = 0

    @step(state=State)
    def add(n: int, ctx: StepContext) -> int:
        return n

    Workflow("s1", input=int, state=State).then(add)
    with pytest.raises(WorkflowTypeError):
        Workflow("s2", input=int, state=Other).then(add)


def test_definition_errors():
    with pytest.raises(WorkflowDefinitionError, match="two steps have the id 'count'"):
        Workflow("d", input=int).then(count).then(count)
    Workflow("d2", input=int).then(count).then(count.with_id("count_again"))
    with pytest.raises(WorkflowDefinitionError, match="one input"):

        @step
        def two(a: int, b: int) -> int:
            return a

        Workflow("d3", input=int).then(two)
    with pytest.raises(WorkflowDefinitionError):
        Workflow("bad.id")
    with pytest.raises(WorkflowDefinitionError, match="reserved"):
        count.with_id("a.b")  # '.' and '[' separate path segments
    from vivace.errors import InvalidIdentifier

    with pytest.raises(InvalidIdentifier):
        count.with_id("bad\x00id")
    with pytest.raises(WorkflowDefinitionError):
        Workflow("e", engine="celery")
    with pytest.raises(WorkflowDefinitionError):
        Workflow("c", schedule="61 * * * *")
    with pytest.raises(WorkflowDefinitionError):
        Workflow("p").parallel([])


def test_graph_nodes_edges_and_nesting():
    inner = Workflow("inner", input=int).then(count).then(as_text)
    wf = (
        Workflow("g")
        .then(parse)
        .parallel([price, stock])
        .then(needs_quote.with_id("quote"))
        .map(lambda s: len(s), output=int)
        .branch([(lambda n: n > 3, count), (lambda n: True, inner)])
        .map(lambda d: 1, output=int)
        .dountil(count.with_id("again"), lambda n: n > 2)
        .map(lambda n: [n], output=list[int])
        .foreach(count.with_id("each"), concurrency=4)
        .sleep(0.01)
        .wait_for_event("approved", type=bool)
    )
    g = wf.graph()
    by_id = {n["id"]: n for n in g["nodes"]}
    assert by_id["parse"]["kind"] == "function"
    assert by_id["parse"]["input"] == {"type": "string"}
    assert by_id["parse"]["output"]["title"] == "Order"
    assert by_id["inner"]["kind"] == "workflow"
    assert by_id["inner.count"]["parent"] == "inner"
    assert by_id["each[]"]["kind"] == "function"
    fe = next(n for n in g["nodes"] if n["kind"] == "foreach")
    assert fe["concurrency"] == 4 and by_id["each[]"]["parent"] == fe["id"]
    assert by_id["approved"]["kind"] == "wait" and by_id["approved"]["event"] == "approved"
    edges = {(e["source"], e["target"]) for e in g["edges"]}
    par = next(n["id"] for n in g["nodes"] if n["kind"] == "parallel")
    assert (par, "price") in edges and (par, "stock") in edges
    assert ("price", "quote") in edges and ("stock", "quote") in edges
    assert ("inner.count", "inner.as_text") in edges
    assert ("again[]", "again[]") in edges  # the loop
    text = wf.mermaid()
    assert text.startswith("flowchart TD\n")
    assert 'subgraph n_inner["inner"]' in text
    assert "foreach each (x4)" in text
    assert "-->|until|" in text


def test_describe_gives_json_schemas():
    class Decision(BaseModel):
        ok: bool

    @step(resume=Decision)
    async def ask(o: Order, ctx: StepContext) -> Order:
        return o

    wf = Workflow("d", state=dict[str, Any]).then(parse).then(ask)
    d = wf.describe()
    assert d["input_schema"] == {"type": "string"}
    assert d["output_schema"]["title"] == "Order"
    assert d["steps"]["ask"]["resume"] == "Decision"
    assert wf.find_step("ask").resume_type is Decision
