"""The outbox: forwarded events written in the same transaction as the change they announce.

Each kind of record's store adds its events here while it plans (`add`), through the unit of
work's `Writes`, so the rows commit or roll back with the change itself on both stores, and a
SQLite plan made ahead of the lock is checked like the rest of it. One row per event, not per
subscriber: the sender fans it out (`storage.deliveries`). While no enabled subscription wants
an event, nothing is written for it, so the apply path pays one small read per batch for the
outbox (decision 0010).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tidings.domain.outbound import EventFilter
from tidings.storage.db import Reader
from tidings.storage.schema import outbound_events, subscriptions
from tidings.storage.writes import Writes

__all__ = ["Outbox", "added", "event", "outbox"]

_ENABLED = select(
    subscriptions.c.event_types, subscriptions.c.connection_id, subscriptions.c.campaign
).where(subscriptions.c.enabled.is_(True))


@dataclass
class Outbox:
    """The outbox of one plan: which events some enabled subscription wants, and the rows
    added so far."""

    filters: tuple[EventFilter, ...]
    added: int = 0

    def __bool__(self) -> bool:
        return bool(self.filters)

    def wants(self, event_type: str, connection_id: int | None, campaign: str | None) -> bool:
        return any(f.matches(event_type, connection_id, campaign) for f in self.filters)

    def add(self, writes: Writes, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add events (from `event`) to the unit of work."""
        writes.insert(outbound_events, rows)
        self.added += len(rows)


def event(
    webhook_id: str,
    event_type: str,
    data: Mapping[str, Any],
    occurred_at: datetime,
    now: datetime,
    connection_id: int | None = None,
    campaign: str | None = None,
    message_id: int | None = None,
) -> dict[str, Any]:
    """One outbox row."""
    return {
        "webhook_id": webhook_id,
        "type": event_type,
        "connection_id": connection_id,
        "campaign": campaign,
        "message_id": message_id,
        "occurred_at": occurred_at,
        "created_at": now,
        "data": data,
        "fanned_out_at": None,
    }


def outbox(reader: Reader) -> Outbox:
    """This plan's outbox (the enabled subscriptions are read once per plan)."""
    found: Outbox | None = reader.memo.get("outbox")
    if found is None:
        rows = reader.plain_rows(_ENABLED)
        filters = tuple(
            EventFilter(tuple(r.event_types or ()), r.connection_id, r.campaign) for r in rows
        )
        found = reader.memo["outbox"] = Outbox(filters)
    return found


def added(reader: Reader) -> int:
    """How many outbox rows this plan added (none if no store looked at the outbox)."""
    found: Outbox | None = reader.memo.get("outbox")
    return found.added if found is not None else 0
