import dataclasses
import enum
from typing import Literal, TypedDict

import pytest
from pydantic import BaseModel

from vivace import RunContext, Tool, Toolkit, tool
from vivace.errors import ToolDefinitionError
from vivace.tools import ToolArgumentsError, as_tool
from vivace.tools.docstrings import parse_docstring


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    zip_code: int


class Options(TypedDict):
    verbose: bool


@dataclasses.dataclass
class Point:
    x: float
    y: float


def everything(
    ctx: RunContext,
    name: str,
    count: int,
    ratio: float,
    flag: bool,
    mode: Literal["fast", "slow"],
    color: Color,
    maybe: int | None,
    either: int | str,
    tags: list[str],
    scores: dict[str, float],
    address: Address,
    options: Options,
    point: Point,
    limit: int = 10,
) -> str:
    """Do everything.

    Args:
        name: The name.
        count: How many
            (spans two lines).
        limit: Upper bound.
    """
    return "ok"


def test_schema_covers_supported_types():
    t = as_tool(everything)
    s = t.parameters
    props = s["properties"]
    assert "ctx" not in props  # RunContext is injected, never shown
    assert props["name"] == {"type": "string", "description": "The name."}
    assert props["count"]["type"] == "integer"
    assert props["count"]["description"] == "How many (spans two lines)."
    assert props["ratio"]["type"] == "number"
    assert props["flag"]["type"] == "boolean"
    assert props["mode"]["enum"] == ["fast", "slow"]
    assert s["$defs"]["Color"]["enum"] == ["red", "blue"]
    assert {"type": "null"} in props["maybe"]["anyOf"]
    assert {"type": "integer"} in props["either"]["anyOf"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["scores"]["additionalProperties"] == {"type": "number"}
    assert s["$defs"]["Address"]["properties"]["zip_code"]["type"] == "integer"
    assert s["$defs"]["Options"]["properties"]["verbose"]["type"] == "boolean"
    assert s["$defs"]["Point"]["required"] == ["x", "y"]
    assert props["limit"]["default"] == 10 and props["limit"]["description"] == "Upper bound."
    assert "limit" not in s["required"] and "name" in s["required"]
    assert s["additionalProperties"] is False
    assert t.description == "Do everything."


def test_validation_converts_and_reports():
    t = as_tool(everything)
    args = t.validate(
        '{"name":"n","count":"3","ratio":1,"flag":true,"mode":"fast","color":"red","maybe":null,'
        '"either":"x","tags":["a"],"scores":{"a":1.5},"address":{"street":"s","zip_code":1},'
        '"options":{"verbose":false},"point":{"x":1,"y":2}}'
    )
    assert args["count"] == 3 and args["color"] is Color.RED
    assert isinstance(args["address"], Address) and isinstance(args["point"], Point)
    with pytest.raises(ToolArgumentsError) as err:
        t.validate('{"name": 1}')
    assert "count" in err.value.message and "Field required" in err.value.message
    with pytest.raises(ToolArgumentsError, match="Invalid JSON"):
        t.validate("{not json")


def test_docstring_styles():
    google = """Summary line.

    Args:
        a (int): First.
        b: Second
            continued.

    Returns:
        str: nothing
    """
    numpy = """Summary line.

    Parameters
    ----------
    a : int
        First.
    b : str
        Second
        continued.

    Returns
    -------
    str
    """
    sphinx = """Summary line.

    :param a: First.
    :param str b: Second
        continued.
    :returns: nothing
    """
    import inspect

    for doc in (google, numpy, sphinx):
        summary, params = parse_docstring(inspect.cleandoc(doc))
        assert summary == "Summary line."
        assert params == {"a": "First.", "b": "Second continued."}


def test_unsupported_parameter_type_names_culprit():
    class Socketish:
        pass

    def bad(ok: int, conn: Socketish) -> None:
        """Bad tool."""

    t = Tool(bad)  # creating is fine: nothing is inspected yet
    with pytest.raises(ToolDefinitionError, match=r"'bad'.*'conn'"):
        t.definition()


def test_var_args_rejected():
    def f(*args: int) -> None: ...

    with pytest.raises(ToolDefinitionError, match="args"):
        as_tool(f).definition()


def test_schema_is_lazy_and_cached():
    def f(x: int) -> int:
        return x

    t = tool(f)
    assert t._schema is None
    d1 = t.definition()
    d2 = t.definition()
    assert d1 is d2 and t.schema is t.schema
    assert as_tool(f) is as_tool(f)  # plain functions are wrapped once


def test_decorator_options_and_toolkit():
    @tool(
        name="lookup",
        description="Find things.",
        requires_approval=True,
        timeout=1.5,
        stop_after=True,
    )
    def find(q: str) -> str:
        return q

    assert find.name == "lookup" and find.description == "Find things."
    assert find.requires_approval and find.timeout == 1.5 and find.stop_after
    assert find("x") == "x"  # still callable

    class Math(Toolkit):
        def __init__(self, base: int):
            super().__init__(instructions="Use math tools.")
            self.base = base

        @tool
        def add(self, x: int) -> int:
            """Add the base."""
            return self.base + x

    def extra(y: int) -> int:
        return y

    kit = Math(10)
    kit._given.append(extra)
    names = {t.name for t in kit.get_tools()}
    assert names == {"add", "extra"}
    add = next(t for t in kit.get_tools() if t.name == "add")
    assert "self" not in add.parameters["properties"]
    assert add(5) == 15


def test_direct_schema_matches_pydantic_for_simple_signatures():
    from vivace.tools.schema import build_function_schema

    def simple(
        a: str,
        b: int,
        c: float,
        d: bool,
        e: Literal["x", "y"],
        f: int | None,
        g: list[str],
        h: dict[str, float],
        i: list[int] | None = None,
        j: str = "dflt",
        k: Literal[1, 2] = 1,
    ) -> None:
        """Simple.

        Args:
            a: First.
            e: Choice.
        """

    fast = build_function_schema(simple, "simple")
    slow = build_function_schema(simple, "simple", fast=False)
    assert fast._validator is None  # no pydantic model until arguments are validated
    assert fast.parameters == slow.parameters
    assert fast.validator.model_validate(
        {"a": "1", "b": 2, "c": 1.5, "d": True, "e": "x", "f": None, "g": [], "h": {}}
    )


def test_complex_signatures_use_pydantic_schema():
    from vivace.tools.schema import build_function_schema

    def nested(addr: Address, color: Color = Color.RED) -> None: ...

    s = build_function_schema(nested, "nested")
    assert "$defs" in s.parameters and s._validator is not None
