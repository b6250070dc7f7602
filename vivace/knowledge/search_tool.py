"""The search tool a knowledge base gives an agent: query, ``top_k`` and the declared
filters, typed in its JSON Schema (built once per knowledge base)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..tools import ModelRetry
from ..tools.tool import ToolArgumentsError
from ..tools.toolset import SchemaTool
from .errors import InvalidFilter
from .filters import field_schema

if TYPE_CHECKING:
    from ..tools.context import RunContext
    from .knowledge_base import KnowledgeBase

__all__ = ["make_search_tool", "search_parameters"]

MAX_TOP_K = 20


def search_parameters(kb: KnowledgeBase) -> dict[str, Any]:
    """The JSON Schema of the tool's arguments."""
    filter_props: dict[str, Any] = {
        "source": {
            **field_schema("string"),
            "description": "Only passages of this source (or these).",
        }
    }
    for name, kind in kb.declared_filters.items():
        filter_props[name] = field_schema(kind)
    return {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for, in your own words."},
            "top_k": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_TOP_K,
                "description": f"How many passages to return (default {kb.top_k}).",
            },
            "filters": {
                "type": "object",
                "description": "Only passages whose metadata match: a value for equality, "
                '{"in": [...]} for one of several, {"gte": x, "lt": y} for number ranges.',
                "properties": filter_props,
                "additionalProperties": False,
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    }


def make_search_tool(kb: KnowledgeBase) -> SchemaTool:
    from ..models.base import ToolDefinition
    from .knowledge_base import record_citations

    what = f" ({kb.description})" if kb.description else ""
    definition = ToolDefinition(
        kb.tool_name,
        f"Search the knowledge base {kb.name!r}{what}. Returns the most relevant passages, "
        "each with its source, position and score.",
        search_parameters(kb),
    )

    def validate(arguments: str | dict[str, Any]) -> dict[str, Any]:
        args = plain.validate(arguments)  # JSON and top-level types
        q = args.get("query")
        if not isinstance(q, str) or not q.strip():
            raise ToolArgumentsError("invalid arguments: query must be a non-empty string")
        top_k = args.get("top_k")
        if top_k is not None and (
            not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K
        ):
            raise ToolArgumentsError(
                f"invalid arguments: top_k must be an integer from 1 to {MAX_TOP_K}"
            )
        try:
            from .filters import compile_filters

            compile_filters(args.get("filters"), kb.declared_filters, strict=True)
        except InvalidFilter as exc:
            raise ToolArgumentsError(f"invalid arguments: filters: {exc.message}") from None
        return args

    async def handler(arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        try:
            hits = await kb.asearch(
                arguments["query"],
                top_k=arguments.get("top_k"),
                filters=arguments.get("filters"),
                _strict=True,
            )
        except InvalidFilter as exc:
            raise ModelRetry(exc.message) from None
        if not hits:
            return {"passages": [], "note": "nothing relevant was found"}
        return {"passages": record_citations(ctx, hits, kb.name)}

    plain = SchemaTool(definition, handler)
    return SchemaTool(definition, handler, validator=validate)
