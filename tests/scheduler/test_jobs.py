"""The embedded scheduler's jobs on a real store: retries come due, old raw receipts go."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tidings.config import Settings
from tidings.scheduler import jobs
from tidings.scheduler.jobs import JobContext, purge_old_receipts, retry_due_receipts
from tidings.storage import connections, inbox
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt, ReceiptStatus
from tidings.storage.migrate import upgrade
from tidings.storage.schema import receipts


def _receipts(db: Database, *statuses: ReceiptStatus, age: timedelta = timedelta(0)) -> list[int]:
    now = datetime.now(UTC)
    with db.write() as conn:
        if not connections.list_connections(conn):
            connections.add_connection(conn, "evolution", "main", "s", {}, now)
        return inbox.insert_receipts(
            conn,
            [
                NewReceipt(1, "evolution", now - age, "application/json", {}, b"{}", s)
                for s in statuses
            ],
        )


class _Worker:
    """Counts its wake-ups."""

    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def _statuses(db: Database) -> dict[int, str]:
    """Every receipt's status, landed ones not yet applied included."""
    with db.read() as conn:
        return {r.id: r.status for r in inbox.list_receipts(conn, None, None, None, 100_000)}


def test_retry_job_releases_only_due_failures_and_wakes_the_worker(
    db: Database, settings: Settings
) -> None:
    due, later = _receipts(db, ReceiptStatus.FAILED, ReceiptStatus.FAILED)
    now = datetime.now(UTC)
    with db.write() as conn:
        conn.execute(
            update(receipts)
            .where(receipts.c.id == due)
            .values(next_attempt_at=now - timedelta(seconds=1))
        )
        conn.execute(
            update(receipts)
            .where(receipts.c.id == later)
            .values(next_attempt_at=now + timedelta(hours=1))
        )
    worker = _Worker()
    released = retry_due_receipts(JobContext(db, settings, worker))
    assert released == 1 and worker.woken == 1
    assert _statuses(db) == {due: "pending", later: "failed"}


def test_purge_removes_finished_receipts_past_retention_in_batches(
    db: Database, settings: Settings
) -> None:
    old = timedelta(days=settings.retention_days + 1)
    kept_pending = _receipts(db, ReceiptStatus.PENDING, age=old)
    kept_failed = _receipts(db, ReceiptStatus.FAILED, age=old)
    purged = _receipts(
        db,
        *([ReceiptStatus.DONE] * 1500 + [ReceiptStatus.DEAD, ReceiptStatus.QUARANTINED]),
        age=old,
    )
    kept_recent = _receipts(db, ReceiptStatus.DONE)
    worker = _Worker()
    assert purge_old_receipts(JobContext(db, settings, worker)) == len(purged)
    assert worker.woken == 0  # nothing became pending
    assert set(_statuses(db)) == {*kept_pending, *kept_failed, *kept_recent}


def test_the_newest_receipt_outlives_the_purge_so_no_id_is_given_twice(
    db: Database, settings: Settings
) -> None:
    """SQLite numbers a new row after the largest id left: had the purge emptied the table,
    the next receipt would be number 1 again, and events, calls and dead-letter announcements
    that named the old number 1 would name the new one."""
    old = timedelta(days=settings.retention_days + 1)
    given = _receipts(db, ReceiptStatus.DONE, ReceiptStatus.DEAD, ReceiptStatus.DONE, age=old)
    purged = purge_old_receipts(JobContext(db, settings, _Worker()))
    now = datetime.now(UTC)
    [after] = inbox.append(db, [NewReceipt(1, "evolution", now, "a/b", {}, b"{}")])
    db.apply(lambda reader, writes: inbox.move_landed(reader, writes, 10))  # as the worker does
    assert after > max(given)
    assert purged == 2
    assert set(_statuses(db)) == {given[-1], after}
    assert purge_old_receipts(JobContext(db, settings, _Worker())) == 1  # no longer the newest
    assert set(_statuses(db)) == {after}


def test_space_a_purge_frees_is_returned_and_used_again(db: Database, settings: Settings) -> None:
    """SQLite hands the freed pages back to the disk (the file shrinks); on both stores the
    next receipts reuse the space instead of growing the store by as much again."""
    old = timedelta(days=settings.retention_days + 1)
    _receipts(db, ReceiptStatus.DONE, age=old)

    at, done = datetime.now(UTC) - old, ReceiptStatus.DONE

    def fill() -> None:
        with db.write() as conn:
            inbox.insert_receipts(
                conn,
                [
                    NewReceipt(1, "evolution", at, "a/b", {}, os.urandom(4000), done)
                    for _ in range(3000)  # random bodies: PostgreSQL would compress others
                ],
            )

    assert db.reclaims_space()
    empty, _ = db.disk_usage()
    fill()
    full, _ = db.disk_usage()
    assert full - empty > 3000 * 4000
    assert purge_old_receipts(JobContext(db, settings, _Worker())) == 3000  # the newest stays
    purged, wal = db.disk_usage()
    if db.is_sqlite:
        assert purged - empty < 1_000_000, (empty, full, purged)
        assert wal < 64 * 1024 * 1024
    fill()
    again, _ = db.disk_usage()
    assert again - full < (full - empty) // 4, (empty, full, purged, again)


@pytest.mark.sqlite_only  # PostgreSQL syncs every commit
def test_dispatch_claims_through_a_store_that_syncs_every_commit(settings: Settings) -> None:
    """The embedded worker's store skips per-commit syncs (its work can be redone); a
    contact's claim cannot: undone by a power cut after its send, it would be sent again."""
    worker_db = Database(settings.database_url, durable_commits=False)
    upgrade(worker_db)
    try:
        dispatching = jobs._durable(JobContext(worker_db, settings, _Worker()))
        assert dispatching is not worker_db and dispatching.durable_commits
        with dispatching.write() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        with worker_db.write() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        worker_db.dispose()
