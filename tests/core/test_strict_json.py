"""Strict JSON: exactly RFC 8259 in UTF-8, nothing Python's json adds."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chinwag.core.strict_json import StrictJSONError, loads_object, loads_strict


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b'{"a":1}', {"a": 1}),
        (b' { "a" : [1, 2.5, "x", true, false, null] } ', {"a": [1, 2.5, "x", True, False, None]}),
        ('{"é":"ü"}'.encode(), {"é": "ü"}),
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        ("[1]", [1]),
    ],
)
def test_valid_json_parses(text: bytes | str, value: object) -> None:
    assert loads_strict(text) == value


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1,"a":2}',
        b'{"a":1,"b":{"c":1,"c":1}}',
        b'[{"x":1,"x":1}]',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":-Infinity}',
        b"NaN",
        b"\xef\xbb\xbf{}",
        "\ufeff{}",
        '{"a":1}'.encode("utf-16"),
        '{"a":1}'.encode("utf-16-le"),
        '{"a":1}'.encode("utf-16-be"),
        '{"a":1}'.encode("utf-32"),
        b'{"a":"\xff"}',
        b'{"a":"\xc0\xaf"}',
        b'{"a":"\xed\xa0\x80"}',
        b'{"a":"\x00"}',
        b'{"a":"\n"}',
        b"{'a':1}",
        b'{"a":1,}',
        b"[1,]",
        b'{"a":01}',
        b'{"a":1} x',
        b"",
        b"   ",
        b'{"a":' + b"9" * 5000 + b"}",
    ],
)
def test_doubtful_input_is_refused(text: bytes | str) -> None:
    with pytest.raises(StrictJSONError):
        loads_strict(text)


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_deep_nesting_is_a_strict_json_error_not_recursion_error(depth: int) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        with pytest.raises(StrictJSONError):
            loads_strict(text)


def test_errors_are_value_errors_with_short_messages() -> None:
    with pytest.raises(ValueError, match="duplicate member") as info:
        loads_strict(b'{"' + b"k" * 10_000 + b'":1,"' + b"k" * 10_000 + b'":2}')
    assert len(str(info.value)) < 100


def test_loads_object_requires_an_object() -> None:
    assert loads_object(b'{"a":1}') == {"a": 1}
    for text in (b"[]", b"1", b'"a"', b"null", b"true"):
        with pytest.raises(StrictJSONError, match="not a JSON object"):
            loads_object(text)


def test_big_exponent_is_a_float_infinity_the_claim_rules_must_catch() -> None:
    """1e400 is valid JSON syntax; Python reads it as inf. Time claims check the type."""
    assert loads_strict(b"1e400") == float("inf")


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_round_trips_whatever_json_dumps(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates cannot be UTF-8
    assert loads_strict(text.encode()) == value


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_strict_json_error(data: bytes) -> None:
    with contextlib.suppress(StrictJSONError):
        loads_strict(data)
