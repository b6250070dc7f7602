"""Build a tool's JSON Schema and argument validator from a Python function.

Type hints become a pydantic model (built once per function and cached by the
:class:`~vivace.tools.Tool`), docstrings give the descriptions. This module imports pydantic,
so it is only loaded on a tool's first use, never at import or Agent construction.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pydantic
from pydantic import ConfigDict, Field, create_model

from ..errors import ToolDefinitionError
from .context import RunContext
from .docstrings import parse_docstring

__all__ = ["FunctionSchema", "build_function_schema"]


class FunctionSchema:
    """The model-facing view of a function: description, JSON Schema, argument validator.

    The validator (a pydantic model) is created on first use: a tool the model never calls
    costs only its JSON Schema, which is written directly for simple signatures.
    """

    __slots__ = (
        "_fields",
        "_validator",
        "ctx_param",
        "description",
        "field_names",
        "is_async",
        "name",
        "parameters",
    )

    def __init__(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any],
        fields: dict[str, Any],
        ctx_param: str | None,
        is_async: bool,
        validator: type[pydantic.BaseModel] | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.parameters = parameters
        self._fields = fields
        self.ctx_param = ctx_param
        self.is_async = is_async
        self.field_names = tuple(fields)
        self._validator = validator

    @property
    def validator(self) -> type[pydantic.BaseModel]:
        """The pydantic model that validates the model's arguments."""
        v = self._validator
        if v is None:
            v = self._validator = _create_validator(self.name, self._fields)
        return v


def _create_validator(name: str, fields: dict[str, Any]) -> type[pydantic.BaseModel]:
    model_name = "".join(part.capitalize() for part in name.split("_")) + "Args"
    return create_model(
        model_name,
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
        **fields,
    )


def _is_run_context(annotation: Any) -> bool:
    if annotation is RunContext:
        return True
    return typing.get_origin(annotation) is RunContext


def build_function_schema(
    func: Callable[..., Any], name: str, description: str | None = None, *, fast: bool = True
) -> FunctionSchema:
    """Inspect ``func`` and build its :class:`FunctionSchema`.

    Raises :class:`~vivace.errors.ToolDefinitionError` naming the tool and the parameter when a
    type cannot be represented.
    """
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"tool {name!r}: cannot read its signature: {exc}") from None
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"tool {name!r}: cannot resolve type hints: {exc}") from None
    doc_summary, param_docs = parse_docstring(inspect.getdoc(func))

    fields: dict[str, Any] = {}
    ctx_param: str | None = None
    for pname, param in sig.parameters.items():
        annotation = hints.get(pname, Any)
        if _is_run_context(annotation):
            ctx_param = pname
            continue
        if pname in ("self", "cls") and param.annotation is inspect.Parameter.empty:
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"tool {name!r}: parameter {pname!r} is *args/**kwargs; tools need named parameters",
                tool=name,
                parameter=pname,
            )
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (
            normalize_annotation(annotation),
            Field(default, description=param_docs.get(pname)),
        )

    description = description if description is not None else doc_summary
    is_async = inspect.iscoroutinefunction(func)
    simple = _simple_parameters(fields) if fast else None
    if simple is not None:
        return FunctionSchema(name, description, simple, fields, ctx_param, is_async)
    try:
        validator = _create_validator(name, fields)
        parameters = validator.model_json_schema()
    except Exception as exc:
        culprit = _find_culprit(fields)
        where = f"parameter {culprit!r}" if culprit else "its parameters"
        raise ToolDefinitionError(
            f"tool {name!r}: {where} has a type that cannot be described as JSON Schema "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})",
            tool=name,
            parameter=culprit,
        ) from None
    _strip_titles(parameters)
    parameters.pop("title", None)
    return FunctionSchema(name, description, parameters, fields, ctx_param, is_async, validator)


_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_JSON_SCALARS = (str, int, float, bool, type(None))


def _simple_parameters(fields: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema pydantic would produce, written directly - for signatures made only of
    scalars, ``Literal``s, ``Optional`` and lists/dicts of those; None for anything else."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, (annotation, info) in fields.items():
        prop = _simple_type(annotation)
        if prop is None:
            return None
        if info.description:
            prop["description"] = info.description
        if info.is_required():
            required.append(pname)
        elif isinstance(info.default, _JSON_SCALARS):
            prop["default"] = info.default
        else:
            return None
        properties[pname] = prop
    out: dict[str, Any] = {"additionalProperties": False, "properties": properties}
    if required:
        out["required"] = required
    out["type"] = "object"
    return out


def _simple_type(tp: Any) -> dict[str, Any] | None:
    json_type = _PRIMITIVES.get(tp)
    if json_type is not None:
        return {"type": json_type}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        if len(args) > 1 and len(kinds) == 1:
            kind = kinds.pop()
            if kind in (str, int, bool):
                return {"enum": list(args), "type": _PRIMITIVES[kind]}
        return None
    if origin is list and len(args) == 1:
        item = _simple_type(args[0])
        return None if item is None else {"items": item, "type": "array"}
    if origin is dict and len(args) == 2 and args[0] is str:
        value = _simple_type(args[1])
        return None if value is None else {"additionalProperties": value, "type": "object"}
    is_union = origin is typing.Union or type(tp).__name__ == "UnionType"
    if is_union and len(args) == 2 and args[1] is type(None):
        inner = _simple_type(args[0])
        return None if inner is None else {"anyOf": [inner, {"type": "null"}]}
    return None


_TD_CACHE: dict[Any, Any] = {}


def normalize_annotation(annotation: Any) -> Any:
    """Make ``typing.TypedDict`` classes usable by pydantic on Python 3.11 (it wants the
    ``typing_extensions`` flavour), also inside generic containers."""
    if typing.is_typeddict(annotation):
        if annotation.__module__ == "typing_extensions" or not _needs_td_conversion():
            return annotation
        converted: Any = _TD_CACHE.get(annotation)
        if converted is None:
            import typing_extensions

            hints = typing.get_type_hints(annotation, include_extras=True)
            fields = {k: normalize_annotation(v) for k, v in hints.items()}
            converted = typing_extensions.TypedDict(  # type: ignore[misc,no-redef]
                annotation.__name__, fields, total=annotation.__total__
            )
            converted.__doc__ = annotation.__doc__
            _TD_CACHE[annotation] = converted
        return converted
    args = typing.get_args(annotation)
    if args:
        new_args = tuple(normalize_annotation(a) for a in args)
        if new_args != args:
            origin = typing.get_origin(annotation)
            if origin is typing.Annotated:
                return typing.Annotated[new_args]
            try:
                return annotation.copy_with(new_args)
            except AttributeError:
                import functools
                import operator

                if origin is typing.Union or type(annotation).__name__ == "UnionType":
                    return functools.reduce(operator.or_, new_args)
                return origin[new_args]
    return annotation


def _needs_td_conversion() -> bool:
    import sys

    return sys.version_info < (3, 12)


def _find_culprit(fields: dict[str, Any]) -> str | None:
    for pname, (annotation, _) in fields.items():
        try:
            pydantic.TypeAdapter(annotation).json_schema()
        except Exception:
            return pname
    return None


def _strip_titles(schema: Any) -> None:
    """Remove pydantic's auto-generated ``title`` keys (noise for the model)."""
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for sub in props.values():
                if isinstance(sub, dict):
                    sub.pop("title", None)
        for key, value in schema.items():
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                for sub in value.values():
                    _strip_titles(sub)
            elif key != "default":
                _strip_titles(value)
    elif isinstance(schema, list):
        for item in schema:
            _strip_titles(item)
