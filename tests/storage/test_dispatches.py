"""The read every dispatch turn starts with (ten a second, most of what an idle tidings does):
which scheduled campaigns are due to start, and whether any campaign is running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tidings import campaign_admin
from tidings.domain.sending import Action
from tidings.storage import connections, dispatches
from tidings.storage.db import Database


def _campaign(db: Database, key: str, now: datetime, start_at: datetime | None = None) -> None:
    campaign_admin.create(db, key=key, connection="evo", text="Hi", template=None,
                          rate_per_minute=None, start_at=start_at, name=None, now=now)  # fmt: skip
    campaign_admin.add_contacts(db, key, [{"contact_ref": "c", "recipient": "+15551000000"}],
                                None, now)  # fmt: skip


def _id(db: Database, key: str) -> int:
    with db.read() as conn:
        found = dispatches.get(conn, key)
    assert found is not None
    return found.campaign_id


def _due(db: Database, at: datetime) -> tuple[list[int], bool]:
    with db.read() as conn:
        return dispatches.due(conn, at)


def test_a_turn_sees_the_campaigns_due_to_start_and_whether_one_runs(db: Database) -> None:
    now = datetime.now(UTC)
    with db.write() as conn:
        connections.add_connection(conn, "evolution", "evo", "s", {}, now)
    assert _due(db, now) == ([], False)

    _campaign(db, "draft", now)  # never started
    later = now + timedelta(hours=1)
    _campaign(db, "later", now, start_at=later)
    campaign_admin.act(db, "later", Action.START, now)
    assert _due(db, now) == ([], False)  # scheduled, its time not come
    assert _due(db, later) == ([_id(db, "later")], False)

    _campaign(db, "paused", now)
    campaign_admin.act(db, "paused", Action.START, now)
    assert _due(db, now) == ([], True)
    campaign_admin.act(db, "paused", Action.PAUSE, now)
    assert _due(db, now) == ([], False)  # a paused campaign is not running

    _campaign(db, "now", now)
    campaign_admin.act(db, "now", Action.START, now)
    assert _due(db, later) == ([_id(db, "later")], True)
