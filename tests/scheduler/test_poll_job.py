"""The scheduled job `poll_callyzer`: every Callyzer connection with an API is polled, hourly by
default and as TIDINGS_JOB_INTERVALS says; one whose key was refused, or whose run is going
elsewhere, is left alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes.callyzer_api import FakeCallyzer, FakeClock, flat_call, running_fake
from tidings.backfill import callyzer_poll
from tidings.config import Settings
from tidings.providers.callyzer.api import CallyzerClient, RateLimiter
from tidings.scheduler.jobs import JOBS, JobContext, poll_callyzer, scheduled_jobs
from tidings.storage import backfill_runs, connections
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database


class _Worker:
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Clients of the job wait on this clock, not in real time."""
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock)

    def client(connection: StoredConnection, settings: Settings) -> CallyzerClient:
        options = connection.options
        return CallyzerClient(options["api_url"], options["api_key"], limiter=limiter, timeout=2)

    monkeypatch.setattr(callyzer_poll, "default_client", client)
    return clock


@pytest.fixture
def fakes(clock: FakeClock) -> Iterator[tuple[FakeCallyzer, FakeCallyzer]]:
    with running_fake("key-a", clock) as a, running_fake("key-c", clock) as c:
        yield a, c


def test_the_job_polls_each_callyzer_connection_with_an_api(
    db: Database, settings: Settings, fakes: tuple[FakeCallyzer, FakeCallyzer]
) -> None:
    polled, refused = fakes
    polled.add_call(flat_call("c1"), int((datetime.now(UTC) - timedelta(hours=1)).timestamp()))
    now = datetime.now(UTC)
    with db.write() as conn:
        connections.add_connection(
            conn, "callyzer", "a", "s", {"api_url": polled.url, "api_key": "key-a"}, now
        )
        connections.add_connection(conn, "callyzer", "hooks-only", "s", {}, now)
        connections.add_connection(conn, "evolution", "evo", "s", {}, now)
        rejected = connections.add_connection(
            conn, "callyzer", "c", "s", {"api_url": refused.url, "api_key": "key-c"}, now
        )
        connections.mark_credentials_rejected(conn, rejected, "HTTP 401", now)
    worker = _Worker()

    assert poll_callyzer(JobContext(db, settings, worker)) == 1

    assert len(polled.history_requests) == 1
    assert refused.requests == []
    assert worker.woken == 1  # a call was queued: the worker is told at once
    with db.read() as conn:
        [run] = backfill_runs.list_runs(conn, connections.get_connection(conn, "a").id, None, 5)
    assert (run.trigger, run.outcome, run.inserted) == ("schedule", "ok", 1)


def test_a_connection_whose_run_is_going_elsewhere_is_skipped(
    db: Database, settings: Settings, fakes: tuple[FakeCallyzer, FakeCallyzer]
) -> None:
    polled, _ = fakes
    now = datetime.now(UTC)
    with db.write() as conn:
        added = connections.add_connection(
            conn, "callyzer", "a", "s", {"api_url": polled.url, "api_key": "key-a"}, now
        )
    backfill_runs.start(db, added.id, "manual", now, timedelta(minutes=15))
    assert poll_callyzer(JobContext(db, settings, _Worker())) == 0
    assert polled.requests == []


def test_a_failed_poll_is_logged_and_the_job_goes_on(
    db: Database,
    settings: Settings,
    fakes: tuple[FakeCallyzer, FakeCallyzer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    polled, _ = fakes
    polled.fail_next("500", "500", "500")
    with db.write() as conn:
        connections.add_connection(
            conn,
            "callyzer",
            "a",
            "s",
            {"api_url": polled.url, "api_key": "key-a"},
            datetime.now(UTC),
        )
    assert poll_callyzer(JobContext(db, settings, _Worker())) == 0
    assert "callyzer poll of a failed" in caplog.text and "tried 3 times" in caplog.text
    assert "key-a" not in caplog.text


def test_the_poll_is_hourly_unless_configured() -> None:
    assert {job.name: job.interval_seconds for job in JOBS}["poll_callyzer"] == 3600.0
    configured = scheduled_jobs(Settings(job_intervals="poll_callyzer=900"))
    assert {job.name: job.interval_seconds for job in configured}["poll_callyzer"] == 900.0
