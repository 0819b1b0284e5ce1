"""Costly figures (a campaign's chart, failures by reason) are worked out again after a pause
in proportion to their cost, not each time a live page asks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.dashboard import costly
from tidings.dashboard.charts import rate_chart
from tidings.dashboard.costly import Costly
from tidings.domain.message_changes import Registration
from tidings.storage import campaigns, connections
from tidings.storage.db import Database
from tidings.storage.message_summaries import outcomes_by_minute
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


def _count(conn: object, campaign: int) -> int:
    return sum(outcomes_by_minute(conn, campaign)["sent"].values())  # type: ignore[arg-type]


def test_a_cheap_figure_follows_every_change(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(costly, "COST_FACTOR", 0)  # kept for no time at all
    campaign = _sent(db, 0, 5)
    kept = Costly(db)
    assert kept.get(("sent", campaign), lambda conn: _count(conn, campaign)) == 5
    _sent(db, 5, 5)
    assert kept.get(("sent", campaign), lambda conn: _count(conn, campaign)) == 10


def test_a_costly_figure_is_kept_for_a_while(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(costly, "COST_FACTOR", 100_000)  # as if working it out took minutes
    campaign = _sent(db, 0, 5)
    kept = Costly(db)
    first = kept.get(
        ("chart", campaign), lambda conn: rate_chart(outcomes_by_minute(conn, campaign))
    )
    assert first is not None
    assert kept.get(("sent", campaign), lambda conn: _count(conn, campaign)) == 5
    _sent(db, 5, 5)
    assert kept.get(("sent", campaign), lambda conn: _count(conn, campaign)) == 5  # not yet
    assert kept.get(("other", campaign), lambda conn: _count(conn, campaign)) == 10  # own key
