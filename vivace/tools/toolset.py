"""Toolsets: one async seam for every source of tools.

A :class:`Toolset` lists the tools of a run (given its :class:`~vivace.tools.RunContext`, so
the list may depend on the user, the session state or a remote server) and calls one of
them. Plain functions, :class:`~vivace.tools.Toolkit`\\ s, an MCP server, a knowledge base's
search, another agent or a workflow used as a tool are all toolsets, so the run loop has one
way to find and call tools and no special case per source. Approvals, retries, timeouts and
events work the same for every tool whatever its toolset.

Write one by subclassing :class:`Toolset` and implementing :meth:`Toolset.list_tools` (return
:class:`~vivace.tools.Tool` objects, or :class:`~vivace.models.ToolDefinition`\\ s for tools
described by a JSON Schema) and, for definitions, :meth:`Toolset.call_tool`::

    class Remote(Toolset):
        async def list_tools(self, ctx):
            return [ToolDefinition("search", "Search the docs.", {"type": "object", ...})]

        async def call_tool(self, name, arguments, ctx):
            return await my_client.call(name, arguments)
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .tool import BaseTool, ToolArgumentsError, ToolTimeout, as_tool

if TYPE_CHECKING:
    from ..models.base import ToolDefinition
    from .context import RunContext

__all__ = [
    "DynamicToolset",
    "FilteredToolset",
    "PrefixedToolset",
    "SchemaTool",
    "Toolset",
    "ToolsetItem",
]

ToolsetItem = Any
"""What a toolset may list: a :class:`BaseTool`, a plain function, or a ``ToolDefinition``."""

_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
    "null": type(None),
}


class SchemaTool(BaseTool):
    """A tool described by a JSON Schema and called through ``handler(arguments, ctx)``.

    Arguments are checked against the top level of the schema (an object, required keys,
    no unknown keys when ``additionalProperties`` is false, JSON types of the properties);
    deeper validation is the handler's job (an MCP server, for instance, validates its own).
    """

    __slots__ = ("_definition", "_validator", "handler")

    def __init__(
        self,
        definition: ToolDefinition,
        handler: Callable[[dict[str, Any], RunContext[Any] | None], Awaitable[Any]],
        *,
        requires_approval: bool = False,
        timeout: float | None = None,
        stop_after: bool = False,
        max_retries: int | None = None,
        validator: Callable[[str | dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self._definition = definition
        self._validator = validator
        self.handler = handler
        self.name = definition.name
        self.requires_approval = requires_approval
        self.timeout = timeout
        self.stop_after = stop_after
        self.max_retries = max_retries
        self.strict = definition.strict

    def definition(self) -> ToolDefinition:
        return self._definition

    def validate(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        if self._validator is not None:
            return self._validator(arguments)
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise ToolArgumentsError(f"invalid arguments: not JSON ({exc})") from None
        if not isinstance(arguments, dict):
            raise ToolArgumentsError("invalid arguments: expected a JSON object")
        schema = self._definition.parameters
        props = schema.get("properties") or {}
        problems = [f"missing {k}" for k in schema.get("required") or () if k not in arguments]
        if schema.get("additionalProperties") is False:
            problems += [f"unknown {k}" for k in arguments if k not in props]
        for key, value in arguments.items():
            prop = props.get(key)
            kind = prop.get("type") if isinstance(prop, dict) else None
            if isinstance(kind, str) and not _is_json_type(value, kind):
                problems.append(f"{key}: expected {kind}")
        if problems:
            raise ToolArgumentsError("invalid arguments: " + "; ".join(problems))
        return arguments

    async def call(self, arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        if self.timeout is None:
            return await self.handler(arguments, ctx)
        try:
            return await asyncio.wait_for(self.handler(arguments, ctx), self.timeout)
        except TimeoutError:
            raise ToolTimeout(f"tool {self.name!r} timed out after {self.timeout}s") from None

    def __repr__(self) -> str:
        return f"<SchemaTool {self.name}>"


class _EmittingSchemaTool(SchemaTool):
    """A renamed tool that streams events of its own (an agent as a tool): the run forwards
    them while it runs, as it would for the tool itself."""

    __slots__ = ()
    emits_events = True


def _is_json_type(value: Any, kind: str) -> bool:
    expected = _JSON_TYPES.get(kind)
    if expected is None:
        return True
    if kind in ("integer", "number") and type(value) is bool:
        return False
    return isinstance(value, expected)


class Toolset:
    """A source of tools for a run.

    Override :meth:`list_tools` (and :meth:`call_tool` when it lists ``ToolDefinition``\\ s).
    A toolset whose tools never change per run overrides :meth:`static_tools` instead, so the
    loop reads them without an ``await`` (this is how :class:`~vivace.tools.Toolkit` and plain
    functions cost nothing extra). ``instructions`` are appended to the agent's instructions.
    Toolsets that hold connections (MCP) open them lazily and release them in :meth:`aclose`;
    one toolset object serves any number of concurrent runs.
    """

    name: str = "toolset"
    instructions: str | None = None

    def static_tools(self) -> Sequence[BaseTool] | None:
        """The same tools for every run, or None when they are listed per run."""
        return None

    async def list_tools(self, ctx: RunContext[Any]) -> Sequence[ToolsetItem]:
        """The tools of this run: tools, functions or ``ToolDefinition``\\ s."""
        static = self.static_tools()
        return static if static is not None else ()

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: RunContext[Any]) -> Any:
        """Call the tool ``name`` listed as a ``ToolDefinition`` with validated ``arguments``."""
        raise NotImplementedError(f"{type(self).__name__} lists {name!r} but cannot call it")

    async def tools_for_run(self, ctx: RunContext[Any]) -> list[BaseTool]:
        """:meth:`list_tools` as tool objects (definitions become :class:`SchemaTool`\\ s)."""
        return [self.to_tool(item) for item in await self.list_tools(ctx)]

    def to_tool(self, item: ToolsetItem, **options: Any) -> BaseTool:
        """A tool object for what :meth:`list_tools` returned (``options`` as for
        :class:`SchemaTool`: ``requires_approval``, ``timeout``, ``max_retries``...)."""
        from ..models.base import ToolDefinition

        if isinstance(item, ToolDefinition):
            name = item.name

            async def handler(arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
                return await self.call_tool(name, arguments, ctx)  # type: ignore[arg-type]

            return SchemaTool(item, handler, **options)
        return as_tool(item)

    async def aclose(self) -> None:
        """Release what the toolset holds (connections, subprocesses). No-op by default."""

    # -- combinators ---------------------------------------------------------------------------

    def filtered(
        self, keep: Callable[[RunContext[Any], BaseTool], bool | Awaitable[bool]]
    ) -> FilteredToolset:
        """This toolset with only the tools ``keep(ctx, tool)`` accepts for each run."""
        return FilteredToolset(self, keep)

    def prefixed(self, prefix: str) -> PrefixedToolset:
        """This toolset with every tool name prefixed (``prefix + "_" + name``)."""
        return PrefixedToolset(self, prefix)


class DynamicToolset(Toolset):
    """Tools chosen per run by a function: ``DynamicToolset(lambda ctx: [...])`` (sync or async).

    .. code-block:: python

        def tools_for(ctx):
            return [admin_tool] if ctx.session_state.get("admin") else [read_tool]

        agent = Agent(model, tools=[DynamicToolset(tools_for)])
    """

    def __init__(
        self,
        function: Callable[[RunContext[Any]], Iterable[ToolsetItem] | Awaitable[Iterable[Any]]],
        *,
        name: str | None = None,
        instructions: str | None = None,
    ) -> None:
        self.function = function
        self.name = name or str(getattr(function, "__name__", "dynamic"))
        self.instructions = instructions

    async def list_tools(self, ctx: RunContext[Any]) -> Sequence[ToolsetItem]:
        items = self.function(ctx)
        if inspect.isawaitable(items):
            items = await items
        return list(items)


class FilteredToolset(Toolset):
    """A toolset showing only the tools a predicate keeps for each run."""

    def __init__(
        self,
        inner: Toolset,
        keep: Callable[[RunContext[Any], BaseTool], bool | Awaitable[bool]],
    ) -> None:
        self.inner = inner
        self.keep = keep
        self.name = inner.name
        self.instructions = inner.instructions

    async def tools_for_run(self, ctx: RunContext[Any]) -> list[BaseTool]:
        static = self.inner.static_tools()
        tools = list(static) if static is not None else await self.inner.tools_for_run(ctx)
        out = []
        for t in tools:
            ok = self.keep(ctx, t)
            if inspect.isawaitable(ok):
                ok = await ok
            if ok:
                out.append(t)
        return out

    async def aclose(self) -> None:
        await self.inner.aclose()


class PrefixedToolset(Toolset):
    """A toolset whose tool names carry a prefix (to keep two toolsets' names apart)."""

    def __init__(self, inner: Toolset, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        self.name = inner.name
        self.instructions = inner.instructions
        self._renamed: dict[int, tuple[BaseTool, BaseTool]] = {}

    def _rename(self, t: BaseTool) -> BaseTool:
        done = self._renamed.get(id(t))
        if done is not None and done[0] is t:
            return done[1]
        from ..models.base import ToolDefinition

        d = t.definition()
        renamed = ToolDefinition(f"{self.prefix}_{d.name}", d.description, d.parameters, d.strict)

        async def handler(arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
            return await t.call(arguments, ctx)

        kind = _EmittingSchemaTool if t.emits_events else SchemaTool
        out = kind(
            renamed,
            handler,
            requires_approval=t.requires_approval,
            timeout=None,  # the inner tool applies its own timeout
            stop_after=t.stop_after,
            max_retries=t.max_retries,
            validator=t.validate,
        )
        if len(self._renamed) > 4096:
            self._renamed.clear()
        self._renamed[id(t)] = (t, out)  # holding ``t`` keeps its id from being reused
        return out

    def static_tools(self) -> Sequence[BaseTool] | None:
        static = self.inner.static_tools()
        return None if static is None else [self._rename(t) for t in static]

    async def tools_for_run(self, ctx: RunContext[Any]) -> list[BaseTool]:
        static = self.static_tools()
        if static is not None:
            return list(static)
        return [self._rename(t) for t in await self.inner.tools_for_run(ctx)]

    async def aclose(self) -> None:
        await self.inner.aclose()
