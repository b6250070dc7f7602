"""Tools: Python functions the model can call.

``@tool`` (or a plain function in ``Agent(tools=[...])``) wraps a sync or async function.
Nothing is inspected when a tool is made: the schema is built on first use and cached.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, overload

from ..errors import VivaceError

if TYPE_CHECKING:
    from ..messages import ToolCallPart
    from ..models.base import ToolDefinition
    from .context import RunContext
    from .schema import FunctionSchema

__all__ = [
    "BaseTool",
    "ModelRetry",
    "Tool",
    "ToolArgumentsError",
    "ToolResume",
    "ToolSuspended",
    "ToolTimeout",
    "as_tool",
    "tool",
]


class ModelRetry(VivaceError):
    """Raise inside a tool to send ``message`` back to the model and let it try again."""

    code = "model_retry"


class ToolArgumentsError(VivaceError):
    """The model's arguments were not valid JSON or did not match the schema."""

    code = "tool_arguments_error"


class ToolTimeout(VivaceError):
    """The tool did not finish within its timeout."""

    code = "tool_timeout"


class ToolSuspended(Exception):
    """Raised by a tool to pause its run until people decide the ``pending`` calls.

    An agent used as a tool raises it when its own run pauses for an approval: the calling
    run pauses too and lists these calls among its pending ones (ids prefixed with the tool
    call's id and ``/``, so they stay unique at every level). Resuming the calling run with
    decisions for them calls the tool again with ``ctx.resume`` set to a :class:`ToolResume`
    holding ``state`` (JSON the tool chose) and the decisions (keyed by the tool's own ids).
    """

    def __init__(self, pending: list[ToolCallPart], state: Any = None) -> None:
        super().__init__(f"{len(pending)} call(s) wait for a decision")
        self.pending = pending
        self.state = state


class ToolResume:
    """What a suspended tool call gets back in ``ctx.resume``: its ``state`` and the
    ``decisions`` (``Approve``/``Reject``/bool) for the calls it listed, by their own ids."""

    __slots__ = ("decisions", "state")

    def __init__(self, state: Any, decisions: dict[str, Any]) -> None:
        self.state = state
        self.decisions = decisions


class BaseTool:
    """What the run loop needs of any tool: a definition for the model, argument validation,
    a call, and the options approvals, retries, timeouts and ``stop_after`` work with.

    :class:`Tool` (a Python function) and :class:`~vivace.tools.SchemaTool` (a JSON Schema and
    a handler, e.g. from a :class:`~vivace.tools.Toolset`) implement it.
    """

    __slots__ = ("max_retries", "name", "requires_approval", "stop_after", "strict", "timeout")

    emits_events = False
    """Class flag: the tool streams events of its own while it runs (through ``ctx.emit``);
    the run then forwards them as they come instead of only awaiting the call."""

    name: str
    requires_approval: bool
    timeout: float | None
    stop_after: bool
    max_retries: int | None
    strict: bool | None

    def definition(self) -> ToolDefinition:
        """What the model sees of this tool."""
        raise NotImplementedError

    def validate(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """Parse and validate the model's arguments; raise :class:`ToolArgumentsError`."""
        raise NotImplementedError

    async def call(self, arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        """Run the tool with validated ``arguments``."""
        raise NotImplementedError


class Tool(BaseTool):
    """A function exposed to the model.

    Options: ``name``/``description`` override the function's; ``requires_approval`` pauses the
    run until a human approves the call; ``timeout`` (seconds) bounds one call; ``stop_after``
    ends the run with this tool's result as the output; ``max_retries`` is how many failed
    calls (bad arguments, exceptions, timeouts) the model may make before the run fails.
    Sync functions and the event loop: with ``threaded=True`` a sync function always runs in a
    worker thread, with ``threaded=False`` always on the loop. By default (``None``) Vivace
    decides per tool: the first call runs in a thread and is timed; a tool that returns within
    ``INLINE_BELOW`` seconds runs on the loop from then on (no thread hop), and goes back to
    the thread as soon as one inline call takes longer. A tool with a ``timeout`` always runs
    in a thread (the timeout could not interrupt it otherwise).
    """

    INLINE_BELOW = 0.001

    __slots__ = (
        "_core",
        "_definition",
        "_inline",
        "_schema",
        "description_override",
        "function",
        "threaded",
    )

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout: float | None = None,
        stop_after: bool = False,
        max_retries: int | None = None,
        strict: bool | None = None,
        threaded: bool | None = None,
    ) -> None:
        self.function = function
        self.name = name or function.__name__
        self.description_override = description
        self.requires_approval = requires_approval
        self.timeout = timeout
        self.stop_after = stop_after
        self.max_retries = max_retries
        self.strict = strict
        self.threaded = threaded
        self._inline = threaded is False
        self._schema: FunctionSchema | None = None
        self._definition: ToolDefinition | None = None
        self._core: Any = None  # the arguments' pydantic-core validator, once built

    # -- schema (lazy, cached) ------------------------------------------------------------

    @property
    def schema(self) -> FunctionSchema:
        """The function's schema, built on first access."""
        s = self._schema
        if s is None:
            from .schema import build_function_schema

            s = self._schema = build_function_schema(
                self.function, self.name, self.description_override
            )
        return s

    @property
    def description(self) -> str:
        return self.schema.description

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of the arguments."""
        return self.schema.parameters

    def definition(self) -> ToolDefinition:
        """What the model sees of this tool (cached)."""
        d = self._definition
        if d is None:
            from ..models.base import ToolDefinition

            s = self.schema
            d = self._definition = ToolDefinition(s.name, s.description, s.parameters, self.strict)
        return d

    # -- execution --------------------------------------------------------------------------

    def validate(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """Parse and validate the model's arguments; raise :class:`ToolArgumentsError`."""
        core = self._core
        if core is None:
            core = self._core = self.schema.validator.__pydantic_validator__
        try:
            if isinstance(arguments, str):
                model = core.validate_json(arguments or "{}")
            else:
                model = core.validate_python(arguments)
        except ValueError as exc:  # pydantic's ValidationError is one
            import pydantic

            if not isinstance(exc, pydantic.ValidationError):
                raise
            raise ToolArgumentsError(_format_validation_error(exc)) from None
        # the validated fields by name (a fresh model's own dict: nothing else holds it)
        return model.__dict__

    async def call(self, arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        """Run the tool with validated ``arguments`` (and ``ctx`` injected when declared)."""
        schema = self._schema or self.schema
        if schema.ctx_param is not None:
            arguments = {**arguments, schema.ctx_param: ctx}
        if schema.is_async:
            aw: Any = self.function(**arguments)
        elif self._inline and self.timeout is None:
            if self.threaded is False:
                return self.function(**arguments)
            start = perf_counter()
            try:
                return self.function(**arguments)
            finally:
                if perf_counter() - start > self.INLINE_BELOW:
                    self._inline = False  # it blocked the loop once: back to the thread
        else:
            aw = asyncio.get_running_loop().run_in_executor(
                None,
                functools.partial(contextvars.copy_context().run, self._timed, arguments),
            )
        if self.timeout is None:
            return await aw
        try:
            return await asyncio.wait_for(aw, self.timeout)
        except TimeoutError:
            raise ToolTimeout(f"tool {self.name!r} timed out after {self.timeout}s") from None

    def _timed(self, arguments: dict[str, Any]) -> Any:
        start = perf_counter()
        result = self.function(**arguments)
        if self.threaded is None and self.timeout is None:
            self._inline = perf_counter() - start < self.INLINE_BELOW
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"


def _format_validation_error(exc: Any) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(arguments)"
        lines.append(f"{loc}: {err.get('msg')}")
    return "invalid arguments: " + "; ".join(lines)


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    timeout: float | None = None,
    stop_after: bool = False,
    max_retries: int | None = None,
    strict: bool | None = None,
    threaded: bool | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    timeout: float | None = None,
    stop_after: bool = False,
    max_retries: int | None = None,
    strict: bool | None = None,
    threaded: bool | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a tool: ``@tool`` or ``@tool(requires_approval=True, timeout=5)``."""

    def wrap(fn: Callable[..., Any]) -> Tool:
        return Tool(
            fn,
            name=name,
            description=description,
            requires_approval=requires_approval,
            timeout=timeout,
            stop_after=stop_after,
            max_retries=max_retries,
            strict=strict,
            threaded=threaded,
        )

    return wrap(function) if function is not None else wrap


_FUNCTION_TOOLS: dict[Any, Tool] = {}


def as_tool(obj: Any) -> BaseTool:
    """The tool for a :class:`BaseTool` (returned as is) or a plain function (a :class:`Tool`,
    cached per function)."""
    if type(obj) is Tool:
        return obj
    t = _FUNCTION_TOOLS.get(obj)
    if t is None:
        if isinstance(obj, BaseTool):
            return obj
        if not callable(obj):
            from ..errors import ToolDefinitionError

            raise ToolDefinitionError(f"{obj!r} is not a function or a Tool")
        if len(_FUNCTION_TOOLS) > 4096:
            _FUNCTION_TOOLS.clear()
        t = _FUNCTION_TOOLS[obj] = Tool(obj)
    return t


def result_to_content(value: Any) -> Any:
    """Make a tool's return value JSON-serializable for the model and for storage."""
    if type(value) is str or value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict | list):
        try:
            json.dumps(value)
            return value
        except (TypeError, ValueError):
            pass
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        import pydantic

        return pydantic.TypeAdapter(type(value)).dump_python(value, mode="json")
    try:
        import pydantic

        return pydantic.TypeAdapter(Any).dump_python(value, mode="json")
    except Exception:
        return str(value)
