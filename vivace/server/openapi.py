"""The OpenAPI 3.1 document, generated once from the route table and the pydantic models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .routing import Op

__all__ = ["build_openapi"]

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No content",
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Validation error",
    502: "The run failed",
    503: "Storage unavailable",
}


def build_openapi(ops: list[Op], title: str, version: str, prefix: str = "") -> dict[str, Any]:
    from pydantic import BaseModel
    from pydantic.json_schema import models_json_schema

    from .routing import Doc
    from .schemas import ID_SCHEMA, ErrorBody

    models: dict[tuple[type[BaseModel], Literal["validation", "serialization"]], None] = {
        (ErrorBody, "serialization"): None
    }
    ops = [op for op in ops if op.in_schema]
    for op in ops:
        if op.body is not None:
            models[(op.body, "validation")] = None
        for m in op.responses.values():
            if isinstance(m, type) and issubclass(m, BaseModel):
                models[(m, "serialization")] = None
    refs, top = models_json_schema(list(models), ref_template="#/components/schemas/{model}")
    schemas = dict(top.get("$defs", {}))

    def ref(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        return refs[(model, mode)]

    error_ref = ref(ErrorBody, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        params: list[dict[str, Any]] = [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": op.path_schemas.get(p, ID_SCHEMA),
            }
            for p in op.path_params
        ]
        params += [
            {
                "name": q.name,
                "in": "query",
                "required": q.required,
                "schema": q.schema,
                **({"description": q.description} if q.description else {}),
            }
            for q in op.query
        ]
        params += [
            {
                "name": h.name,
                "in": "header",
                "required": h.required,
                "schema": h.schema,
                **({"description": h.description} if h.description else {}),
            }
            for h in op.headers
        ]
        operation: dict[str, Any] = {
            "operationId": op.handler.__name__,
            "summary": op.summary,
            "tags": [op.tag],
        }
        if params:
            operation["parameters"] = params
        if op.body is not None or op.body_schema is not None:
            body_schema = ref(op.body, "validation") if op.body is not None else op.body_schema
            content: dict[str, Any] = {"application/json": {"schema": body_schema}}
            if op.multipart is not None:
                content["multipart/form-data"] = {"schema": op.multipart}
            operation["requestBody"] = {"required": True, "content": content}
        responses: dict[str, Any] = {}
        for status, model in sorted(op.responses.items()):
            desc = _STATUS_TEXT.get(status, "Response")
            if isinstance(model, Doc):
                doc: dict[str, Any] = {"description": model.description or desc}
                if model.content:
                    doc["content"] = {k: {"schema": v} for k, v in model.content.items()}
                responses[str(status)] = doc
                continue
            if status >= 400:
                responses[str(status)] = {
                    "description": desc,
                    "content": {"application/json": {"schema": error_ref}},
                }
                continue
            body: dict[str, Any] = {}
            if isinstance(model, type) and issubclass(model, BaseModel):
                body["application/json"] = {"schema": ref(model, "serialization")}
            elif isinstance(model, dict):
                body["application/json"] = {"schema": model}
            if op.sse is not None:  # Open API 3.1: ``schema`` describes each event
                body["text/event-stream"] = {"schema": op.sse}
            responses[str(status)] = {"description": desc, **({"content": body} if body else {})}
        if op.scope is not None:
            for status in (401, 403):
                responses.setdefault(
                    str(status),
                    {
                        "description": _STATUS_TEXT[status],
                        "content": {"application/json": {"schema": error_ref}},
                    },
                )
            operation["security"] = [{"bearer": []}, {}]
        operation["responses"] = responses
        paths.setdefault(prefix + op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
