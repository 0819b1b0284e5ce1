"""A connection's last event time only moves forward, whatever order batches come in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tidings.storage import connections
from tidings.storage.db import Database, Reader
from tidings.storage.writes import Writes

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _last_event(db: Database, name: str) -> datetime | None:
    with db.read() as conn:
        found = connections.find_connection(conn, "evolution", name)
    assert found is not None
    return found.last_event_at


def _touch(db: Database, connection_id: int, at: datetime) -> None:
    def plan(reader: Reader, writes: Writes) -> None:
        connections.touch_last_event(writes, {connection_id: at})

    db.apply(plan)


def test_last_event_time_moves_forward_only(db: Database) -> None:
    with db.write() as conn:
        first = connections.add_connection(conn, "evolution", "main", "s", {}, T0)
        other = connections.add_connection(conn, "evolution", "other", "s", {}, T0)
    assert _last_event(db, "main") is None
    _touch(db, first.id, T0 + timedelta(minutes=5))
    _touch(db, first.id, T0 + timedelta(minutes=1))  # late batch
    assert _last_event(db, "main") == T0 + timedelta(minutes=5)
    _touch(db, first.id, T0 + timedelta(minutes=9))
    assert _last_event(db, "main") == T0 + timedelta(minutes=9)
    assert _last_event(db, "other") is None  # only the connection named
    assert other.id != first.id
