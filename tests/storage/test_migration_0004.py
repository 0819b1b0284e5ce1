"""Migration 0004 on a store with data: duplicate token names become unique, connections keep
their receipts, and afterwards a removed connection's name can be taken again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from tidings.storage import connections, inbox
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt
from tidings.storage.migrate import upgrade
from tidings.storage.schema import api_tokens

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def test_upgrade_keeps_data_and_makes_token_names_unique(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db, "0003")
    with db.write() as conn:
        for n in range(3):
            conn.execute(
                insert(api_tokens).values(name="default", token_sha256=f"{n:064d}", created_at=NOW)
            )
        conn.execute(
            text(
                "INSERT INTO connections (name, provider, secret, options, created_at) "
                "VALUES ('evo', 'evolution', 's', '{}', :now)"
            ),
            {"now": NOW.replace(tzinfo=None)},
        )
    upgrade(db)
    with db.write() as conn:
        names = conn.execute(select(api_tokens.c.name).order_by(api_tokens.c.id)).scalars().all()
        evo = connections.get_connection(conn, "evo")
        [receipt] = inbox.insert_receipts(
            conn, [NewReceipt(evo.id, "evolution", NOW, "", {}, b"{}")]
        )
        connections.remove_connection(conn, "evo", NOW)
        again = connections.add_connection(conn, "callbell", "evo", "t", {}, NOW)
    assert names == ["default", "default-2", "default-3"]
    assert again.id != evo.id
    with db.read() as conn:
        row = inbox.get_receipt(conn, receipt)
    assert row is not None and row.connection_id == evo.id
    with pytest.raises(IntegrityError), db.write() as conn:  # only one in use per name
        conn.execute(
            text(
                "INSERT INTO connections (name, provider, secret, options, created_at) "
                "VALUES ('evo', 'evolution', 's', '{}', :now)"
            ),
            {"now": NOW.replace(tzinfo=None)},
        )
    db.dispose()
