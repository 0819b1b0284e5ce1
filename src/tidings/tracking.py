"""How events and registrations change messages: the unit of work shared by the worker (events
from webhooks, applied a batch at a time) and the API (registrations).

Everything runs inside the caller's transaction, so event rows, message states and campaign
counters move together. A batch costs a handful of statements whatever its size: messages are
created and loaded together (locked on PostgreSQL, so concurrent workers serialise per
message), known dedup keys are read once, states are folded in memory by the pure lifecycle,
and the results are written back with executemany. Counters are derived from states, so even
an event applied twice could not move them twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from tidings.domain.counters import COUNTERS, delta
from tidings.domain.dedup import dedup_key
from tidings.domain.errors import Conflict
from tidings.domain.events import EventKind, NormalizedEvent
from tidings.domain.lifecycle import MessageState, advance
from tidings.logging import get_logger
from tidings.storage import campaigns, messages
from tidings.storage.connections import StoredConnection
from tidings.storage.db import insert_ignoring_duplicates
from tidings.storage.schema import events
from tidings.storage.schema import messages as messages_table

__all__ = [
    "ApplyResult",
    "Incoming",
    "Registration",
    "apply_events",
    "register_message",
    "unstorable",
]

log = get_logger("tracking")

_CHUNK = 500


@dataclass(frozen=True)
class Incoming:
    """One normalized event with where and when it arrived."""

    connection: StoredConnection
    event: NormalizedEvent
    receipt_id: int | None
    received_at: datetime


@dataclass
class ApplyResult:
    applied: int = 0
    duplicates: int = 0


@dataclass
class _Change:
    """What a batch does to one message, accumulated before anything is written."""

    row: Row[Any]
    before: MessageState
    after: MessageState
    fields: dict[str, Any] = field(default_factory=dict)
    campaign_key: str | None = None


def _campaign_and_contact(
    connection: StoredConnection, metadata: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The campaign and contact named by the connection's `campaign_key`/`contact_ref_key`."""
    campaign_key = connection.options.get("campaign_key")
    contact_key = connection.options.get("contact_ref_key")
    campaign = metadata.get(campaign_key) if campaign_key else None
    contact = metadata.get(contact_key) if contact_key else None
    return (campaign or None), (contact or None)


# Column sizes in storage/schema.py; SQLite ignores them, PostgreSQL refuses longer values.
_LIMITS = {"provider_message_id": 200, "channel": 20, "recipient": 320}


def unstorable(event: NormalizedEvent) -> str | None:
    """Why the store cannot hold this event (too long, or a NUL character), or None.

    Checked before applying, so one such item of a multi-item body is recorded as not applied
    while the others still apply, on PostgreSQL as on SQLite.
    """
    if not event.provider_message_id:
        return "no message id"
    for name, limit in _LIMITS.items():
        value = getattr(event, name)
        if value is not None and len(value) > limit:
            return f"{name} longer than {limit} characters"
    texts = [
        event.provider_message_id,
        event.raw_status,
        event.channel or "",
        event.recipient or "",
    ]
    texts += [str(k) + str(v) for k, v in event.metadata.items()]
    if any("\x00" in text for text in texts):
        return "a NUL character in a text field"
    return None


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _metadata(event: NormalizedEvent) -> dict[str, str]:
    return {str(k): str(v) for k, v in event.metadata.items()}


def _ensure_messages(
    conn: Connection, incoming: Sequence[Incoming], now: datetime
) -> dict[tuple[int, str], Row[Any]]:
    """Create the messages not seen before, then load (and on PostgreSQL lock) all of them."""
    first: dict[tuple[int, str], Incoming] = {}
    for item in incoming:
        first.setdefault((item.connection.id, item.event.provider_message_id), item)
    keys = sorted(first)
    new_rows: list[dict[str, Any]] = [
        {
            "connection_id": cid,
            "provider_message_id": pmid,
            "state": MessageState().status.value,
            "sequence": 0,
            "metadata": {},
            "failed_after_send": False,
            "created_at": now,
            "updated_at": now,
            "channel": first[(cid, pmid)].event.channel,
            "recipient": first[(cid, pmid)].event.recipient,
        }
        for cid, pmid in keys
    ]
    if new_rows:
        conn.execute(insert_ignoring_duplicates(conn, messages_table), new_rows)
    by_connection: dict[int, list[str]] = defaultdict(list)
    for cid, pmid in keys:
        by_connection[cid].append(pmid)
    rows: dict[tuple[int, str], Row[Any]] = {}
    table = messages_table.c
    for cid, ids in by_connection.items():
        for chunk in _chunks(ids):
            query = (
                select(messages_table)
                .where(table.connection_id == cid, table.provider_message_id.in_(chunk))
                .order_by(table.id)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            for row in conn.execute(query):
                rows[(cid, row.provider_message_id)] = row
    return rows


def _known_keys(conn: Connection, message_ids: Sequence[int]) -> set[tuple[int, str]]:
    known: set[tuple[int, str]] = set()
    for chunk in _chunks(message_ids):
        query = select(events.c.message_id, events.c.dedup_key).where(
            events.c.message_id.in_(chunk)
        )
        known.update((r.message_id, r.dedup_key) for r in conn.execute(query))
    return known


def _event_row(item: Incoming, message_id: int, key: str) -> dict[str, Any]:
    event = item.event
    details: dict[str, Any] = dict(event.details)
    if event.kind is EventKind.FAILED:
        details["failure"] = {
            "code": event.failure_code,
            "reason": event.failure_reason,
            "permanent": event.failure_permanent,
            "after_send": event.after_send,
        }
    return {
        "message_id": message_id,
        "dedup_key": key,
        "kind": event.kind.value,
        "raw_status": event.raw_status[:100],
        "occurred_at": event.occurred_at or item.received_at,
        "provider_time": event.occurred_at,
        "received_at": item.received_at,
        "receipt_id": item.receipt_id,
        "details": details,
    }


def _fill(change: _Change, name: str, value: Any) -> None:
    """Fill a field a later source knows; never overwrite what is already known."""
    if value is not None and getattr(change.row, name) is None and name not in change.fields:
        change.fields[name] = value


def _merge_metadata(change: _Change, extra: Mapping[str, Any]) -> None:
    current = change.fields.get("metadata", dict(change.row.metadata or {}))
    added = {k: v for k, v in extra.items() if k not in current}
    if added:
        change.fields["metadata"] = {**current, **added}


def apply_events(conn: Connection, incoming: Sequence[Incoming], now: datetime) -> ApplyResult:
    """Record the events (deduplicated) and advance their messages and campaign counters."""
    result = ApplyResult()
    if not incoming:
        return result
    rows = _ensure_messages(conn, incoming, now)
    known = _known_keys(conn, sorted(row.id for row in rows.values()))
    changes: dict[int, _Change] = {}
    new_events: list[dict[str, Any]] = []
    for item in incoming:
        event = item.event
        row = rows[(item.connection.id, event.provider_message_id)]
        key = dedup_key(event)
        if (row.id, key) in known:
            result.duplicates += 1
            continue
        known.add((row.id, key))
        result.applied += 1
        new_events.append(_event_row(item, row.id, key))
        if event.kind is EventKind.UNKNOWN:
            log.warning(
                "unknown status %r from %s connection %s; recorded, state unchanged",
                event.raw_status,
                item.connection.provider,
                item.connection.name,
            )
        change = changes.get(row.id)
        if change is None:
            state = messages.state_from_row(row)
            change = changes[row.id] = _Change(row, state, state)
        metadata = _metadata(event)
        campaign_key, contact_ref = _campaign_and_contact(item.connection, metadata)
        _fill(change, "channel", event.channel)
        _fill(change, "recipient", event.recipient)
        _fill(change, "contact_ref", contact_ref)
        _merge_metadata(change, metadata)
        if change.campaign_key is None and row.campaign_id is None:
            change.campaign_key = campaign_key
        change.after = advance(change.after, event, event.occurred_at or item.received_at)
    if new_events:
        conn.execute(events.insert(), new_events)
    _write_changes(conn, list(changes.values()), now)
    return result


_MUTABLE = (
    "state",
    "sequence",
    "queued_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "failed_after_send",
    "failure_at",
    "failure_code",
    "failure_reason",
    "failure_permanent",
    "played_at",
    "opened_at",
    "clicked_at",
    "unsubscribed_at",
    "complained_at",
    "channel",
    "recipient",
    "contact_ref",
    "metadata",
    "campaign_id",
    "updated_at",
)

_UPDATE_MESSAGE = (
    update(messages_table)
    .where(messages_table.c.id == bindparam("message_id"))
    .values({name: bindparam(f"new_{name}") for name in _MUTABLE})
)


def _write_changes(conn: Connection, changes: Sequence[_Change], now: datetime) -> None:
    """One executemany for the messages, one counter update per campaign touched."""
    campaign_ids: dict[str, int] = {}
    deltas: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    updates: list[dict[str, Any]] = []
    for key in sorted({c.campaign_key for c in changes if c.campaign_key}):
        campaign_ids[key] = campaigns.ensure_campaign(conn, key, now)
    for change in changes:
        row = change.row
        campaign_id = row.campaign_id
        previous: MessageState | None = change.before
        if campaign_id is None and change.campaign_key:
            campaign_id = campaign_ids[change.campaign_key]
            previous = None  # newly counted: its whole contribution is added
        if campaign_id is not None:
            for name, value in delta(previous, change.after).items():
                deltas[campaign_id][name] += value
        if change.after == change.before and not change.fields and campaign_id == row.campaign_id:
            continue
        values = {**messages.state_values(change.after)}
        for name in ("channel", "recipient", "contact_ref"):
            values[name] = change.fields.get(name, getattr(row, name))
        values["metadata"] = change.fields.get("metadata", row.metadata or {})
        values["campaign_id"] = campaign_id
        values["updated_at"] = now
        updates.append({"message_id": row.id, **{f"new_{k}": v for k, v in values.items()}})
    if updates:
        conn.execute(_UPDATE_MESSAGE, updates)
    # In id order, so two workers touching the same campaigns lock them in the same order.
    for campaign_id in sorted(deltas):
        changed = deltas[campaign_id]
        campaigns.apply_delta(conn, campaign_id, {k: v for k, v in changed.items() if v})


@dataclass(frozen=True)
class Registration:
    provider_message_id: str
    campaign: str | None = None
    recipient: str | None = None
    contact_ref: str | None = None
    metadata: Mapping[str, Any] | None = None
    channel: str | None = None
    sent_at: datetime | None = None


def register_message(
    conn: Connection, connection: StoredConnection, reg: Registration, now: datetime
) -> tuple[int, bool]:
    """Register a message sent elsewhere. Returns (message id, first registration?).

    Registration puts the message at least in `sent` (at `sent_at`, else now) through the
    same path as a webhook event, so order of registration and events does not matter.
    Registering again changes nothing; naming another campaign is a Conflict.
    """
    row, _ = messages.get_or_create(
        conn,
        connection.id,
        reg.provider_message_id,
        now,
        {"channel": reg.channel, "recipient": reg.recipient, "contact_ref": reg.contact_ref},
    )
    if row.campaign_id is not None and reg.campaign is not None:
        existing = campaigns.campaign_key(conn, row.campaign_id)
        if existing != reg.campaign:
            raise Conflict(
                f"message {reg.provider_message_id!r} on connection {connection.name!r} "
                f"already belongs to campaign {existing!r}, not {reg.campaign!r}"
            )
    first = row.registered_at is None
    fields: dict[str, Any] = {
        k: v
        for k, v in {
            "channel": reg.channel,
            "recipient": reg.recipient,
            "contact_ref": reg.contact_ref,
        }.items()
        if v is not None and getattr(row, k) is None
    }
    extra = {k: v for k, v in (reg.metadata or {}).items() if k not in (row.metadata or {})}
    if extra:
        fields["metadata"] = {**(row.metadata or {}), **extra}
    if first:
        fields["registered_at"] = now
    messages.update_fields(conn, row.id, fields)
    if row.campaign_id is None and reg.campaign:
        campaign_id = campaigns.ensure_campaign(conn, reg.campaign, now)
        messages.assign_campaign(conn, row, campaign_id, now)
    sent = NormalizedEvent(
        provider_message_id=reg.provider_message_id,
        kind=EventKind.SENT,
        raw_status="registered",
        occurred_at=reg.sent_at or now,
        provider_event_id="registration",
        details={"source": "registration"},
    )
    apply_events(conn, [Incoming(connection, sent, None, now)], now)
    return row.id, first
