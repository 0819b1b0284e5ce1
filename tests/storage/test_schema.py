"""The migrations build exactly the schema the code declares, and the worker's inbox queries
cost the same whatever the backlog."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from tidings.storage import connections, inbox
from tidings.storage.db import Database, Reader
from tidings.storage.inbox import NewReceipt
from tidings.storage.schema import metadata
from tidings.storage.writes import Writes


def test_migrations_build_the_declared_schema(db: Database) -> None:
    """A missing or wrong migration (an index declared but never created) shows up here."""
    with db.read() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def _explained(db: Database, run: Any) -> list[str]:
    """The query plan SQLite chose for each SELECT that `run(conn)` executed, through
    SQLAlchemy or the driver's own cursor (the driver reports them with values filled in)."""
    statements: list[str] = []

    def capture(sql: str) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            statements.append(sql)

    with db.read() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.set_trace_callback(capture)
        try:
            run(conn)
        finally:
            raw.set_trace_callback(None)
        plans = []
        for sql in statements:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            plans.append(" / ".join(str(row[3]) for row in rows))
    return plans


@pytest.fixture
def backlog(db: Database) -> Database:
    now = datetime.now(UTC)
    with db.write() as conn:
        connection = connections.add_connection(conn, "evolution", "main", "secret", {}, now)
        rows = [
            NewReceipt(connection.id, "evolution", now, "application/json", {}, b"{}")
            for _ in range(300)
        ]
        inbox.insert_receipts(conn, rows)
    return db


@pytest.mark.sqlite_only  # PostgreSQL plans by table statistics, not by the query's shape
def test_reading_the_oldest_pending_walks_the_index_without_sorting(backlog: Database) -> None:
    def peek(conn: Connection) -> None:
        rows, _quarantined = inbox.take_pending(Reader(conn, locking=False), Writes(), 10)
        assert [r.id for r in rows] == list(range(1, 11))

    [plan] = _explained(backlog, peek)
    assert "ix_receipts_status_id" in plan
    assert "TEMP B-TREE" not in plan  # a sort reads every pending receipt, bodies included


def test_taking_returns_only_the_ids_asked_for_that_are_still_pending(backlog: Database) -> None:
    def done(reader: Reader, writes: Writes) -> None:
        inbox.mark_done(writes, [(6, [])], datetime.now(UTC))

    backlog.apply(done)

    def take(reader: Reader, writes: Writes) -> list[int]:
        # 6 is done; 8 is pending but was not asked for; 400 does not exist.
        assert inbox.take(reader, []) == []
        return [row.id for row in inbox.take(reader, [5, 6, 7, 9, 400])]

    assert backlog.apply(take) == [5, 7, 9]
