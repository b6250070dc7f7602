"""Tools: typed Python functions the model can call, grouped in toolkits."""

from .context import RunContext
from .tool import ModelRetry, Tool, ToolArgumentsError, ToolTimeout, as_tool, tool
from .toolkit import Toolkit

__all__ = [
    "ModelRetry",
    "RunContext",
    "Tool",
    "ToolArgumentsError",
    "ToolTimeout",
    "Toolkit",
    "as_tool",
    "tool",
]
