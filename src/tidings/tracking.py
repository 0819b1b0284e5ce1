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
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Update, bindparam, select, update

from tidings.domain.counters import COUNTERS, delta
from tidings.domain.dedup import dedup_key
from tidings.domain.errors import Conflict
from tidings.domain.events import EventKind, NormalizedEvent
from tidings.domain.lifecycle import MessageState, advance
from tidings.logging import get_logger
from tidings.storage import campaigns, messages
from tidings.storage.connections import StoredConnection
from tidings.storage.db import (
    Prepared,
    execute_many,
    insert_ignoring_duplicates,
    prepare_many,
    run_prepared,
)
from tidings.storage.schema import events
from tidings.storage.schema import messages as messages_table

__all__ = [
    "ApplyResult",
    "EventPlan",
    "Incoming",
    "Registration",
    "apply_events",
    "plan_events",
    "prepare_ahead",
    "register_message",
    "unstorable",
    "write_plan",
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


MessageKey = tuple[int, str]  # (connection id, provider message id)


@dataclass
class _Change:
    """What a batch does to one message, accumulated before anything is written. `row` is None
    for a message the batch creates (its row is inserted with its final state)."""

    key: MessageKey
    row: Row[Any] | None
    before: MessageState
    after: MessageState
    fields: dict[str, Any] = field(default_factory=dict)
    campaign_key: str | None = None
    message_id: int | None = None

    def current(self, name: str) -> Any:
        """A column's value before this batch (a created message starts empty)."""
        return getattr(self.row, name) if self.row is not None else None


@dataclass
class EventPlan:
    """Everything a batch of events will write, computed from reads alone (`plan_events`), so
    the SQLite worker can compute it before taking the write lock and only write under it."""

    result: ApplyResult
    changes: list[_Change]
    events: list[tuple[_Change, dict[str, Any]]]
    ready: _Ready | None = None


@dataclass(frozen=True)
class _Ready:
    """A plan's writes with their parameters converted (`prepare_ahead`)."""

    inserts: list[Prepared]
    updates: list[Prepared]
    events: Prepared
    deltas: dict[int, dict[str, int]]


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


def _load_messages(
    conn: Connection, incoming: Sequence[Incoming], now: datetime
) -> dict[MessageKey, Row[Any]]:
    """The messages these events name, as stored. On PostgreSQL the missing ones are created
    first and all are locked, so concurrent workers serialise per message; on SQLite (one
    writer at a time) missing ones are left out and the batch creates them in its writes."""
    first: dict[MessageKey, Incoming] = {}
    for item in incoming:
        first.setdefault((item.connection.id, item.event.provider_message_id), item)
    keys = sorted(first)
    locking = conn.dialect.name == "postgresql"
    if locking:
        placeholders = [_new_message_row(key, first[key].event, now) for key in keys]
        execute_many(conn, insert_ignoring_duplicates(conn, messages_table), placeholders)
    by_connection: dict[int, list[str]] = defaultdict(list)
    for cid, pmid in keys:
        by_connection[cid].append(pmid)
    rows: dict[MessageKey, Row[Any]] = {}
    table = messages_table.c
    for cid, ids in by_connection.items():
        for chunk in _chunks(ids):
            query = (
                select(messages_table)
                .where(table.connection_id == cid, table.provider_message_id.in_(chunk))
                .order_by(table.id)
            )
            if locking:
                query = query.with_for_update()
            for row in conn.execute(query):
                rows[(cid, row.provider_message_id)] = row
    return rows


def _new_message_row(key: MessageKey, event: NormalizedEvent, now: datetime) -> dict[str, Any]:
    row = messages.blank_row(key[0], key[1], now)
    return {**row, "channel": event.channel, "recipient": event.recipient}


def _known_keys(
    conn: Connection, rows: Mapping[MessageKey, Row[Any]]
) -> set[tuple[MessageKey, str]]:
    """The dedup keys already recorded for these messages."""
    by_id = {row.id: key for key, row in rows.items()}
    known: set[tuple[MessageKey, str]] = set()
    for chunk in _chunks(sorted(by_id)):
        query = select(events.c.message_id, events.c.dedup_key).where(
            events.c.message_id.in_(chunk)
        )
        known.update((by_id[r.message_id], r.dedup_key) for r in conn.execute(query))
    return known


def _event_row(item: Incoming, key: str) -> dict[str, Any]:
    """An event row; its `message_id` is set when the batch is written."""
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
        "dedup_key": key,
        "kind": event.kind.value,
        "raw_status": event.raw_status[:100],
        "occurred_at": event.occurred_at or item.received_at,
        "provider_time": event.occurred_at,
        "received_at": item.received_at,
        "receipt_id": item.receipt_id,
        "details": details,
    }


_INSERT_EVENT = events.insert()


def _fill(change: _Change, name: str, value: Any) -> None:
    """Fill a field a later source knows; never overwrite what is already known."""
    if value is not None and change.current(name) is None and name not in change.fields:
        change.fields[name] = value


def _merge_metadata(change: _Change, extra: Mapping[str, Any]) -> None:
    current = change.fields.get("metadata", dict(change.current("metadata") or {}))
    added = {k: v for k, v in extra.items() if k not in current}
    if added:
        change.fields["metadata"] = {**current, **added}


def apply_events(conn: Connection, incoming: Sequence[Incoming], now: datetime) -> ApplyResult:
    """Record the events (deduplicated) and advance their messages and campaign counters."""
    plan = plan_events(conn, incoming, now)
    write_plan(conn, plan, now)
    return plan.result


def plan_events(conn: Connection, incoming: Sequence[Incoming], now: datetime) -> EventPlan:
    """What applying these events will write, from reads alone (except on PostgreSQL, where
    missing messages are created and all are locked first; see `_load_messages`)."""
    result = ApplyResult()
    if not incoming:
        return EventPlan(result, [], [])
    rows = _load_messages(conn, incoming, now)
    known = _known_keys(conn, rows)
    changes: dict[MessageKey, _Change] = {}
    new_events: list[tuple[_Change, dict[str, Any]]] = []
    for item in incoming:
        event = item.event
        message_key = (item.connection.id, event.provider_message_id)
        key = dedup_key(event)
        if (message_key, key) in known:
            result.duplicates += 1
            continue
        known.add((message_key, key))
        result.applied += 1
        if event.kind is EventKind.UNKNOWN:
            log.warning(
                "unknown status %r from %s connection %s; recorded, state unchanged",
                event.raw_status,
                item.connection.provider,
                item.connection.name,
            )
        change = changes.get(message_key)
        if change is None:
            row = rows.get(message_key)
            if row is None:
                change = _Change(message_key, None, MessageState(), MessageState())
            else:
                state = messages.state_from_row(row)
                change = _Change(message_key, row, state, state, message_id=row.id)
            changes[message_key] = change
        new_events.append((change, _event_row(item, key)))
        metadata = _metadata(event)
        campaign_key, contact_ref = _campaign_and_contact(item.connection, metadata)
        _fill(change, "channel", event.channel)
        _fill(change, "recipient", event.recipient)
        _fill(change, "contact_ref", contact_ref)
        _merge_metadata(change, metadata)
        if change.campaign_key is None and change.current("campaign_id") is None:
            change.campaign_key = campaign_key
        change.after = advance(change.after, event, event.occurred_at or item.received_at)
    return EventPlan(result, list(changes.values()), new_events)


def prepare_ahead(conn: Connection, plan: EventPlan, now: datetime) -> None:
    """Turn a plan made from a SQLite snapshot into ready statements (`plan.ready`), so that
    under the write lock only SQLite's own work is left. New messages get explicit ids past
    the largest one; valid only while the tracking version stays what it was at the snapshot,
    which the caller checks. Left unprepared when a campaign it names does not exist yet."""
    if not plan.changes or conn.dialect.name != "sqlite":
        return
    needed = {c.campaign_key for c in plan.changes if c.campaign_key}
    campaign_ids = campaigns.find_ids(conn, needed)
    if len(campaign_ids) < len(needed):
        return
    created, updates, deltas = _message_writes(plan.changes, campaign_ids, now)
    first_id = messages.next_id(conn)
    for offset, (change, _) in enumerate(created):
        change.message_id = first_id + offset
    dialect = conn.dialect
    plan.ready = _Ready(
        inserts=messages.prepare_inserts(
            dialect, [(change.key, values) for change, values in created], now, first_id
        ),
        updates=[
            prepare_many(dialect, _update_message(columns), rows)
            for columns, rows in updates.items()
        ],
        events=prepare_many(dialect, _INSERT_EVENT, _event_rows(plan)),
        deltas=deltas,
    )


def write_plan(conn: Connection, plan: EventPlan, now: datetime) -> None:
    """Write what `plan_events` planned: messages, events, counters, in one transaction."""
    if not plan.changes:
        return
    if plan.ready is not None:
        for inserts in plan.ready.inserts:
            run_prepared(conn, inserts)
        for prepared in plan.ready.updates:
            run_prepared(conn, prepared)
        run_prepared(conn, plan.ready.events)
        deltas = plan.ready.deltas
    else:
        campaign_ids = {
            key: campaigns.ensure_campaign(conn, key, now)
            for key in sorted({c.campaign_key for c in plan.changes if c.campaign_key})
        }
        created, updates, deltas = _message_writes(plan.changes, campaign_ids, now)
        if created:
            ids = messages.insert_messages(
                conn, [(change.key, values) for change, values in created], now
            )
            for (change, _), message_id in zip(created, ids, strict=True):
                change.message_id = message_id
        for columns, rows in updates.items():
            execute_many(conn, _update_message(columns), rows)
        execute_many(conn, _INSERT_EVENT, _event_rows(plan))
    # In id order, so two workers touching the same campaigns lock them in the same order.
    for campaign_id in sorted(deltas):
        campaigns.apply_delta(
            conn, campaign_id, {k: v for k, v in deltas[campaign_id].items() if v}
        )
    messages.bump_version(conn)


def _event_rows(plan: EventPlan) -> list[dict[str, Any]]:
    """The plan's event rows, with the ids of their messages (known once those exist)."""
    return [{**row, "message_id": change.message_id} for change, row in plan.events]


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


@lru_cache(maxsize=64)
def _update_message(columns: tuple[str, ...]) -> Update:
    """The update of these columns of a message (one statement per set of changed columns)."""
    fixed = set(columns) - set(_MUTABLE)
    if fixed:
        raise ValueError(f"a message's {sorted(fixed)} never change")
    return (
        update(messages_table)
        .where(messages_table.c.id == bindparam("message_id"))
        .values({name: bindparam(f"new_{name}") for name in columns})
    )


def _changed(row: Row[Any], values: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns these values change. An update names only those: every column named
    costs the store about the same, and an event changes three or four of a message's
    twenty-odd. Scalars that are equal and of one type store the same (datetimes as UTC);
    JSON counts as unchanged only when it is the very object read."""
    return tuple(name for name, value in values.items() if not _same(getattr(row, name), value))


def _same(stored: Any, value: Any) -> bool:
    if isinstance(value, (dict, list)):
        return stored is value
    return type(stored) is type(value) and bool(stored == value)


def _message_writes(
    changes: Sequence[_Change], campaign_ids: Mapping[str, int], now: datetime
) -> tuple[
    list[tuple[_Change, dict[str, Any]]],
    dict[tuple[str, ...], list[dict[str, Any]]],
    dict[int, dict[str, int]],
]:
    """Rows of the messages to create, parameters of the updates by the columns they change,
    and counter deltas per campaign id, for these changes."""
    deltas: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    created: list[tuple[_Change, dict[str, Any]]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        campaign_id = change.current("campaign_id")
        previous: MessageState | None = change.before
        if campaign_id is None and change.campaign_key:
            campaign_id = campaign_ids[change.campaign_key]
            previous = None  # newly counted: its whole contribution is added
        if campaign_id is not None:
            for name, value in delta(previous, change.after).items():
                deltas[campaign_id][name] += value
        if (
            change.row is not None
            and change.after == change.before
            and not change.fields
            and campaign_id == change.row.campaign_id
        ):
            continue
        values = {**messages.state_values(change.after)}
        for name in ("channel", "recipient", "contact_ref"):
            values[name] = change.fields.get(name, change.current(name))
        stored_metadata = change.current("metadata")
        values["metadata"] = change.fields.get(
            "metadata", stored_metadata if stored_metadata is not None else {}
        )  # the object read when unchanged: an update then leaves the column out
        values["campaign_id"] = campaign_id
        values["updated_at"] = now
        if change.row is None:
            created.append((change, values))
        else:
            columns = _changed(change.row, values)
            if columns:
                updates[columns].append(
                    {"message_id": change.row.id, **{f"new_{k}": values[k] for k in columns}}
                )
    return created, dict(updates), dict(deltas)


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
    messages.bump_version(conn)  # even when its `sent` was a duplicate, fields may have changed
    return row.id, first
