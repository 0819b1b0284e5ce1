"""Messages and their event timelines.

A message's row holds its lifecycle state (see `domain.lifecycle`); `tidings.tracking` changes
it together with the campaign counters, in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Row, func, select, update
from sqlalchemy.dialects import sqlite

from tidings.domain.counters import delta
from tidings.domain.lifecycle import Failure, MessageState
from tidings.storage.campaigns import apply_delta
from tidings.storage.db import (
    Prepared,
    insert_ignoring_duplicates,
    insert_returning_ids,
    prepare_sparse_insert,
)
from tidings.storage.schema import campaigns, connections, events, messages, tracking_version

__all__ = [
    "MessageFilter",
    "assign_campaign",
    "blank_row",
    "bump_version",
    "find_message",
    "get_message",
    "get_or_create",
    "insert_messages",
    "list_events",
    "list_messages",
    "next_id",
    "prepare_inserts",
    "read_version",
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


def get_or_create(
    conn: Connection,
    connection_id: int,
    provider_message_id: str,
    now: datetime,
    defaults: Mapping[str, Any],
) -> tuple[Row[Any], bool]:
    """The message row, locked for this transaction, created from `defaults` if new."""
    values = {**blank_row(connection_id, provider_message_id, now), **defaults}
    created = conn.execute(insert_ignoring_duplicates(conn, messages).values(values)).rowcount == 1
    query = select(messages).where(
        messages.c.connection_id == connection_id,
        messages.c.provider_message_id == provider_message_id,
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one(), created


def insert_messages(
    conn: Connection, new: Sequence[tuple[tuple[int, str], Mapping[str, Any]]], now: datetime
) -> list[int]:
    """Create messages ((connection id, provider message id), column values) with their state
    already applied; ids in the order given. Only for messages known not to exist yet."""
    return insert_returning_ids(conn, messages, _new_rows(new, now))


def prepare_inserts(
    dialect: Dialect,
    new: Sequence[tuple[tuple[int, str], Mapping[str, Any]]],
    now: datetime,
    first_id: int,
) -> list[Prepared]:
    """`insert_messages` prepared ahead (SQLite) with explicit ids from `first_id` on: valid
    while no other message is created, which the tracking version tells."""
    rows = [{"id": first_id + i, **row} for i, row in enumerate(_new_rows(new, now))]
    return prepare_sparse_insert(dialect, messages, rows)


def next_id(conn: Connection) -> int:
    """The id the next message will get on SQLite (one past the largest)."""
    return int(conn.execute(select(func.max(messages.c.id))).scalar() or 0) + 1


def _new_rows(
    new: Sequence[tuple[tuple[int, str], Mapping[str, Any]]], now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "connection_id": connection_id,
            "provider_message_id": provider_message_id,
            "created_at": now,
            "registered_at": None,
            **values,
        }
        for (connection_id, provider_message_id), values in new
    ]


def read_version(conn: Connection) -> int:
    """The tracking version (0 before anything was applied)."""
    found = conn.execute(
        select(tracking_version.c.version).where(tracking_version.c.id == 1)
    ).scalar()
    return int(found or 0)


def bump_version(conn: Connection) -> None:
    """Mark that this transaction changed messages or events. SQLite only: there one writer
    runs at a time, and a planned batch checks the version; on PostgreSQL row locks do that
    job, and a shared counter would serialise every worker."""
    if conn.dialect.name == "sqlite":
        conn.execute(_BUMP_VERSION)


_BUMP_VERSION = (
    sqlite.insert(tracking_version)
    .values(id=1, version=1)
    .on_conflict_do_update(index_elements=["id"], set_={"version": tracking_version.c.version + 1})
)


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
