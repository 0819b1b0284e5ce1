"""The poll's calls take the one apply path: webhooks into a running tidings, the poll against
the fake Callyzer, the worker applying both. A call that came both ways is one record; a call
whose webhook was lost is inserted and matched to its lead; an older version changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import RunningApp
from tests.fakes.callyzer_api import FakeCallyzer, FakeClock, flat_call, running_fake
from tidings.backfill.callyzer_poll import PollResult, poll
from tidings.config import Settings
from tidings.providers.callyzer.api import CallyzerClient, RateLimiter
from tidings.storage.backfill_runs import Outcome
from tidings.storage.connections import StoredConnection
from tidings.storage.schema import calls, employees, leads, receipts

KEY = "cz-e2e-key"
NOW = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)
IST = timedelta(hours=5, minutes=30)
EMPLOYEE = ("emp_name", "emp_code", "emp_country_code", "emp_number", "emp_tags")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeCallyzer]:
    with running_fake(KEY, clock) as server:
        yield server


@pytest.fixture
def app(running_app: RunningApp, fake: FakeCallyzer) -> RunningApp:
    running_app.add_connection(
        "callyzer", "cz", api_url=fake.url, api_key=KEY, timezone="Asia/Kolkata"
    )
    return running_app


@pytest.fixture
def limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(2.0, clock)


def ist(moment: datetime) -> str:
    return (moment + IST).strftime("%Y-%m-%d %H:%M:%S IST")


def webhook(app: RunningApp, *calls_: dict[str, Any]) -> None:
    """What Callyzer's webhook sends: a list of employees, each with its call_logs."""
    employee = {key: calls_[0][key] for key in EMPLOYEE}
    logs = [{k: v for k, v in call.items() if k not in EMPLOYEE} for call in calls_]
    answer = app.hook("callyzer", "cz", json.dumps([{**employee, "call_logs": logs}]))
    assert answer.status_code == 202, answer.text
    app.wait_idle()


def run_poll(app: RunningApp, settings: Settings, limiter: RateLimiter) -> PollResult:
    def client(connection: StoredConnection, s: Settings) -> CallyzerClient:
        options = connection.options
        return CallyzerClient(options["api_url"], options["api_key"], limiter=limiter, timeout=2)

    result = poll(app.db, settings, "cz", now=lambda: NOW, client_factory=client)
    assert result.outcome is Outcome.OK, result.error
    app.wait_idle()
    return result


def stored(app: RunningApp) -> list[Any]:
    with app.db.read() as conn:
        return list(conn.execute(select(calls).order_by(calls.c.provider_call_id)).all())


def sources(app: RunningApp) -> list[tuple[str, str]]:
    with app.db.read() as conn:
        rows = conn.execute(select(receipts.c.source, receipts.c.status).order_by(receipts.c.id))
        return [(r.source, r.status) for r in rows]


def synced(hours_ago: float) -> int:
    return int((NOW - timedelta(hours=hours_ago)).timestamp())


def test_a_call_by_webhook_and_by_poll_is_one_record(
    app: RunningApp, settings: Settings, limiter: RateLimiter, fake: FakeCallyzer
) -> None:
    modified = NOW - timedelta(hours=2)
    call = flat_call("c1", note="first words", modified_at=ist(modified))
    webhook(app, call)
    fake.add_call(call, synced(2))

    first = run_poll(app, settings, limiter)

    assert (first.counts.fetched, first.counts.inserted, first.counts.skipped) == (1, 0, 1)
    assert sources(app) == [("webhook", "done")]  # nothing to apply twice
    [row] = stored(app)
    assert (row.provider_call_id, row.note, row.modified_at) == ("c1", "first words", modified)

    # The adviser edits the note in Callyzer; its webhook never comes, the poll brings it.
    later = modified + timedelta(minutes=30)
    fake.add_call(flat_call("c1", note="called back", modified_at=ist(later)), synced(1))
    second = run_poll(app, settings, limiter)

    assert (second.counts.updated, second.counts.inserted) == (1, 0)
    assert sources(app) == [("webhook", "done"), ("poll", "done")]
    [row] = stored(app)
    assert (row.note, row.modified_at) == ("called back", later)


def test_a_call_whose_webhook_was_lost_is_inserted_and_matched_to_its_lead(
    app: RunningApp, settings: Settings, limiter: RateLimiter, fake: FakeCallyzer
) -> None:
    made = app.api(
        "POST",
        "/v1/leads",
        json={"external_id": "L-1", "name": "Ravi", "phones": ["+919123456780"]},
    )
    assert made.status_code in (200, 201), made.text
    with app.db.read() as conn:
        lead = conn.execute(select(leads.c.id).where(leads.c.external_id == "L-1")).scalar_one()
    fake.add_call(flat_call("lost", client_number="9123456780"), synced(3))

    result = run_poll(app, settings, limiter)

    assert (result.counts.inserted, result.counts.employees) == (1, 0)  # no employee known yet
    assert sources(app) == [("poll", "done")]
    [row] = stored(app)
    assert (row.provider_call_id, row.client_number, row.lead_id) == (
        "lost", "+919123456780", lead,
    )  # fmt: skip
    lead_calls = app.api("GET", "/v1/leads/L-1/calls")
    assert lead_calls.status_code == 200, lead_calls.text
    assert [(c["provider_call_id"], c["lead"]) for c in lead_calls.json()["items"]] == [
        ("lost", "L-1")
    ]
    # The employee was learnt from the call; the next poll asks about them by number.
    with app.db.read() as conn:
        [employee] = conn.execute(select(employees)).all()
    assert employee.number == "+919876543210"
    run_poll(app, settings, limiter)
    assert fake.history_requests[-1].body["emp_numbers"] == ["91-9876543210"]


def test_an_older_version_from_the_poll_changes_nothing(
    app: RunningApp, settings: Settings, limiter: RateLimiter, fake: FakeCallyzer
) -> None:
    modified = NOW - timedelta(hours=1)
    webhook(app, flat_call("c1", note="newest", modified_at=ist(modified)))
    stale = flat_call("c1", note="stale", modified_at=ist(modified - timedelta(minutes=10)))
    fake.add_call(stale, synced(1))

    result = run_poll(app, settings, limiter)

    assert (result.counts.skipped, result.counts.updated) == (1, 0)
    [row] = stored(app)
    assert (row.note, row.modified_at) == ("newest", modified)
    assert sources(app) == [("webhook", "done")]
