"""The API's own documentation: ``/openapi.json`` (built once, cached) and a ReDoc page at
``/docs`` whose script ships in the package (``vivace/server/static/redoc``), so it works on
an air-gapped machine. Public routes, not part of the OpenAPI document."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import HTTPError
from ..routing import Op
from ..state import settings

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["REDOC_VERSION", "ROUTES", "openapi_bytes"]

REDOC_VERSION = "2.5.4"
STATIC = Path(__file__).resolve().parent.parent / "static" / "redoc"
ASSETS = {  # name -> media type: only these files are served
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "LICENSE": "text/plain; charset=utf-8",
    "redoc.standalone.js.LICENSE.txt": "text/plain; charset=utf-8",
}


def openapi_bytes(request: Request) -> bytes:
    """The OpenAPI document of this app as JSON bytes (built on first use)."""
    cache = settings(request).cache
    doc = cache.get("openapi")
    if doc is None:
        from ... import __version__
        from ..errors import dumps
        from ..openapi import build_openapi

        s = settings(request)
        doc = cache["openapi"] = dumps(build_openapi(request.app.state.ops, s.title, __version__))
    return doc


async def openapi_json(request: Request) -> Response:
    from starlette.responses import Response

    return Response(openapi_bytes(request), media_type="application/json")


async def docs_page(request: Request) -> Response:
    from starlette.responses import HTMLResponse

    base = html.escape(request.scope.get("root_path", "").rstrip("/"), quote=True)
    title = html.escape(settings(request).title)
    return HTMLResponse(
        "<!doctype html><html><head>"
        f'<meta charset="utf-8"><title>{title} API</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<style>body{margin:0}</style></head><body>"
        f'<redoc spec-url="{base}/openapi.json"></redoc>'
        f'<script src="{base}/docs/assets/redoc.standalone.js"></script>'
        "</body></html>"
    )


async def docs_asset(request: Request) -> Response:
    from starlette.responses import FileResponse

    name = request.path_params["name"]
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPError(404, "route_not_found", "no such route")
    return FileResponse(
        STATIC / name,
        media_type=media_type,
        headers={"cache-control": f"public, max-age=86400, immutable; v={REDOC_VERSION}"},
    )


ROUTES = [
    Op("GET", "/openapi.json", openapi_json, "OpenAPI", "docs", None, in_schema=False),
    Op("GET", "/docs", docs_page, "API docs", "docs", None, in_schema=False),
    Op("GET", "/docs/assets/{name}", docs_asset, "API docs assets", "docs", None, in_schema=False),
]
