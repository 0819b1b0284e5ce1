"""Taking turns on SQLite's one write lock.

SQLite lets one writer in at a time and answers the others "busy"; a writer turned away looks
again every half millisecond (SQLite's own busy handler sleeps up to 100 ms, long after the
lock is free). Two things made that costly under load, both measured in the outbound bench:

- every thread of the worker process (applying receipts, sending webhooks, dispatching
  campaigns, scheduled jobs) polled the same file, burning the CPU the writer holding the
  lock needed: so the threads of one process queue on a lock of their own, and only the one
  at the head of the queue polls;
- those threads handed the lock from one to the next, so the intake process's commit could
  keep finding it taken until its time-out and answer 503 to webhooks. So the intake process
  says when it is waiting, in memory the two processes share, and the worker process's
  writers let it go first: they alternate, one transaction each, and neither starves.

Only the intake process writes the shared count; the worker process only reads it, and waits
for it at most half its time-out, so a count left behind can slow it but never stop it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from tidings.domain.errors import StorageUnavailable

__all__ = ["begin_immediate", "share", "turn"]

# How often a writer turned away looks again, and how often the worker looks whether the
# intake still waits.
_POLL_SECONDS = 0.0005


class Count(Protocol):
    """A number in memory shared between processes (a `multiprocessing` RawValue)."""

    value: int


_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()
_waiting: Count | None = None
_goes_first = False
_count_guard = threading.Lock()
_deadlines = threading.local()  # when this thread's write must have begun (`turn`)


def share(count: Count | None, *, goes_first: bool) -> None:
    """Take part in the turns across processes: the intake process (`goes_first`) counts its
    writers waiting in `count`; any other process lets them go first. None: take no part."""
    global _waiting, _goes_first
    _waiting, _goes_first = count, goes_first


def _lock_for(key: str) -> threading.RLock:
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.RLock()
        return lock


@contextmanager
def turn(key: str, timeout: float, where: Callable[[], str]) -> Iterator[None]:
    """This thread's turn among the process's writers to the store `key` (its URL), held for
    one write transaction. StorageUnavailable after `timeout` seconds in the queue (`where`
    names the store, made only then: this is on every write); the wait
    for SQLite's lock that follows (`begin_immediate`) gets what is left of them, so a write
    gives up within `timeout` in all (the intake answers 503 just after it)."""
    deadline = time.monotonic() + timeout
    lock = _lock_for(key)
    if not lock.acquire(timeout=timeout):
        raise StorageUnavailable(
            f"store {where()} cannot commit: its writers are queued longer than {timeout:g} s"
        )
    outer = getattr(_deadlines, "at", None)
    _deadlines.at = deadline if outer is None else min(outer, deadline)
    try:
        yield
    finally:
        _deadlines.at = outer
        lock.release()


def begin_immediate(raw: Any, timeout: float, busy_ms: int) -> None:
    """Take SQLite's write lock on the DB-API connection `raw`, looking again every half
    millisecond for up to `timeout`; the intake process counts itself waiting meanwhile, any
    other process first lets a waiting intake in. `busy_ms` is the connection's busy time-out,
    off while this polls."""
    raw.execute("PRAGMA busy_timeout=0")
    try:
        _begin(raw, timeout)
    finally:
        raw.execute(f"PRAGMA busy_timeout={busy_ms}")


def _begin(raw: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    turn_ends = getattr(_deadlines, "at", None)
    if turn_ends is not None:
        deadline = min(deadline, turn_ends)
    waiting, goes_first = _waiting, _goes_first  # one count from start to end
    if waiting is not None and not goes_first:
        polite = min(time.monotonic() + timeout / 2, deadline)
        while waiting.value > 0 and time.monotonic() < polite:
            time.sleep(_POLL_SECONDS)
    if _try_begin(raw):
        return
    counted = waiting if goes_first else None
    if counted is not None:
        _count(counted, +1)
    try:
        while not _try_begin(raw):
            if time.monotonic() >= deadline:
                raise sqlite3.OperationalError("database is locked")
            time.sleep(_POLL_SECONDS)
    finally:
        if counted is not None:
            _count(counted, -1)


def _try_begin(raw: Any) -> bool:
    try:
        raw.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error) and "busy" not in str(error):
            raise
        return False
    return True


def _count(waiting: Count, step: int) -> None:
    with _count_guard:
        waiting.value += step
