"""Group commit: many concurrent webhooks made durable by one transaction.

Requests hand their receipt to one writer task and wait; while a commit is under way the
next ones queue up and go in the following transaction together. Each request is answered
only after the transaction holding its receipt has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from tidings.domain.errors import StorageUnavailable
from tidings.logging import get_logger
from tidings.storage import inbox
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt

__all__ = ["ReceiptWriter"]

log = get_logger("intake")

_Pending = tuple[NewReceipt, "asyncio.Future[int]"]


def _expire(future: asyncio.Future[int]) -> None:
    if not future.done():
        future.set_exception(StorageUnavailable("the store did not commit in time"))


class ReceiptWriter:
    def __init__(
        self, db: Database, on_commit: Callable[[], None] = lambda: None, max_batch: int = 512
    ) -> None:
        self._db = db
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="tidings-receipt-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, receipt: NewReceipt) -> int:
        """The receipt's id once committed; StorageUnavailable if that cannot happen in time."""
        if self._queue is None:
            raise RuntimeError("ReceiptWriter.start() was not called")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        # A timer, not wait_for: one handle per request is the cheapest way to bound the wait.
        timer = loop.call_later(self._db.timeout + 1.0, _expire, future)
        self._queue.put_nowait((receipt, future))
        try:
            return await future
        finally:
            timer.cancel()

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                ids = await asyncio.to_thread(self._commit, [r for r, _ in batch])
            except Exception as error:
                failure = (
                    error
                    if isinstance(error, StorageUnavailable)
                    else StorageUnavailable(f"commit failed: {error}")
                )
                log.warning("could not commit %d receipts: %s", len(batch), failure)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                continue
            for (_, future), receipt_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(receipt_id)
            self._on_commit()

    def _commit(self, receipts: list[NewReceipt]) -> list[int]:
        with self._db.write() as conn:
            return inbox.insert_receipts(conn, receipts)
