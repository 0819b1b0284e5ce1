"""Messages as the API reads them: one, a page of a filtered list, a timeline.

Every filter the list offers is served by an index (or bounded by the campaign it names), so a
page costs the same at a million messages as at a thousand (migrations 0005 and 0009; the plans are
pinned in tests/storage/test_plans.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select

from tidings.storage.schema import campaigns, connections, events, messages

__all__ = [
    "MessageFilter",
    "find_message",
    "get_message",
    "list_events",
    "list_messages",
    "message_count_estimate",
]


@dataclass(frozen=True)
class MessageFilter:
    campaign: str | None = None
    status: str | None = None
    channel: str | None = None
    recipient: str | None = None
    connection: str | None = None
    provider_message_id: str | None = None
    since: datetime | None = None  # created at or after (aware)
    until: datetime | None = None  # created before (aware)
    failure_reason: str | None = None  # the dashboard's drill-down from a failure group


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


# The filters that name one value, and the column each compares.
_EQUALS = (
    ("campaign", campaigns.c.key),
    ("status", messages.c.state),
    ("channel", messages.c.channel),
    ("recipient", messages.c.recipient),
    ("provider_message_id", messages.c.provider_message_id),
    ("failure_reason", messages.c.failure_reason),
)

# A time range matching fewer messages than this is read through the created_at index and
# its rows sorted; a wider one is read newest first by id, which soon finds a page of them.
NARROW_RANGE = 5_000


def list_messages(
    conn: Connection, where: MessageFilter, after_id: int | None, limit: int
) -> list[Row[Any]]:
    """A page, newest first (by id), of the messages matching every filter given."""
    query = _message_query().limit(limit)
    if after_id is not None:
        query = query.where(messages.c.id < after_id)
    for name, column in _EQUALS:
        value = getattr(where, name)
        if value is not None:
            query = query.where(column == value)
    if where.connection is not None:
        query = query.where(_of_connection(conn, where.connection))
    created = _created_in(where)
    if created is not None:
        query = query.where(*created)
    newest_first = messages.c.id.desc()
    if created is not None and _narrow(conn, created, after_id):
        # `id + 0` is no column, so no store walks the primary key for the order and both
        # use the created_at index, then sort the few rows it found.
        newest_first = (messages.c.id + 0).desc()
    return list(conn.execute(query.order_by(newest_first)).all())


def _of_connection(conn: Connection, name: str) -> Any:
    """Messages of the connection(s) of that name, compared by id: looked up first, so the
    (connection_id, id) index gives one connection's messages newest first, however few of
    the store's they are. A removed connection's name may be in use again: both count."""
    ids = list(conn.execute(select(connections.c.id).where(connections.c.name == name)).scalars())
    if len(ids) == 1:
        return messages.c.connection_id == ids[0]
    return messages.c.connection_id.in_(ids)


def _created_in(where: MessageFilter) -> list[Any] | None:
    bounds = []
    if where.since is not None:
        bounds.append(messages.c.created_at >= where.since)
    if where.until is not None:
        bounds.append(messages.c.created_at < where.until)
    return bounds or None


def _narrow(conn: Connection, created: list[Any], after_id: int | None) -> bool:
    """Whether fewer than NARROW_RANGE messages were created in the range (counted on the
    created_at index, stopping at NARROW_RANGE)."""
    probe = select(messages.c.id).where(*created).limit(NARROW_RANGE)
    if after_id is not None:
        probe = probe.where(messages.c.id < after_id)
    found = conn.execute(select(func.count()).select_from(probe.subquery())).scalar_one()
    return int(found) < NARROW_RANGE


def message_count_estimate(conn: Connection) -> int:
    """About how many messages there are, at once at any size (the largest id: messages are
    never deleted, so it is exact unless ids were skipped)."""
    return int(conn.execute(select(func.max(messages.c.id))).scalar() or 0)


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
