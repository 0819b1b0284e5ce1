"""The inbox: raw webhook bodies, committed before anyone is told 2xx.

Receipt statuses: pending → done, or failed (retried after a delay) → dead; a body that is not
well-formed is stored as quarantined. Replaying puts a receipt back to pending; the effects of
applying it again are deduplicated, so replay is always safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from tidings.storage import landing
from tidings.storage.db import Database, Reader
from tidings.storage.schema import receipts
from tidings.storage.writes import Execute, Writes

__all__ = [
    "NewReceipt",
    "ReceiptSource",
    "ReceiptStatus",
    "append",
    "count_by_status",
    "count_with",
    "delete_finished",
    "get_receipt",
    "insert_receipts",
    "list_receipts",
    "mark_done",
    "mark_failed",
    "move_landed",
    "purgeable",
    "release_due_retries",
    "replay",
    "take",
    "take_pending",
]


class ReceiptSource(StrEnum):
    """How a body reached the inbox: a provider's webhook, or the verification poll fetching
    it from the provider's API. Both are applied the same way."""

    WEBHOOK = "webhook"
    POLL = "poll"


class ReceiptStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    QUARANTINED = "quarantined"


class NewReceipt(NamedTuple):
    """A receipt to commit. (A named tuple: the intake makes one per webhook, and a frozen
    dataclass cost it a microsecond more.)"""

    connection_id: int
    provider: str
    received_at: datetime
    content_type: str
    headers: Mapping[str, str]
    body: bytes
    status: ReceiptStatus = ReceiptStatus.PENDING
    error: str | None = None


def append(
    db: Database, new: Sequence[NewReceipt], source: ReceiptSource = ReceiptSource.WEBHOOK
) -> list[int]:
    """Commit receipts (the intake's group commit, or a page the poll fetched); their ids, in
    the order given. On SQLite they land in the landing file (`storage.landing`)."""
    if db.landing is not None and source is ReceiptSource.WEBHOOK:  # the intake's hot path
        # A new receipt is already in the shape `append_new` takes: its fields in
        # `NEW_COLUMNS`' order, the status a text (a StrEnum); no tuple is made to pass it on.
        landed_ids = landing.append_new(db, new)
        if landed_ids is not None:
            return landed_ids
    rows = _rows(new)
    if source is not ReceiptSource.WEBHOOK:  # webhooks take the column's default
        for row in rows:
            row["source"] = source.value
    if db.landing is not None:
        for row in rows:
            del row["attempts"]  # a landed receipt was never tried; the column is not there
        landed_ids = landing.append(db, rows)
        if landed_ids is not None:
            return landed_ids
    return db.append(receipts, rows)


def insert_receipts(conn: Connection, new: Sequence[NewReceipt]) -> list[int]:
    """Insert receipts in the caller's transaction; their ids, in the order given (on a
    store with a landing file, ids no landed receipt gets: `landing.reserve_ids`)."""
    if not new:
        return []
    owner = Database.owning(conn)
    if owner is not None and owner.landing is not None:
        ids = landing.reserve_ids(owner, conn, len(new))
        if ids is not None:
            rows = _rows(new)
            for receipt_id, row in zip(ids, rows, strict=True):
                row["id"] = receipt_id
            conn.execute(receipts.insert(), rows)
            return ids
    statement = receipts.insert().returning(receipts.c.id, sort_by_parameter_order=True)
    return [row.id for row in conn.execute(statement, _rows(new))]


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


# What applying a receipt reads of it (the rest is for people and the retry schedule).
_PENDING = select(
    receipts.c.id,
    receipts.c.connection_id,
    receipts.c.provider,
    receipts.c.received_at,
    receipts.c.headers,
    receipts.c.body,
    receipts.c.attempts,
).where(receipts.c.status == ReceiptStatus.PENDING.value)


def take_pending(reader: Reader, writes: Writes, limit: int) -> tuple[list[Any], int]:
    """The oldest pending receipts (walking the (status, id) index), each with the columns
    applying reads, by name, and how many quarantined ones were taken with them. Where the
    store locks rows, they stay locked for this unit of work and rows another worker holds
    are skipped, so concurrent workers take different receipts. Where receipts land in a file
    of their own, landed ones follow, moved into the inbox by `writes` (`move_landed`), the
    quarantined among them too: taken, with nothing to apply."""
    rows = reader.plain_rows(_oldest_pending(limit), lock="skip")
    quarantined = 0
    if len(rows) < limit:
        for row in move_landed(reader, writes, limit - len(rows)):
            if row.status == ReceiptStatus.PENDING.value:
                rows.append(row)
            else:
                quarantined += 1
    return rows, quarantined


def move_landed(reader: Reader, writes: Writes, limit: int) -> list[Any]:
    """Up to `limit` landed receipts, oldest first, moved into the inbox as they landed
    (pending or quarantined) by `writes`, with the offset past them (`storage.landing`);
    none where the store has no landing file. Mark the pending ones in the same writes."""
    owner = Database.owning(reader.conn)
    if owner is None or owner.landing is None:
        return []
    return landing.take(owner, reader.conn, writes, limit)


@lru_cache(maxsize=8)
def _oldest_pending(limit: int) -> Select[Any]:
    """Built once per batch size, so SQLite's fast read compiles it once."""
    return _PENDING.order_by(receipts.c.id).limit(limit)


def take(reader: Reader, ids: Sequence[int]) -> list[Row[Any]]:
    """Those of these receipts that are still pending, locked like `take_pending`'s."""
    if not ids:
        return []
    query = _PENDING.where(receipts.c.id.in_(sorted(ids))).order_by(receipts.c.id)
    return reader.rows(query, lock="skip")


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


_MARK_RANGE_DONE = (
    update(receipts)
    .where(receipts.c.id.between(bindparam("low"), bindparam("high")))
    .values(
        status=ReceiptStatus.DONE.value,
        processed_at=bindparam("now"),
        error=None,
        notes=bindparam("receipt_notes"),  # None, written as JSON writes it ('null')
        next_attempt_at=None,
        attempts=receipts.c.attempts + 1,
    )
)


def _moving(writes: Writes) -> list[dict[str, Any]]:
    """The moves of landed receipts `writes` make (`move_landed`): their rows (the ids they
    copy, and the status those landed pending get)."""
    return [
        row  # type: ignore[misc]  # the rows `landing.take` made: dicts
        for item in writes.items
        if isinstance(item, Execute) and item.statement is landing.MOVE
        for row in item.rows
    ]


_NOTES = (
    update(receipts)
    .where(receipts.c.id == bindparam("receipt_id"))
    .values(notes=bindparam("receipt_notes"))
)


def mark_done(writes: Writes, done: Sequence[tuple[int, list[str]]], now: datetime) -> None:
    """Mark receipts done, each with its notes (ignored, bad or cut items). Receipts moved in
    from the landing file by the same writes are marked in the move (each is then written
    once); of the others, consecutive ids without notes, nearly every batch under load, take
    one ranged statement: the same rows, without a statement and its parameters for each."""
    moves = _moving(writes)
    if moves:
        moved = [(i, notes) for i, notes in done if any(i in m["landed"] for m in moves)]
        for move in moves if moved else ():  # one this unit of work fails is marked after
            move.update(status=ReceiptStatus.DONE.value, attempts=1, processed_at=now)
            move["notes"] = "null"  # JSON's null, as the column stores None
        noted = [{"receipt_id": i, "receipt_notes": notes} for i, notes in moved if notes]
        writes.execute(_NOTES, noted)
        taken = {i for i, _notes in moved}
        done = [(i, notes) for i, notes in done if i not in taken]
    plain = sorted(i for i, notes in done if not notes)
    one_by_one = [(i, notes) for i, notes in done if notes]
    if plain and plain[-1] - plain[0] + 1 == len(plain) == len(set(plain)):
        writes.execute(
            _MARK_RANGE_DONE,
            [{"low": plain[0], "high": plain[-1], "now": now, "receipt_notes": None}],
        )
    else:
        one_by_one += [(i, []) for i in plain]
    writes.execute(
        _MARK_DONE,
        [{"receipt_id": i, "now": now, "receipt_notes": n or None} for i, n in one_by_one],
    )


_MARK_FAILED = (
    update(receipts)
    .where(receipts.c.id == bindparam("receipt_id"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("new_attempts"),
        error=bindparam("new_error"),
        processed_at=bindparam("now"),
        next_attempt_at=bindparam("next_at"),
    )
)


def mark_failed(
    writes: Writes,
    receipt: Row[Any],
    error: str,
    now: datetime,
    retry_delays: Sequence[float],
) -> ReceiptStatus:
    """Record a failure; retry after the next delay of the schedule, or dead-letter (at once
    with no delays, for a body that can never apply)."""
    attempts = receipt.attempts + 1
    if attempts <= len(retry_delays):
        status = ReceiptStatus.FAILED
        next_at: datetime | None = now + timedelta(seconds=retry_delays[attempts - 1])
    else:
        status, next_at = ReceiptStatus.DEAD, None
    row = {
        "receipt_id": receipt.id,
        "new_status": status.value,
        "new_attempts": attempts,
        "new_error": error[:4000],
        "now": now,
        "next_at": next_at,
    }
    writes.execute(_MARK_FAILED, [row])
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
    for status, n in _landed_counts(conn).items():
        counts[status] = counts.get(status, 0) + n
    return counts


def count_with(conn: Connection, statuses: Iterable[ReceiptStatus]) -> dict[str, int]:
    """How many receipts have each of `statuses`: one walk of the (status, id) index each, so
    it costs what those statuses hold, not what the inbox holds (leave `done` out)."""
    wanted = list(statuses)
    landed = _landed_counts(conn) if wanted else {}
    return {
        s.value: int(
            conn.execute(
                select(func.count()).select_from(receipts).where(receipts.c.status == s.value)
            ).scalar_one()
        )
        + landed.get(s.value, 0)
        for s in wanted
    }


def _landed_counts(conn: Connection) -> dict[str, int]:
    """Receipts landed and not yet moved into the inbox, by status (`storage.landing`)."""
    owner = Database.owning(conn)
    if owner is None or owner.landing is None:
        return {}
    return landing.count_above(owner, conn)


_FINISHED = receipts.c.status.not_in([ReceiptStatus.PENDING.value, ReceiptStatus.FAILED.value])


def purgeable(
    conn: Connection, cutoff: datetime, after: datetime | None, batch: int
) -> list[Row[Any]]:
    """Up to `batch` finished receipts (id and receipt time) received before `cutoff` and not
    before `after`, oldest first: a walk of the received_at index that stops after `batch`
    rows, whatever the size of the inbox. Pending and failed receipts stay."""
    query: Select[Any] = (
        select(receipts.c.id, receipts.c.received_at)
        .where(receipts.c.received_at < cutoff, _FINISHED)
        .order_by(receipts.c.received_at)
        .limit(batch)
    )
    if after is not None:
        query = query.where(receipts.c.received_at >= after)
    return list(conn.execute(query).all())


def delete_finished(conn: Connection, ids: Sequence[int]) -> int:
    """Delete these receipts if they are still finished (a replay may have put one back),
    except the newest receipt of all. SQLite numbers a new row after the largest id left in
    the table, so a purge that emptied it would give ids already given again, and old events,
    calls and dead-letter announcements would name new receipts; the newest one stays until
    a newer one arrives."""
    if not ids:
        return 0
    newest = select(func.max(receipts.c.id)).scalar_subquery()
    statement = delete(receipts).where(
        receipts.c.id.in_(list(ids)), _FINISHED, receipts.c.id < newest
    )
    return conn.execute(statement).rowcount


def list_receipts(
    conn: Connection,
    status: ReceiptStatus | None,
    connection_id: int | None,
    after_id: int | None,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Row[Any]]:
    """Newest first, without bodies (those can be large; see `get_receipt`); received in
    [since, until) when given."""

    def where(c: ReadOnlyColumnCollection[str, Any]) -> list[ColumnElement[bool]]:
        """The filters, on the inbox's columns or the landing file's (the same names)."""
        conditions: list[ColumnElement[bool]] = []
        if status is not None:
            conditions.append(c.status == status.value)
        if connection_id is not None:
            conditions.append(c.connection_id == connection_id)
        if after_id is not None:
            conditions.append(c.id < after_id)
        if since is not None:
            conditions.append(c.received_at >= since)
        if until is not None:
            conditions.append(c.received_at < until)
        return conditions

    columns = [c for c in receipts.c if c.name != "body"]
    query = select(*columns).where(*where(receipts.c)).order_by(receipts.c.id.desc()).limit(limit)
    rows = list(conn.execute(query).all())
    owner = Database.owning(conn)
    if owner is None or owner.landing is None:
        return rows
    rows += landing.rows_above(owner, conn, where, limit)
    return sorted(rows, key=lambda row: row.id, reverse=True)[:limit]


def get_receipt(conn: Connection, receipt_id: int) -> Row[Any] | None:
    """A receipt, in the inbox or landed and not yet moved into it."""
    row = conn.execute(select(receipts).where(receipts.c.id == receipt_id)).first()
    owner = Database.owning(conn)
    if row is not None or owner is None or owner.landing is None:
        return row
    return landing.find(owner, conn, receipt_id)
