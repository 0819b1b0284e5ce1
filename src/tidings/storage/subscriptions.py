"""Subscriptions: where outbound webhooks go, which events each wants, and how they are signed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update

from tidings.domain.errors import NotFound
from tidings.domain.outbound import EventFilter
from tidings.storage.schema import deliveries, delivery_attempts, subscriptions

__all__ = [
    "StoredSubscription",
    "add_subscription",
    "from_row",
    "get_subscription",
    "list_subscriptions",
    "remove_subscription",
    "update_subscription",
]


@dataclass(frozen=True)
class StoredSubscription:
    id: int
    url: str
    secret: str
    event_types: tuple[str, ...]
    connection_id: int | None
    campaign: str | None
    description: str | None
    include_contact: bool
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None

    @property
    def filter(self) -> EventFilter:
        return EventFilter(self.event_types, self.connection_id, self.campaign)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now: the current one, and the previous one until its
        overlap window ends."""
        found = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and now < expires:
            found.append(self.previous_secret)
        return found


def from_row(row: Row[Any]) -> StoredSubscription:
    return StoredSubscription(
        id=row.id,
        url=row.url,
        secret=row.secret,
        event_types=tuple(row.event_types or ()),
        connection_id=row.connection_id,
        campaign=row.campaign,
        description=row.description,
        include_contact=bool(row.include_contact),
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
        previous_secret=row.previous_secret,
        previous_secret_expires_at=row.previous_secret_expires_at,
    )


def add_subscription(
    conn: Connection,
    url: str,
    secret: str,
    event_types: Sequence[str],
    connection_id: int | None,
    campaign: str | None,
    description: str | None,
    include_contact: bool,
    now: datetime,
) -> StoredSubscription:
    result = conn.execute(
        subscriptions.insert().values(
            url=url,
            secret=secret,
            event_types=list(event_types),
            connection_id=connection_id,
            campaign=campaign,
            description=description,
            include_contact=include_contact,
            enabled=True,
            created_at=now,
            updated_at=now,
        )
    )
    (new_id,) = result.inserted_primary_key or (None,)
    assert new_id is not None
    return get_subscription(conn, int(new_id))


def get_subscription(conn: Connection, subscription_id: int) -> StoredSubscription:
    row = conn.execute(select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
    if row is None:
        raise NotFound(f"no subscription with id {subscription_id}")
    return from_row(row)


def list_subscriptions(conn: Connection) -> list[StoredSubscription]:
    rows = conn.execute(select(subscriptions).order_by(subscriptions.c.id)).all()
    return [from_row(row) for row in rows]


def update_subscription(
    conn: Connection, subscription_id: int, values: Mapping[str, Any], now: datetime
) -> StoredSubscription:
    """Set these columns (the rest stays); NotFound when there is no such subscription."""
    get_subscription(conn, subscription_id)
    conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == subscription_id)
        .values({**values, "updated_at": now})
    )
    return get_subscription(conn, subscription_id)


def remove_subscription(conn: Connection, subscription_id: int) -> StoredSubscription:
    """Delete a subscription with its deliveries and their attempts (the events stay for the
    other subscriptions)."""
    removed = get_subscription(conn, subscription_id)
    ids = select(deliveries.c.id).where(deliveries.c.subscription_id == subscription_id)
    conn.execute(delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(ids)))
    conn.execute(delete(deliveries).where(deliveries.c.subscription_id == subscription_id))
    conn.execute(delete(subscriptions).where(subscriptions.c.id == subscription_id))
    return removed
