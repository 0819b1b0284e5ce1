"""Claim pending receipts in batches and apply them, one transaction per batch.

If the process dies mid-batch the transaction rolls back and the receipts stay pending, so the
next run applies them; the events' unique keys make a second application a no-op. A receipt
whose parse or apply fails is rolled back alone (a savepoint), marked failed and retried later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, exc

from tidings.config import Settings
from tidings.domain.errors import StorageUnavailable
from tidings.domain.events import BadItem, Ignored, NormalizedEvent, SessionUpdate
from tidings.logging import get_logger
from tidings.metrics import EVENTS_APPLIED, RECEIPTS_PROCESSED
from tidings.providers.registry import get_provider
from tidings.storage import connections, inbox
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database
from tidings.tracking import apply_event

__all__ = ["BatchResult", "Worker", "process_batch"]

log = get_logger("worker")


@dataclass
class BatchResult:
    claimed: int = 0
    done: int = 0
    failed: int = 0
    dead: int = 0
    events: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def process_batch(
    db: Database, settings: Settings, now: Callable[[], datetime] = _utcnow
) -> BatchResult:
    """Apply up to `worker_batch_size` pending receipts in one transaction."""
    result = BatchResult()
    with db.write() as conn:
        claimed = inbox.claim_pending(conn, settings.worker_batch_size)
        result.claimed = len(claimed)
        known: dict[int, StoredConnection] = {}
        for receipt in claimed:
            _process_one(conn, receipt, known, settings, now(), result)
    RECEIPTS_PROCESSED.labels("done").inc(result.done)
    RECEIPTS_PROCESSED.labels("failed").inc(result.failed)
    RECEIPTS_PROCESSED.labels("dead").inc(result.dead)
    EVENTS_APPLIED.inc(result.events)
    return result


def _connection(conn: Connection, connection_id: int, known: dict[int, StoredConnection]) -> Any:
    if connection_id not in known:
        for c in connections.list_connections(conn):
            known[c.id] = c
    return known[connection_id]


def _process_one(
    conn: Connection,
    receipt: Row[Any],
    known: dict[int, StoredConnection],
    settings: Settings,
    now: datetime,
    result: BatchResult,
) -> None:
    connection = _connection(conn, receipt.connection_id, known)
    try:
        items = get_provider(receipt.provider).parse(receipt.body, receipt.headers or {})
        with conn.begin_nested():
            notes = _apply_items(conn, connection, receipt, items, now, result)
    except (StorageUnavailable, exc.OperationalError):
        raise  # the store itself is failing: the whole batch rolls back and is retried
    except Exception as error:  # any other fault belongs to this receipt alone
        _fail(conn, receipt, connection, f"{type(error).__name__}: {error}", settings, now, result)
        return
    inbox.mark_done(conn, receipt.id, now, notes)
    result.done += 1


def _fail(
    conn: Connection,
    receipt: Row[Any],
    connection: StoredConnection,
    error: str,
    settings: Settings,
    now: datetime,
    result: BatchResult,
) -> None:
    status = inbox.mark_failed(
        conn, receipt.id, receipt.attempts, error, now, settings.retry_delays
    )
    if status is inbox.ReceiptStatus.DEAD:
        result.dead += 1
    else:
        result.failed += 1
    result.errors.append(error)
    log.warning(
        "receipt %s (%s connection %s) %s: %s",
        receipt.id,
        connection.provider,
        connection.name,
        "dead-lettered" if status is inbox.ReceiptStatus.DEAD else "failed, will retry",
        error,
    )


def _apply_items(
    conn: Connection,
    connection: StoredConnection,
    receipt: Row[Any],
    items: list[Any],
    now: datetime,
    result: BatchResult,
) -> list[str]:
    notes: list[str] = []
    for item in items:
        if isinstance(item, NormalizedEvent):
            applied = apply_event(
                conn,
                connection,
                item,
                receipt_id=receipt.id,
                received_at=receipt.received_at,
                now=now,
            )
            if applied:
                result.events += 1
            else:
                result.duplicates += 1
        elif isinstance(item, SessionUpdate):
            at = item.occurred_at or receipt.received_at
            connections.update_session(conn, connection.id, item.state, item.qrcode, at)
        elif isinstance(item, Ignored):
            notes.append(f"ignored: {item.reason}")
        elif isinstance(item, BadItem):
            notes.append(f"item {item.index} not applied: {item.error}")
    if items:
        connections.touch_last_event(conn, connection.id, receipt.received_at)
    return notes


class Worker:
    """Runs `process_batch` in a thread until stopped; intake wakes it after each commit."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="tidings-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                result = process_batch(self._db, self._settings)
            except StorageUnavailable as error:
                log.warning("worker cannot reach the store, will retry: %s", error)
                self._stop.wait(self._settings.worker_idle_seconds)
                continue
            except Exception:
                log.exception("worker batch failed; it will be retried")
                self._stop.wait(self._settings.worker_idle_seconds)
                continue
            if result.claimed == 0:
                self._wake.wait(self._settings.worker_idle_seconds)
                self._wake.clear()
            else:
                time.sleep(0)  # let intake threads take the write lock between batches
