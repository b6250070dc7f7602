from __future__ import annotations

from collections.abc import Iterator

import pytest

from vivace.models import router
from vivace.testing.fake_providers import FakeProviderServer

from .cases import Case


@pytest.fixture
def srv(case: Case) -> Iterator[FakeProviderServer]:
    with case.fake() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_router_cache() -> Iterator[None]:
    router.clear_model_cache()
    yield
    router.clear_model_cache()
