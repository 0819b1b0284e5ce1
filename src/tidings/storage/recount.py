"""Recompute every campaign counter from the messages, to prove (or repair) that none drifted."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from tidings.domain.counters import COUNTERS, contribution
from tidings.storage.campaigns import list_campaigns
from tidings.storage.db import hold_writers_off
from tidings.storage.messages import state_from_row
from tidings.storage.schema import campaign_counters, messages

__all__ = ["Drift", "recount"]


@dataclass(frozen=True)
class Drift:
    campaign: str
    counter: str
    stored: int
    actual: int


def recount(conn: Connection, fix: bool) -> list[Drift]:
    """Every counter whose stored value differs from the sum over its messages.

    Writers are held off the two tables for the duration, so the messages
    and the counters are read at one instant and a worker's commit in between cannot show as
    (or be "repaired" into) drift. On SQLite the write transaction already holds the lock.
    """
    hold_writers_off(conn, messages, campaign_counters)
    actual: dict[int, dict[str, int]] = {}
    query = select(messages).where(messages.c.campaign_id.is_not(None))
    for row in conn.execute(query.execution_options(yield_per=2000)):
        sums = actual.setdefault(row.campaign_id, dict.fromkeys(COUNTERS, 0))
        for name, value in contribution(state_from_row(row)).items():
            sums[name] += value
    drift: list[Drift] = []
    for view in list_campaigns(conn, None, 10**9):
        real = actual.get(view.id, dict.fromkeys(COUNTERS, 0))
        wrong = {name: real[name] for name in COUNTERS if real[name] != view.counts[name]}
        drift.extend(Drift(view.key, name, view.counts[name], real[name]) for name in wrong)
        if fix and wrong:
            conn.execute(
                update(campaign_counters)
                .where(campaign_counters.c.campaign_id == view.id)
                .values(wrong)
            )
    return drift
