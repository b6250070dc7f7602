"""Tools: typed Python functions the model can call, and toolsets (every source of tools)."""

from .context import RunContext
from .tool import (
    BaseTool,
    ModelRetry,
    Tool,
    ToolArgumentsError,
    ToolResume,
    ToolSuspended,
    ToolTimeout,
    as_tool,
    tool,
)
from .toolkit import Toolkit
from .toolset import DynamicToolset, FilteredToolset, PrefixedToolset, SchemaTool, Toolset

__all__ = [
    "BaseTool",
    "DynamicToolset",
    "FilteredToolset",
    "ModelRetry",
    "PrefixedToolset",
    "RunContext",
    "SchemaTool",
    "Tool",
    "ToolArgumentsError",
    "ToolResume",
    "ToolSuspended",
    "ToolTimeout",
    "Toolkit",
    "Toolset",
    "as_tool",
    "tool",
]
