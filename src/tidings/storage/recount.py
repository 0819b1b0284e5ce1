"""Recompute every campaign counter from the messages, to prove (or repair) that none drifted.

The sums are one SQL GROUP BY over the messages' state columns, the same function of a
message's state as `domain.counters.contribution` (a property test holds them equal), read in
one statement so both stores see the messages and the counters at one instant. Finding drift
needs only a read transaction, which on SQLite never takes the write lock the intake needs;
repairing it is a unit of work (`Database.apply`) that recomputes just the drifted campaigns
and adds the difference, so a worker's delta committed meanwhile is never lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, case, func, select

from tidings.domain.counters import COUNTERS
from tidings.domain.events import Status
from tidings.storage import store_settings
from tidings.storage.db import Database, Reader
from tidings.storage.schema import campaign_counters, campaigns, messages
from tidings.storage.writes import Writes

__all__ = [
    "LAST_RECOUNT",
    "Drift",
    "Recount",
    "actual_counts",
    "find_drift",
    "last_recount",
    "recount",
]

LAST_RECOUNT = "last_recount"


@dataclass(frozen=True)
class Drift:
    """One counter of one campaign whose stored value is not what its messages add up to."""

    campaign: str
    counter: str
    stored: int
    actual: int
    campaign_id: int = 0


@dataclass(frozen=True)
class Recount:
    """What one recount found (and repaired, with `fixed`), and when it ran."""

    at: datetime
    seconds: float
    campaigns: int
    drifted: int
    fixed: bool
    drift: tuple[Drift, ...] = ()  # the counters themselves, when this run found them

    def summary(self) -> str:
        if not self.drifted:
            return f"no drift in {self.campaigns} campaigns"
        return f"{self.drifted} counters drifted" + (" (repaired)" if self.fixed else "")


def _when(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    """How many of a campaign's messages meet `condition`."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _sums() -> dict[str, ColumnElement[Any]]:
    """Each counter as a sum over a campaign's messages (`contribution`, in SQL)."""
    state = messages.c.state
    arrived = state.in_([Status.DELIVERED.value, Status.READ.value])
    return {
        "total": func.count(messages.c.id),
        "queued": _when(state == Status.QUEUED.value),
        "sent": _when(
            state.in_([Status.SENT.value, Status.DELIVERED.value, Status.READ.value])
            | ((state == Status.FAILED.value) & messages.c.failed_after_send.is_(True))
        ),
        "delivered": _when(arrived),
        "read": _when(state == Status.READ.value),
        "failed": _when(state == Status.FAILED.value),
        "opened": _when(messages.c.opened_at.is_not(None)),
        "clicked": _when(messages.c.clicked_at.is_not(None)),
        "unsubscribed": _when(messages.c.unsubscribed_at.is_not(None)),
        "complained": _when(messages.c.complained_at.is_not(None)),
    }


def _actual(ids: Collection[int] | None) -> Select[Any]:
    """Each campaign's counters summed over its messages, by campaign id."""
    chosen = messages.c.campaign_id
    return (
        select(chosen, *(value.label(name) for name, value in _sums().items()))
        .where(chosen.in_(sorted(ids)) if ids is not None else chosen.is_not(None))
        .group_by(chosen)
    )


def actual_counts(
    conn: Connection, ids: Collection[int] | None = None
) -> dict[int, dict[str, int]]:
    """What the messages of every campaign (or of these) add up to, by campaign id."""
    return {
        row.campaign_id: {name: int(row._mapping[name]) for name in COUNTERS}
        for row in conn.execute(_actual(ids))
    }


def _compare(conn: Connection | Reader, ids: Collection[int] | None) -> list[Drift]:
    """Stored against actual counters in one statement (one snapshot on both stores)."""
    actual = _actual(ids).subquery("actual")
    query = (
        select(
            campaigns.c.id,
            campaigns.c.key,
            *(func.coalesce(campaign_counters.c[n], 0).label(f"stored_{n}") for n in COUNTERS),
            *(func.coalesce(actual.c[n], 0).label(f"actual_{n}") for n in COUNTERS),
        )
        .select_from(campaigns)
        .outerjoin(campaign_counters, campaign_counters.c.campaign_id == campaigns.c.id)
        .outerjoin(actual, actual.c.campaign_id == campaigns.c.id)
        .order_by(campaigns.c.id)
    )
    if ids is not None:
        query = query.where(campaigns.c.id.in_(sorted(ids)))
    rows = conn.rows(query) if isinstance(conn, Reader) else conn.execute(query).all()
    drift: list[Drift] = []
    for row in rows:
        values = row._mapping
        for name in COUNTERS:
            stored, real = int(values[f"stored_{name}"]), int(values[f"actual_{name}"])
            if stored != real:
                drift.append(Drift(row.key, name, stored, real, row.id))
    return drift


def find_drift(conn: Connection) -> list[Drift]:
    """Every counter whose stored value differs from the sum over its messages, as of the
    caller's transaction (a read transaction is enough)."""
    return _compare(conn, None)


def _repair(reader: Reader, writes: Writes, ids: Collection[int]) -> list[Drift]:
    """Drift of these campaigns as it is now, repaired by adding the difference. Where the
    store locks rows, their counter rows are locked before the messages are summed, so a
    worker's uncommitted delta lands after the repair instead of being counted twice."""
    reader.rows(
        select(campaign_counters.c.campaign_id)
        .where(campaign_counters.c.campaign_id.in_(sorted(ids)))
        .order_by(campaign_counters.c.campaign_id),
        lock="wait",
    )
    drift = _compare(reader, ids)
    differences: dict[int, dict[str, int]] = {}
    for d in drift:
        differences.setdefault(d.campaign_id, dict.fromkeys(COUNTERS, 0))[d.counter] = (
            d.actual - d.stored
        )
    writes.add_to(
        campaign_counters,
        "campaign_id",
        [{"campaign_id": cid, **moved} for cid, moved in differences.items()],
    )
    return drift


def recount(db: Database, fix: bool, now: datetime) -> Recount:
    """Find drift from a read snapshot; with `fix`, repair the drifted campaigns (re-checked
    under the write). The result is recorded for `tidings doctor` (`last_recount`)."""
    started = time.monotonic()
    with db.read() as conn:
        drift = find_drift(conn)
        count = int(conn.execute(select(func.count()).select_from(campaigns)).scalar_one())
    if fix and drift:
        ids = {d.campaign_id for d in drift}
        drift = db.apply(lambda reader, writes: _repair(reader, writes, ids))
    seconds = round(time.monotonic() - started, 3)
    result = Recount(now, seconds, count, len(drift), fix and bool(drift), tuple(drift))
    record = {
        "at": now.isoformat(),
        "seconds": seconds,
        "campaigns": count,
        "drifted": result.drifted,
        "fixed": result.fixed,
    }
    # No plan reads store_settings, so this write need not move SQLite's state version.
    with db.write(appends_only=True) as conn:
        store_settings.remember(conn, LAST_RECOUNT, json.dumps(record), now)
    return result


def last_recount(conn: Connection) -> Recount | None:
    """The last recount's result as recorded (how many counters drifted, not which), or None."""
    value = store_settings.recall(conn, LAST_RECOUNT)
    if value is None:
        return None
    record = json.loads(value)
    return Recount(
        datetime.fromisoformat(record["at"]),
        float(record["seconds"]),
        int(record["campaigns"]),
        int(record["drifted"]),
        bool(record["fixed"]),
    )
