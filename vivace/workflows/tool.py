"""A workflow as a tool an agent can call (a :class:`~vivace.tools.SchemaTool`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .typecheck import json_schema, to_jsonable, validate

if TYPE_CHECKING:
    from ..tools.context import RunContext
    from ..tools.toolset import SchemaTool
    from .builder import Workflow

__all__ = ["workflow_tool"]


def _parameters(wf: Workflow[Any, Any]) -> tuple[dict[str, Any], bool]:
    """The tool's JSON Schema, and whether the input is wrapped as ``{"input": ...}``
    (tools take objects; a workflow whose input is not an object gets one field)."""
    schema = json_schema(wf.input_type) if wf.input_type is not None else None
    if schema is not None and schema.get("type") == "object":
        return schema, False
    inner = schema or {}
    return {"type": "object", "properties": {"input": inner}, "required": ["input"]}, True


def workflow_tool(
    wf: Workflow[Any, Any], *, name: str | None = None, description: str | None = None
) -> SchemaTool:
    from ..models.base import ToolDefinition
    from ..tools.toolset import SchemaTool

    params, wrapped = _parameters(wf)
    definition = ToolDefinition(
        name or wf.id, description or wf.description or f"Run the {wf.id} workflow.", params
    )

    async def handler(arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        value = arguments.get("input") if wrapped else arguments
        if wf.input_type is not None:
            value = validate(wf.input_type, value)
        result = await wf.arun(
            value,
            parent_run_id=ctx.run_id if ctx is not None else None,
            trace_id=ctx.trace_id if ctx is not None else None,
            deps=ctx.deps if ctx is not None else None,
        )
        if result.status in ("suspended", "waiting"):
            return {
                "status": result.status,
                "run_id": result.run_id,
                "suspended": [s.to_dict() for s in result.suspended],
            }
        return to_jsonable(result.output)

    return SchemaTool(definition, handler)
