"""The compact JSON encoder shared by storage rows, server answers and model request bodies."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest

from vivace.compact_json import compact_encoder


def test_it_writes_what_json_dumps_writes_compactly() -> None:
    enc = compact_encoder()
    values = [
        {"text": "天气 😀 \x00\x1f\u2028", "n": [1, 2.5, -0.0, 10**30, None, True, False]},
        "top-level string \u00e9",
        [],
        {},
        1.5,
        {"nested": [{"a": [[[]]]}]},
    ]
    for v in values:
        assert enc(v) == json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        assert json.loads(enc(v)) == v


def test_default_and_its_errors() -> None:
    enc = compact_encoder(lambda o: sorted(o) if isinstance(o, set) else str(o))
    assert enc({"s": {3, 1}, "o": complex(1, 2)}) == '{"s":[1,3],"o":"(1+2j)"}'
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        compact_encoder()({"o": object()})


def test_nan_only_when_allowed() -> None:
    assert compact_encoder()([math.nan, math.inf]) == "[NaN,Infinity]"
    with pytest.raises(ValueError, match="not JSON compliant"):
        compact_encoder(allow_nan=False)({"x": math.nan})


def test_a_value_that_contains_itself_is_a_value_error_and_the_encoder_stays_usable() -> None:
    enc = compact_encoder()
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        enc(loop)
    cyc: dict[str, object] = {}
    cyc["self"] = cyc
    with pytest.raises(ValueError):
        enc(cyc)
    # no circular-reference table is kept between calls: the same object encodes again
    shared = {"k": 1}
    assert enc([shared, shared]) == '[{"k":1},{"k":1}]'
    assert enc(shared) == '{"k":1}'


class _Slow:
    """Encoded through ``default``, which lets other threads run mid-encoding."""


def _slow_default(o: object) -> object:
    time.sleep(0)
    return "slow"


def test_one_encoder_from_many_threads_encoding_the_same_object() -> None:
    # a circular-reference table kept between calls would see another thread's half-encoded
    # ``shared`` as a cycle here
    enc = compact_encoder(_slow_default)
    shared = {"items": [_Slow() for _ in range(50)], "text": "é" * 100}
    expected = enc(shared)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(300):
                assert enc(shared) == expected
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
