"""Campaigns and their counters, changed only by deltas in the message's own transaction."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select

from tidings.domain.counters import COUNTERS, rates
from tidings.storage.db import Reader
from tidings.storage.schema import campaign_counters, campaigns
from tidings.storage.writes import Writes

__all__ = [
    "CampaignView",
    "get_campaign",
    "ids_for",
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


def ids_for(reader: Reader, writes: Writes, keys: Collection[str], now: datetime) -> dict[str, int]:
    """The ids of these campaigns, creating those that do not exist yet in the unit of work
    (their counters row comes with their first counter delta)."""
    found = reader.rows_by_key(
        campaigns, ("key",), {(key,) for key in keys}, blank=lambda k: _blank(k[0], now)
    )
    ids = {key[0]: row.id for key, row in found.items()}
    missing = sorted(set(keys) - set(ids))
    new = dict(zip(missing, reader.reserve_ids(campaigns, len(missing)), strict=True))
    writes.insert(campaigns, [{"id": i, **_blank(key, now)} for key, i in new.items()])
    return {**ids, **new}


def _blank(key: str, now: datetime) -> dict[str, Any]:
    return {"key": key, "created_at": now}


def _view(row: Row[Any]) -> CampaignView:
    return CampaignView(
        id=row.id,
        key=row.key,
        created_at=row.created_at,
        counts={name: int(getattr(row, name)) for name in COUNTERS},
    )


def _query() -> Any:
    """A campaign with its counters; zeros for one with no message yet (a campaign that
    tidings sends exists before its first message)."""
    counters = (func.coalesce(campaign_counters.c[name], 0).label(name) for name in COUNTERS)
    return select(campaigns, *counters).outerjoin(
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
