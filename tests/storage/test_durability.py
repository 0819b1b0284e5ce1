"""Which SQLite commits are synced to disk one by one (docs/decisions/0006)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tidings.config import Settings
from tidings.storage.db import Database
from tidings.worker.child_process import worker_database

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
