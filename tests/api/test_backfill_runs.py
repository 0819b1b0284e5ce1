"""`GET /v1/connections/{name}/backfill-runs` and the backfill state of a connection, over HTTP
against a running app, after real poll runs against the fake Callyzer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import RunningApp
from tests.fakes.callyzer_api import FakeCallyzer, FakeClock, flat_call, running_fake
from tidings.backfill.callyzer_poll import PollResult, poll
from tidings.config import Settings
from tidings.providers.callyzer.api import CallyzerClient, RateLimiter
from tidings.storage.connections import StoredConnection

KEY = "cz-key-api"
NOW = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeCallyzer]:
    with running_fake(KEY, clock) as server:
        yield server


@pytest.fixture
def limiter(clock: FakeClock) -> RateLimiter:
    """The account's limiter, shared by every run of a test (as in one process)."""
    return RateLimiter(2.0, clock)


def run_poll(app: RunningApp, settings: Settings, limiter: RateLimiter) -> PollResult:
    def client(connection: StoredConnection, s: Settings) -> CallyzerClient:
        options = connection.options
        return CallyzerClient(options["api_url"], options["api_key"], limiter=limiter, timeout=2)

    return poll(app.db, settings, "cz", now=lambda: NOW, client_factory=client)


def test_runs_are_listed_newest_first_with_their_counts(
    running_app: RunningApp, settings: Settings, limiter: RateLimiter, fake: FakeCallyzer
) -> None:
    app = running_app
    app.add_connection("callyzer", "cz", api_url=fake.url, api_key=KEY)
    fake.add_call(flat_call("c1"), int((NOW - timedelta(hours=1)).timestamp()))
    first = run_poll(app, settings, limiter)
    fake.fail_next("db400", "db400", "db400")
    second = run_poll(app, settings, limiter)

    listed = app.api("GET", "/v1/connections/cz/backfill-runs")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["next_cursor"] is None
    newest, oldest = body["items"]
    assert (newest["id"], oldest["id"]) == (second.run_id, first.run_id)
    assert oldest["outcome"] == "ok" and oldest["connection"] == "cz"
    assert (oldest["fetched"], oldest["inserted"], oldest["updated"], oldest["skipped"]) == (
        1, 1, 0, 0,
    )  # fmt: skip
    assert oldest["trigger"] == "manual" and oldest["error"] is None
    assert oldest["window_to"] == "2026-07-28T12:00:00Z"
    assert newest["outcome"] == "failed" and "database" in newest["error"]
    assert newest["requests"] == 3 and newest["retries"] == 2

    paged = app.api("GET", "/v1/connections/cz/backfill-runs", params={"limit": 1}).json()
    assert [r["id"] for r in paged["items"]] == [second.run_id]
    rest = app.api(
        "GET", "/v1/connections/cz/backfill-runs", params={"cursor": paged["next_cursor"]}
    ).json()
    assert [r["id"] for r in rest["items"]] == [first.run_id]

    receipts = app.api("GET", "/v1/receipts").json()["items"]
    assert [r["source"] for r in receipts] == ["poll"]


def test_a_connection_shows_its_backfill_state_and_a_new_key_clears_the_refusal(
    running_app: RunningApp, settings: Settings, limiter: RateLimiter, fake: FakeCallyzer
) -> None:
    app = running_app
    app.add_connection("callyzer", "cz", api_url=fake.url, api_key="wrong")
    app.add_connection("evolution", "evo")
    never = app.api("GET", "/v1/connections/cz").json()["backfill"]
    assert never == {
        "credentials_rejected": False,
        "credentials_rejected_at": None,
        "credentials_rejected_error": None,
        "last_run": None,
    }
    run_poll(app, settings, limiter)

    shown = app.api("GET", "/v1/connections/cz").json()
    assert shown["options"]["api_key"] == "***"
    state = shown["backfill"]
    assert state["credentials_rejected"] is True
    assert state["credentials_rejected_at"] == "2026-07-28T12:00:00Z"
    assert "HTTP 401" in state["credentials_rejected_error"]
    assert state["last_run"]["outcome"] == "credentials_rejected"

    listed = {c["name"]: c for c in app.api("GET", "/v1/connections").json()["items"]}
    assert listed["cz"]["backfill"]["credentials_rejected"] is True
    assert listed["evo"]["backfill"] is None  # no backfill for evolution yet

    changed = app.api("PATCH", "/v1/connections/cz", json={"options": {"api_key": KEY}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["backfill"]["credentials_rejected"] is False
    assert changed.json()["backfill"]["last_run"]["outcome"] == "credentials_rejected"


def test_runs_of_an_unknown_connection_are_404(running_app: RunningApp) -> None:
    answer = running_app.api("GET", "/v1/connections/nope/backfill-runs")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    bad = running_app.api("GET", "/v1/connections/nope/backfill-runs", params={"cursor": "x"})
    assert bad.status_code in (400, 404)
