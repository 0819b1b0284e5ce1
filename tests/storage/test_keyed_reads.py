"""`Reader.rows_by_key`, which the worker uses to find the messages, calls, leads, employees and
campaigns a batch names, finds exactly the rows whose keys match, on either store. On SQLite
the keys go to the store as one JSON array (`json_each`); these keys are the ones that could
read differently that way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.storage import connections
from tidings.storage.db import Database, Reader
from tidings.storage.messages import blank_row
from tidings.storage.schema import employees, messages

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def _employee(code: str) -> dict[str, object]:
    return {"code": code, "tags": [], "active": True, "created_at": NOW, "updated_at": NOW}


def _by_code(db: Database, codes: set[str]) -> dict[str, int]:
    with db.read() as conn:
        found = Reader(conn, locking=False).rows_by_key(employees, ("code",), {(c,) for c in codes})
    assert all(key == (row.code,) for key, row in found.items())
    return {key[0]: row.id for key, row in found.items()}


def test_each_key_finds_its_own_row_and_no_other(db: Database) -> None:
    stored = ["e", "E", "e ", "é", "emoji 🎉", 'quote " and \\ slash', "[1, 2]", "null", "7", ""]
    stored += [f"bulk-{i}" for i in range(1200)]  # more than one IN list's worth
    with db.write() as conn:
        conn.execute(employees.insert(), [_employee(code) for code in stored])
    with db.read() as conn:
        ids = {row.code: row.id for row in conn.execute(employees.select())}
    wanted = {"e", "é", "emoji 🎉", 'quote " and \\ slash', "[1, 2]", "null", "7", "", "absent"}
    wanted |= {f"bulk-{i}" for i in range(0, 1200, 3)}
    assert _by_code(db, wanted) == {code: ids[code] for code in wanted if code in ids}


@pytest.mark.sqlite_only  # PostgreSQL text holds no NUL character
def test_a_key_with_a_nul_character_finds_its_row_not_the_text_before_it(db: Database) -> None:
    """SQLite's json_each cuts a text at a NUL character; such a key must not find the row of
    the text before it (Callyzer's employee codes and call ids are stored as sent)."""
    with db.write() as conn:
        conn.execute(employees.insert(), [_employee("e"), _employee("e\x00x")])
    with db.read() as conn:
        ids = {row.code: row.id for row in conn.execute(employees.select())}
    assert _by_code(db, {"e\x00x"}) == {"e\x00x": ids["e\x00x"]}
    assert _by_code(db, {"e\x00x", "e"}) == ids


def test_keys_of_two_columns_match_within_their_connection(db: Database) -> None:
    with db.write() as conn:
        one = connections.add_connection(conn, "infobip", "one", "s", {}, NOW)
        two = connections.add_connection(conn, "infobip", "two", "s", {}, NOW)
        rows = [blank_row(c.id, f"P{i}", NOW) for c in (one, two) for i in range(5)]
        conn.execute(messages.insert(), rows)
    wanted = {(one.id, "P1"), (one.id, "P3"), (two.id, "P3"), (two.id, "P9")}
    with db.read() as conn:
        found = Reader(conn, locking=False).rows_by_key(
            messages, ("connection_id", "provider_message_id"), wanted
        )
    assert set(found) == wanted - {(two.id, "P9")}
    assert all(key == (row.connection_id, row.provider_message_id) for key, row in found.items())
