"""Build-time type checks between steps, and the cached validators and JSON Schemas of types.

:func:`accepts` answers "may a value of type ``source`` be passed where ``target`` is
expected", without coercion: subclasses, unions, ``Any``, ``int`` -> ``float``, generic
containers by their item types, and TypedDicts and pydantic models by their fields when the
source is a dict of named outputs (``parallel``/``branch``). Anything else is a mismatch.
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from functools import lru_cache
from typing import Any

__all__ = ["UNKNOWN", "accepts", "dump_json", "from_json", "json_schema", "type_name"]

UNKNOWN: Any = Any
"""The type of a step that declares none (accepts and produces anything)."""

_ABSTRACT = {
    cabc.Sequence: (list, tuple, cabc.Sequence, cabc.MutableSequence),
    cabc.MutableSequence: (list, cabc.MutableSequence),
    cabc.Iterable: (list, tuple, set, frozenset, dict, cabc.Sequence, cabc.Set, cabc.Mapping),
    cabc.Collection: (list, tuple, set, frozenset, dict, cabc.Sequence, cabc.Set, cabc.Mapping),
    cabc.Mapping: (dict, cabc.Mapping, cabc.MutableMapping),
    cabc.MutableMapping: (dict, cabc.MutableMapping),
    cabc.Set: (set, frozenset, cabc.Set),
}


def type_name(tp: Any) -> str:
    """A readable name: ``int``, ``list[str]``, ``Order``, ``dict[str, Any]``."""
    if tp is Any:
        return "Any"
    if tp is None or tp is type(None):
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    text = repr(tp).replace("typing.", "")
    for mod in ("collections.abc.", "builtins."):
        text = text.replace(mod, "")
    return text


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and typing.is_typeddict(tp)


def _is_pydantic(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_fields") and hasattr(tp, "model_validate")


def _strip(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return typing.get_args(tp)[0]
    if type(tp) is typing.NewType:
        return tp.__supertype__
    return tp


def accepts(target: Any, source: Any) -> bool:
    """Whether a value of type ``source`` is acceptable where ``target`` is expected."""
    target, source = _strip(target), _strip(source)
    if target is Any or target is object or source is Any:
        return True
    if target == source:
        return True
    if _is_union(source):
        return all(accepts(target, s) for s in typing.get_args(source))
    if _is_union(target):
        return any(accepts(t, source) for t in typing.get_args(target))
    if source is None:
        source = type(None)
    if target is None:
        target = type(None)
    s_origin = typing.get_origin(source)
    t_origin = typing.get_origin(target)
    if s_origin is typing.Literal:
        values = typing.get_args(source)
        if t_origin is typing.Literal:
            return set(values) <= set(typing.get_args(target))
        return all(accepts(target, type(v)) for v in values)
    if t_origin is typing.Literal:
        return False
    if target is float and source is int:
        return True
    if target is complex and source in (int, float):
        return True
    if _is_typeddict(target):
        return _fields_accept(_typeddict_fields(target), source)
    if _is_pydantic(target) and not (isinstance(source, type) and issubclass(source, target)):
        return _is_named_outputs(source) and _fields_accept(_model_fields(target), source)
    t_base = t_origin or target
    s_base = s_origin or source
    if _is_typeddict(s_base):
        s_base, source = dict, dict[str, Any]
        s_origin = dict
    if not isinstance(t_base, type) or not isinstance(s_base, type):
        return False
    if not _base_ok(t_base, s_base):
        return False
    t_args = typing.get_args(target)
    if not t_args:
        return True
    s_args = typing.get_args(source)
    if not s_args:
        return False  # a bare ``list`` is not known to hold ``int``
    if t_base is tuple or s_base is tuple:
        return _tuple_ok(t_base, t_args, s_base, s_args)
    if len(t_args) != len(s_args):
        return len(t_args) == 1 and all(accepts(t_args[0], a) for a in s_args[:1])
    return all(accepts(t, s) for t, s in zip(t_args, s_args, strict=True))


def _base_ok(t_base: type, s_base: type) -> bool:
    if t_base in _ABSTRACT:
        return issubclass(s_base, t_base) or s_base in _ABSTRACT[t_base]
    try:
        return issubclass(s_base, t_base)
    except TypeError:
        return False


def _tuple_ok(t_base: type, t_args: tuple[Any, ...], s_base: type, s_args: tuple[Any, ...]) -> bool:
    if s_base is tuple:
        items = s_args[:1] if len(s_args) == 2 and s_args[1] is Ellipsis else s_args
        if t_base is tuple:
            if len(t_args) == 2 and t_args[1] is Ellipsis:
                return all(accepts(t_args[0], s) for s in items)
            return len(t_args) == len(s_args) and all(
                accepts(t, s) for t, s in zip(t_args, s_args, strict=True)
            )
        return all(accepts(t_args[0], s) for s in items)
    if len(t_args) == 2 and t_args[1] is Ellipsis:
        return accepts(t_args[0], s_args[0])
    return False


class NamedOutputs:
    """The type of a ``parallel``/``branch`` output: a dict of step id -> output type."""

    __slots__ = ("fields", "optional")

    def __init__(self, fields: dict[str, Any], optional: bool) -> None:
        self.fields = fields
        self.optional = optional

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{k}: {type_name(v)}" + (" | None" if self.optional else "")
            for k, v in self.fields.items()
        )
        return "{" + inner + "}"


def _is_named_outputs(tp: Any) -> bool:
    return isinstance(tp, NamedOutputs)


def _typeddict_fields(tp: Any) -> dict[str, tuple[Any, bool]]:
    hints = typing.get_type_hints(tp)
    required = getattr(tp, "__required_keys__", frozenset(hints))
    return {k: (v, k in required) for k, v in hints.items()}


def _model_fields(tp: Any) -> dict[str, tuple[Any, bool]]:
    return {name: (f.annotation, f.is_required()) for name, f in tp.model_fields.items()}


def _fields_accept(fields: dict[str, tuple[Any, bool]], source: Any) -> bool:
    if isinstance(source, NamedOutputs):
        for name, (tp, required) in fields.items():
            got = source.fields.get(name)
            if got is None:
                if required:
                    return False
                continue
            if source.optional and required and not accepts(tp, type(None)):
                return False
            if not accepts(tp, got):
                return False
        return True
    if _is_typeddict(source):
        have = _typeddict_fields(source)
        for name, (tp, required) in fields.items():
            got = have.get(name)
            if got is None:
                if required:
                    return False
                continue
            if not accepts(tp, got[0]):
                return False
        return True
    return False


def accepts_arguments(tool: Any, source: Any) -> bool:
    """Whether values of type ``source`` can be a tool's arguments: a dict, or a model,
    TypedDict or ``parallel`` output whose fields cover the tool's required parameters
    with acceptable types (checked against the tool's JSON Schema types)."""
    source = _strip(source)
    if source is Any:
        return True
    origin = typing.get_origin(source) or source
    if isinstance(origin, type) and issubclass(origin, dict) and not _is_typeddict(origin):
        return True
    if isinstance(source, NamedOutputs):
        have = {k: v for k, v in source.fields.items()}
    elif _is_typeddict(source):
        have = {k: v for k, (v, _) in _typeddict_fields(source).items()}
    elif _is_pydantic(source):
        have = {k: v for k, (v, _) in _model_fields(source).items()}
    else:
        return False
    schema = tool.definition().parameters
    props = schema.get("properties") or {}
    kinds = {"string": str, "integer": int, "number": float, "boolean": bool}
    for name in schema.get("required") or ():
        if name not in have:
            return False
    for name, tp in have.items():
        prop = props.get(name)
        kind = prop.get("type") if isinstance(prop, dict) else None
        if isinstance(kind, str) and kind in kinds and not accepts(kinds[kind], tp):
            return False
    return True


# -- validation and JSON ---------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _adapter(tp: Any) -> Any:
    import pydantic

    return pydantic.TypeAdapter(tp)


def adapter(tp: Any) -> Any:
    """A cached ``pydantic.TypeAdapter`` for ``tp`` (built on first use)."""
    try:
        return _adapter(tp)
    except TypeError:  # unhashable type objects
        import pydantic

        return pydantic.TypeAdapter(tp)


def validate(tp: Any, value: Any) -> Any:
    """``value`` validated as ``tp`` (``Any`` passes through unchanged)."""
    if tp is Any or tp is object:
        return value
    if isinstance(tp, type) and type(value) is tp:
        return value
    return adapter(tp).validate_python(value)


def from_json(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` from its JSON form (a stored step output)."""
    if tp is Any or tp is object or data is None or isinstance(tp, NamedOutputs):
        return data
    if tp in (str, int, float, bool, dict, list) and type(data) is tp:
        return data
    return adapter(tp).validate_python(data)


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (pydantic models, dataclasses, datetimes...)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    import pydantic_core

    return pydantic_core.to_jsonable_python(value)


def dump_json(value: Any) -> str:
    """``value`` as JSON text (compact)."""
    if value is None:
        return "null"
    import pydantic_core

    return pydantic_core.to_json(value).decode()


@lru_cache(maxsize=1024)
def _schema(tp: Any) -> dict[str, Any]:
    return adapter(tp).json_schema()


def json_schema(tp: Any) -> dict[str, Any] | None:
    """The JSON Schema of ``tp`` (None for ``Any``), built once per type."""
    if tp is Any or tp is object:
        return None
    if isinstance(tp, NamedOutputs):
        props = {k: json_schema(v) or {} for k, v in tp.fields.items()}
        return {"type": "object", "properties": props}
    try:
        return _schema(tp)
    except TypeError:
        return adapter(tp).json_schema()
    except Exception:
        return {"description": type_name(tp)}
