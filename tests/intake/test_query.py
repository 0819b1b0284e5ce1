"""Intake's query parsing gives what parse_qsl gives, whichever path it takes."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.intake.app import _query


@pytest.mark.parametrize(
    "query",
    ["", "token=s3cret", "a=1&a=2", "a&b=", "=x", "&&a=1&", "a=1=2", "t=%41b", "t=a+b", "x=%zz"],
)
def test_known_queries(query: str) -> None:
    assert _query(query) == dict(parse_qsl(query, keep_blank_values=True))


@given(st.text(alphabet="ab=&%+2A;é", max_size=30))
def test_any_query(query: str) -> None:
    assert _query(query) == dict(parse_qsl(query, keep_blank_values=True))
