"""The inbox: raw webhook bodies, committed before anyone is told 2xx.

Receipt statuses: pending → done, or failed (retried after a delay) → dead; a body that is not
well-formed is stored as quarantined. Replaying puts a receipt back to pending; the effects of
applying it again are deduplicated, so replay is always safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Dialect, Row, bindparam, delete, func, select, update

from tidings.storage.db import (
    Prepared,
    execute_many,
    fetch_column,
    insert_prepared,
    insert_returning_ids,
    prepare_insert,
    prepare_many,
    run_prepared,
)
from tidings.storage.schema import receipts

__all__ = [
    "NewReceipt",
    "ReceiptStatus",
    "claim",
    "claim_pending",
    "count_by_status",
    "get_receipt",
    "insert_receipts",
    "list_receipts",
    "mark_done_many",
    "mark_failed",
    "peek_pending",
    "prepare_done",
    "prepare_receipts",
    "purge_older_than",
    "release_due_retries",
    "replay",
]


class ReceiptStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class NewReceipt:
    connection_id: int
    provider: str
    received_at: datetime
    content_type: str
    headers: Mapping[str, str]
    body: bytes
    status: ReceiptStatus = ReceiptStatus.PENDING
    error: str | None = None


def insert_receipts(
    conn: Connection, new: Sequence[NewReceipt], prepared: Prepared | None = None
) -> list[int]:
    """Insert many receipts in one statement; ids come back in the order given.

    `prepared` (SQLite): `prepare_receipts(new)`, converted before the write transaction so
    the intake holds SQLite's one write lock only for SQLite's own work."""
    if prepared is not None and conn.dialect.name == "sqlite":
        if len(prepared.params) != len(new):
            raise ValueError("prepared receipts do not match the receipts given")
        return insert_prepared(conn, receipts, prepared)
    return insert_returning_ids(conn, receipts, _rows(new))


def prepare_receipts(dialect: Dialect, new: Sequence[NewReceipt]) -> Prepared:
    """SQLite only: the insert of `insert_receipts`, its values converted ahead."""
    return prepare_insert(dialect, receipts, _rows(new))


def _rows(new: Sequence[NewReceipt]) -> list[dict[str, Any]]:
    return [
        {
            "connection_id": r.connection_id,
            "provider": r.provider,
            "received_at": r.received_at,
            "content_type": r.content_type,
            "headers": r.headers,
            "body": r.body,
            "status": r.status.value,
            "attempts": 0,
            "error": r.error,
        }
        for r in new
    ]


def peek_pending(conn: Connection, limit: int) -> list[Row[Any]]:
    """The oldest pending receipts, read without locking (parse them, then `claim`)."""
    query = (
        select(receipts)
        .where(receipts.c.status == ReceiptStatus.PENDING.value)
        .order_by(receipts.c.id)
        .limit(limit)
    )
    return list(conn.execute(query).all())


def claim_pending(conn: Connection, limit: int) -> list[Row[Any]]:
    """The oldest pending receipts not locked by another worker, locked for this transaction
    (PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent workers take different receipts)."""
    query = (
        select(receipts)
        .where(receipts.c.status == ReceiptStatus.PENDING.value)
        .order_by(receipts.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query).all())


_PENDING_IN_RANGE = select(receipts.c.id).where(
    receipts.c.status == bindparam("status"),
    receipts.c.id.between(bindparam("low"), bindparam("high")),
)


def claim(conn: Connection, ids: Sequence[int]) -> set[int]:
    """Which of these receipts are still pending, locked for this transaction; on PostgreSQL
    rows another worker holds are skipped, so no two workers apply one receipt.

    On SQLite (one writer at a time, no row locks) one walk of the (status, id) index over
    the ids' range, instead of a lookup per id, since it runs under the file's write lock."""
    if not ids:
        return set()
    if conn.dialect.name == "sqlite":
        wanted = set(ids)
        params = {"status": ReceiptStatus.PENDING.value, "low": min(wanted), "high": max(wanted)}
        return {i for i in fetch_column(conn, _PENDING_IN_RANGE, params) if i in wanted}
    query = select(receipts.c.id).where(
        receipts.c.id.in_(list(ids)), receipts.c.status == ReceiptStatus.PENDING.value
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return {row.id for row in conn.execute(query)}


_MARK_DONE = (
    update(receipts)
    .where(receipts.c.id == bindparam("receipt_id"))
    .values(
        status=ReceiptStatus.DONE.value,
        processed_at=bindparam("now"),
        error=None,
        notes=bindparam("receipt_notes"),
        next_attempt_at=None,
        attempts=receipts.c.attempts + 1,
    )
)


def mark_done_many(
    conn: Connection,
    done: Sequence[tuple[int, list[str]]],
    now: datetime,
    prepared: Prepared | None = None,
) -> None:
    """Mark receipts done (one executemany), each with its notes (ignored or bad items).

    `prepared` (SQLite): `prepare_done(done, now)`, converted before the write lock."""
    if prepared is not None and conn.dialect.name == "sqlite":
        if len(prepared.params) != len(done):
            raise ValueError("prepared receipts do not match the receipts given")
        run_prepared(conn, prepared)
        return
    execute_many(conn, _MARK_DONE, _done_rows(done, now))


def prepare_done(
    dialect: Dialect, done: Sequence[tuple[int, list[str]]], now: datetime
) -> Prepared:
    """SQLite only: `mark_done_many`'s statement with its values converted ahead."""
    return prepare_many(dialect, _MARK_DONE, _done_rows(done, now))


def _done_rows(done: Sequence[tuple[int, list[str]]], now: datetime) -> list[dict[str, Any]]:
    return [{"receipt_id": i, "now": now, "receipt_notes": notes or None} for i, notes in done]


def mark_failed(
    conn: Connection,
    receipt_id: int,
    attempts_before: int,
    error: str,
    now: datetime,
    retry_delays: Sequence[float],
) -> ReceiptStatus:
    """Record a failure; retry after the next delay of the schedule, or dead-letter."""
    attempts = attempts_before + 1
    if attempts <= len(retry_delays):
        status = ReceiptStatus.FAILED
        next_at: datetime | None = now + timedelta(seconds=retry_delays[attempts - 1])
    else:
        status, next_at = ReceiptStatus.DEAD, None
    conn.execute(
        update(receipts)
        .where(receipts.c.id == receipt_id)
        .values(
            status=status.value,
            attempts=attempts,
            error=error[:4000],
            processed_at=now,
            next_attempt_at=next_at,
        )
    )
    return status


def release_due_retries(conn: Connection, now: datetime) -> int:
    """Failed receipts whose backoff has passed go back to pending."""
    result = conn.execute(
        update(receipts)
        .where(receipts.c.status == ReceiptStatus.FAILED.value)
        .where(receipts.c.next_attempt_at <= now)
        .values(status=ReceiptStatus.PENDING.value)
    )
    return result.rowcount


def replay(
    conn: Connection,
    ids: Sequence[int] = (),
    status: ReceiptStatus | None = None,
    connection_id: int | None = None,
    since: datetime | None = None,
) -> int:
    """Put receipts back to pending, with a fresh retry budget. Returns how many."""
    query = update(receipts).values(
        status=ReceiptStatus.PENDING.value, attempts=0, next_attempt_at=None
    )
    if ids:
        query = query.where(receipts.c.id.in_(list(ids)))
    if status is not None:
        query = query.where(receipts.c.status == status.value)
    else:
        query = query.where(receipts.c.status != ReceiptStatus.PENDING.value)
    if connection_id is not None:
        query = query.where(receipts.c.connection_id == connection_id)
    if since is not None:
        query = query.where(receipts.c.received_at >= since)
    return conn.execute(query).rowcount


def count_by_status(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(receipts.c.status, func.count()).group_by(receipts.c.status)).all()
    counts = {status.value: 0 for status in ReceiptStatus}
    counts.update({status: n for status, n in rows})
    return counts


def purge_older_than(conn: Connection, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` finished receipts received before `cutoff` (pending ones stay)."""
    ids = (
        select(receipts.c.id)
        .where(receipts.c.received_at < cutoff)
        .where(receipts.c.status != ReceiptStatus.PENDING.value)
        .where(receipts.c.status != ReceiptStatus.FAILED.value)
        .order_by(receipts.c.id)
        .limit(batch)
    )
    found = [row.id for row in conn.execute(ids)]
    if not found:
        return 0
    conn.execute(delete(receipts).where(receipts.c.id.in_(found)))
    return len(found)


def list_receipts(
    conn: Connection,
    status: ReceiptStatus | None,
    connection_id: int | None,
    after_id: int | None,
    limit: int,
) -> list[Row[Any]]:
    """Newest first, without bodies (those can be large; see `get_receipt`)."""
    columns = [c for c in receipts.c if c.name != "body"]
    query = select(*columns).order_by(receipts.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(receipts.c.status == status.value)
    if connection_id is not None:
        query = query.where(receipts.c.connection_id == connection_id)
    if after_id is not None:
        query = query.where(receipts.c.id < after_id)
    return list(conn.execute(query).all())


def get_receipt(conn: Connection, receipt_id: int) -> Row[Any] | None:
    return conn.execute(select(receipts).where(receipts.c.id == receipt_id)).first()
