"""Connection health read from messages made by the real apply path (registrations and
provider events through the unit of work), on SQLite and PostgreSQL; and the reads walk
their indexes, so they cost the same in a large store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection

from tests.storage.test_plans import messages_access, plans
from tidings.domain.events import EventKind, Incoming, NormalizedEvent
from tidings.storage import connections, health
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database
from tidings.storage.messages import blank_row
from tidings.storage.schema import messages
from tidings.unit_of_work import Registration, apply_events, register

NOW = datetime(2026, 6, 30, 15, 0, tzinfo=UTC)
ZONE = "America/Sao_Paulo"  # UTC-3: today began at 03:00 UTC
TODAY = datetime(2026, 6, 30, 3, 0, tzinfo=UTC)


def _connection(db: Database, name: str = "evo", provider: str = "evolution") -> StoredConnection:
    with db.write() as conn:
        return connections.add_connection(conn, provider, name, "s", {}, NOW - timedelta(days=30))


def _send(db: Database, c: StoredConnection, ids: Sequence[str], at: datetime) -> None:
    """Register messages as sent at `at` (the apply path creates them then)."""
    register(db, c, [Registration(pmid, sent_at=at) for pmid in ids], at)


def _report(
    db: Database,
    c: StoredConnection,
    kind: EventKind,
    ids: Sequence[str],
    at: datetime,
    after_send: bool = True,
) -> None:
    """The provider reports `kind` for each message, as happening at `at`."""
    events = [
        NormalizedEvent(pmid, kind, raw_status=kind.value, occurred_at=at, after_send=after_send)
        for pmid in ids
    ]
    items = [Incoming(c, event, None, at) for event in events]
    apply_events(db, items, at)


def _health(db: Database, c: StoredConnection, threshold: float = 0.8) -> health.ConnectionHealth:
    with db.read() as conn:
        return health.connection_health(conn, c.id, NOW, ZONE, threshold)


def test_today_counts_what_happened_since_midnight_in_the_zone(db: Database) -> None:
    evo, other = _connection(db), _connection(db, "other")
    yesterday = NOW - timedelta(days=1)
    _send(db, evo, ["late", "early", "lost", "refused", "old-fail"], yesterday)
    # Delivered at 23:00 yesterday in São Paulo (02:00 UTC today), read this morning.
    _report(db, evo, EventKind.DELIVERED, ["late"], TODAY - timedelta(hours=1))
    _report(db, evo, EventKind.READ, ["late"], TODAY + timedelta(hours=1))
    _report(db, evo, EventKind.DELIVERED, ["early"], TODAY + timedelta(minutes=30))
    _report(db, evo, EventKind.FAILED, ["lost"], TODAY + timedelta(hours=7))
    # Refused by the provider, then delivered after all: a delivery, not a failure.
    _report(db, evo, EventKind.FAILED, ["refused"], TODAY + timedelta(hours=2), after_send=False)
    _report(db, evo, EventKind.DELIVERED, ["refused"], TODAY + timedelta(hours=3))
    _report(db, evo, EventKind.FAILED, ["old-fail"], TODAY - timedelta(minutes=1))
    # Another connection's delivery is not this one's.
    _send(db, other, ["x"], yesterday)
    _report(db, other, EventKind.DELIVERED, ["x"], TODAY + timedelta(hours=1))
    found = _health(db, evo)
    assert (found.delivered_today, found.read_today, found.failed_today) == (2, 1, 1)
    assert found.today_starts_at == TODAY
    with db.read() as conn:
        in_utc = health.connection_health(conn, evo.id, NOW, "UTC", 0.8)
    # In UTC today began three hours earlier: the 02:00 delivery and the failure at 02:59 too.
    assert (in_utc.delivered_today, in_utc.read_today, in_utc.failed_today) == (3, 1, 2)


def test_a_message_first_seen_more_than_a_week_before_today_is_not_counted(
    db: Database,
) -> None:
    evo = _connection(db)
    _send(db, evo, ["ancient"], TODAY - health.TODAY_LOOKBACK - timedelta(minutes=1))
    _send(db, evo, ["week-old"], TODAY - health.TODAY_LOOKBACK + timedelta(minutes=1))
    _report(db, evo, EventKind.READ, ["ancient", "week-old"], TODAY + timedelta(hours=1))
    found = _health(db, evo)
    assert (found.delivered_today, found.read_today) == (1, 1)
    assert found.outcomes == 2  # both still count as outcomes


def test_score_and_consecutive_errors_follow_the_newest_outcomes(db: Database) -> None:
    evo = _connection(db)
    at = NOW - timedelta(hours=2)
    _send(db, evo, [f"ok{i}" for i in range(20)], at)
    _report(db, evo, EventKind.READ, [f"ok{i}" for i in range(10)], at)
    _report(db, evo, EventKind.DELIVERED, [f"ok{i}" for i in range(10, 20)], at)
    assert (_health(db, evo).score, _health(db, evo).outcomes) == (1.0, 20)
    # Five newer messages fail: one refused by the provider, four after it accepted them;
    # one newer still has no outcome yet and changes nothing.
    _send(db, evo, [f"bad{i}" for i in range(5)] + ["pending"], at + timedelta(minutes=1))
    _report(db, evo, EventKind.FAILED, ["bad0"], at, after_send=False)
    _report(db, evo, EventKind.FAILED, [f"bad{i}" for i in range(1, 5)], at)
    found = _health(db, evo)
    assert (found.consecutive_errors, found.outcomes, found.score) == (5, 25, 0.8)
    assert found.healthy and not _health(db, evo, threshold=0.81).healthy
    with db.read() as conn:  # what campaign dispatch reads: the same, without today
        assert health.dispatch_health(conn, evo.id, 0.8) == (True, 5)
        assert health.dispatch_health(conn, evo.id, 0.81) == (False, 5)
    # A late delivery of the newest failed message resets the run.
    _report(db, evo, EventKind.DELIVERED, ["bad4"], at + timedelta(minutes=5))
    assert _health(db, evo).consecutive_errors == 0
    assert _health(db, evo).score == 21 / 25


def test_fewer_than_twenty_outcomes_score_one_whatever_they_are(db: Database) -> None:
    evo = _connection(db)
    _send(db, evo, [f"m{i}" for i in range(19)], NOW - timedelta(hours=1))
    _report(db, evo, EventKind.FAILED, [f"m{i}" for i in range(19)], NOW - timedelta(hours=1))
    found = _health(db, evo)
    assert (found.score, found.healthy, found.consecutive_errors, found.outcomes) == (
        1.0,
        True,
        19,
        19,
    )


def test_a_run_of_errors_longer_than_the_window_is_counted_whole(db: Database) -> None:
    evo = _connection(db)
    at = NOW - timedelta(hours=3)
    _send(db, evo, [f"ok{i}" for i in range(5)], at)
    _report(db, evo, EventKind.DELIVERED, [f"ok{i}" for i in range(5)], at)
    failing = [f"f{i}" for i in range(health.WINDOW + 30)]
    _send(db, evo, failing, at + timedelta(minutes=1))
    _report(db, evo, EventKind.FAILED, failing, at + timedelta(minutes=2))
    found = _health(db, evo)
    assert (found.score, found.outcomes, found.healthy) == (0.0, health.WINDOW, False)
    assert found.consecutive_errors == health.WINDOW + 30
    with db.read() as conn:
        assert health.dispatch_health(conn, evo.id, 0.8) == (False, health.WINDOW + 30)


def test_the_outcomes_are_looked_for_among_the_newest_messages_only(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection whose messages never get a report costs a bounded walk, not all of them."""
    monkeypatch.setattr(health, "SCAN_LIMIT", 40)
    evo = _connection(db)
    at = NOW - timedelta(hours=3)
    _send(db, evo, [f"f{i}" for i in range(25)], at)
    _report(db, evo, EventKind.FAILED, [f"f{i}" for i in range(25)], at)
    _send(db, evo, [f"quiet{i}" for i in range(30)], at + timedelta(minutes=1))
    partly = _health(db, evo)  # the 10 newest failures are among the 40 newest messages
    assert (partly.outcomes, partly.consecutive_errors, partly.score) == (10, 10, 1.0)
    _send(db, evo, [f"more{i}" for i in range(10)], at + timedelta(minutes=2))
    assert _health(db, evo).outcomes == 0


def test_a_listing_gives_each_connection_its_own_health(db: Database) -> None:
    evo, quiet = _connection(db), _connection(db, "quiet")
    _send(db, evo, ["a"], NOW - timedelta(hours=1))
    _report(db, evo, EventKind.FAILED, ["a"], NOW - timedelta(minutes=30))
    with db.read() as conn:
        found = health.connections_health(conn, [evo.id, quiet.id], NOW, ZONE, 0.8)
        assert health.connections_health(conn, [], NOW, ZONE, 0.8) == {}
    assert (found[evo.id].failed_today, found[evo.id].consecutive_errors) == (1, 1)
    assert found[quiet.id] == health.assess([], health.DayCounts(), TODAY, 0.8)


COUNT = 6000


@pytest.fixture
def big(db: Database) -> Database:
    """6,000 messages over two connections, most of them delivered, the newest a week ago
    and before; statistics gathered where the store keeps them."""
    with db.write() as conn:
        main = connections.add_connection(conn, "evolution", "main", "s", {}, NOW)
        other = connections.add_connection(conn, "evolution", "other", "s", {}, NOW)
        rows = []
        for i in range(COUNT):
            created = NOW - timedelta(days=30) + timedelta(minutes=i)
            row = blank_row(main.id if i % 10 else other.id, f"P{i}", created)
            row.update(state="sent" if i % 7 == 0 else "delivered")
            rows.append(row)
        conn.execute(messages.insert(), rows)
        conn.exec_driver_sql("ANALYZE")
    return db


def test_every_health_read_walks_an_index(big: Database) -> None:
    def read(conn: Connection) -> None:
        found = health.connection_health(conn, 2, NOW - timedelta(days=27), ZONE, 0.8)
        assert found.outcomes == health.WINDOW

    found = plans(big, read)
    assert len(found) == 3  # the first id since the lookback, today's counts, the outcomes
    for plan in found:
        assert "SCAN messages" not in plan and "Seq Scan on messages" not in plan, plan
    if big.is_sqlite:
        first, today, outcomes = (messages_access(p, True) for p in found)
        assert "ix_messages_created_at" in first and "TEMP B-TREE" not in first
        assert "ix_messages_connection_id (connection_id=? AND id>?)" in today
        assert "ix_messages_connection_id (connection_id=? AND id>?)" in outcomes
