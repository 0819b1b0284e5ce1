"""Messages and their event timelines.

A message's row holds its lifecycle state (see `domain.lifecycle`); `tidings.tracking` changes
it together with the campaign counters, in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from tidings.domain.counters import delta
from tidings.domain.lifecycle import Failure, MessageState
from tidings.storage.campaigns import apply_delta
from tidings.storage.db import insert_ignoring_duplicates
from tidings.storage.schema import campaigns, connections, events, messages

__all__ = [
    "MessageFilter",
    "assign_campaign",
    "find_message",
    "get_message",
    "get_or_create",
    "list_events",
    "list_messages",
    "state_from_row",
    "state_values",
    "update_fields",
]

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
    failure = state.failure
    return {
        **{name: getattr(state, name) for name in _STATE_TIMES},
        "state": state.status.value,
        "sequence": state.sequence,
        "failed_after_send": state.failed_after_send,
        "failure_at": failure.occurred_at if failure else None,
        "failure_code": (failure.code or None) if failure else None,
        "failure_reason": (failure.reason or None) if failure else None,
        "failure_permanent": failure.permanent if failure else None,
    }


def get_or_create(
    conn: Connection,
    connection_id: int,
    provider_message_id: str,
    now: datetime,
    defaults: Mapping[str, Any],
) -> tuple[Row[Any], bool]:
    """The message row, locked for this transaction, created from `defaults` if new."""
    values = {
        "connection_id": connection_id,
        "provider_message_id": provider_message_id,
        "state": MessageState().status.value,
        "sequence": 0,
        "metadata": {},
        "failed_after_send": False,
        "created_at": now,
        "updated_at": now,
        **defaults,
    }
    created = conn.execute(insert_ignoring_duplicates(conn, messages).values(values)).rowcount == 1
    query = select(messages).where(
        messages.c.connection_id == connection_id,
        messages.c.provider_message_id == provider_message_id,
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one(), created


def assign_campaign(conn: Connection, row: Row[Any], campaign_id: int, now: datetime) -> None:
    """Give a message its campaign; the campaign counts it from now on (whole contribution)."""
    conn.execute(
        update(messages)
        .where(messages.c.id == row.id)
        .values(campaign_id=campaign_id, updated_at=now)
    )
    apply_delta(conn, campaign_id, delta(None, state_from_row(row)))


def update_fields(conn: Connection, message_id: int, values: Mapping[str, Any]) -> None:
    if values:
        conn.execute(update(messages).where(messages.c.id == message_id).values(dict(values)))


@dataclass(frozen=True)
class MessageFilter:
    campaign: str | None = None
    status: str | None = None
    channel: str | None = None
    recipient: str | None = None
    connection: str | None = None
    provider_message_id: str | None = None


def _message_query() -> Any:
    return (
        select(
            messages,
            campaigns.c.key.label("campaign_key"),
            connections.c.name.label("connection_name"),
            connections.c.provider.label("provider"),
        )
        .join(connections, connections.c.id == messages.c.connection_id)
        .outerjoin(campaigns, campaigns.c.id == messages.c.campaign_id)
    )


def list_messages(
    conn: Connection, where: MessageFilter, after_id: int | None, limit: int
) -> list[Row[Any]]:
    query = _message_query().order_by(messages.c.id.desc()).limit(limit)
    if after_id is not None:
        query = query.where(messages.c.id < after_id)
    if where.campaign is not None:
        query = query.where(campaigns.c.key == where.campaign)
    if where.status is not None:
        query = query.where(messages.c.state == where.status)
    if where.channel is not None:
        query = query.where(messages.c.channel == where.channel)
    if where.recipient is not None:
        query = query.where(messages.c.recipient == where.recipient)
    if where.connection is not None:
        query = query.where(connections.c.name == where.connection)
    if where.provider_message_id is not None:
        query = query.where(messages.c.provider_message_id == where.provider_message_id)
    return list(conn.execute(query).all())


def get_message(conn: Connection, message_id: int) -> Row[Any] | None:
    return conn.execute(_message_query().where(messages.c.id == message_id)).first()


def find_message(conn: Connection, connection_id: int, provider_message_id: str) -> Row[Any] | None:
    return conn.execute(
        _message_query().where(
            messages.c.connection_id == connection_id,
            messages.c.provider_message_id == provider_message_id,
        )
    ).first()


def list_events(conn: Connection, message_id: int) -> list[Row[Any]]:
    query = (
        select(events)
        .where(events.c.message_id == message_id)
        .order_by(events.c.occurred_at, events.c.id)
    )
    return list(conn.execute(query).all())
