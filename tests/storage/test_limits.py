"""Column limits come from the table definitions themselves."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from tidings.storage import schema
from tidings.storage.limits import column_limit, limits

_TABLE = Table(
    "sample",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("short", String(12)),
    Column("unbounded", String()),
    Column("body", Text),
)


def test_string_columns_give_their_length_and_others_none() -> None:
    assert column_limit(_TABLE, "short") == 12
    assert column_limit(_TABLE, "unbounded") is None
    assert column_limit(_TABLE, "body") is None
    assert column_limit(_TABLE, "id") is None
    assert limits(_TABLE) == {"short": 12}


def test_an_unknown_column_is_an_error_not_no_limit() -> None:
    with pytest.raises(KeyError):
        column_limit(_TABLE, "shrot")


def test_the_message_columns_registration_writes_are_limited() -> None:
    found = limits(schema.messages)
    for name in ("provider_message_id", "channel", "recipient", "contact_ref"):
        assert found[name] > 0
    assert column_limit(schema.campaigns, "key") == 200
