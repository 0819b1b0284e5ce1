"""Group commit: many concurrent requests made durable by one transaction.

Requests hand their row to one writer task and wait; while a commit is under way the next ones
queue up and go in the following transaction together. Each request is answered only after
the transaction holding its row has committed. A request whose wait expired (it was answered
503) is left out of the next commit, and a full queue answers 503 at once, so a store outage
neither grows memory nor commits rows nobody is waiting for.

Each writer commits from a thread of its own, so one kind of row (say, a flood of rejected
requests) never queues behind another's commits for a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from tidings.domain.errors import StorageUnavailable
from tidings.logging import get_logger
from tidings.metrics import INTAKE_COMMIT_RECEIPTS, INTAKE_COMMIT_SECONDS
from tidings.storage import inbox, rejections
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt
from tidings.storage.rejections import NewRejection

__all__ = ["GroupCommit", "ReceiptWriter", "RejectionWriter"]

log = get_logger("intake")

Row = TypeVar("Row")


_SWEEP_SECONDS = 0.1

# How long past the store timeout a request may wait for its commit before it is answered 503.
# A request queued behind a commit that waits for the lock would otherwise wait for that commit
# and then its own (3 s, not the "about 2 s" the README promises); a commit that got the lock
# just in time still finishes inside the margin.
_DEADLINE_MARGIN = 0.2

# Turns of the event loop the writer lets pass before it commits: requests already read from
# their sockets reach the queue and share this transaction instead of waiting for the next.
# Under a burst that makes fewer, larger commits (each one an fsync and a turn of SQLite's
# write lock); alone, a request waits a few idle turns, microseconds. 8 measured best of
# 0/4/8/16 on 64 connections (about +20% acknowledged/s over 0; 4 and 16 were close to 8).
_GATHER_TURNS = 8


def _expire(future: asyncio.Future[int]) -> None:
    if not future.done():
        future.set_exception(StorageUnavailable("the store did not commit in time"))


class GroupCommit(Generic[Row]):
    """Commits rows in batches with `commit` (rows → ids, in order), from its own thread;
    `measure` is told each successful commit's rows and seconds (for /metrics)."""

    def __init__(
        self,
        db: Database,
        commit: Callable[[Database, Sequence[Row]], list[int]],
        name: str,
        on_commit: Callable[[], None] = lambda: None,
        max_batch: int = 512,
        max_waiting: int = 20_000,
        measure: Callable[[int, float], None] = lambda receipts, seconds: None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("a group commit takes at least one row")
        self._db = db
        self._commit = commit
        self._name = name
        self._on_commit = on_commit
        self._measure = measure
        self._max_batch = max_batch
        self._max_waiting = max_waiting
        # Rows waiting for the next commit, and the writer's wake-up while there are none. (An
        # asyncio.Queue did the same at about twice the cost per request, in Python.)
        self._queue: deque[tuple[Row, asyncio.Future[int]]] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._deadlines: deque[tuple[float, asyncio.Future[int]]] = deque()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"tidings-{name}")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"tidings-{self._name}")
        self._sweeper = asyncio.create_task(self._sweep(), name=f"tidings-{self._name}-sweep")

    async def stop(self) -> None:
        for task in (self._task, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._thread.shutdown(wait=True)
        while self._deadlines:  # shutting down: whoever still waits gets its 503 now
            _expire(self._deadlines.popleft()[1])

    async def submit(self, row: Row) -> int:
        """The row's id once committed; StorageUnavailable if that cannot happen in time."""
        if self._task is None:
            raise RuntimeError(f"{type(self).__name__}.start() was not called")
        if len(self._queue) >= self._max_waiting:
            raise StorageUnavailable("too many requests are waiting for the store")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._queue.append((row, future))
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        self._deadlines.append((loop.time() + self._db.timeout + _DEADLINE_MARGIN, future))
        return await future

    async def _sweep(self) -> None:
        """Answer 503 to requests still waiting past their deadline (a commit that hangs).

        One task for all requests instead of a timer each: requests arrive in deadline order,
        so only the oldest need looking at, a few times a second."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            now = loop.time()
            while self._deadlines and (
                self._deadlines[0][1].done() or self._deadlines[0][0] <= now
            ):
                _expire(self._deadlines.popleft()[1])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            if not queue:
                self._wake = loop.create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None
            for _ in range(_GATHER_TURNS):
                await asyncio.sleep(0)
            taken = [queue.popleft() for _ in range(min(len(queue), self._max_batch))]
            batch = [(row, future) for row, future in taken if not future.done()]
            if not batch:
                continue
            try:
                ids, seconds = await loop.run_in_executor(
                    self._thread, _timed, self._commit, self._db, [row for row, _ in batch]
                )
            except Exception as error:  # every waiting request learns the store failed
                failure = (
                    error
                    if isinstance(error, StorageUnavailable)
                    else StorageUnavailable(f"commit failed: {error}")
                )
                log.warning("could not commit %d %s rows: %s", len(batch), self._name, failure)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                continue
            for (_, future), row_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(row_id)
            try:
                self._on_commit()
            except Exception:  # a failed wake-up must not stop the writer
                log.exception("wake-up after a %s commit failed", self._name)
            try:
                self._measure(len(batch), seconds)
            except Exception:  # nor a failed measurement
                log.exception("measuring a %s commit failed", self._name)


def _timed(
    commit: Callable[[Database, Sequence[Row]], list[int]], db: Database, rows: Sequence[Row]
) -> tuple[list[int], float]:
    """The commit's ids and its seconds, timed on the commit thread (the hand-off to it and
    back to the event loop are left out)."""
    started = time.perf_counter()
    ids = commit(db, rows)
    return ids, time.perf_counter() - started


def _commit_receipts(db: Database, rows: Sequence[NewReceipt]) -> list[int]:
    return inbox.append(db, rows)


def _commit_rejections(db: Database, rows: Sequence[NewRejection]) -> list[int]:
    with db.write(appends_only=True) as conn:
        return rejections.log_rejections(conn, rows)


def _measure_receipts(receipts: int, seconds: float) -> None:
    INTAKE_COMMIT_RECEIPTS.observe(receipts)
    INTAKE_COMMIT_SECONDS.observe(seconds)


class ReceiptWriter(GroupCommit[NewReceipt]):
    """The inbox's group commit; `on_commit` wakes the worker. Each commit is measured for
    `/metrics` (receipts, seconds): the answers to accepted webhooks wait for it."""

    def __init__(
        self, db: Database, on_commit: Callable[[], None] = lambda: None, max_batch: int = 512
    ) -> None:
        super().__init__(
            db, _commit_receipts, "receipts", on_commit, max_batch, measure=_measure_receipts
        )


class RejectionWriter(GroupCommit[NewRejection]):
    """The rejection log's group commit: a flood of refused requests costs one transaction per
    batch, on its own thread, and a bounded queue."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, _commit_rejections, "rejections", max_waiting=2_000)
