"""Sends through a provider's API: the record made before the provider is called, and the
message registered from its answer (decision 0012).

`begin` records a send under its idempotency key (or finds the one already recorded, so a
retried request sends nothing); `finish` registers the message the outcome makes, through the
message kind's store (the same registration path a webhook may have beaten), and closes the
send, and its campaign contact if it has one, in the same unit of work.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from tidings.domain.errors import Conflict, Invalid
from tidings.domain.events import Incoming, NormalizedEvent, Source
from tidings.domain.message_changes import MessageItem, Registering, Registration
from tidings.domain.sending import (
    SendOutcome,
    SendStatus,
    provisional_id,
    refused_event,
    unknown_event,
)
from tidings.storage import messages
from tidings.storage.db import Database, Reader, id_in, insert_returning_ids
from tidings.storage.schema import campaign_contacts, sends
from tidings.storage.writes import Writes

__all__ = [
    "SendRecord",
    "begin",
    "by_message",
    "finish",
    "finish_many",
    "insert_queued",
    "insert_queued_many",
    "stale",
]


@dataclass(frozen=True)
class SendRecord:
    id: int
    connection_id: int
    idempotency_key: str
    status: SendStatus
    message_id: int | None
    contact_id: int | None
    provider_message_id: str | None
    http_status: int | None
    error_kind: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    finished_at: datetime | None


def _record(row: Row[Any]) -> SendRecord:
    return SendRecord(
        id=row.id,
        connection_id=row.connection_id,
        idempotency_key=row.idempotency_key,
        status=SendStatus(row.status),
        message_id=row.message_id,
        contact_id=row.contact_id,
        provider_message_id=row.provider_message_id,
        http_status=row.http_status,
        error_kind=row.error_kind,
        error_code=row.error_code,
        error_message=row.error_message,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def _registration_json(reg: Registration) -> dict[str, Any]:
    return {
        "campaign": reg.campaign,
        "recipient": reg.recipient,
        "contact_ref": reg.contact_ref,
        "metadata": dict(reg.metadata or {}),
        "channel": reg.channel,
    }


def _registration(stored: Mapping[str, Any], pmid: str) -> Registration:
    return Registration(
        provider_message_id=pmid,
        campaign=stored.get("campaign"),
        recipient=stored.get("recipient"),
        contact_ref=stored.get("contact_ref"),
        metadata=stored.get("metadata") or None,
        channel=stored.get("channel"),
    )


def insert_queued(
    conn: Connection,
    connection_id: int,
    key: str,
    registration: Registration,
    now: datetime,
    contact_id: int | None = None,
) -> int:
    """The send's record, `queued`, in the caller's transaction; its id (IntegrityError when
    the key was used already)."""
    [row] = _queued_rows(connection_id, [(key, registration, contact_id)], now)
    return int(conn.execute(insert(sends).returning(sends.c.id), row).scalar_one())


def insert_queued_many(
    conn: Connection,
    connection_id: int,
    items: Sequence[tuple[str, Registration, int | None]],
    now: datetime,
) -> list[int]:
    """`insert_queued` for many sends (key, registration, contact id) whose keys are new (a
    campaign's claim: each attempt at a contact has a key of its own); their ids, in order."""
    return insert_returning_ids(conn, sends, _queued_rows(connection_id, items, now))


def _queued_rows(
    connection_id: int, items: Sequence[tuple[str, Registration, int | None]], now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "connection_id": connection_id,
            "idempotency_key": key,
            "contact_id": contact_id,
            "registration": _registration_json(registration),
            "status": SendStatus.QUEUED.value,
            "created_at": now,
        }
        for key, registration, contact_id in items
    ]


def _find(conn: Connection, connection_id: int, key: str) -> Row[Any] | None:
    query = select(sends).where(
        sends.c.connection_id == connection_id, sends.c.idempotency_key == key
    )
    return conn.execute(query).first()


def begin(
    db: Database, connection_id: int, key: str, registration: Registration, now: datetime
) -> tuple[SendRecord, bool]:
    """Record a send before its provider is called: (the record, True) when it is new and the
    caller must send; (the earlier record, False) when this key was used already."""
    for _ in range(2):  # a concurrent request with the same key may insert first
        try:
            with db.write() as conn:
                existing = _find(conn, connection_id, key)
                if existing is not None:
                    _check_same_message(existing, key, registration)
                    return _record(existing), False
                insert_queued(conn, connection_id, key, registration, now)
                row = _find(conn, connection_id, key)
                assert row is not None
                return _record(row), True
        except IntegrityError:
            continue
    with db.read() as conn:
        row = _find(conn, connection_id, key)
    assert row is not None
    _check_same_message(row, key, registration)
    return _record(row), False


def _check_same_message(earlier: Row[Any], key: str, registration: Registration) -> None:
    """Conflict when a key comes back for another recipient or campaign: the caller reused a
    key for a new message, which would otherwise never be sent while the answer looks like
    success (the text is not kept with the send, so only these are compared)."""
    stored = earlier.registration or {}
    for name in ("recipient", "campaign"):
        if stored.get(name) != getattr(registration, name):
            raise Conflict(
                f"Idempotency-Key {key!r} was used for a send with another {name}; "
                "use a new key for a new message"
            )


def finish(
    db: Database, connection: Source, send_id: int, outcome: SendOutcome, now: datetime
) -> tuple[SendRecord, str | None]:
    """Register the message this outcome makes and close the send (and its contact) in one
    unit of work: (the send as now stored, a note when the message refused what the send
    said, e.g. it already belongs to another campaign). A send already closed (by the
    recovery of stale sends) is returned as it is."""
    notes = finish_many(db, connection, [(send_id, outcome)], now)
    with db.read() as conn:
        row = conn.execute(select(sends).where(sends.c.id == send_id)).one()
    return _record(row), notes.get(send_id)


_CLOSE_SEND = (
    update(sends)
    .where(sends.c.id == bindparam("send_id"))
    .values({name: bindparam(f"new_{name}") for name in (
        "status", "message_id", "provider_message_id", "http_status", "error_kind",
        "error_code", "error_message", "finished_at",
    )})
)  # fmt: skip
_CLOSE_CONTACT = (
    update(campaign_contacts)
    .where(campaign_contacts.c.id == bindparam("contact_id"))
    .values({name: bindparam(f"new_{name}") for name in (
        "status", "message_id", "error", "updated_at",
    )})
)  # fmt: skip


def finish_many(
    db: Database,
    connection: Source,
    outcomes: Sequence[tuple[int, SendOutcome]],
    now: datetime,
) -> dict[int, str]:
    """`finish` for many sends of one connection in one unit of work (a campaign's batch);
    the notes by send id."""
    wanted = dict(outcomes)

    def plan(reader: Reader, writes: Writes) -> dict[int, str]:
        query = select(sends).where(id_in(sends.c.id, sorted(wanted))).order_by(sends.c.id)
        rows = [r for r in reader.rows(query, lock="wait") if r.status == "queued"]
        items: list[MessageItem] = []
        named: list[tuple[Row[Any], str]] = []
        closing: list[Row[Any]] = []
        for row in rows:
            outcome = wanted[row.id]
            if outcome.status is SendStatus.DEFERRED:
                _defer(writes, row, outcome, now)
                continue
            found, pmid = _items(connection, row, outcome, now)
            items.extend(found)
            named.append((row, pmid))
            closing.append(row)
        if not items:
            return {}
        applied = messages.apply_items(reader, writes, items, now, strict=False)
        notes: dict[int, str] = {}
        send_rows: list[dict[str, Any]] = []
        contact_rows: list[dict[str, Any]] = []
        for (row, pmid), registered in zip(named, applied.plan.registered, strict=True):
            outcome = wanted[row.id]
            if isinstance(registered, Conflict | Invalid):
                notes[row.id] = str(registered)
            message_id = applied.ids.get((connection.id, pmid))
            send_rows.append(
                {
                    "send_id": row.id,
                    "new_status": outcome.status.value,
                    "new_message_id": message_id,
                    "new_provider_message_id": pmid,
                    "new_http_status": outcome.http_status,
                    "new_error_kind": outcome.error_kind,
                    "new_error_code": outcome.error_code,
                    "new_error_message": outcome.error_message or notes.get(row.id),
                    "new_finished_at": now,
                }
            )
            if row.contact_id is not None:
                contact_rows.append(
                    {
                        "contact_id": row.contact_id,
                        "new_status": outcome.status.value,
                        "new_message_id": message_id,
                        "new_error": outcome.error_message,
                        "new_updated_at": now,
                    }
                )
        writes.execute(_CLOSE_SEND, send_rows)
        writes.execute(_CLOSE_CONTACT, contact_rows)
        return notes

    return db.apply(plan)


def _defer(writes: Writes, row: Row[Any], outcome: SendOutcome, now: datetime) -> None:
    """Nothing went out: the send closes without a message, its contact waits again."""
    values = {
        "status": SendStatus.DEFERRED.value,
        "http_status": outcome.http_status,
        "error_kind": outcome.error_kind,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
        "finished_at": now,
    }
    writes.execute(update(sends).where(sends.c.id == row.id).values(values), [{}])
    if row.contact_id is not None:
        contact = {"status": "pending", "error": outcome.error_message, "updated_at": now}
        statement = update(campaign_contacts).where(campaign_contacts.c.id == row.contact_id)
        writes.execute(statement.values(contact), [{}])


def _items(
    connection: Source, row: Row[Any], outcome: SendOutcome, now: datetime
) -> tuple[list[MessageItem], str]:
    """What the outcome registers, and under which id."""
    stored = row.registration or {}
    if outcome.status is SendStatus.SENT:
        assert outcome.provider_message_id
        pmid = outcome.provider_message_id
        reg = replace(_registration(stored, pmid), sent_at=now)
        return [Registering(connection, reg, now)], pmid
    pmid = outcome.provider_message_id or provisional_id(row.idempotency_key)
    reg = replace(_registration(stored, pmid), queued=True, sent_at=row.created_at)
    event: NormalizedEvent
    if outcome.status is SendStatus.FAILED:
        event = refused_event(
            pmid,
            now,
            http_status=outcome.http_status,
            code=outcome.error_code,
            message=outcome.error_message or "refused",
            permanent=outcome.permanent,
            kind=outcome.error_kind or "refused",
        )
    else:
        event = unknown_event(pmid, now, outcome.error_message or "", outcome.error_kind or "")
    return [Registering(connection, reg, now), Incoming(connection, event, None, now)], pmid


def stale(
    conn: Connection, before: datetime, limit: int = 100, campaigns_only: bool = False
) -> list[SendRecord]:
    """Sends still `queued` since before `before`: their caller stopped (a crash, a kill)
    between recording and recording the answer. `campaigns_only`: only campaign contacts'."""
    query = (
        select(sends)
        # Spelled as the partial index's condition (a bound value would not use it on SQLite).
        .where(text("sends.status = 'queued'"), sends.c.created_at < before)
        .order_by(sends.c.created_at)
        .limit(limit)
    )
    if campaigns_only:
        query = query.where(sends.c.contact_id.is_not(None))
    return [_record(row) for row in conn.execute(query)]


def by_message(conn: Connection, message_ids: Collection[int]) -> dict[int, SendRecord]:
    """The send that made each of these messages, where tidings sent it."""
    if not message_ids:
        return {}
    query = select(sends).where(sends.c.message_id.in_(sorted(message_ids)))
    return {row.message_id: _record(row) for row in conn.execute(query)}
