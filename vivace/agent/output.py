"""Structured output: the JSON Schema and validator for an agent's ``output_type``.

Built once per type on first use and cached. Non-object types (``int``, ``list[str]``...) are
wrapped as ``{"result": ...}`` because providers' JSON modes require an object at the top.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from ..errors import OutputTypeError

__all__ = ["FINAL_RESULT_TOOL", "OutputSchema", "output_schema"]

FINAL_RESULT_TOOL = "final_result"


@dataclass(slots=True)
class OutputSchema:
    name: str
    schema: dict[str, Any]
    wrapped: bool
    adapter: Any  # pydantic.TypeAdapter

    def validate_json(self, text: str) -> Any:
        """Validate JSON text; raises ``pydantic.ValidationError``."""
        value = self.adapter.validate_json(text)
        return value["result"] if self.wrapped else value

    def validate_python(self, data: Any) -> Any:
        value = self.adapter.validate_python(data)
        return value["result"] if self.wrapped else value


_CACHE: dict[Any, OutputSchema] = {}


def output_schema(output_type: Any) -> OutputSchema:
    """The cached :class:`OutputSchema` for ``output_type`` (raises :class:`OutputTypeError`)."""
    cached = _CACHE.get(output_type)
    if cached is not None:
        return cached
    import pydantic

    from ..tools.schema import normalize_annotation

    if not (isinstance(output_type, type) or typing.get_origin(output_type) is not None):
        raise OutputTypeError(
            f"output_type must be a type (a pydantic model, dataclass, TypedDict, int, list[str]...), "
            f"got {output_type!r}"
        )
    name = getattr(output_type, "__name__", None) or "output"
    try:
        adapter: Any = pydantic.TypeAdapter(normalize_annotation(output_type))
        schema = adapter.json_schema()
    except Exception as exc:
        raise OutputTypeError(
            f"output_type {output_type!r} cannot be described as JSON Schema: {exc}"
        ) from None
    wrapped = schema.get("type") != "object"
    if wrapped:
        from typing_extensions import TypedDict

        wrapper = TypedDict(f"{name}Result", {"result": normalize_annotation(output_type)})  # type: ignore[misc]  # noqa: UP013
        adapter = pydantic.TypeAdapter(wrapper)
        schema = adapter.json_schema()
    schema.pop("title", None)
    if schema.get("type") == "object":
        schema.setdefault("additionalProperties", False)
    out = OutputSchema(name=_safe_name(name), schema=schema, wrapped=wrapped, adapter=adapter)
    _CACHE[output_type] = out
    return out


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    return cleaned[:64] or "output"
