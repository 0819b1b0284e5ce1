"""The group-commit writer against a real SQLite file that another connection has locked."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import make_url

from tidings.domain.errors import StorageUnavailable
from tidings.intake.writer import GroupCommit, ReceiptWriter, _commit_receipts
from tidings.storage import connections, inbox, landing
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt


def _receipt() -> NewReceipt:
    return NewReceipt(1, "evolution", datetime.now(UTC), "application/json", {}, b"{}")


@pytest.mark.sqlite_only  # holds the SQLite file's lock to keep the writer waiting
def test_a_full_queue_answers_at_once_and_nothing_waits_forever(db: Database, db_url: str) -> None:
    with db.write() as conn:
        connections.add_connection(conn, "evolution", "main", "s", {}, datetime.now(UTC))
    fast = Database(db_url, timeout=0.5)
    writer: GroupCommit[NewReceipt] = GroupCommit(fast, _commit_receipts, "receipts", max_waiting=2)
    # The file receipts are committed to is the store's landing file (`storage.landing`):
    # made, then locked by another connection past the store timeout.
    made = landing.ready(fast)
    assert made is not None
    blocker = sqlite3.connect(make_url(made.url).database or "", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")

    async def scenario() -> list[tuple[float, str]]:
        await writer.start()
        outcomes: list[tuple[float, str]] = []

        async def one() -> None:
            started = time.monotonic()
            try:
                await writer.submit(_receipt())
                outcomes.append((time.monotonic() - started, "stored"))
            except StorageUnavailable as error:
                outcomes.append((time.monotonic() - started, str(error)))

        first = asyncio.create_task(one())
        await asyncio.sleep(0.05)  # the writer has taken it and waits for the lock
        await asyncio.gather(first, one(), one(), one())
        await writer.stop()
        return outcomes

    try:
        outcomes = asyncio.run(scenario())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        fast.dispose()
    refused_at_once = [t for t, text in outcomes if "too many" in text]
    assert len(refused_at_once) == 1 and refused_at_once[0] < 0.2
    assert all(text != "stored" for _, text in outcomes)
    assert all(t < 0.9 for t, _ in outcomes), "no request waits past the store timeout and a margin"
    with db.read() as conn:
        assert inbox.count_by_status(conn)["pending"] == 0


def test_receipts_commit_together_and_come_back_in_order(db: Database) -> None:
    with db.write() as conn:
        connections.add_connection(conn, "evolution", "main", "s", {}, datetime.now(UTC))
    writer = ReceiptWriter(db)

    async def scenario() -> list[int]:
        await writer.start()
        ids = await asyncio.gather(*(writer.submit(_receipt()) for _ in range(50)))
        await writer.stop()
        return list(ids)

    ids = asyncio.run(scenario())
    assert len(set(ids)) == 50 and ids == sorted(ids)


def test_requests_that_arrive_a_few_loop_turns_apart_share_one_commit(db: Database) -> None:
    """Group commit waits a few turns of the loop, so requests still being read (each takes
    some turns: body, lookups) join the transaction instead of paying an fsync each."""
    with db.write() as conn:
        connections.add_connection(conn, "evolution", "main", "s", {}, datetime.now(UTC))
    commits: list[int] = []

    def counting(store: Database, rows: Sequence[NewReceipt]) -> list[int]:
        commits.append(len(rows))
        return _commit_receipts(store, rows)

    writer: GroupCommit[NewReceipt] = GroupCommit(db, counting, "receipts")

    async def arriving(turns: int) -> int:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await writer.submit(_receipt())

    async def scenario() -> list[int]:
        await writer.start()
        ids = await asyncio.gather(*(arriving(turns) for turns in (0, 1, 3, 5)))
        later = await arriving(0)  # alone: committed on its own, without waiting for company
        await writer.stop()
        return [*ids, later]

    ids = asyncio.run(scenario())
    assert commits == [4, 1]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_each_commit_is_measured_with_its_receipts_and_a_failed_one_is_not(db: Database) -> None:
    """What `/metrics` shows of the intake's commits: one measurement per commit that made
    receipts durable, with how many it made and how long it took."""
    with db.write() as conn:
        connections.add_connection(conn, "evolution", "main", "s", {}, datetime.now(UTC))
    measured: list[tuple[int, float]] = []
    failing = [False]

    def commit(store: Database, rows: Sequence[NewReceipt]) -> list[int]:
        if failing[0]:
            raise sqlite3.OperationalError("disk I/O error")
        return _commit_receipts(store, rows)

    writer: GroupCommit[NewReceipt] = GroupCommit(
        db, commit, "receipts", measure=lambda n, seconds: measured.append((n, seconds))
    )

    async def scenario() -> None:
        await writer.start()
        await asyncio.gather(*(writer.submit(_receipt()) for _ in range(30)))
        await writer.submit(_receipt())
        failing[0] = True
        with pytest.raises(StorageUnavailable):
            await writer.submit(_receipt())
        await writer.stop()

    asyncio.run(scenario())
    assert [n for n, _ in measured] == [30, 1]
    assert all(seconds > 0 for _, seconds in measured)


def test_a_measurement_that_fails_stops_neither_the_answers_nor_the_writer(db: Database) -> None:
    with db.write() as conn:
        connections.add_connection(conn, "evolution", "main", "s", {}, datetime.now(UTC))

    def broken(receipts: int, seconds: float) -> None:
        raise RuntimeError("metrics directory is gone")

    writer: GroupCommit[NewReceipt] = GroupCommit(db, _commit_receipts, "receipts", measure=broken)

    async def scenario() -> list[int]:
        await writer.start()
        first = await writer.submit(_receipt())
        second = await writer.submit(_receipt())
        await writer.stop()
        return [first, second]

    first, second = asyncio.run(scenario())
    assert first < second  # both answered: the writer went on after the failed measurement


def test_a_commit_that_hangs_is_answered_at_its_deadline(db: Database, db_url: str) -> None:
    """A commit stuck past the store timeout (a hung disk, a server that stopped answering):
    the requests waiting on it are answered 503 at the store timeout (plus a small margin)."""
    fast = Database(db_url, timeout=0.3)

    def hangs(_db: Database, rows: list[NewReceipt]) -> list[int]:
        time.sleep(2.5)
        return list(range(len(rows)))

    writer: GroupCommit[NewReceipt] = GroupCommit(fast, hangs, "hanging")

    async def scenario() -> list[tuple[float, str]]:
        await writer.start()

        async def one() -> tuple[float, str]:
            started = time.monotonic()
            try:
                await writer.submit(_receipt())
            except StorageUnavailable as error:
                return time.monotonic() - started, str(error)
            return time.monotonic() - started, "stored"

        outcomes = await asyncio.gather(one(), one(), one())
        await writer.stop()
        return list(outcomes)

    outcomes = asyncio.run(scenario())
    assert [text for _, text in outcomes] == ["the store did not commit in time"] * 3
    assert all(0.4 < t < 0.8 for t, _ in outcomes), outcomes
    fast.dispose()


def test_stopping_answers_whoever_still_waits(db: Database, db_url: str) -> None:
    fast = Database(db_url, timeout=5.0)

    def hangs(_db: Database, rows: list[NewReceipt]) -> list[int]:
        time.sleep(0.5)
        return list(range(len(rows)))

    writer: GroupCommit[NewReceipt] = GroupCommit(fast, hangs, "stopping")

    async def scenario() -> list[BaseException | int]:
        await writer.start()
        waiting = [asyncio.create_task(writer.submit(_receipt())) for _ in range(3)]
        await asyncio.sleep(0.1)
        await writer.stop()
        done, pending = await asyncio.wait(waiting, timeout=1.0)
        assert not pending, "a request was left waiting after the writer stopped"
        return [t.exception() or t.result() for t in done]

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, StorageUnavailable) for o in outcomes), outcomes
    fast.dispose()


def test_a_batch_of_no_rows_is_refused_when_the_writer_is_made(db: Database) -> None:
    """A writer that could take no row per commit would spin without committing anything."""
    with pytest.raises(ValueError, match="at least one row"):
        GroupCommit(db, _commit_receipts, "receipts", max_batch=0)
