"""Messages and their event timelines: the message kind's store.

`apply_items` loads what a batch of message items touches, asks the pure rules
(`domain.message_changes`) what changes, and adds the writes to the unit of work: new and
changed messages, timeline events, campaign counter deltas, all in one transaction
(docs/architecture.md, "Kinds of record").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Update, bindparam, select, update

from tidings.domain.events import EventKind
from tidings.domain.lifecycle import Failure, MessageState
from tidings.domain.message_changes import (
    MessageItem,
    MessageKey,
    MessagePlan,
    Registering,
    StoredMessage,
    TimelineEntry,
    campaign_deltas,
    plan_messages,
    screen,
)
from tidings.domain.outbound import MessageFacts, message_data, message_event_type, webhook_id
from tidings.storage import campaigns as campaign_store
from tidings.storage.db import Reader
from tidings.storage.limits import limits_of
from tidings.storage.outbox import Outbox, outbox
from tidings.storage.outbox import event as outbox_event
from tidings.storage.schema import campaign_counters, campaigns, events, messages
from tidings.storage.writes import Writes

__all__ = [
    "Applied",
    "apply_items",
    "blank_row",
    "state_from_row",
    "state_values",
]

# The longest value each text the rules store may have, read from the schema.
LIMITS: Mapping[str, int] = {
    **limits_of(messages, ("provider_message_id", "channel", "recipient", "contact_ref")),
    **limits_of(messages, ("failure_code",)),
    "campaign": limits_of(campaigns, ("key",))["key"],
}


_STATE_TIMES = (
    "queued_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "played_at",
    "opened_at",
    "clicked_at",
    "unsubscribed_at",
    "complained_at",
)


def state_from_row(row: Row[Any]) -> MessageState:
    failure = None
    if row.failure_at is not None:
        failure = Failure(
            occurred_at=row.failure_at,
            code=row.failure_code or "",
            reason=row.failure_reason or "",
            permanent=row.failure_permanent,
        )
    return MessageState(
        **{name: getattr(row, name) for name in _STATE_TIMES},
        failed_after_send=bool(row.failed_after_send),
        failure=failure,
        sequence=row.sequence,
    )


def state_values(state: MessageState) -> dict[str, Any]:
    fields = state.__dict__  # read directly: getattr for each of a dozen fields costs more
    failure = state.failure
    return {
        **{name: fields[name] for name in _STATE_TIMES},
        "state": state.status.value,
        "sequence": state.sequence,
        "failed_after_send": state.failed_after_send,
        "failure_at": failure.occurred_at if failure else None,
        "failure_code": (failure.code or None) if failure else None,
        "failure_reason": (failure.reason or None) if failure else None,
        "failure_permanent": failure.permanent if failure else None,
    }


def blank_row(connection_id: int, provider_message_id: str, now: datetime) -> dict[str, Any]:
    """A message nothing has happened to yet (queued, no campaign)."""
    return {
        "connection_id": connection_id,
        "provider_message_id": provider_message_id,
        "state": MessageState().status.value,
        "sequence": 0,
        "metadata": {},
        "failed_after_send": False,
        "created_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True)
class Applied:
    """What applying message items did: the rules' plan and the id of every message named."""

    plan: MessagePlan
    ids: Mapping[MessageKey, int]


def apply_items(
    reader: Reader,
    writes: Writes,
    items: Sequence[MessageItem],
    now: datetime,
    strict: bool = True,
) -> Applied:
    """Load the messages these items name, fold the items over them, add the writes."""
    screened = screen(items, LIMITS)
    keys = screened.keys
    rows = reader.rows_by_key(
        messages,
        ("connection_id", "provider_message_id"),
        keys,
        blank=lambda key: blank_row(key[0], key[1], now),
        lock=True,
    )
    registering = any(isinstance(item, Registering) for item in items)
    box = outbox(reader)
    keys_by_id = _campaign_keys(reader, rows.values()) if registering or box else {}
    stored = {key: _stored(row, keys_by_id) for key, row in rows.items()}
    plan = plan_messages(stored, _known_keys(reader, rows), screened, LIMITS, strict)
    ids = _write(reader, writes, plan, rows, now)
    if box:
        _announce(box, writes, plan, ids, keys_by_id, now)
    return Applied(plan, ids)


def _announce(
    box: Outbox,
    writes: Writes,
    plan: MessagePlan,
    ids: Mapping[MessageKey, int],
    campaign_keys: Mapping[int, str],
    now: datetime,
) -> None:
    """An outbox row for each new event some subscription wants, with the message as it
    stood right after that event."""
    rows: list[dict[str, Any]] = []
    for entry in plan.timeline:
        event_type = message_event_type(entry.event.kind)
        if event_type is None or entry.connection is None or entry.after is None:
            continue
        change = plan.changes[entry.key]
        campaign_id = change.known("campaign_id")
        campaign = change.campaign_key or (
            campaign_keys.get(campaign_id) if campaign_id is not None else None
        )
        connection_id, pmid = entry.key
        if not box.wants(event_type, connection_id, campaign):
            continue
        occurred_at = entry.event.occurred_at or entry.received_at
        facts = MessageFacts(
            message_id=ids[entry.key],
            connection=entry.connection,
            provider_message_id=pmid,
            campaign=campaign,
            channel=change.known("channel"),
            recipient=change.known("recipient"),
            contact_ref=change.known("contact_ref"),
            metadata=change.known("metadata") or {},
        )
        data = message_data(facts, entry.after, entry.event, occurred_at, entry.received_at)
        rows.append(
            outbox_event(
                webhook_id("message", connection_id, pmid, entry.dedup_key),
                event_type,
                data,
                occurred_at,
                now,
                connection_id=connection_id,
                campaign=campaign,
                message_id=ids[entry.key],
            )
        )
    box.add(writes, rows)


def _stored(row: Row[Any], campaign_keys: Mapping[int, str]) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        state=state_from_row(row),
        campaign_id=row.campaign_id,
        campaign_key=campaign_keys.get(row.campaign_id),
        channel=row.channel,
        recipient=row.recipient,
        contact_ref=row.contact_ref,
        metadata=row.metadata,
        registered_at=row.registered_at,
    )


def _campaign_keys(reader: Reader, rows: Sequence[Row[Any]] | Any) -> dict[int, str]:
    ids = sorted({row.campaign_id for row in rows if row.campaign_id is not None})
    if not ids:
        return {}
    query = select(campaigns.c.id, campaigns.c.key).where(campaigns.c.id.in_(ids))
    return {row.id: row.key for row in reader.rows(query)}


def _known_keys(reader: Reader, rows: Mapping[MessageKey, Row[Any]]) -> set[tuple[MessageKey, str]]:
    """The dedup keys already recorded for these messages."""
    by_id = {row.id: key for key, row in rows.items()}
    ordered = sorted(by_id)
    known: set[tuple[MessageKey, str]] = set()
    for start in range(0, len(ordered), 500):
        query = select(events.c.message_id, events.c.dedup_key).where(
            events.c.message_id.in_(ordered[start : start + 500])
        )
        known.update((by_id[r.message_id], r.dedup_key) for r in reader.rows(query))
    return known


def _write(
    reader: Reader,
    writes: Writes,
    plan: MessagePlan,
    rows: Mapping[MessageKey, Row[Any]],
    now: datetime,
) -> dict[MessageKey, int]:
    changes = list(plan.changes.values())
    named = {c.campaign_key for c in changes if c.campaign_key}
    campaign_ids = campaign_store.ids_for(reader, writes, named, now)
    created = [c for c in changes if c.stored is None]
    ids = {key: row.id for key, row in rows.items()}
    new_ids = reader.reserve_ids(messages, len(created))
    ids.update(zip((c.key for c in created), new_ids, strict=True))
    inserts: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        campaign_id = change.known("campaign_id")
        if campaign_id is None and change.campaign_key:
            campaign_id = campaign_ids[change.campaign_key]
        row = rows.get(change.key)
        if (
            row is not None
            and change.after == change.before
            and not change.fields
            and campaign_id == row.campaign_id
        ):
            continue
        values = {
            **state_values(change.after),
            **{name: change.known(name) for name in ("channel", "recipient", "contact_ref")},
            "metadata": _metadata(change.known("metadata")),
            "campaign_id": campaign_id,
            "updated_at": now,
        }
        if "registered_at" in change.fields:
            values["registered_at"] = change.fields["registered_at"]
        if row is None:
            connection_id, pmid = change.key
            inserts.append(
                {
                    "id": ids[change.key],
                    "connection_id": connection_id,
                    "provider_message_id": pmid,
                    "created_at": now,
                    "registered_at": None,
                    **values,
                }
            )
        else:
            columns = tuple(n for n, v in values.items() if not _same(getattr(row, n), v))
            params = {f"new_{n}": values[n] for n in columns}
            updates.setdefault(columns, []).append({"message_id": row.id, **params})
    writes.insert(messages, inserts)
    for columns, changed in updates.items():
        writes.execute(_update_message(columns), changed)
    writes.insert(events, [_event_row(entry, ids[entry.key]) for entry in plan.timeline])
    deltas = campaign_deltas(changes, campaign_ids)
    writes.add_to(
        campaign_counters,
        "campaign_id",
        [{"campaign_id": cid, **moved} for cid, moved in deltas.items()],
    )
    return ids


def _metadata(known: Any) -> Any:
    """The message's metadata to write: the very object read when unchanged, so comparing it
    with what is stored costs nothing."""
    return {} if known is None else known


def _same(stored: Any, value: Any) -> bool:
    """Whether writing `value` would store what is stored: scalars equal and of one type (so
    1 and True count as different and are written), JSON that serialises the same."""
    if isinstance(value, (dict, list)):
        return stored is value or (stored == value and _json(stored) == _json(value))
    return type(stored) is type(value) and bool(stored == value)


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


# Columns a message never changes: who it is and when it was first seen.
_FIXED = frozenset({"id", "connection_id", "provider_message_id", "created_at"})


@lru_cache(maxsize=64)
def _update_message(columns: tuple[str, ...]) -> Update:
    """The update of these columns of a message (one statement per set of changed columns:
    every column named costs the store about the same, and an event changes three or four)."""
    if _FIXED & set(columns):
        raise ValueError(f"a message's {sorted(_FIXED & set(columns))} never change")
    return (
        update(messages)
        .where(messages.c.id == bindparam("message_id"))
        .values({name: bindparam(f"new_{name}") for name in columns})
    )


def _event_row(entry: TimelineEntry, message_id: int) -> dict[str, Any]:
    event = entry.event
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
        "dedup_key": entry.dedup_key,
        "kind": event.kind.value,
        "raw_status": event.raw_status[:_RAW_STATUS],
        "occurred_at": event.occurred_at or entry.received_at,
        "provider_time": event.occurred_at,
        "received_at": entry.received_at,
        "receipt_id": entry.receipt_id,
        "details": details,
    }


_RAW_STATUS = limits_of(events, ("raw_status",))["raw_status"]
