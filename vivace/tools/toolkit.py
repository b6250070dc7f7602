"""Toolkits: a named group of function tools, given to an agent as one item."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .tool import BaseTool, Tool, as_tool
from .toolset import Toolset

__all__ = ["Toolkit"]


class Toolkit(Toolset):
    """A group of tools: the :class:`~vivace.tools.Toolset` of plain functions. Give tools as a
    list, or subclass and decorate methods with ``@tool``:

    .. code-block:: python

        class Weather(Toolkit):
            @tool
            def forecast(self, city: str) -> str: ...

    ``instructions`` are appended to the agent's instructions when the toolkit is used. The
    tools are the same for every run (built once per toolkit), so a toolkit costs a run no
    more than the functions given directly.
    """

    def __init__(
        self,
        tools: Iterable[BaseTool | Callable[..., Any]] = (),
        *,
        name: str | None = None,
        instructions: str | None = None,
    ) -> None:
        self.name = name or type(self).__name__
        self.instructions = instructions
        self._given = list(tools)
        self._tools: list[BaseTool] | None = None

    def get_tools(self) -> list[BaseTool]:
        """The toolkit's tools (methods decorated with ``@tool`` are bound to this instance)."""
        if self._tools is None:
            tools = [as_tool(t) for t in self._given]
            seen: set[str] = set()
            for klass in type(self).__mro__:
                for attr, value in vars(klass).items():
                    if isinstance(value, Tool) and attr not in seen:
                        seen.add(attr)
                        tools.append(_bind(value, self))
            self._tools = tools
        return self._tools

    def static_tools(self) -> Sequence[BaseTool]:
        return self.get_tools()


def _bind(t: Tool, instance: object) -> Tool:
    bound = t.function.__get__(instance, type(instance))
    return Tool(
        bound,
        name=t.name,
        description=t.description_override,
        requires_approval=t.requires_approval,
        timeout=t.timeout,
        stop_after=t.stop_after,
        max_retries=t.max_retries,
        strict=t.strict,
        threaded=t.threaded,
    )
