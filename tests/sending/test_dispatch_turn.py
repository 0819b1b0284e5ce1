"""One dispatch turn, driven directly (no scheduler): whatever ends it, every batch it sent
has its answers recorded before it returns."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime

import pytest

from tests.fakes.provider_apis import FakeEvolution
from tidings import campaign_admin, send_process
from tidings.campaign_dispatch import BATCH, dispatch_turn
from tidings.config import Settings
from tidings.domain.sending import Action, DispatchState
from tidings.storage import connections, dispatches
from tidings.storage.db import Database
from tidings.storage.schema import sends


def _started(db: Database, fake: FakeEvolution, key: str, contacts: int, rate: int | None) -> None:
    """A campaign of `contacts` through a connection to `fake`, started."""
    now = datetime.now(UTC)
    with db.write() as conn:
        connections.add_connection(
            conn, "evolution", "evo", "s", {"api_url": fake.url, "api_key": fake.api_key}, now
        )
    campaign_admin.create(db, key=key, connection="evo", text="Hi", template=None,
                          rate_per_minute=rate, start_at=None, name=None, now=now)  # fmt: skip
    rows = [{"contact_ref": f"c{i}", "recipient": f"+1555{1_000_000 + i}"} for i in range(contacts)]
    campaign_admin.add_contacts(db, key, rows, None, now)
    campaign_admin.act(db, key, Action.START, now)


def test_a_turn_whose_time_is_up_records_the_batch_still_out(
    db: Database, settings: Settings
) -> None:
    """A campaign too large for one turn: the turn stops at its deadline with a batch out
    (while sends succeed, one is always out after the first) and records its answers, so no
    contact is left `sending` and every request that reached the provider is a send recorded
    `sent`."""
    with FakeEvolution() as fake:
        # Each answer takes 20 ms, so even a fast machine cannot send the whole campaign in
        # the turn (that many requests in flight would need more than 2 s for it), and a slow
        # one still sends two batches.
        fake.latency = 0.02
        _started(db, fake, "big", 40 * BATCH, None)
        # A first short turn starts the send process (a second or more on a slow machine), so
        # the turn under test spends its budget sending.
        dispatch_turn(db, settings, budget=0.5)
        before = len(fake.requests)
        assert before > 0, "the first turn sent a batch"
        report = dispatch_turn(db, settings, budget=2.0)
        arrived = len(fake.requests) - before
    with db.read() as conn:
        view = dispatches.get(conn, "big")
    assert view is not None
    assert arrived >= 2 * BATCH and view.contacts["pending"] > 0, "the turn ended on its deadline"
    assert view.contacts["sending"] == 0, "a batch out when the turn ended was not recorded"
    assert view.contacts["sent"] == before + arrived and report.sent == arrived


def test_a_stall_costs_a_paced_campaign_no_slots_and_makes_no_burst(
    db: Database, settings: Settings
) -> None:
    """At 600 a minute, three seconds without a turn (the process or the store stalled): the
    next turn sends the 30 slots missed at twice the rate until the campaign is on time
    again, so over the whole run it keeps 600 a minute, and no second sees more than twice
    the rate."""
    with FakeEvolution() as fake:
        _started(db, fake, "paced", 200, 600)
        started = time.monotonic()
        dispatch_turn(db, settings, budget=1.0)
        time.sleep(3.0)  # no turn: a stall
        dispatch_turn(db, settings, budget=5.0 - (time.monotonic() - started - 3.0))
        times = sorted(r.at for r in fake.requests)
    span = times[-1] - times[0]
    achieved = (len(times) - 1) / span * 60
    assert abs(achieved / 600 - 1) <= 0.05, (achieved, len(times), span)
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 2 * 10 + 2, busiest


def test_a_send_process_that_dies_leaves_unknown_outcomes_and_pauses_the_campaign(
    db: Database, settings: Settings
) -> None:
    """The process making a campaign's calls is killed with a batch out: its sends are
    recorded unknown (never sent again), and the campaign pauses saying what happened."""
    with FakeEvolution() as fake:
        _started(db, fake, "cut", 3, None)
        fake.hang()
        turn = threading.Thread(target=dispatch_turn, args=(db, settings), kwargs={"budget": 5})
        turn.start()
        deadline = time.monotonic() + 10
        while len(fake.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(fake.requests) == 3, "the batch reached the provider"
        sends = send_process.shared(
            settings.dispatch_concurrency, settings.log_level, settings.log_json
        )
        assert sends._child is not None
        os.kill(sends._child.popen.pid, signal.SIGKILL)
        turn.join(10)
        assert not turn.is_alive()
        with db.read() as conn:
            view = dispatches.get(conn, "cut")
        campaign_admin.act(db, "cut", Action.RESUME, datetime.now(UTC))
        dispatch_turn(db, settings, budget=1.0)
        arrived = len(fake.requests)
    assert view is not None and view.state.value == "paused"
    assert view.paused_reason is not None and "send process stopped" in view.paused_reason
    assert view.contacts["unknown"] == 3 and view.contacts["sending"] == 0
    assert arrived == 3, "no contact with an unknown outcome was sent again"


@pytest.mark.parametrize(("trouble", "outcome"), [("drop", "unknown"), ("refuse", "failed")])
def test_after_sends_unanswered_the_batch_out_lands_before_the_next_is_claimed(
    db: Database, settings: Settings, trouble: str, outcome: str
) -> None:
    """Three sends get no answer (too few to pause): the batch already out is recorded before
    the next is claimed, so trouble at the provider never has two batches riding on it. Three
    numbers refused (everyday in a campaign) leave the overlap on. One turn long enough for the
    whole campaign: a turn's end lands every batch too, which would hide the overlap."""
    with FakeEvolution() as fake:
        fake.accept(2 * BATCH)
        for _ in range(3):
            if trouble == "drop":
                fake.drop()
            else:
                fake.refuse("not_on_whatsapp")
        _started(db, fake, "troubled", 6 * BATCH, None)
        for _ in range(5):  # a turn may end early for a campaign with trouble; never by time
            dispatch_turn(db, settings, budget=120.0)
            with db.read() as conn:
                view = dispatches.get(conn, "troubled")
            assert view is not None
            if view.state is DispatchState.DONE:
                break
        assert view.state is DispatchState.DONE, "five turns did not finish the campaign"
        assert len(fake.requests) == 6 * BATCH  # none sent again
    assert (view.contacts[outcome], view.contacts["sent"]) == (3, 6 * BATCH - 3)
    with db.read() as conn:
        rows = conn.execute(
            sends.select()
            .order_by(sends.c.id)
            .with_only_columns(sends.c.status, sends.c.created_at, sends.c.finished_at)
        ).all()
    batches = [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]
    troubled = next(i for i, b in enumerate(batches) if any(r.status == outcome for r in b))
    assert troubled + 2 < len(batches)
    out, after = batches[troubled + 1], batches[troubled + 2]
    landed_first = after[0].created_at >= max(r.finished_at for r in out)
    assert landed_first is (trouble == "drop")
