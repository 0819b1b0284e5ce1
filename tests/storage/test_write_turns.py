"""Turns on SQLite's write lock between the intake process and a busy worker process: the
intake's commits get in after at most a transaction or two, never after their time-out."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings.domain.errors import StorageUnavailable
from tidings.storage import write_turns
from tidings.storage.db import Database

pytestmark = pytest.mark.sqlite_only  # PostgreSQL has row locks, not one lock per file


def test_a_connection_opened_while_a_writer_holds_the_lock_reads_at_once(tmp_path: Path) -> None:
    """Readers never wait for SQLite's write lock in WAL mode, not even on a connection opened
    while it is held (an API request that grows the pool, a command started meanwhile)."""
    url = f"sqlite:///{tmp_path / 'tidings.db'}"
    db = Database(url, timeout=1.0)
    with db.write(appends_only=True) as conn:
        conn.exec_driver_sql("CREATE TABLE load (x INTEGER)")
    another = Database(url, timeout=1.0)  # a process of its own, no connection yet
    try:
        with db.write(appends_only=True) as holding:
            holding.exec_driver_sql("INSERT INTO load (x) VALUES (1)")
            with another.read() as conn:  # it waited for the lock and failed: "locked"
                assert conn.exec_driver_sql("SELECT count(*) FROM load").scalar() == 0
        assert _auto_vacuum(url) == 2  # the new file was still made for incremental vacuum
    finally:
        another.dispose()
        db.dispose()


def _auto_vacuum(url: str) -> int:
    check = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return int(check.execute("PRAGMA auto_vacuum").fetchone()[0])
    finally:
        check.close()


HOLD = 0.04  # each of the worker's transactions holds the lock this long


def _busy_worker(url: str, count: Any, stop: Any, ready: Any) -> None:
    """A worker process whose three threads write back to back, each holding the lock."""
    write_turns.share(count, goes_first=False)
    db = Database(url, timeout=5.0)

    def loop() -> None:
        while not stop.is_set():
            with db.write(appends_only=True) as conn:
                conn.exec_driver_sql("INSERT INTO load (x) VALUES (1)")
                time.sleep(HOLD)

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    ready.set()
    for thread in threads:
        thread.join()
    db.dispose()


@pytest.fixture
def intake_process() -> Iterator[Any]:
    """This process as the intake: its writers count themselves waiting in shared memory."""
    context = multiprocessing.get_context("spawn")
    count = context.RawValue("i", 0)
    write_turns.share(count, goes_first=True)
    yield context, count
    write_turns.share(None, goes_first=False)


def test_the_intake_gets_the_lock_between_a_busy_workers_transactions(
    tmp_path: Path, intake_process: Any
) -> None:
    context, count = intake_process
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    db = Database(url, timeout=1.0)
    with db.write(appends_only=True) as conn:
        conn.exec_driver_sql("CREATE TABLE load (x INTEGER)")
    stop, ready = context.Event(), context.Event()
    worker = context.Process(target=_busy_worker, args=(url, count, stop, ready))
    worker.start()
    waits: list[float] = []
    try:
        assert ready.wait(30)
        time.sleep(0.2)
        for _ in range(40):
            started = time.monotonic()
            with db.write(appends_only=True) as conn:  # StorageUnavailable after 1 s
                waits.append(time.monotonic() - started)
                conn.exec_driver_sql("INSERT INTO load (x) VALUES (2)")
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(30)
        db.dispose()
    assert worker.exitcode == 0
    assert count.value == 0
    # At most the worker transaction in progress when the intake asks (a worker that did
    # not let it go first made it wait out three to five of them here).
    assert max(waits) < 2 * HOLD, sorted(waits)[-5:]


def test_a_write_queued_behind_another_gives_up_within_its_own_timeout(tmp_path: Path) -> None:
    """The queue and SQLite's lock share one time-out: the intake answers 503 just after it,
    so a write still waiting past it would commit a body its sender was told to send again."""
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    db = Database(url, timeout=0.5)
    with db.write(appends_only=True) as conn:
        conn.exec_driver_sql("CREATE TABLE load (x INTEGER)")
    blocker = sqlite3.connect(str(tmp_path / "turns.db"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    gave_up: dict[str, float] = {}

    def write(name: str) -> None:
        started = time.monotonic()
        with contextlib.suppress(StorageUnavailable), db.write(appends_only=True) as conn:
            conn.exec_driver_sql("INSERT INTO load (x) VALUES (1)")
        gave_up[name] = time.monotonic() - started

    try:
        first = threading.Thread(target=write, args=("first",))
        first.start()
        time.sleep(0.1)  # the second queues behind the first, which waits for SQLite's lock
        write("second")
        first.join()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        db.dispose()
    assert gave_up["first"] < 0.75
    assert gave_up["second"] < 0.75, gave_up
