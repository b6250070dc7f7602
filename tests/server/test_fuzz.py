"""Fuzz the API from its own OpenAPI document with schemathesis (bounded): no 5xx, responses
match the documented schemas and content types."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from vivace.server import VivaceApp  # noqa: E402
from vivace.storage import open_storage  # noqa: E402

from .apps import make_agents  # noqa: E402

_app = VivaceApp(
    agents=[a for a in make_agents() if a.id != "gated"],
    storage=open_storage("memory://"),
    auth=False,
    max_body_bytes=64 * 1024,
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)


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
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_fuzz(case: Any) -> None:
    case.call_and_validate(checks=_checks())
