from __future__ import annotations

from collections.abc import Iterator

import pytest

from .collectors import Collector


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector().start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(autouse=True)
def _tracing_off_after() -> Iterator[None]:
    yield
    from vivace.observability import disable

    disable(timeout=1.0)
