"""`json_text.loads` reads every text to exactly what json reads, and refuses what json refuses;
`json_text.check` refuses exactly what json refuses."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.json_values import json_values
from tidings import json_text


def _outcome(read: object, text: bytes | str) -> str:
    """What reading gives, spelled so that NaN, -0.0, 1 and 1.0, True and 1 all differ."""
    try:
        return "value " + json.dumps(read(text))  # type: ignore[operator]
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        return f"refused: {type(error).__name__}"


@pytest.mark.parametrize(
    "text",
    [
        b'{"event":"messages.update","data":{"status":"READ","n":1,"f":1.0,"z":-0.0}}',
        b'{"a":1,"a":2}',  # the last of a repeated key
        b"\xef\xbb\xbf{}",  # a byte-order mark: json refuses it from bytes
        b'{"a":NaN,"b":-Infinity}',  # json takes these, orjson does not
        b'{"a":1e400}',
        b'{"a":"\\ud800"}',  # a lone surrogate: json takes it
        b"[18446744073709551616, -9223372036854775809]",  # beyond 64 bits: orjson gives floats
        b"[9223372036854775807, -9223372036854775808, 18446744073709551615]",
        b'{"n":12345678901234567890123,"s":"12345678901234567890123"}',
        b" 18446744073709551616",  # the whole text, after whitespace
        b'{"a" :\t\r\n -18446744073709551616}',  # whitespace between the colon and the number
        b'{"id":"18446744073709551616123","n":[1, 2,\n 18446744073709551616]}',
        b'{"s":"[18446744073709551616]"}',  # JSON-like text inside a string: json reads it
        b"[0.12345678901234567890123, 1e-400]",
        '{"é":1}'.encode("utf-16"),  # json detects UTF-16
        '{"é":"ü"}',
        '"\ud800"',  # text holding a lone surrogate itself, not its escape
        b'"\xff"',
        b"[1,]",
        b"{}\x00",
        b"",
        b"[" + b"9" * 5000 + b"]",  # beyond Python's digits for an int: json refuses it
        b"[" * 990 + b"]" * 990,  # near json's recursion limit: json alone reads it
        b"[" * 20_000 + b"]" * 20_000,
    ],
)
def test_reads_as_json_reads(text: bytes | str) -> None:
    assert _outcome(json_text.loads, text) == _outcome(json.loads, text)
    if isinstance(text, bytes):
        assert _verdict(json_text.check, text) == _verdict(json.loads, text)


def _verdict(read: object, text: bytes) -> str:
    """Whether reading takes the text, and the error when it does not."""
    try:
        read(text)  # type: ignore[operator]
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        return f"refused: {type(error).__name__}"
    return "taken"


@settings(max_examples=300, deadline=None)
@given(value=json_values, cut=st.integers(min_value=0, max_value=200), junk=st.binary(max_size=3))
def test_any_text_reads_as_json_reads(value: object, cut: int, junk: bytes) -> None:
    whole = json.dumps(value).encode()
    compact = json.dumps(value, separators=(",", ":")).encode()
    for text in (whole, compact, whole[:cut] + junk, junk + whole, whole.decode()):
        assert _outcome(json_text.loads, text) == _outcome(json.loads, text)
    for raw in (whole, compact, whole[:cut] + junk, junk + whole):
        assert _verdict(json_text.check, raw) == _verdict(json.loads, raw)


def _finite(value: object) -> object:
    """The value as JSON can say it: NaN and infinity are null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_written_text_reads_back_as_json_writes_it(value: object) -> None:
    ours = json_text.dumps(value)
    assert json.dumps(json.loads(ours)) == json.dumps(_finite(value))


@pytest.mark.parametrize(
    "value",
    [
        {"a": "\ud800"},  # a lone surrogate: json escapes it
        [2**64, -(2**63) - 1],  # beyond 64 bits
        {1: "one", None: "none", 2.5: "x"},  # keys that are not text: json writes them as text
        {"é": "ü", "n": -0.0, "t": True},
    ],
)
def test_values_orjson_refuses_are_written_as_json_writes_them(value: object) -> None:
    assert json.loads(json_text.dumps(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", [{"at": datetime.now(UTC)}, {"s": {1, 2}}, object()])
def test_what_json_cannot_write_is_refused(value: object) -> None:
    with pytest.raises(TypeError):
        json_text.dumps(value)
