"""``/docs`` works offline (issue 8 item 6): the page and its ReDoc script come from the
installed package, never from a CDN. With Chromium (``/usr/bin/chromium``) and the PyPI
``playwright`` package, a headless browser that may reach nothing but this server renders
the operations."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from vivace.server import VivaceApp

from .apps import make_agents

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def app() -> VivaceApp:
    return VivaceApp(agents=make_agents(), auth=False, title="Test agents")


def test_docs_and_assets_are_served_from_the_package(app: VivaceApp, thread_server: Any) -> None:
    with thread_server(app) as srv, httpx.Client(base_url=srv.url) as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "cdn" not in page.text and "https://" not in page.text
        assert '<script src="/docs/assets/redoc.standalone.js">' in page.text
        assert '<redoc spec-url="/openapi.json">' in page.text
        js = c.get("/docs/assets/redoc.standalone.js")
        assert js.status_code == 200
        assert js.headers["content-type"].startswith("text/javascript")
        assert len(js.content) > 500_000 and b"Redoc" in js.content
        lic = c.get("/docs/assets/LICENSE")
        assert lic.status_code == 200 and lic.headers["content-type"].startswith("text/plain")
        assert "MIT" in lic.text
        assert c.get("/docs/assets/../app.py").status_code == 404
        assert c.get("/docs/assets/nope.js").status_code == 404
        spec = c.get("/openapi.json")
        assert spec.headers["content-type"] == "application/json"
        assert "/docs" not in spec.json()["paths"]


def test_docs_page_under_a_mount_uses_the_mount_prefix(app: VivaceApp) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    host = Starlette(routes=[Mount("/ai", app=app)])
    with TestClient(host) as c:
        page = c.get("/ai/docs").text
        assert '<script src="/ai/docs/assets/redoc.standalone.js">' in page
        assert c.get("/ai/docs/assets/redoc.standalone.js").status_code == 200


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")
def test_docs_page_renders_the_operations_offline(app: VivaceApp, thread_server: Any) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package")
    with thread_server(app) as srv, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            outside: list[str] = []

            def only_this_server(route: Any) -> None:
                if route.request.url.startswith(srv.url):
                    route.continue_()
                else:  # air-gapped: nothing else can be reached
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_this_server)
            page.set_viewport_size({"width": 1400, "height": 900})
            page.goto(srv.url + "/docs")
            page.wait_for_selector("h2:has-text('Start a run (JSON result')", timeout=20_000)
            if os.environ.get("VIVACE_DOCS_SCREENSHOT"):
                page.screenshot(path=os.environ["VIVACE_DOCS_SCREENSHOT"])
            body = page.inner_text("body")
            for summary in ("List sessions", "OpenAI-compatible chat completions", "Cancel a run"):
                assert summary in body
            assert not [u for u in outside if u.endswith((".js", ".css", ".json"))]
        finally:
            browser.close()
