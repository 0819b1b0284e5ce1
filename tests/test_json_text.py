"""`json_text.loads` reads every text to exactly what json reads, and refuses what json refuses."""

from __future__ import annotations

import json

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
        b"[0.12345678901234567890123, 1e-400]",
        '{"é":1}'.encode("utf-16"),  # json detects UTF-16
        '{"é":"ü"}',
        '"\ud800"',  # text holding a lone surrogate itself, not its escape
        b'"\xff"',
        b"[1,]",
        b"{}\x00",
        b"",
        b"[" * 990 + b"]" * 990,  # near json's recursion limit: json alone reads it
        b"[" * 20_000 + b"]" * 20_000,
    ],
)
def test_reads_as_json_reads(text: bytes | str) -> None:
    assert _outcome(json_text.loads, text) == _outcome(json.loads, text)


@settings(max_examples=300, deadline=None)
@given(value=json_values, cut=st.integers(min_value=0, max_value=200), junk=st.binary(max_size=3))
def test_any_text_reads_as_json_reads(value: object, cut: int, junk: bytes) -> None:
    whole = json.dumps(value).encode()
    for text in (whole, whole[:cut] + junk, junk + whole, whole.decode()):
        assert _outcome(json_text.loads, text) == _outcome(json.loads, text)
