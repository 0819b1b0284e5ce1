"""SQLite's fast path (planned on a snapshot, values converted before the write lock) and its
plain path (planned again under the lock, because something wrote meanwhile) leave identical
stores, for any batches of events and registrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tidings.domain.errors import Conflict
from tidings.domain.events import EventKind, Incoming, NormalizedEvent
from tidings.storage import connections
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database, Reader
from tidings.storage.migrate import upgrade
from tidings.storage.schema import campaign_counters, campaigns, events, messages
from tidings.storage.writes import Writes
from tidings.unit_of_work import Registration, apply_events, register

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
KINDS = [EventKind.SENT, EventKind.DELIVERED, EventKind.READ, EventKind.FAILED, EventKind.UNKNOWN]

event = st.tuples(
    st.sampled_from(["m1", "m2", "m3", "m4"]),
    st.sampled_from(KINDS),
    st.integers(0, 5),
    st.sampled_from([None, "spring", "autumn"]),
)
registration = st.tuples(st.sampled_from(["m1", "m2", "m5"]), st.sampled_from([None, "spring"]))
step = st.one_of(
    st.lists(event, min_size=1, max_size=6).map(lambda batch: ("events", batch)),
    registration.map(lambda reg: ("register", reg)),
)


@contextmanager
def _store(path: Path, plan_ahead: bool) -> Iterator[tuple[Database, StoredConnection]]:
    db = Database(f"sqlite:///{path}", plan_ahead=plan_ahead)
    upgrade(db)
    with db.write() as conn:
        connection = connections.add_connection(
            conn, "callbell", "cb", "s", {"campaign_key": "campaign"}, T0
        )
    try:
        yield db, connection
    finally:
        db.dispose()


def _run(db: Database, connection: StoredConnection, steps: list[Any]) -> None:
    for number, (what, payload) in enumerate(steps):
        now = T0 + timedelta(minutes=number)
        if what == "register":
            pmid, campaign = payload
            with suppress(Conflict):  # the same on both paths: nothing written
                register(db, connection, [Registration(pmid, campaign=campaign)], now)
            continue
        incoming = [
            Incoming(
                connection,
                NormalizedEvent(
                    pmid,
                    kind,
                    raw_status=kind.value,
                    occurred_at=T0 + timedelta(seconds=offset),
                    metadata={"campaign": campaign} if campaign else {},
                ),
                None,
                now,
            )
            for pmid, kind, offset, campaign in payload
        ]
        apply_events(db, incoming, now)


def _dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    with db.read() as conn:
        return {
            table.name: [
                tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key))
            ]
            for table in (campaigns, campaign_counters, messages, events)
        }


@pytest.mark.sqlite_only  # the fast path is SQLite's
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_fast_and_plain_paths_leave_identical_stores(tmp_path: Path, steps: list[Any]) -> None:
    run = len(list(tmp_path.iterdir()))
    with _store(tmp_path / f"fast-{run}.db", plan_ahead=True) as (fast, connection):
        _run(fast, connection, steps)
        expected = _dump(fast)
    with _store(tmp_path / f"plain-{run}.db", plan_ahead=False) as (plain, connection):
        _run(plain, connection, steps)
        got = _dump(plain)
    assert got == expected


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("plan_ahead", "plans"), [(True, 1), (False, 2)])
def test_the_plain_path_plans_again_under_the_lock(
    tmp_path: Path, plan_ahead: bool, plans: int
) -> None:
    """What makes the comparison above one of two paths: without planning ahead, the plan made
    on the snapshot is made again under the write lock, as after another writer's commit."""
    with _store(tmp_path / "count.db", plan_ahead) as (db, connection):
        calls: list[int] = []

        def plan(reader: Reader, writes: Writes) -> None:
            calls.append(1)
            connections.touch_last_event(writes, {connection.id: T0})

        db.apply(plan)
    assert len(calls) == plans
