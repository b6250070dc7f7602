"""The id rule: any typed text passes, control characters and surrogates do not."""

from __future__ import annotations

import pytest

from vivace.errors import InvalidIdentifier, UserError
from vivace.identifiers import MAX_ID_LENGTH, check_identifier, is_identifier


@pytest.mark.parametrize(
    "value",
    ["s1", "张三", "💩 chat", "café-42", "a b/c?d=e", "x" * MAX_ID_LENGTH, "ñ\u200b", "...", ".a"],
)
def test_text_people_type_is_accepted(value: str) -> None:
    assert check_identifier("session_id", value) == value
    assert is_identifier(value)


@pytest.mark.parametrize(
    "value", ["a\nb", "a\r\nb", "a\x00b", "\x07", "tab\there", "del\x7f", "c1\x85", "s\ud800"]
)
def test_control_characters_and_surrogates_are_refused_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        check_identifier("user_id", value)
    assert info.value.field == "user_id"
    assert "user_id" in info.value.message
    assert isinstance(info.value, UserError)
    assert info.value.to_dict()["code"] == "invalid_identifier"
    assert not is_identifier(value)


@pytest.mark.parametrize("value", ["", ".", "..", "x" * (MAX_ID_LENGTH + 1), 3, None])
def test_empty_too_long_and_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidIdentifier):
        check_identifier("run_id", value)
    assert not is_identifier(value)


def test_every_character_below_u0100_and_the_surrogates_are_judged_alike_in_any_id() -> None:
    # printable ASCII takes a shortcut past the character scan: each character must get the
    # same verdict alone, inside an ASCII id and inside a non-ASCII one
    for code in [*range(0x100), 0xD800, 0xDBFF, 0xDC00, 0xDFFF]:
        ch = chr(code)
        bad = code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF
        for value in (f"run{ch}x", f"{ch}中", f"x{ch}"):
            assert is_identifier(value) is not bad, (hex(code), value)
            if bad:
                with pytest.raises(InvalidIdentifier, match=f"U\\+{code:04X}"):
                    check_identifier("run_id", value)
            else:
                assert check_identifier("run_id", value) == value
