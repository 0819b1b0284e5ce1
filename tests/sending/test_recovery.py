"""Sends recorded but never answered (their process stopped between the two) are closed as
`unknown` by the next dispatch turn, never sent again: any send past the stale window, and in
embedded mode every campaign send older than the dispatching process. The API's single sends
run in another process (the web one), so only the window closes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tidings import campaign_admin, campaign_dispatch
from tidings.campaign_dispatch import dispatch_turn, recover_interrupted
from tidings.config import Settings
from tidings.domain.message_changes import Registration
from tidings.domain.sending import Action
from tidings.storage import connections, dispatches, sends
from tidings.storage.db import Database
from tidings.storage.schema import campaign_contacts, messages
from tidings.storage.schema import sends as sends_table


def _campaign_send(db: Database, at: datetime) -> int:
    """A campaign contact claimed (its send recorded) at `at`, never answered."""
    with db.write() as conn:
        connections.add_connection(conn, "evolution", "evo", "s", {}, at)
    campaign_admin.create(db, key="spring", connection="evo", text="Hi", template=None,
                          rate_per_minute=None, start_at=None, name=None, now=at)  # fmt: skip
    campaign_admin.add_contacts(db, "spring", [{"contact_ref": "c1", "recipient": "+15551230001"}],
                                None, at)  # fmt: skip
    campaign_admin.act(db, "spring", Action.START, at)
    reg = Registration(provider_message_id="", campaign="spring", channel="whatsapp")
    with db.write() as conn:
        [claimed], _ = dispatches.claim(conn, 1, timedelta(0), at, reg)
    return claimed.send_id


def _api_send(db: Database, at: datetime) -> int:
    with db.read() as conn:
        evo = connections.get_connection(conn, "evo")
    reg = Registration(provider_message_id="", recipient="+15551230002")
    record, fresh = sends.begin(db, evo.id, "api:k1", reg, at)
    assert fresh
    return record.id


def _status(db: Database, send_id: int) -> str:
    with db.read() as conn:
        return str(conn.execute(select(sends_table.c.status).where(sends_table.c.id == send_id))
                   .scalar_one())  # fmt: skip


def test_a_send_past_the_window_is_closed_as_unknown_with_its_contact_and_message(
    db: Database, settings: Settings
) -> None:
    now = datetime.now(UTC)
    send_id = _campaign_send(db, now - timedelta(seconds=settings.send_stale_seconds + 60))
    assert recover_interrupted(db, settings, None) == 1
    assert _status(db, send_id) == "unknown"
    with db.read() as conn:
        contact = conn.execute(select(campaign_contacts)).one()
        message = conn.execute(select(messages)).one()
    assert contact.status == "unknown" and contact.message_id == message.id
    assert message.state == "queued" and message.provider_message_id.startswith("tidings-send-")
    assert recover_interrupted(db, settings, None) == 0  # closed once


def test_embedded_closes_campaign_sends_older_than_the_process_but_not_the_apis(
    db: Database, settings: Settings
) -> None:
    now = datetime.now(UTC)
    earlier = now - timedelta(seconds=10)
    campaign = _campaign_send(db, earlier)
    single = _api_send(db, earlier)
    assert settings.embedded
    assert recover_interrupted(db, settings, started_at=now) == 1
    assert _status(db, campaign) == "unknown"
    assert _status(db, single) == "queued"  # the web process may still be waiting for it


def test_in_scale_out_only_the_window_closes_sends(db: Database, settings: Settings) -> None:
    scale_out = settings.model_copy(update={"broker_url": "redis://127.0.0.1:6379/0"})
    now = datetime.now(UTC)
    campaign = _campaign_send(db, now - timedelta(seconds=10))
    assert recover_interrupted(db, scale_out, started_at=now) == 0
    assert _status(db, campaign) == "queued"  # another worker may be sending it right now


def test_a_turn_looks_for_interrupted_sends_on_the_first_turn_then_every_few_seconds(
    db: Database, settings: Settings
) -> None:
    """Ten turns a second each looking for sends unanswered for minutes was most of an idle
    tidings' CPU: a process looks on its first turn, then at most every five seconds."""
    dispatch_turn(db, settings, budget=0.1)  # the first turn looks (nothing to close yet)
    send_id = _campaign_send(
        db, datetime.now(UTC) - timedelta(seconds=settings.send_stale_seconds + 60)
    )
    dispatch_turn(db, settings, budget=0.1)
    assert _status(db, send_id) == "queued"  # the last look was under five seconds ago
    campaign_dispatch._recovered_at[db.url] -= 6  # as if five seconds had passed
    dispatch_turn(db, settings, budget=0.1)
    assert _status(db, send_id) == "unknown"
