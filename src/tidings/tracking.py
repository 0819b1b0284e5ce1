"""How one event or one registration changes a message: the unit of work shared by the worker
(events from webhooks) and the API (registrations). Each call runs inside the caller's
transaction, so the event row, the message state and the campaign counters move together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row

from tidings.domain.dedup import REGISTRATION_KEY, dedup_key
from tidings.domain.errors import Conflict
from tidings.domain.events import EventKind, NormalizedEvent
from tidings.domain.lifecycle import advance, register
from tidings.logging import get_logger
from tidings.storage import campaigns, messages
from tidings.storage.connections import StoredConnection

__all__ = ["Registration", "apply_event", "register_message"]

log = get_logger("tracking")


def _campaign_and_contact(
    connection: StoredConnection, metadata: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The campaign and contact named by the connection's `campaign_key`/`contact_ref_key`."""
    campaign_key = connection.options.get("campaign_key")
    contact_key = connection.options.get("contact_ref_key")
    campaign = metadata.get(campaign_key) if campaign_key else None
    contact = metadata.get(contact_key) if contact_key else None
    return (campaign or None), (contact or None)


def _fill_missing(row: Row[Any], **candidates: Any) -> dict[str, Any]:
    """Fields a later source may fill in; never overwrites what is already known."""
    return {k: v for k, v in candidates.items() if v is not None and getattr(row, k) is None}


def _merge_metadata(row: Row[Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(row.metadata or {})
    added = {k: v for k, v in extra.items() if k not in merged}
    if not added:
        return {}
    merged.update(added)
    return {"metadata": merged}


def apply_event(
    conn: Connection,
    connection: StoredConnection,
    event: NormalizedEvent,
    *,
    receipt_id: int | None,
    received_at: datetime,
    now: datetime,
) -> bool:
    """Record `event` and advance its message. False when it was a duplicate (no effect)."""
    metadata = {str(k): str(v) for k, v in event.metadata.items()}
    campaign_key, contact_ref = _campaign_and_contact(connection, metadata)
    row, _ = messages.get_or_create(
        conn,
        connection.id,
        event.provider_message_id,
        now,
        {"channel": event.channel, "recipient": event.recipient, "metadata": metadata},
    )
    inserted = messages.insert_event(
        conn,
        {
            "message_id": row.id,
            "dedup_key": dedup_key(event),
            "kind": event.kind.value,
            "raw_status": event.raw_status[:100],
            "occurred_at": event.occurred_at or received_at,
            "provider_time": event.occurred_at,
            "received_at": received_at,
            "receipt_id": receipt_id,
            "details": _details(event),
        },
    )
    if not inserted:
        return False
    if event.kind is EventKind.UNKNOWN:
        log.warning(
            "unknown status %r from %s connection %s; recorded, state unchanged",
            event.raw_status,
            connection.provider,
            connection.name,
        )
    updates = _fill_missing(
        row, channel=event.channel, recipient=event.recipient, contact_ref=contact_ref
    )
    updates.update(_merge_metadata(row, metadata))
    messages.update_fields(conn, row.id, updates)
    campaign_id = row.campaign_id
    if campaign_id is None and campaign_key:
        campaign_id = campaigns.ensure_campaign(conn, campaign_key, now)
        messages.assign_campaign(conn, row, campaign_id, now)
    before = messages.state_from_row(row)
    after = advance(before, event, event.occurred_at or received_at)
    messages.save_state(conn, row.id, campaign_id, before, after, now)
    return True


def _details(event: NormalizedEvent) -> dict[str, Any]:
    details: dict[str, Any] = dict(event.details)
    if event.kind is EventKind.FAILED:
        details["failure"] = {
            "code": event.failure_code,
            "reason": event.failure_reason,
            "permanent": event.failure_permanent,
            "after_send": event.after_send,
        }
    return details


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

    Idempotent: registering again changes nothing; naming another campaign is a Conflict.
    """
    row, _ = messages.get_or_create(
        conn,
        connection.id,
        reg.provider_message_id,
        now,
        {"channel": reg.channel, "recipient": reg.recipient, "contact_ref": reg.contact_ref},
    )
    if row.campaign_id is not None and reg.campaign is not None:
        existing_campaign = campaigns.campaign_key(conn, row.campaign_id)
        if existing_campaign != reg.campaign:
            raise Conflict(
                f"message {reg.provider_message_id!r} on connection {connection.name!r} "
                f"already belongs to campaign {existing_campaign!r}, not {reg.campaign!r}"
            )
    first = row.registered_at is None
    updates = _fill_missing(
        row, channel=reg.channel, recipient=reg.recipient, contact_ref=reg.contact_ref
    )
    updates.update(_merge_metadata(row, reg.metadata or {}))
    if first:
        updates["registered_at"] = now
    messages.update_fields(conn, row.id, updates)
    campaign_id = row.campaign_id
    if campaign_id is None and reg.campaign:
        campaign_id = campaigns.ensure_campaign(conn, reg.campaign, now)
        messages.assign_campaign(conn, row, campaign_id, now)
    sent_at = reg.sent_at or now
    inserted = messages.insert_event(
        conn,
        {
            "message_id": row.id,
            "dedup_key": REGISTRATION_KEY,
            "kind": EventKind.SENT.value,
            "raw_status": "registered",
            "occurred_at": sent_at,
            "provider_time": reg.sent_at,
            "received_at": now,
            "receipt_id": None,
            "details": {"source": "registration"},
        },
    )
    if inserted:
        before = messages.state_from_row(row)
        messages.save_state(conn, row.id, campaign_id, before, register(before, sent_at), now)
    return row.id, first
