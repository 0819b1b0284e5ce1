"""Campaign charts are drawn again after a pause in proportion to their cost, not each time
a live page asks."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tidings.dashboard import chart_cache
from tidings.dashboard.chart_cache import ChartCache
from tidings.domain.message_changes import Registration
from tidings.storage import campaigns, connections
from tidings.storage.db import Database
from tidings.unit_of_work import register

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _sent(db: Database, first: int, count: int) -> int:
    with db.write() as conn:
        connection = connections.add_connection(conn, "evolution", f"c{first}", "s", {}, NOW)
    regs = [Registration(provider_message_id=f"m{i}", campaign="spring", recipient=None,
                         contact_ref=None, metadata={}, channel="whatsapp", sent_at=NOW)
            for i in range(first, first + count)]  # fmt: skip
    register(db, connection, regs, NOW)
    with db.read() as conn:
        view = campaigns.get_campaign(conn, "spring")
    assert view is not None
    return view.id


def test_a_cheap_chart_follows_every_change(db: Database) -> None:
    campaign = _sent(db, 0, 5)
    cache = ChartCache(db)
    first = cache.chart(campaign)
    assert first is not None
    _sent(db, 5, 5)
    time.sleep(0.2)  # far more than 20 times a few milliseconds
    assert cache.chart(campaign) is not first  # drawn again


def test_a_costly_chart_is_kept_for_a_while(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chart_cache, "COST_FACTOR", 100_000)  # as if drawing took minutes
    campaign = _sent(db, 0, 5)
    cache = ChartCache(db)
    first = cache.chart(campaign)
    _sent(db, 5, 5)
    assert cache.chart(campaign) is first  # not drawn again yet
