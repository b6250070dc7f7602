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


def test_non_finite_floats_are_null_or_refused() -> None:
    # JSON has no literal for them: null (valid JSON for every reader), or a ValueError
    assert compact_encoder()([math.nan, math.inf, -math.inf, 1.5]) == "[null,null,null,1.5]"
    strict = compact_encoder(finite_only=True)
    for bad in ({"x": math.nan}, [1, [math.inf]], -math.inf):
        with pytest.raises(ValueError, match="not JSON compliant"):
            strict(bad)
    assert strict({"x": None, "y": 2.5}) == '{"x":null,"y":2.5}'  # a real null is fine
    # the same when the standard encoder takes over (orjson refuses integers beyond 64 bits)
    assert (
        compact_encoder()({"big": 10**30, "n": math.nan}) == '{"big":' + str(10**30) + ',"n":null}'
    )
    with pytest.raises(ValueError):
        strict({"big": 10**30, "n": math.nan})


def test_what_orjson_refuses_is_written_as_json_dumps_writes_it() -> None:
    enc = compact_encoder()
    for v in ({1: "int key", None: "none key", 2.5: "float key"}, [2**64, -(2**70)]):
        assert enc(v) == json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    # an unpaired surrogate (UTF-8 has no bytes for it) as its escape: the same string in JSON
    assert enc("\ud800 lone") == '"\\ud800 lone"'
    assert json.loads(enc(["\ud800 lone"])) == ["\ud800 lone"]
    deep: list[object] = []
    cur = deep
    for _ in range(300):  # deeper than orjson's limit, well within Python's
        nxt: list[object] = []
        cur.append(nxt)
        cur = nxt
    assert enc(deep) == json.dumps(deep, separators=(",", ":"))


def test_types_orjson_writes_itself() -> None:
    import dataclasses
    import datetime
    import enum
    import uuid

    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        x: int

    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert compact_encoder()({"u": u, "c": Color.RED}) == f'{{"u":"{u}","c":"red"}}'
    # dataclasses and datetimes go to default, as with the standard library
    seen: list[object] = []

    def default(o: object) -> object:
        seen.append(o)
        return str(o)

    when = datetime.datetime(2026, 12, 1, 19, 0)
    assert compact_encoder(default)([Point(1), when]) == f'["{Point(1)}","{when}"]'
    assert seen == [Point(1), when]
    with pytest.raises(TypeError, match="Point is not JSON serializable"):
        compact_encoder()(Point(1))


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


def test_bytes_are_utf8_with_lone_surrogates_escaped() -> None:
    from vivace.compact_json import compact_bytes_encoder

    enc = compact_bytes_encoder()
    value = {"text": "天气 😀 \x00", "n": [1, 2.5, None]}
    assert enc(value) == compact_encoder()(value).encode()
    odd = {"half \ud83d": "an emoji cut in two: \ud83d, and \udc00 the other half"}
    raw = enc(odd)
    raw.decode("utf-8")  # UTF-8 cannot hold them: written as JSON escapes instead
    assert b"\\ud83d" in raw and json.loads(raw) == odd
    with pytest.raises(ValueError):
        compact_bytes_encoder(finite_only=True)([math.nan])
