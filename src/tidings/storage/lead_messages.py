"""The messages sent to a lead: those whose recipient is one of the lead's phone numbers.

Read through `ix_messages_recipient` (the order is by `id + 0`, no column, so neither store
walks the primary key newest first looking for a lead's few messages among millions: each
number's messages are found by the index, then the few of them sorted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from tidings.storage.schema import campaigns, connections, messages

__all__ = ["LIMIT", "messages_to"]

LIMIT = 50


def messages_to(conn: Connection, numbers: Sequence[str], limit: int = LIMIT) -> list[Row[Any]]:
    """The latest `limit` messages (newest first, by id) sent to any of `numbers` (E.164, as
    recipients are stored); none for a lead without phones."""
    wanted = sorted(set(numbers))
    if not wanted:
        return []
    query: Any = (  # Any: a Row of twelve typed columns is no Row[Any]
        select(
            messages.c.id,
            messages.c.recipient,
            messages.c.channel,
            messages.c.state,
            messages.c.created_at,
            messages.c.sent_at,
            messages.c.delivered_at,
            messages.c.read_at,
            messages.c.failed_at,
            messages.c.failure_reason,
            campaigns.c.key.label("campaign_key"),
            connections.c.name.label("connection_name"),
        )
        .join(connections, connections.c.id == messages.c.connection_id)
        .outerjoin(campaigns, campaigns.c.id == messages.c.campaign_id)
        .where(messages.c.recipient.in_(wanted))
        .order_by((messages.c.id + 0).desc())
        .limit(limit)
    )
    return list(conn.execute(query).all())
