"""Take pending receipts in batches and apply them, one transaction per batch.

If the process dies mid-batch the transaction rolls back and the receipts stay pending, so the
next run applies them; the events' unique keys make a second application a no-op. Receipts are
parsed one by one (a body that cannot be parsed fails alone) and applied together through the
unit of work; if applying the batch fails, each receipt is applied again in a transaction of
its own, so only the faulty one is marked failed and retried later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from tidings.config import Settings
from tidings.domain.errors import PayloadError, StorageUnavailable
from tidings.domain.events import BadItem, Ignored, Incoming
from tidings.domain.outbound import dead_letter_data, webhook_id
from tidings.logging import get_logger, mask_text
from tidings.metrics import BATCH_SECONDS, EVENTS_APPLIED, RECEIPTS_PROCESSED
from tidings.providers.base import DEFAULT_REGION, DEFAULT_TIMEZONE
from tidings.providers.registry import get_provider
from tidings.storage import connections, inbox
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database, Reader
from tidings.storage.engine import NotAStore
from tidings.storage.inbox import ReceiptStatus
from tidings.storage.outbox import added as outbox_added
from tidings.storage.outbox import event as outbox_event
from tidings.storage.outbox import outbox
from tidings.storage.writes import Writes
from tidings.unit_of_work import apply_incoming

__all__ = ["BatchResult", "process_batch"]

log = get_logger("worker")

DEAD_LETTERED = "receipt.dead_lettered"


@dataclass(frozen=True)
class Failure:
    receipt_id: int
    connection: StoredConnection
    error: str
    dead: bool


@dataclass
class BatchResult:
    claimed: int = 0  # pending receipts taken to apply
    skipped: int = 0  # landed quarantined receipts moved into the inbox: taken, not applied
    done: int = 0
    failed: int = 0
    dead: int = 0
    events: int = 0
    duplicates: int = 0
    outbound: int = 0  # outbox rows written: the sender has work
    errors: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # logged once the batch committed

    def add(self, other: BatchResult) -> None:
        for name in (
            "claimed",
            "skipped",
            "done",
            "failed",
            "dead",
            "events",
            "duplicates",
            "outbound",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors
        self.failures += other.failures
        self.warnings += other.warnings


def _utcnow() -> datetime:
    return datetime.now(UTC)


def process_batch(
    db: Database, settings: Settings, now: Callable[[], datetime] = _utcnow
) -> BatchResult:
    """Apply up to `worker_batch_size` pending receipts in one transaction.

    Concurrent workers take different receipts (the store's row locks, or SQLite's one
    writer); how the batch reaches the store is `Database.apply`'s business."""
    at = now()
    started = time.perf_counter()
    taken: list[int] = []

    def plan(reader: Reader, writes: Writes) -> BatchResult:
        rows, quarantined = inbox.take_pending(reader, writes, settings.worker_batch_size)
        taken[:] = [row.id for row in rows]
        applied = _apply_receipts(reader, writes, rows, settings, at)
        applied.skipped = quarantined
        applied.outbound = outbox_added(reader)
        return applied

    try:
        result = db.apply(plan)
    except (StorageUnavailable, NotAStore):
        raise  # the store itself is failing: the whole batch rolls back and is retried
    except Exception as error:
        log.warning(
            "batch of %d receipts failed to apply (%s: %s); applying one by one",
            len(taken),
            type(error).__name__,
            error,
        )
        # Landed receipts the batch took must be in the inbox to be taken one by one: the
        # batch's limit moves them all (and the quarantined ones among them).
        limit = settings.worker_batch_size
        db.apply(lambda reader, writes: inbox.move_landed(reader, writes, limit))
        result = _one_by_one(db, settings, taken, at)
    if result.claimed:
        BATCH_SECONDS.observe(time.perf_counter() - started)
    _report(result)
    return result


def _one_by_one(db: Database, settings: Settings, ids: Sequence[int], at: datetime) -> BatchResult:
    """Each receipt in a transaction of its own; one that still fails is marked failed."""
    result = BatchResult()
    for receipt_id in ids:

        def plan(reader: Reader, writes: Writes, receipt_id: int = receipt_id) -> BatchResult:
            rows = inbox.take(reader, [receipt_id])
            applied = _apply_receipts(reader, writes, rows, settings, at)
            applied.outbound = outbox_added(reader)
            return applied

        try:
            result.add(db.apply(plan))
        except StorageUnavailable:
            raise
        except Exception as error:  # this receipt alone is faulty
            message = f"{type(error).__name__}: {error}"

            def fail(
                reader: Reader, writes: Writes, receipt_id: int = receipt_id, message: str = message
            ) -> BatchResult:
                rows = inbox.take(reader, [receipt_id])
                known = _connections(reader)
                outcome = BatchResult(claimed=len(rows))
                for row in rows:
                    connection = known[row.connection_id]
                    _fail(
                        reader, writes, row, connection, message, settings.retry_delays, at, outcome
                    )
                outcome.outbound = outbox_added(reader)
                return outcome

            result.add(db.apply(fail))
    return result


def _parse_options(connection: StoredConnection, settings: Settings) -> dict[str, str]:
    """The connection's options, plus the deployment's defaults a parser may fall back on."""
    return {
        DEFAULT_TIMEZONE: settings.timezone,
        DEFAULT_REGION: settings.default_region or "",
        **connection.options,
    }


def _connections(reader: Reader) -> dict[int, StoredConnection]:
    return connections.by_id(reader)


def _apply_receipts(
    reader: Reader, writes: Writes, rows: Sequence[Row[Any]], settings: Settings, at: datetime
) -> BatchResult:
    """Parse the receipts and add everything applying them writes (the plan of a unit of work;
    it may run twice, see `Database.apply`, so it changes nothing but `writes`)."""
    result = BatchResult(claimed=len(rows))
    if not rows:
        return result
    known = _connections(reader)
    options: dict[int, dict[str, str]] = {}  # by connection, made once per batch
    incoming: list[Incoming[Any]] = []
    notes: dict[int, list[str]] = {}
    last_event: dict[int, datetime] = {}
    for row in rows:
        connection = known[row.connection_id]
        try:
            given = options.get(connection.id)
            if given is None:
                given = options[connection.id] = _parse_options(connection, settings)
            provider = get_provider(row.provider)
            headers = row.headers  # not `or {}`: a landed receipt's are decoded on first use
            items = provider.parse_for(row.body, {} if headers is None else headers, given)
        except PayloadError as error:  # no shape this provider sends: retrying changes nothing
            _fail(reader, writes, row, connection, str(error), (), at, result)
            continue
        except Exception as error:  # a bug in an adapter: may pass with an upgrade, so retried
            message = f"{type(error).__name__}: {error}"
            _fail(reader, writes, row, connection, message, settings.retry_delays, at, result)
            continue
        receipt_notes = notes[row.id] = []
        for item in items:
            if isinstance(item, Ignored | BadItem):
                receipt_notes.append(item.note)
            else:
                incoming.append(Incoming(connection, item, row.id, row.received_at))
        previous = last_event.get(connection.id)
        if items and (previous is None or row.received_at > previous):
            last_event[connection.id] = row.received_at
    outcome = apply_incoming(reader, writes, incoming, at)
    by_receipt = {row.id: known[row.connection_id] for row in rows}
    for receipt_id, more in outcome.notes.items():
        notes[receipt_id].extend(more)
        source = by_receipt[receipt_id]
        result.warnings += [
            f"receipt {receipt_id} ({source.provider} connection {source.name}): {note}"
            for note in more
        ]
    connections.touch_last_event(writes, last_event)
    inbox.mark_done(writes, list(notes.items()), at)
    result.done = len(notes)
    result.events = outcome.applied
    result.duplicates = outcome.duplicates
    return result


def _fail(
    reader: Reader,
    writes: Writes,
    receipt: Row[Any],
    connection: StoredConnection,
    error: str,
    retry_delays: Sequence[float],
    at: datetime,
    result: BatchResult,
) -> None:
    status = inbox.mark_failed(writes, receipt, error, at, retry_delays)
    dead = status is ReceiptStatus.DEAD
    if dead:
        _announce_dead_letter(reader, writes, receipt, connection, error, at)
    result.dead += dead
    result.failed += not dead
    result.errors.append(error)
    result.failures.append(Failure(receipt.id, connection, error, dead))


def _announce_dead_letter(
    reader: Reader,
    writes: Writes,
    receipt: Row[Any],
    connection: StoredConnection,
    error: str,
    at: datetime,
) -> None:
    """`receipt.dead_lettered` to the subscriptions that want it: a person must look."""
    box = outbox(reader)
    if not box or not box.wants(DEAD_LETTERED, connection.id, None):
        return
    attempts = receipt.attempts + 1
    data = dead_letter_data(connection, receipt.id, receipt.received_at, attempts, mask_text(error))
    key = webhook_id("receipt", receipt.id, attempts)
    row = outbox_event(key, DEAD_LETTERED, data, at, at, connection_id=connection.id)
    box.add(writes, [row])


def _report(result: BatchResult) -> None:
    """Log and count what a committed batch did (a plan may run twice; this runs once)."""
    for failure in result.failures:
        log.warning(
            "receipt %s (%s connection %s) %s: %s",
            failure.receipt_id,
            failure.connection.provider,
            failure.connection.name,
            "dead-lettered" if failure.dead else "failed, will retry",
            failure.error,
        )
    for warning in result.warnings:
        log.warning("%s", warning)
    RECEIPTS_PROCESSED.labels("done").inc(result.done)
    RECEIPTS_PROCESSED.labels("failed").inc(result.failed)
    RECEIPTS_PROCESSED.labels("dead").inc(result.dead)
    EVENTS_APPLIED.inc(result.events)
