"""Maintenance never stops the intake: webhooks that arrive while `recount --fix`, the
retention purge or `migrate-data` run are all acknowledged, and a repair made while the worker
moves the same campaigns loses none of its deltas."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from tests.conftest import Poster, RunningApp
from tests.e2e.payloads import evolution_update
from tidings.config import Settings
from tidings.scheduler.jobs import JobContext, purge_old_receipts
from tidings.storage import connections, inbox
from tidings.storage.copy import copy_store
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt, ReceiptStatus
from tidings.storage.recount import find_drift, last_recount, recount
from tidings.storage.schema import campaign_counters, receipts
from tidings.unit_of_work import Registration, register

MESSAGES = 10_000  # the old recount held the write lock past the 1 s store timeout here
CAMPAIGNS = 20


class _NoWake:
    """The purge wakes no worker; the app's own applies what arrives."""

    def wake(self) -> None:
        return None


@pytest.fixture
def loaded(running_app: RunningApp) -> RunningApp:
    running_app.add_connection("evolution", "main")
    now = datetime.now(UTC)
    with running_app.db.read() as conn:
        source = connections.get_connection(conn, "main")
    for start in range(0, MESSAGES, 2000):
        batch = [
            Registration(f"M{i}", campaign=f"c{i % CAMPAIGNS}") for i in range(start, start + 2000)
        ]
        register(running_app.db, source, batch, now)
    return running_app


@pytest.fixture
def posting(loaded: RunningApp) -> Iterator[Callable[[], Poster]]:
    """Starts a thread that posts a delivery report for one message after another until the
    test's maintenance is over; yields a function that stops it and returns its ledger."""
    poster = Poster(f"{loaded.base_url}/hooks/evolution/main?token=s3cret")
    stop = threading.Event()

    def run() -> None:
        for i in range(MESSAGES):
            if stop.is_set():
                return
            poster.post(evolution_update(f"M{i}", "DELIVERY_ACK").encode())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def finish() -> Poster:
        stop.set()
        thread.join(30)
        return poster

    yield finish
    stop.set()
    thread.join(30)
    poster.close()


def test_recount_and_its_repair_run_beside_the_intake(
    loaded: RunningApp, posting: Callable[[], Poster]
) -> None:
    db = loaded.db
    for _ in range(5):
        with db.write() as conn:  # drift on purpose, while the worker moves the same counters
            conn.execute(update(campaign_counters).values(queued=campaign_counters.c.queued + 3))
        result = recount(db, fix=True, now=datetime.now(UTC))
        assert result.fixed and result.drifted >= CAMPAIGNS
        assert recount(db, fix=False, now=datetime.now(UTC)).drifted == 0
    poster = posting()
    assert len(poster.statuses) > 0
    assert set(poster.statuses) == {202}, sorted(set(poster.statuses))
    loaded.wait_idle(60)
    with db.read() as conn:
        assert find_drift(conn) == []  # no worker delta was lost to a repair
        recorded = last_recount(conn)
    assert recorded is not None and recorded.drifted == 0 and recorded.campaigns == CAMPAIGNS


def test_the_retention_purge_runs_beside_the_intake(
    loaded: RunningApp, settings: Settings, posting: Callable[[], Poster]
) -> None:
    db = loaded.db
    old = datetime.now(UTC) - timedelta(days=settings.retention_days + 1)
    with db.write() as conn:
        ids = inbox.insert_receipts(
            conn,
            [
                NewReceipt(1, "evolution", old, "application/json", {}, b"x" * 600, s)
                for s in [ReceiptStatus.DONE] * 8000
            ],
        )
    _wait_for_a_receipt_after(db, ids[-1])  # else the newest of them stays (`delete_finished`)
    purged = purge_old_receipts(JobContext(db, settings, _NoWake()))
    poster = posting()
    assert purged == len(ids)
    assert len(poster.statuses) > 0
    assert set(poster.statuses) == {202}, sorted(set(poster.statuses))
    loaded.wait_idle(60)
    with db.read() as conn:
        left = conn.execute(select(func.count()).where(receipts.c.id.in_(ids))).scalar_one()
    assert left == 0


def _wait_for_a_receipt_after(db: Database, receipt_id: int, timeout: float = 30.0) -> None:
    """Until the poster's next webhook has its receipt, newer than `receipt_id`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as conn:
            if conn.execute(select(func.max(receipts.c.id))).scalar_one() > receipt_id:
                return
        time.sleep(0.01)
    raise AssertionError(f"no receipt arrived after {receipt_id} in {timeout:g} s")


@pytest.mark.sqlite_only  # migrate-data copies an embedded (SQLite) store into PostgreSQL
def test_migrate_data_reads_beside_the_intake(
    loaded: RunningApp, empty_postgres: str, posting: Callable[[], Poster]
) -> None:
    target = Database(empty_postgres)
    try:
        counts = copy_store(loaded.db, target)
    finally:
        target.dispose()
    poster = posting()
    assert all(count.matches for count in counts), counts
    assert len(poster.statuses) > 0
    assert set(poster.statuses) == {202}, sorted(set(poster.statuses))
