"""Campaigns and their counters, changed only by deltas in the message's own transaction."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from tidings.domain.counters import COUNTERS, rates
from tidings.storage.db import insert_ignoring_duplicates
from tidings.storage.schema import campaign_counters, campaigns

__all__ = [
    "CampaignView",
    "apply_delta",
    "campaign_key",
    "ensure_campaign",
    "find_ids",
    "get_campaign",
    "list_campaigns",
]


@dataclass(frozen=True)
class CampaignView:
    id: int
    key: str
    created_at: datetime
    counts: dict[str, int]

    @property
    def rates(self) -> dict[str, float]:
        return rates(self.counts)


def ensure_campaign(conn: Connection, key: str, now: datetime) -> int:
    """The campaign's id, created with zero counters on first mention (race-safe)."""
    conn.execute(insert_ignoring_duplicates(conn, campaigns).values(key=key, created_at=now))
    campaign_id: int = conn.execute(
        select(campaigns.c.id).where(campaigns.c.key == key)
    ).scalar_one()
    conn.execute(
        insert_ignoring_duplicates(conn, campaign_counters).values(
            campaign_id=campaign_id, **dict.fromkeys(COUNTERS, 0)
        )
    )
    return campaign_id


def find_ids(conn: Connection, keys: Collection[str]) -> dict[str, int]:
    """The ids of those of these campaigns that exist."""
    if not keys:
        return {}
    query = select(campaigns.c.key, campaigns.c.id).where(campaigns.c.key.in_(sorted(keys)))
    return {row.key: row.id for row in conn.execute(query)}


def campaign_key(conn: Connection, campaign_id: int) -> str:
    key: str = conn.execute(
        select(campaigns.c.key).where(campaigns.c.id == campaign_id)
    ).scalar_one()
    return key


def apply_delta(conn: Connection, campaign_id: int, delta: Mapping[str, int]) -> None:
    """Add to counters in the database (`x = x + d`), so concurrent writers never lose one."""
    if not delta:
        return
    table = campaign_counters.c
    conn.execute(
        update(campaign_counters)
        .where(table.campaign_id == campaign_id)
        .values({name: getattr(table, name) + change for name, change in delta.items()})
    )


def _view(row: Row[Any]) -> CampaignView:
    return CampaignView(
        id=row.id,
        key=row.key,
        created_at=row.created_at,
        counts={name: int(getattr(row, name)) for name in COUNTERS},
    )


def _query() -> Any:
    return select(campaigns, *(campaign_counters.c[name] for name in COUNTERS)).join(
        campaign_counters, campaign_counters.c.campaign_id == campaigns.c.id
    )


def get_campaign(conn: Connection, key: str) -> CampaignView | None:
    row = conn.execute(_query().where(campaigns.c.key == key)).first()
    return _view(row) if row else None


def list_campaigns(conn: Connection, after_id: int | None, limit: int) -> list[CampaignView]:
    query = _query().order_by(campaigns.c.id.desc()).limit(limit)
    if after_id is not None:
        query = query.where(campaigns.c.id < after_id)
    return [_view(row) for row in conn.execute(query)]
