"""Intake's JSON verdict is exactly json's (what the adapters parse with), fast path or not."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.json_values import json_values
from tidings.intake.app import check_well_formed


def _json_accepts(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return True


@pytest.mark.parametrize(
    "body",
    [
        b'{"event":"messages.update","data":{"status":"READ"}}',
        b"\xef\xbb\xbf{}",  # a byte-order mark: json refuses it
        b'{"a":NaN}',  # json takes NaN, orjson does not
        b'{"a":1e400}',
        b'{"a":"\\ud800"}',  # a lone surrogate: json takes it
        b"[18446744073709551616]",
        '{"é":1}'.encode("utf-16"),  # json detects UTF-16
        b'"\xff"',
        b"[1,]",
        b"{}\x00",
        b"",
        b"[" * 990 + b"]" * 990,  # near json's recursion limit: json alone decides
        b"[" * 20_000 + b"]" * 20_000,
    ],
)
def test_the_verdict_is_jsons(body: bytes) -> None:
    assert (check_well_formed("json", body) is None) == _json_accepts(body)


@settings(max_examples=300, deadline=None)
@given(value=json_values, cut=st.integers(min_value=0, max_value=200), junk=st.binary(max_size=3))
def test_any_body_gets_jsons_verdict(value: object, cut: int, junk: bytes) -> None:
    whole = json.dumps(value).encode()
    for body in (whole, whole[:cut] + junk, junk + whole):
        assert (check_well_formed("json", body) is None) == _json_accepts(body)
