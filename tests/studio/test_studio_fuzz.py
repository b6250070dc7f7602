"""Fuzz the Studio's API from the app's OpenAPI document (bounded, deterministic): no 5xx,
responses match the documented schemas, status codes and content types."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from tests.server.apps import make_agents  # noqa: E402
from vivace.server import VivaceApp  # noqa: E402
from vivace.storage import InMemoryStorage  # noqa: E402
from vivace.studio import Studio  # noqa: E402

_app = VivaceApp(
    agents=[a for a in make_agents() if a.id not in ("gated", "broken")],
    storage=InMemoryStorage(),
    auth=False,
    extensions=[Studio()],
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app).include(
    path_regex="^/studio|^/metrics"
)


def _checks() -> Any:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_studio_api_fuzz(case: Any) -> None:
    case.call_and_validate(checks=_checks())
