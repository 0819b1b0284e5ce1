"""A SQLite store's new receipts land in a file of their own (`storage.landing`, decision
0017): the intake commits there whatever the worker holds, every reader sees a landed receipt
as pending, the worker moves each into the inbox once with its outcome, and ids are never
given twice."""

from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.conftest import TIDINGS, free_port
from tests.e2e.payloads import evolution_update
from tidings.cli import main
from tidings.config import Settings
from tidings.scheduler.jobs import Job, JobContext, trim_landing
from tidings.scheduler.thread import SchedulerThread
from tidings.storage import connections, inbox, landing
from tidings.storage.db import Database
from tidings.storage.engine import NotAStore
from tidings.storage.inbox import NewReceipt, ReceiptStatus
from tidings.storage.migrate import upgrade
from tidings.storage.schema import events, inbox_progress, landed, receipts
from tidings.storage.writes import Writes
from tidings.worker import process
from tidings.worker.thread import WorkerThread

pytestmark = pytest.mark.sqlite_only  # PostgreSQL stores commit receipts to `receipts` itself

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def _connection(db: Database) -> int:
    with db.write() as conn:
        return connections.add_connection(conn, "evolution", "main", "s", {}, NOW).id


def _receipt(connection_id: int, body: bytes, **kw: Any) -> NewReceipt:
    return NewReceipt(connection_id, "evolution", NOW, "application/json", {"x": "1"}, body, **kw)


def _updates(connection_id: int, *names: str) -> list[NewReceipt]:
    return [_receipt(connection_id, evolution_update(n, "DELIVERY_ACK").encode()) for n in names]


def _in_inbox(db: Database) -> dict[int, Any]:
    """The rows of `receipts` itself, by id (landed receipts not yet moved are not there)."""
    with db.read() as conn:
        return {row.id: row for row in conn.execute(select(receipts))}


def _landed_ids(db: Database) -> list[int]:
    assert db.landing is not None
    with db.landing.read() as conn:
        return list(conn.execute(select(landed.c.id).order_by(landed.c.id)).scalars())


class _Worker:
    def wake(self) -> None:
        pass


def test_a_landed_receipt_reads_as_pending_until_the_worker_applies_it(
    db: Database, settings: Settings
) -> None:
    connection_id = _connection(db)
    ids = inbox.append(db, _updates(connection_id, "a", "b", "c"))
    assert db.landing is not None and Path(db.landing.url.removeprefix("sqlite:///")).is_file()
    assert _in_inbox(db) == {}
    with db.read() as conn:
        assert inbox.count_by_status(conn)["pending"] == 3
        assert inbox.count_with(conn, [ReceiptStatus.PENDING]) == {"pending": 3}
        listed = inbox.list_receipts(conn, ReceiptStatus.PENDING, connection_id, None, 2)
        assert [row.id for row in listed] == [ids[2], ids[1]]
        assert (listed[0].attempts, listed[0].processed_at) == (0, None)
        older = inbox.list_receipts(conn, None, None, ids[1], 10)
        assert [row.id for row in older] == [ids[0]]
        found = inbox.get_receipt(conn, ids[0])
        assert found is not None and found.body == evolution_update("a", "DELIVERY_ACK").encode()
        assert (found.status, found.headers, found.source) == ("pending", {"x": "1"}, "webhook")

    result = process.process_batch(db, settings, now=lambda: NOW)

    assert (result.claimed, result.done) == (3, 3)
    moved = _in_inbox(db)
    assert sorted(moved) == ids
    assert {(r.status, r.attempts, r.processed_at, r.notes) for r in moved.values()} == {
        ("done", 1, NOW, None)
    }
    assert moved[ids[0]].headers == {"x": "1"} and moved[ids[0]].received_at == NOW
    with db.read() as conn:
        counts = inbox.count_by_status(conn)
        assert (counts["pending"], counts["done"]) == (0, 3)  # landed rows moved count once
        assert len(inbox.list_receipts(conn, None, None, None, 10)) == 3
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 3
    assert _landed_ids(db) == ids  # kept until a synced commit holds them applied


def test_each_landed_receipt_is_moved_once_with_its_outcome(
    db: Database, settings: Settings
) -> None:
    """Done (with its notes), dead at once (a body of no known shape), or quarantined as it
    landed: one row each in the inbox, written by the move itself."""
    connection_id = _connection(db)
    noted = b'{"event": "presence.update", "instance": "main", "data": {}}'
    new = [
        *_updates(connection_id, "ok"),
        _receipt(connection_id, b'{"no_event": true}'),
        _receipt(connection_id, b"{not json", status=ReceiptStatus.QUARANTINED, error="bad"),
        _receipt(connection_id, noted),
    ]
    ok, dead, quarantined, ignored = inbox.append(db, new)

    result = process.process_batch(db, settings, now=lambda: NOW)

    assert (result.claimed, result.done, result.dead) == (3, 2, 1)
    rows = _in_inbox(db)
    assert sorted(rows) == [ok, dead, quarantined, ignored]
    assert (rows[ok].status, rows[ok].attempts, rows[ok].notes) == ("done", 1, None)
    assert (rows[dead].status, rows[dead].attempts) == ("dead", 1)
    assert rows[dead].error.startswith('evolution: body has no "event" name')
    assert (rows[quarantined].status, rows[quarantined].attempts) == ("quarantined", 0)
    assert (rows[quarantined].error, rows[quarantined].processed_at) == ("bad", None)
    assert rows[ignored].status == "done" and rows[ignored].notes  # why it was ignored
    with db.read() as conn:
        assert inbox.count_by_status(conn) == {
            "pending": 0, "done": 2, "failed": 0, "dead": 1, "quarantined": 1,
        }  # fmt: skip


def test_a_batch_that_fails_is_moved_then_applied_one_by_one(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection_id = _connection(db)
    ids = inbox.append(db, _updates(connection_id, "a", "b", "c"))
    original = process.apply_incoming

    def refuse_batches(reader: Any, writes: Any, incoming: list[Any], at: datetime) -> Any:
        if len(incoming) > 1:
            raise RuntimeError("a batch the store refused")
        return original(reader, writes, incoming, at)

    monkeypatch.setattr(process, "apply_incoming", refuse_batches)
    result = process.process_batch(db, settings, now=lambda: NOW)

    assert (result.done, result.failed) == (3, 0)
    assert {r.id: r.status for r in _in_inbox(db).values()} == dict.fromkeys(ids, "done")
    with db.read() as conn:
        assert inbox.count_by_status(conn)["pending"] == 0


def test_a_webhook_landing_while_the_worker_holds_the_store_is_moved_not_skipped(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's plan made again under the store's write lock (the state moved since its
    snapshot) takes the landed receipts it sees and moves them in the same transaction: one
    the intake lands in between must be both or neither, never past the offset yet not
    moved (it would never be applied, and trimming would delete it)."""
    connection_id = _connection(db)
    first = inbox.append(db, _updates(connection_id, "a"))
    again = Database(db.url, db.timeout, plan_ahead=False)  # every plan made again, locked
    original = inbox.move_landed
    calls: list[int] = []
    landed_meanwhile: list[int] = []

    def land_one_first(reader: Any, writes: Any, limit: int) -> Any:
        calls.append(limit)
        if len(calls) == 2:  # the plan made again, under the lock: the intake lands one
            landed_meanwhile.extend(inbox.append(again, _updates(connection_id, "b")))
        return original(reader, writes, limit)

    monkeypatch.setattr(inbox, "move_landed", land_one_first)
    try:
        process.process_batch(again, settings, now=lambda: NOW)
        assert len(calls) == 2, "the plan was not made again under the lock"
        with again.read() as conn:
            offset = landing.applied_through(conn)
        moved = _in_inbox(again)
        assert [i for i in _landed_ids(again) if i <= offset] == sorted(moved)
        process.process_batch(again, settings, now=lambda: NOW)
        assert {i: r.status for i, r in _in_inbox(again).items()} == dict.fromkeys(
            first + landed_meanwhile, "done"
        )
    finally:
        again.dispose()


def test_a_worker_connection_older_than_the_landing_file_waits_for_the_next_batch(
    db: Database, settings: Settings
) -> None:
    """The landing file is attached to the store's connections when they are checked out; one
    that took the write lock before the first webhook made the file cannot read it, and takes
    nothing (no error) until the next batch's connection, which has it attached."""
    connection_id = _connection(db)
    assert db.landing is not None and not Path(db.landing.url.removeprefix("sqlite:///")).exists()
    with db.write() as conn:  # a plan made again under the lock, when nothing had landed
        first = inbox.append(db, _updates(connection_id, "a"))  # makes the file
        writes = Writes()
        assert landing.take(db, conn, writes, 10) == [] and not writes
    result = process.process_batch(db, settings, now=lambda: NOW)
    assert result.done == 1 and sorted(_in_inbox(db)) == first


def test_the_intake_commits_while_the_worker_holds_the_store(db: Database) -> None:
    """The point of the landing file: an append waits for no lock of the store's, even while
    a connection with the landing file attached holds the store's write lock."""
    connection_id = _connection(db)
    inbox.append(db, _updates(connection_id, "first"))
    with db.write() as holding:  # BEGIN IMMEDIATE, as a worker's batch holds it
        attached = [row[1] for row in holding.exec_driver_sql("PRAGMA database_list")]
        assert "landing" in attached  # the worker's connections have it attached
        started = time.monotonic()
        [second] = inbox.append(db, _updates(connection_id, "second"))
        assert time.monotonic() - started < db.timeout / 2
    with db.read() as conn:
        found = inbox.get_receipt(conn, second)
    assert found is not None and found.status == "pending"


def test_ids_follow_the_stores_receipts_and_are_never_given_twice(
    db: Database, settings: Settings
) -> None:
    connection_id = _connection(db)
    with db.write() as conn:  # receipts of an older tidings, before any landing file
        for _ in range(2):
            conn.execute(
                receipts.insert().values(
                    connection_id=connection_id, provider="evolution", received_at=NOW,
                    content_type="", headers={}, body=b"{}", status="done", attempts=1,
                )
            )  # fmt: skip
        before = list(conn.execute(select(receipts.c.id)).scalars())
    assert db.landing is not None
    assert not Path(db.landing.url.removeprefix("sqlite:///")).exists()
    first = inbox.append(db, _updates(connection_id, "a", "b"))
    assert first[0] > max(before)
    process.process_batch(db, settings, now=lambda: NOW)
    assert landing.trim(db) == 2
    assert _landed_ids(db) == []
    reopened = Database(db.url)  # a new process, the landing file empty
    try:
        [after] = inbox.append(reopened, _updates(connection_id, "c"))
    finally:
        reopened.dispose()
    assert after == first[-1] + 1


def test_trimming_keeps_what_the_worker_has_not_applied(db: Database, settings: Settings) -> None:
    connection_id = _connection(db)
    ids = inbox.append(db, _updates(connection_id, *"abcde"))
    small = settings.model_copy(update={"worker_batch_size": 3})
    process.process_batch(db, small, now=lambda: NOW)
    ctx = JobContext(db, settings, _Worker())
    assert trim_landing(ctx) == 3
    assert _landed_ids(db) == ids[3:]
    assert trim_landing(ctx) == 0
    with db.read() as conn:
        counts = inbox.count_by_status(conn)
    assert (counts["done"], counts["pending"]) == (3, 2)
    process.process_batch(db, small, now=lambda: NOW)
    assert sorted(_in_inbox(db)) == ids
    assert trim_landing(ctx) == 2


def test_trimming_needs_a_store_whose_commits_are_synced(db: Database) -> None:
    unsynced = Database(db.url, durable_commits=False)
    try:
        with pytest.raises(ValueError, match="synced"):
            landing.trim(unsynced)
    finally:
        unsynced.dispose()


def test_a_store_copied_elsewhere_takes_its_landed_receipts(
    db: Database, empty_postgres: str
) -> None:
    connection_id = _connection(db)
    with db.write() as conn:
        inbox.insert_receipts(conn, _updates(connection_id, "old"))
    ids = inbox.append(db, _updates(connection_id, "a", "b"))
    target = empty_postgres
    copied = CliRunner().invoke(main, ["migrate-data", "--from", db.url, "--to", target])
    assert copied.exit_code == 0, copied.output
    assert "[ok] receipts: 3 -> 3" in copied.output
    # The total announced counts the landed receipts too: the tables' counts add up to it.
    sources = [int(n) for n in re.findall(r"^\[ok\] \w+: (\d+) -> ", copied.output, re.M)]
    assert f"copied {sum(sources)} rows" in copied.output
    other = Database(target)
    try:
        with other.read() as conn:
            rows = inbox.list_receipts(conn, None, None, None, 10)
        assert sorted((r.id, r.status) for r in rows) == [
            (ids[0] - 1, "pending"), (ids[0], "pending"), (ids[1], "pending"),
        ]  # fmt: skip
    finally:
        other.dispose()


def test_receipts_put_into_the_inbox_directly_never_share_an_id_with_landed_ones(
    db: Database, settings: Settings
) -> None:
    connection_id = _connection(db)
    landed_first = inbox.append(db, _updates(connection_id, "a"))
    with db.write() as conn:  # as a copy or a test puts them there
        direct = inbox.insert_receipts(conn, _updates(connection_id, "x", "y"))
    landed_after = inbox.append(db, _updates(connection_id, "b"))
    assert landed_first[0] < direct[0] < direct[1] < landed_after[0]
    result = process.process_batch(db, settings, now=lambda: NOW)
    assert (result.claimed, result.done, result.duplicates) == (4, 4, 0)
    everything = landed_first + direct + landed_after
    assert {i: r.status for i, r in _in_inbox(db).items()} == dict.fromkeys(everything, "done")
    assert process.process_batch(db, settings, now=lambda: NOW).claimed == 0


def test_reading_a_store_where_nothing_landed_creates_no_file(db: Database) -> None:
    """`tidings doctor`, the API and the dashboard only read: they leave no file behind."""
    assert db.landing is not None
    with db.read() as conn:
        assert inbox.count_by_status(conn)["pending"] == 0
        assert inbox.list_receipts(conn, None, None, None, 10) == []
        assert inbox.get_receipt(conn, 1) is None
    assert not Path(db.landing.url.removeprefix("sqlite:///")).exists()


def test_landing_no_webhooks_writes_nothing(db: Database) -> None:
    assert db.landing is not None
    assert inbox.append(db, []) == []
    assert not Path(db.landing.url.removeprefix("sqlite:///")).exists()


def test_the_stores_size_counts_its_landing_file(db: Database) -> None:
    connection_id = _connection(db)
    before, _ = db.disk_usage()
    inbox.append(db, [_receipt(connection_id, b"x" * 200_000)])
    assert db.landing is not None
    landing_file = Path(db.landing.url.removeprefix("sqlite:///"))
    database, logs = db.disk_usage()
    assert database - before >= landing_file.stat().st_size > 0
    assert logs >= Path(f"{landing_file}-wal").stat().st_size > 200_000  # not yet checkpointed


def test_a_landing_file_that_is_no_database_is_named_in_one_line(db: Database) -> None:
    assert db.landing is not None
    Path(db.landing.url.removeprefix("sqlite:///")).write_bytes(b"my notes, not a store " * 300)
    reopened = Database(db.url)
    try:
        refused = pytest.raises(NotAStore, match=r"landing file .*tidings\.db-inbox .*move it")
        with refused, reopened.read() as conn:
            inbox.count_by_status(conn)
    finally:
        reopened.dispose()


def _store_files(db: Database) -> list[Path]:
    path = Path(db.url.removeprefix("sqlite:///"))
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def _left_behind(db: Database, settings: Settings, *names: str) -> tuple[Database, int, list[int]]:
    """Webhooks for these message names landed, then the store deleted and made again while
    its landing file stayed (a person starting over who removed `tidings.db` alone): the new
    store, the old connection's id, and the landed ids."""
    connection_id = _connection(db)
    ids = inbox.append(db, _updates(connection_id, *names))
    db.dispose()
    for path in _store_files(db):
        path.unlink(missing_ok=True)
    fresh = Database(settings.database_url, settings.store_timeout_seconds)
    upgrade(fresh)
    return fresh, connection_id, ids


def test_another_stores_landing_file_is_refused_in_one_line_and_kept(
    db: Database, settings: Settings
) -> None:
    fresh, connection_id, ids = _left_behind(db, settings, "a", "b")
    try:
        refused = r"landing file .*tidings\.db-inbox holds webhooks that are not this store's"
        why = r"\(of the oldest 2 not yet applied, 2 name connections this store does not have\)"
        with pytest.raises(NotAStore, match=f"{refused} {why}: it belongs to another store"):
            landing.check(fresh)
        # The worker says so instead of failing every batch on the missing connection; the
        # intake cannot append either (its group commit answers 503); nothing is changed.
        with pytest.raises(NotAStore, match=refused):
            process.process_batch(fresh, settings, now=lambda: NOW)
        with pytest.raises(NotAStore, match=refused):
            inbox.append(fresh, _updates(connection_id, "c"))
        assert _landed_ids(fresh) == ids
        assert _in_inbox(fresh) == {}
        # Once the connection it names exists again, the receipts are the store's to take.
        assert _connection(fresh) == connection_id
        landing.check(fresh)
        result = process.process_batch(fresh, settings, now=lambda: NOW)
        assert (result.claimed, result.done) == (2, 2)
    finally:
        fresh.dispose()


def test_landed_ids_the_inbox_already_holds_are_refused(db: Database, settings: Settings) -> None:
    """A store put back from an older copy holding receipts the landing file has too."""
    connection_id = _connection(db)
    ids = inbox.append(db, _updates(connection_id, "a", "b", "c"))
    process.process_batch(db, settings, now=lambda: NOW)
    with db.write() as conn:  # the offset of a store that had moved none of them
        conn.execute(inbox_progress.delete())
    reopened = Database(settings.database_url, settings.store_timeout_seconds)
    try:
        held = r"\(of the oldest 3 not yet applied, 3 have ids its inbox already holds\)"
        with pytest.raises(NotAStore, match=held):
            landing.check(reopened)
        assert _landed_ids(reopened) == ids
    finally:
        reopened.dispose()


def test_a_stores_own_landing_file_passes_the_check(db: Database, settings: Settings) -> None:
    landing.check(db)  # none yet
    connection_id = _connection(db)
    inbox.append(db, _updates(connection_id, "a"))
    with db.write() as conn:  # a receipt put into the inbox directly, with an id of its own
        inbox.insert_receipts(conn, _updates(connection_id, "x"))
    inbox.append(db, _updates(connection_id, "b"))
    reopened = Database(settings.database_url, settings.store_timeout_seconds)
    try:
        landing.check(reopened)
        assert process.process_batch(reopened, settings, now=lambda: NOW).done == 3
        landing.check(reopened)
    finally:
        reopened.dispose()


def test_serve_refuses_another_stores_landing_file_in_one_line(
    db: Database, settings: Settings
) -> None:
    _left_behind(db, settings, "a")[0].dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["TIDINGS_DATABASE_URL"] = settings.database_url
    done = subprocess.run(
        [TIDINGS, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: the landing file ") and "belongs to another store" in line
    assert line.endswith("move the file away (with its -wal and -shm files)")


def test_a_batch_of_quarantined_receipts_does_not_put_the_worker_to_sleep(
    db: Database, settings: Settings
) -> None:
    """Landed receipts that were malformed are moved into the inbox with nothing to apply; a
    batch of only those took work all the same, so the worker goes on to the receipts behind
    them instead of idling until the next wake-up."""
    connection_id = _connection(db)
    garbage = [
        _receipt(connection_id, b"{not json", status=ReceiptStatus.QUARANTINED, error="bad")
        for _ in range(3)
    ]
    [*_, pending] = inbox.append(db, [*garbage, *_updates(connection_id, "a")])
    few = settings.model_copy(update={"worker_batch_size": 3, "worker_idle_seconds": 30.0})
    worker = WorkerThread(db, few)  # its first batch: the three quarantined ones
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while _in_inbox(db).get(pending) is None or _in_inbox(db)[pending].status != "done":
            assert time.monotonic() < deadline, "the worker slept past the receipt behind them"
            time.sleep(0.05)
    finally:
        worker.stop()
    inbox.append(db, garbage)
    alone = process.process_batch(db, few, now=lambda: NOW)
    assert (alone.claimed, alone.skipped, alone.done) == (0, 3, 0)


def test_a_connection_made_again_for_another_provider_does_not_take_them(
    db: Database, settings: Settings
) -> None:
    fresh, connection_id, _ids = _left_behind(db, settings, "a")
    try:
        with fresh.write() as conn:  # the same id, another provider's connection
            made = connections.add_connection(conn, "callbell", "main", "s", {}, NOW).id
        assert made == connection_id
        with pytest.raises(NotAStore, match=r"1 name connections this store does not have\)"):
            landing.check(fresh)
    finally:
        fresh.dispose()


def test_migrate_data_refuses_another_stores_landing_file(
    db: Database, settings: Settings, empty_postgres: str
) -> None:
    _left_behind(db, settings, "a")[0].dispose()
    copied = CliRunner().invoke(main, ["migrate-data", "--from", db.url, "--to", empty_postgres])
    assert copied.exit_code == 1
    line = copied.output.strip().splitlines()[-1]
    assert line.startswith("Error: the landing file ") and "belongs to another store" in line


def test_the_worker_says_once_in_a_line_that_it_cannot_apply_another_stores_receipts(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """No traceback a second: one line, then a minute's wait, which stopping cuts short."""
    fresh = _left_behind(db, settings, "a")[0]
    worker = WorkerThread(fresh, settings)
    try:
        with caplog.at_level("INFO", logger="tidings"):
            worker.start()
            time.sleep(1.0)  # five idle periods of the test settings
            started = time.monotonic()
            worker.stop()
        assert time.monotonic() - started < 5
        lines = [r for r in caplog.records if "cannot apply receipts" in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelname == "ERROR" and lines[0].exc_info is None
        assert "belongs to another store" in lines[0].getMessage()
    finally:
        fresh.dispose()


def test_a_scheduled_job_refused_by_the_store_is_one_line(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = _left_behind(db, settings, "a")[0]
    durable = Database(settings.database_url, settings.store_timeout_seconds)
    trim = Job("trim_landing", 60.0, lambda ctx: landing.trim(ctx.db))
    scheduler = SchedulerThread(JobContext(durable, settings, _Worker()), (trim,))
    try:
        with caplog.at_level("INFO", logger="tidings"):
            scheduler.start()
            deadline = time.monotonic() + 10
            while "cannot run" not in caplog.text:
                assert time.monotonic() < deadline, "the job's refusal was not logged"
                time.sleep(0.05)
            scheduler.stop()
        [line] = [r for r in caplog.records if "trim_landing" in r.getMessage()]
        assert line.levelname == "ERROR" and line.exc_info is None
        assert "belongs to another store" in line.getMessage()
    finally:
        durable.dispose()
        fresh.dispose()


def test_a_webhook_lands_with_the_bytes_the_general_path_stores(db: Database) -> None:
    """The intake's own insert (`landing.append_new`, no dict per row) stores each column as
    the general insert does: times, headers as JSON, the body, a quarantined one's error. A
    new receipt is given to it as it is, so its fields are the landing row's, in order."""
    assert NewReceipt._fields == landing.NEW_COLUMNS
    connection_id = _connection(db)
    at = datetime(2026, 12, 5, 9, 0, 0, 123456, tzinfo=UTC)
    given = [
        NewReceipt(connection_id, "evolution", at, "application/json", {"a": "é", "b": ""}, b"{}"),
        NewReceipt(
            connection_id, "evolution", at, "", {}, b"\x00\xff{", ReceiptStatus.QUARANTINED, "bad"
        ),
    ]
    fast = inbox.append(db, given)  # webhooks: the intake's path
    general = inbox.append(db, given, source=inbox.ReceiptSource.POLL)
    assert len(fast) == len(general) == 2
    assert db.landing is not None
    names = list(landing.NEW_COLUMNS)
    with db.landing.engine.connect() as conn:
        raw = conn.exec_driver_sql(
            f"SELECT id, typeof(body), {', '.join(names)} FROM landed ORDER BY id"
        ).all()
    by_id = {row[0]: row[1:] for row in raw}
    assert [by_id[i] for i in fast] == [by_id[i] for i in general]
    assert by_id[fast[0]][0] == "blob" and by_id[fast[0]][3] == "2026-12-05 09:00:00.123456"
    assert by_id[fast[1]][-2:] == ("quarantined", "bad")


def test_a_landed_receipts_headers_reach_the_worker_as_they_were_stored(db: Database) -> None:
    connection_id = _connection(db)
    stored = {"content-type": "application/x-www-form-urlencoded", "x-signature": "é"}
    given = NewReceipt(connection_id, "evolution", NOW, "", stored, b"{}")
    inbox.append(db, [given])
    taken: list[Any] = []

    def plan(reader: Any, writes: Any) -> None:
        taken[:] = inbox.take_pending(reader, writes, 10)[0]

    db.apply(plan)
    headers = taken[0].headers
    assert headers.get("content-type") == "application/x-www-form-urlencoded"
    assert dict(headers) == stored and len(headers) == 2 and "x-other" not in headers


def test_stored_headers_are_read_from_their_text_only_when_looked_at() -> None:
    """Only Twilio's parser reads headers: the others never pay for decoding them."""
    unread = landing.StoredHeaders("{not json")  # no error until something looks
    with pytest.raises(ValueError, match="stored headers are not JSON: Expecting property"):
        unread.get("content-type")
    assert dict(landing.StoredHeaders("null")) == {}  # JSON's null: no headers kept
    assert landing.StoredHeaders('{"a": "1"}') == {"a": "1"}
