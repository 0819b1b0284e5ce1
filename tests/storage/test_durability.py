"""Which SQLite commits are synced to disk one by one (docs/decisions/0006), and when a store's
write-ahead log is copied into its file (0018)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.conftest import wait_for
from tidings.config import Settings
from tidings.storage import connections, inbox
from tidings.storage.db import STORE_CHECKPOINT_PAGES, Database
from tidings.storage.inbox import NewReceipt
from tidings.storage.schema import messages
from tidings.worker.child_process import worker_database
from tidings.worker.thread import WorkerThread

FULL, NORMAL = 2, 1  # what PRAGMA synchronous reports


def _synchronous(db: Database) -> int:
    with db.read() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


@pytest.fixture
def opened() -> Iterator[list[Database]]:
    stores: list[Database] = []
    yield stores
    for store in stores:
        store.dispose()


@pytest.mark.sqlite_only
def test_a_store_syncs_every_commit_unless_told_its_writes_can_be_redone(
    db_url: str, opened: list[Database]
) -> None:
    durable = Database(db_url)  # what intake, API and CLI open: a 2xx must survive power loss
    redoable = Database(db_url, durable_commits=False)
    opened.extend([durable, redoable])
    assert _synchronous(durable) == FULL
    assert _synchronous(redoable) == NORMAL


@pytest.mark.sqlite_only
def test_the_worker_child_process_applies_without_syncing_each_commit(
    settings: Settings, opened: list[Database]
) -> None:
    store = worker_database(settings)
    opened.append(store)
    assert not store.durable_commits
    assert _synchronous(store) == NORMAL


# When a store's write-ahead log is copied into its file (decision 0018).


def _file_size(db: Database) -> int:
    return os.path.getsize(make_url(db.url).database or "")


def _autocheckpoint(db: Database) -> int:
    with db.read() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


@pytest.mark.sqlite_only
def test_a_store_copies_its_log_into_its_file_only_at_64_mb_or_when_asked(
    db: Database,
) -> None:
    db.checkpoint()  # what migrating wrote
    before = _file_size(db)
    with db.write(appends_only=True) as conn:
        conn.exec_driver_sql("CREATE TABLE filler (chunk BLOB)")
    for _ in range(12):  # 6 MB in 12 commits: past SQLite's own 1000-page checkpoint
        with db.write(appends_only=True) as conn:
            conn.exec_driver_sql(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 128)"
                " INSERT INTO filler SELECT randomblob(4000) FROM n"
            )
    assert _file_size(db) - before < 1_000_000, "a commit copied the log into the file"
    assert db.checkpoint() >= 1500  # the log's pages, now copied
    assert _file_size(db) - before > 6_000_000
    assert _autocheckpoint(db) == STORE_CHECKPOINT_PAGES


@pytest.mark.sqlite_only
def test_the_landing_file_keeps_sqlites_own_checkpoints(db: Database) -> None:
    assert db.landing is not None
    inbox.append(db, [_receipt(db, 0)])  # the landing file is made by its first receipt
    assert _autocheckpoint(db.landing) == 1000


@pytest.mark.sqlite_only
def test_the_worker_copies_the_log_once_nothing_arrives(db: Database, settings: Settings) -> None:
    """The worker's commits leave the log uncopied during a burst; once no receipt arrived for
    `worker_idle_seconds`, it copies it (0.2 s here)."""
    receipts = [_receipt(db, i) for i in range(300)]
    inbox.append(db, receipts)
    db.checkpoint()
    before = _file_size(db)
    worker = WorkerThread(db, settings)
    worker.start()
    try:
        wait_for(lambda: _messages(db) == len(receipts))
        wait_for(lambda: _file_size(db) - before > 200_000, timeout=5.0)
    finally:
        worker.stop()


def _messages(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def _receipt(db: Database, number: int) -> NewReceipt:
    """An Evolution status for message `number` on the connection `evo` (made if missing)."""
    with db.write() as conn:
        found = connections.find_connection(conn, "evolution", "evo")
        if found is None:
            found = connections.add_connection(
                conn, "evolution", "evo", "s3cret", {}, datetime.now(UTC)
            )
    body = {
        "event": "messages.update",
        "instance": "evo",
        "data": {"keyId": f"3EB0{number:016X}", "remoteJid": "5511900000001@s.whatsapp.net",
                 "fromMe": True, "status": "DELIVERY_ACK", "filler": "x" * 1500},
    }  # fmt: skip
    return NewReceipt(
        found.id, "evolution", datetime.now(UTC), "application/json", {},
        json.dumps(body).encode(),
    )  # fmt: skip
