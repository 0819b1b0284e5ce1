"""The Callyzer verification poll on a real store against a real fake Callyzer server, with a
clock that moves only when the client waits (no sleeping in tests)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from tests.conftest import wait_for
from tests.fakes.callyzer_api import FakeCallyzer, FakeClock, flat_call, running_fake
from tidings import connection_admin
from tidings.backfill.callyzer_poll import (
    BackfillUnavailable,
    CredentialsRejected,
    MissingApiCredentials,
    PollResult,
    poll,
)
from tidings.config import Settings
from tidings.domain.errors import NotFound
from tidings.providers.callyzer.api import CallyzerClient, RateLimiter
from tidings.storage import backfill_runs, connections, inbox
from tidings.storage.backfill_runs import AlreadyRunning, Outcome
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database
from tidings.storage.schema import backfill_runs as runs_table
from tidings.storage.schema import calls, employees

KEY = "cz-key-1"
NOW = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)
IST = timedelta(hours=5, minutes=30)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeCallyzer]:
    with running_fake(KEY, clock) as server:
        yield server


@pytest.fixture
def poll_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"callyzer_timeout_seconds": 2.0, "timezone": "UTC"})


@pytest.fixture
def connection(db: Database, fake: FakeCallyzer) -> StoredConnection:
    with db.write() as conn:
        return connections.add_connection(
            conn,
            "callyzer",
            "cz",
            "s3cret",
            {"api_url": fake.url, "api_key": KEY, "timezone": "Asia/Kolkata"},
            NOW,
        )


def add_employee(
    db: Database,
    code: str,
    number: str | None,
    *,
    active: bool = True,
    last_synced_at: datetime | None = None,
    connection_id: int | None = None,
) -> int:
    with db.write() as conn:
        result = conn.execute(
            insert(employees).values(
                code=code,
                name=code,
                number=number,
                active=active,
                last_synced_at=last_synced_at,
                connection_id=connection_id,
                tags=[],
                created_at=NOW,
                updated_at=NOW,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def store_call(db: Database, connection_id: int, call_id: str, modified_at: datetime) -> None:
    """A call as the apply path stores it (what a webhook left)."""
    with db.write() as conn:
        conn.execute(
            insert(calls).values(
                connection_id=connection_id,
                provider_call_id=call_id,
                type="outgoing",
                raw_type="Outgoing",
                duration_seconds=10,
                modified_at=modified_at,
                created_at=NOW,
                updated_at=NOW,
            )
        )


def ist(moment: datetime) -> str:
    """How Callyzer writes a time: local (India) with the zone's abbreviation."""
    return (moment + IST).strftime("%Y-%m-%d %H:%M:%S IST")


def run(
    db: Database,
    settings: Settings,
    clock: FakeClock,
    name: str = "cz",
    **kwargs: Any,
) -> PollResult:
    def client(connection: StoredConnection, s: Settings) -> CallyzerClient:
        return CallyzerClient(
            connection.options["api_url"],
            connection.options["api_key"],
            timeout=s.callyzer_timeout_seconds,
            page_size=s.callyzer_page_size,
            limiter=RateLimiter(2.0, clock),
            rng=lambda: 0.0,
        )

    return poll(db, settings, name, now=lambda: NOW, client_factory=client, **kwargs)


def poll_receipts(db: Database) -> list[list[dict[str, Any]]]:
    """The bodies of every receipt, oldest first, those landed and not yet applied included."""
    with db.read() as conn:
        listed = inbox.list_receipts(conn, None, None, None, 100_000)
        rows = [inbox.get_receipt(conn, r.id) for r in reversed(listed)]
    assert {(r.source, r.provider) for r in rows if r is not None} <= {("poll", "callyzer")}
    return [json.loads(bytes(r.body)) for r in rows if r is not None]


def last_synced(db: Database, employee_id: int) -> datetime | None:
    with db.read() as conn:
        value: datetime | None = conn.execute(
            select(employees.c.last_synced_at).where(employees.c.id == employee_id)
        ).scalar_one()
        return value


def stored_run(db: Database, run_id: int) -> Any:
    with db.read() as conn:
        return conn.execute(select(runs_table).where(runs_table.c.id == run_id)).one()


def synced(hours_ago: float) -> int:
    return int((NOW - timedelta(hours=hours_ago)).timestamp())


def test_first_poll_asks_for_active_employees_over_the_lookback_and_advances_their_sync(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    asha = add_employee(db, "E1", "+919876543210", connection_id=connection.id)
    gone = add_employee(db, "E2", "+919800000000", active=False, connection_id=connection.id)
    fake.add_call(flat_call("c1", modified_at=ist(NOW - timedelta(hours=2))), synced(2))

    result = run(db, poll_settings, clock)

    assert result.outcome is Outcome.OK
    [request] = fake.history_requests
    assert request.body["emp_numbers"] == ["91-9876543210"]
    assert request.body["synced_from"] == int((NOW - timedelta(days=7)).timestamp())
    assert request.body["synced_to"] == int(NOW.timestamp())
    assert (result.counts.fetched, result.counts.inserted, result.counts.employees) == (1, 1, 1)
    assert [[c["id"] for c in body] for body in poll_receipts(db)] == [["c1"]]
    assert last_synced(db, asha) == NOW
    assert last_synced(db, gone) is None
    row = stored_run(db, result.run_id)
    assert (row.outcome, row.trigger, row.fetched, row.inserted, row.skipped) == (
        "ok", "manual", 1, 1, 0,
    )  # fmt: skip
    assert (row.window_from, row.window_to) == (NOW - timedelta(days=7), NOW)
    assert row.finished_at == NOW and row.lease_until is None


def test_the_window_starts_a_day_before_the_oldest_last_sync(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    add_employee(db, "E1", "+919876543210", last_synced_at=NOW - timedelta(hours=1))
    add_employee(db, "E2", "+919812345678", last_synced_at=NOW - timedelta(hours=3))
    run(db, poll_settings, clock)
    [request] = fake.history_requests
    assert request.body["synced_from"] == int((NOW - timedelta(days=1, hours=3)).timestamp())
    assert request.body["emp_numbers"] == ["91-9812345678", "91-9876543210"]


def test_since_sets_the_start_by_hand(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    add_employee(db, "E1", "+919876543210", last_synced_at=NOW - timedelta(hours=1))
    since = NOW - timedelta(days=30)
    result = run(db, poll_settings, clock, since=since)
    assert fake.history_requests[0].body["synced_from"] == int(since.timestamp())
    assert result.window == (since, NOW)


def test_every_page_is_fetched_two_seconds_apart_and_queued_as_a_poll_receipt(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    add_employee(db, "E1", "+919876543210")
    for i in range(250):
        fake.add_call(flat_call(f"c{i:03d}"), synced(5) + i)

    result = run(db, poll_settings, clock)

    assert (result.counts.pages, result.counts.fetched, result.counts.inserted) == (3, 250, 250)
    assert [len(body) for body in poll_receipts(db)] == [100, 100, 50]
    times = [r.at for r in fake.history_requests]
    assert [r.body["page_no"] for r in fake.history_requests] == [1, 2, 3]
    assert all(b - a >= 2.0 for a, b in itertools.pairwise(times))
    assert {r.status for r in fake.history_requests} == {200}


def test_calls_already_stored_are_skipped_and_later_versions_updated(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    add_employee(db, "E1", "+919876543210")
    at = NOW - timedelta(hours=3)
    store_call(db, connection.id, "same", at)
    store_call(db, connection.id, "newer", at)
    store_call(db, connection.id, "older", at)
    fake.add_call(flat_call("same", modified_at=ist(at)), synced(3))
    fake.add_call(flat_call("newer", modified_at=ist(at + timedelta(minutes=5))), synced(3))
    fake.add_call(flat_call("older", modified_at=ist(at - timedelta(minutes=5))), synced(3))
    fake.add_call(flat_call("lost", modified_at=ist(at)), synced(3))

    result = run(db, poll_settings, clock)

    counts = result.counts
    assert (counts.fetched, counts.inserted, counts.updated, counts.skipped) == (4, 1, 1, 2)
    assert [sorted(c["id"] for c in body) for body in poll_receipts(db)] == [["lost", "newer"]]


def test_a_page_of_stored_calls_queues_nothing(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    add_employee(db, "E1", "+919876543210")
    store_call(db, connection.id, "c1", NOW - timedelta(hours=2))
    fake.add_call(flat_call("c1", modified_at=ist(NOW - timedelta(hours=2))), synced(2))
    result = run(db, poll_settings, clock)
    assert (result.outcome, result.counts.skipped) == (Outcome.OK, 1)
    assert poll_receipts(db) == []


def test_without_employees_the_whole_account_is_asked(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    fake.add_call(flat_call("c1"), synced(1))
    result = run(db, poll_settings, clock)
    assert "emp_numbers" not in fake.history_requests[0].body
    assert (result.counts.employees, result.counts.inserted) == (0, 1)


def test_with_no_active_employee_nothing_is_asked(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    add_employee(db, "E1", "+919876543210", active=False)
    result = run(db, poll_settings, clock)
    assert result.outcome is Outcome.OK
    assert fake.history_requests == []


def test_a_refused_key_fails_the_run_marks_the_connection_and_stops_polling_until_it_changes(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    employee = add_employee(db, "E1", "+919876543210", last_synced_at=NOW - timedelta(hours=1))
    fake.add_call(flat_call("c1"), synced(1))
    connection_admin.change(db, "cz", None, {"api_key": "revoked"})

    result = run(db, poll_settings, clock)

    assert result.outcome is Outcome.CREDENTIALS_REJECTED
    assert "rejected the API key" in (result.error or "")
    assert stored_run(db, result.run_id).outcome == "credentials_rejected"
    assert poll_receipts(db) == []  # nothing changed
    assert last_synced(db, employee) == NOW - timedelta(hours=1)
    with db.read() as conn:
        marked = connections.get_connection(conn, "cz")
    assert marked.credentials_rejected and marked.credentials_rejected_at == NOW
    assert "revoked" not in (marked.credentials_rejected_error or "")

    asked = len(fake.requests)
    with pytest.raises(CredentialsRejected, match="api_key"):
        run(db, poll_settings, clock)
    connection_admin.change(db, "cz", None, {"timezone": "Asia/Kolkata"})  # not the key
    with pytest.raises(CredentialsRejected):
        run(db, poll_settings, clock)
    assert len(fake.requests) == asked  # refused here, Callyzer was not asked again

    connection_admin.change(db, "cz", None, {"api_key": KEY})
    with db.read() as conn:
        cleared = connections.get_connection(conn, "cz")
    assert not cleared.credentials_rejected and cleared.credentials_rejected_at is None
    assert run(db, poll_settings, clock).outcome is Outcome.OK
    assert last_synced(db, employee) == NOW


def test_a_time_out_twice_then_success_is_three_requests_of_one_ok_run(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    add_employee(db, "E1", "+919876543210")
    fake.add_call(flat_call("c1"), synced(1))
    fake.fail_next("hang", "hang")
    settings = poll_settings.model_copy(update={"callyzer_timeout_seconds": 0.3})

    result = run(db, settings, clock)

    assert result.outcome is Outcome.OK
    row = stored_run(db, result.run_id)
    assert (row.requests, row.retries, row.inserted) == (3, 2, 1)


def test_still_failing_after_three_tries_fails_the_run_and_keeps_the_last_sync(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    employee = add_employee(db, "E1", "+919876543210", last_synced_at=NOW - timedelta(hours=1))
    fake.add_call(flat_call("c1"), synced(1))
    fake.fail_next("db400", "500", "db400")

    result = run(db, poll_settings, clock)

    assert result.outcome is Outcome.FAILED
    row = stored_run(db, result.run_id)
    assert row.outcome == "failed" and "tried 3 times" in row.error
    assert row.requests == 3
    assert last_synced(db, employee) == NOW - timedelta(hours=1)
    with db.read() as conn:
        assert not connections.get_connection(conn, "cz").credentials_rejected
    assert run(db, poll_settings, clock).outcome is Outcome.OK  # the next run starts over


def test_a_failure_on_a_later_page_keeps_the_pages_stored_but_not_the_last_sync(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    employee = add_employee(db, "E1", "+919876543210")
    settings = poll_settings.model_copy(update={"callyzer_page_size": 2})
    for i in range(4):
        fake.add_call(flat_call(f"c{i}"), synced(1) + i)
    real_answer = fake.answer

    def second_page_fails(path: str, headers: Any, raw: bytes) -> Any:
        if json.loads(raw).get("page_no") == 2:
            fake.fail_next("bad400")
        return real_answer(path, headers, raw)

    fake.answer = second_page_fails  # type: ignore[method-assign]
    result = run(db, settings, clock)
    assert result.outcome is Outcome.FAILED
    assert (result.counts.pages, result.counts.inserted) == (1, 2)
    assert [len(body) for body in poll_receipts(db)] == [2]
    assert last_synced(db, employee) is None


def test_429_is_honoured_in_a_run(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    add_employee(db, "E1", "+919876543210")
    fake.add_call(flat_call("c1"), synced(1))
    fake.retry_after = "9"
    fake.fail_next("429")
    result = run(db, poll_settings, clock)
    assert result.outcome is Outcome.OK
    first, second = fake.history_requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 9.0
    assert (result.counts.requests, result.counts.retries) == (2, 1)


def test_two_runs_of_one_connection_at_once_one_runs(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    add_employee(db, "E1", "+919876543210")
    fake.add_call(flat_call("c1"), synced(1))
    fake.hang_seconds = 30.0
    fake.fail_next("hang")  # the first run waits on Callyzer, holding the lease
    settings = poll_settings.model_copy(update={"callyzer_timeout_seconds": 10.0})
    results: list[PollResult] = []
    first = threading.Thread(target=lambda: results.append(run(db, settings, clock)))
    first.start()
    try:
        wait_for(lambda: len(fake.arrivals) == 1)
        with pytest.raises(AlreadyRunning, match="already running"):
            run(db, settings, clock)
    finally:
        fake.stop_hanging()
        first.join(10)
    assert [r.outcome for r in results] == [Outcome.OK]
    with db.read() as conn:
        assert len(backfill_runs.list_runs(conn, connection.id, None, 10)) == 1


def test_two_processes_racing_for_the_lease_get_one_run(
    db: Database, settings: Settings, connection: StoredConnection
) -> None:
    """Each thread has its own Database, as two processes would."""
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def take() -> None:
        own = Database(settings.database_url, 5.0)
        try:
            barrier.wait()
            outcomes.append(
                backfill_runs.start(own, connection.id, "schedule", NOW, timedelta(minutes=15))
            )
        except AlreadyRunning as error:
            outcomes.append(error)
        finally:
            own.dispose()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sum(isinstance(o, int) for o in outcomes) == 1
    assert sum(isinstance(o, AlreadyRunning) for o in outcomes) == 3


def test_a_run_whose_process_died_is_taken_over_once_its_lease_passed(
    db: Database, poll_settings: Settings, clock: FakeClock, fake: FakeCallyzer,
    connection: StoredConnection,
) -> None:  # fmt: skip
    dead = backfill_runs.start(
        db, connection.id, "schedule", NOW - timedelta(hours=1), timedelta(minutes=15)
    )
    result = run(db, poll_settings, clock)
    assert result.outcome is Outcome.OK
    abandoned = stored_run(db, dead)
    assert abandoned.outcome == "failed" and "abandoned" in abandoned.error


def test_a_live_lease_is_not_taken_over(
    db: Database, poll_settings: Settings, clock: FakeClock, connection: StoredConnection
) -> None:
    backfill_runs.start(db, connection.id, "schedule", NOW, timedelta(minutes=15))
    with pytest.raises(AlreadyRunning):
        run(db, poll_settings, clock)


def test_a_stalled_run_taken_over_stops_writing(db: Database, connection: StoredConnection) -> None:
    stalled = backfill_runs.start(db, connection.id, "schedule", NOW, timedelta(minutes=15))
    with db.write() as conn:
        conn.execute(
            update(runs_table)
            .where(runs_table.c.id == stalled)
            .values(lease_until=NOW - timedelta(seconds=1))
        )
    backfill_runs.start(db, connection.id, "manual", NOW, timedelta(minutes=15))
    with pytest.raises(backfill_runs.LeaseLost):
        backfill_runs.progress(db, stalled, NOW, timedelta(minutes=15), backfill_runs.RunCounts())


def test_what_cannot_be_polled_says_why(
    db: Database, poll_settings: Settings, clock: FakeClock
) -> None:
    with db.write() as conn:
        connections.add_connection(conn, "evolution", "evo", "s", {}, NOW)
        connections.add_connection(conn, "callyzer", "hooks-only", "s", {"api_key": "k"}, NOW)
    with pytest.raises(NotFound, match="no connection named 'nope'"):
        run(db, poll_settings, clock, name="nope")
    with pytest.raises(BackfillUnavailable, match="backfill for evolution is not available yet"):
        run(db, poll_settings, clock, name="evo")
    with pytest.raises(MissingApiCredentials, match="has no api_url"):
        run(db, poll_settings, clock, name="hooks-only")
    with db.read() as conn:
        assert conn.execute(select(runs_table)).all() == []
