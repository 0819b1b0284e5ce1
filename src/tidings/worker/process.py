"""Claim pending receipts in batches and apply them, one transaction per batch.

If the process dies mid-batch the transaction rolls back and the receipts stay pending, so the
next run applies them; the events' unique keys make a second application a no-op. Receipts are
parsed one by one (a body that cannot be parsed fails alone) and applied together; if applying
the batch fails, each receipt is applied again on its own (a savepoint each) so only the
faulty one is marked failed and retried later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, exc

from tidings.config import Settings
from tidings.domain.errors import StorageUnavailable
from tidings.domain.events import BadItem, Ignored, NormalizedEvent, ParsedItem, SessionUpdate
from tidings.logging import get_logger
from tidings.metrics import EVENTS_APPLIED, RECEIPTS_PROCESSED
from tidings.providers.registry import get_provider
from tidings.storage import connections, inbox, messages
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database, Prepared
from tidings.tracking import (
    EventPlan,
    Incoming,
    plan_events,
    prepare_ahead,
    unstorable,
    write_plan,
)

__all__ = ["BatchResult", "process_batch"]

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


@dataclass(frozen=True)
class _Parsed:
    receipt: Row[Any]
    connection: StoredConnection
    items: list[ParsedItem]
    error: str | None = None


@dataclass
class _Collected:
    """The items of parsed receipts, sorted by what applying them means."""

    incoming: list[Incoming] = field(default_factory=list)
    notes: dict[int, list[str]] = field(default_factory=dict)
    sessions: list[tuple[int, SessionUpdate, datetime]] = field(default_factory=list)
    last_event: dict[int, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class _Planned:
    """A batch planned from a snapshot, before the write lock was taken."""

    collected: _Collected
    plan: EventPlan
    done: Prepared  # marking the batch's receipts done, converted ahead too


def _utcnow() -> datetime:
    return datetime.now(UTC)


def process_batch(
    db: Database, settings: Settings, now: Callable[[], datetime] = _utcnow
) -> BatchResult:
    """Apply up to `worker_batch_size` pending receipts in one transaction.

    On SQLite the write lock is one for the whole file, and the intake needs it too; so
    receipts are read, parsed and planned (every row the batch will write, `plan_events`) from
    a snapshot before the write transaction starts, and under the lock the plan is only
    written, if the tracking version shows nothing changed messages meanwhile. On
    PostgreSQL, rows are claimed with FOR UPDATE SKIP LOCKED inside the transaction, so workers
    share the inbox without waiting for each other or applying one receipt twice.
    """
    result = BatchResult()
    limit = settings.worker_batch_size
    if db.is_sqlite:
        at = now()
        with db.read() as conn:
            candidates = inbox.peek_pending(conn, limit)
            if not candidates:
                return result
            known = _connections(conn)
            parsed = [_parse(r, known[r.connection_id]) for r in candidates]
            version = messages.read_version(conn)
            planned = _plan_ahead(conn, parsed, at)
        with db.write() as conn:
            claimed = inbox.claim(conn, [r.id for r in candidates])
            batch = [p for p in parsed if p.receipt.id in claimed]
            if len(batch) != len(parsed) or messages.read_version(conn) != version:
                planned = None  # something moved since the snapshot: plan again, under the lock
            result.claimed = len(batch)
            if batch:
                _process(conn, batch, settings, at, result, planned)
    else:
        with db.write() as conn:
            rows = inbox.claim_pending(conn, limit)
            if rows:
                known = _connections(conn)
                batch = [_parse(r, known[r.connection_id]) for r in rows]
                result.claimed = len(batch)
                _process(conn, batch, settings, now(), result)
    RECEIPTS_PROCESSED.labels("done").inc(result.done)
    RECEIPTS_PROCESSED.labels("failed").inc(result.failed)
    RECEIPTS_PROCESSED.labels("dead").inc(result.dead)
    EVENTS_APPLIED.inc(result.events)
    return result


def _connections(conn: Connection) -> dict[int, StoredConnection]:
    return {c.id: c for c in connections.list_connections(conn)}


def _parse(receipt: Row[Any], connection: StoredConnection) -> _Parsed:
    try:
        items = get_provider(receipt.provider).parse(receipt.body, receipt.headers or {})
    except Exception as error:  # a body the adapter cannot read fails alone
        return _Parsed(receipt, connection, [], f"{type(error).__name__}: {error}")
    return _Parsed(receipt, connection, items)


def _plan_ahead(conn: Connection, batch: list[_Parsed], now: datetime) -> _Planned | None:
    """Plan the batch's writes from a read snapshot; None when that fails (the batch is then
    planned under the lock, where a faulty receipt can be found and failed alone)."""
    parsed = [p for p in batch if p.error is None]
    collected = _collect(parsed)
    try:
        plan = plan_events(conn, collected.incoming, now)
        prepare_ahead(conn, plan, now)
        done = inbox.prepare_done(conn.dialect, _done(parsed, collected.notes), now)
        return _Planned(collected, plan, done)
    except (StorageUnavailable, exc.OperationalError, sqlite3.OperationalError):
        raise
    except Exception as error:
        log.info("could not plan a batch ahead (%s); planning it under the lock", error)
        return None


def _process(
    conn: Connection,
    batch: list[_Parsed],
    settings: Settings,
    now: datetime,
    result: BatchResult,
    planned: _Planned | None = None,
) -> None:
    parsed: list[_Parsed] = []
    for one in batch:
        if one.error is None:
            parsed.append(one)
        else:
            _fail(conn, one.receipt, one.connection, one.error, settings, now, result)
    try:
        with conn.begin_nested():
            notes = _apply(conn, parsed, now, result, planned)
    except (StorageUnavailable, exc.OperationalError, sqlite3.OperationalError):
        raise  # the store itself is failing: the whole batch rolls back and is retried
    except Exception:
        log.warning("batch of %d receipts failed to apply; applying one by one", len(parsed))
        _apply_one_by_one(conn, parsed, settings, now, result)
        return
    prepared = planned.done if planned is not None else None
    inbox.mark_done_many(conn, _done(parsed, notes), now, prepared)
    result.done += len(parsed)


def _done(parsed: Sequence[_Parsed], notes: dict[int, list[str]]) -> list[tuple[int, list[str]]]:
    return [(p.receipt.id, notes[p.receipt.id]) for p in parsed]


def _apply_one_by_one(
    conn: Connection, parsed: list[_Parsed], settings: Settings, now: datetime, result: BatchResult
) -> None:
    for one in parsed:
        try:
            with conn.begin_nested():
                notes = _apply(conn, [one], now, result)
        except (StorageUnavailable, exc.OperationalError, sqlite3.OperationalError):
            raise
        except Exception as error:  # this receipt alone is faulty
            message = f"{type(error).__name__}: {error}"
            _fail(conn, one.receipt, one.connection, message, settings, now, result)
            continue
        inbox.mark_done_many(conn, [(one.receipt.id, notes[one.receipt.id])], now)
        result.done += 1


def _collect(parsed: Sequence[_Parsed]) -> _Collected:
    collected = _Collected()
    for p in parsed:
        receipt, connection = p.receipt, p.connection
        notes = collected.notes[receipt.id] = []
        for item in p.items:
            if isinstance(item, NormalizedEvent):
                problem = unstorable(item)
                if problem:
                    notes.append(
                        f"item for {item.provider_message_id[:60]!r} not applied: {problem}"
                    )
                    continue
                collected.incoming.append(
                    Incoming(connection, item, receipt.id, receipt.received_at)
                )
            elif isinstance(item, SessionUpdate):
                at = item.occurred_at or receipt.received_at
                collected.sessions.append((connection.id, item, at))
            elif isinstance(item, Ignored):
                notes.append(f"ignored: {item.reason}")
            elif isinstance(item, BadItem):
                notes.append(f"item {item.index} not applied: {item.error}")
        if p.items:
            previous = collected.last_event.get(connection.id)
            if previous is None or receipt.received_at > previous:
                collected.last_event[connection.id] = receipt.received_at
    return collected


def _apply(
    conn: Connection,
    parsed: Sequence[_Parsed],
    now: datetime,
    result: BatchResult,
    planned: _Planned | None = None,
) -> dict[int, list[str]]:
    """Apply every item of these receipts (as planned, if given); returns each one's notes."""
    if planned is not None:
        collected, plan = planned.collected, planned.plan
    else:
        collected = _collect(parsed)
        plan = plan_events(conn, collected.incoming, now)
    for connection_id, update, at in collected.sessions:
        connections.update_session(conn, connection_id, update.state, update.qrcode, at)
    write_plan(conn, plan, now)
    result.events += plan.result.applied
    result.duplicates += plan.result.duplicates
    for connection_id, at in collected.last_event.items():
        connections.touch_last_event(conn, connection_id, at)
    return collected.notes


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
    dead = status is inbox.ReceiptStatus.DEAD
    result.dead += dead
    result.failed += not dead
    result.errors.append(error)
    log.warning(
        "receipt %s (%s connection %s) %s: %s",
        receipt.id,
        connection.provider,
        connection.name,
        "dead-lettered" if dead else "failed, will retry",
        error,
    )
