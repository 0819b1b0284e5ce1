"""Turns on SQLite's write lock between the intake process and a busy worker process: the
intake's commits get in after at most a transaction or two, never after their time-out."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings.storage import write_turns
from tidings.storage.db import Database

pytestmark = pytest.mark.sqlite_only  # PostgreSQL has row locks, not one lock per file

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
