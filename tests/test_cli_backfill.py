"""`tidings backfill --connection NAME [--since DATE]` for a Callyzer connection, against the
fake Callyzer server: what it prints when it works, and one line for each way it cannot."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from tests.fakes.callyzer_api import FakeCallyzer, FakeClock, flat_call, running_fake
from tests.test_cli_manage import ok, refused
from tidings.backfill import callyzer_poll
from tidings.cli import main
from tidings.config import Settings
from tidings.providers.callyzer.api import CallyzerClient, RateLimiter
from tidings.storage.connections import StoredConnection

KEY = "cz-cli-key"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeCallyzer]:
    with running_fake(KEY, clock) as server:
        yield server


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, db_url: str, clock: FakeClock, fake: FakeCallyzer
) -> CliRunner:
    """A migrated store with a Callyzer connection `cz` on the fake, and clients that wait on
    the test's clock (backoff and the two-second rule take no real time)."""
    monkeypatch.setenv("TIDINGS_DATABASE_URL", db_url)
    monkeypatch.setenv("TIDINGS_TIMEZONE", "Asia/Kolkata")
    for name in ("TIDINGS_BROKER_URL", "TIDINGS_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    limiter = RateLimiter(2.0, clock)

    def client(connection: StoredConnection, settings: Settings) -> CallyzerClient:
        options = connection.options
        return CallyzerClient(
            options["api_url"],
            options["api_key"],
            timeout=settings.callyzer_timeout_seconds,
            limiter=limiter,
        )

    monkeypatch.setattr(callyzer_poll, "default_client", client)
    runner = CliRunner()
    ok(runner, "migrate")
    ok(
        runner, "connection", "add", "callyzer", "cz",
        "--option", f"api_url={fake.url}", "--option", f"api_key={KEY}",
    )  # fmt: skip
    return runner


def synced(hours_ago: float) -> int:
    return int((datetime.now(UTC) - timedelta(hours=hours_ago)).timestamp())


def test_backfill_fetches_the_call_log_and_says_what_it_found(
    cli: CliRunner, fake: FakeCallyzer
) -> None:
    for i in range(3):
        fake.add_call(flat_call(f"c{i}"), synced(2))
    out = ok(cli, "backfill", "--connection", "cz")
    assert "backfill run 1 of cz: fetched 3 calls synced" in out
    assert "3 new, 0 updated, 0 already stored (1 requests)" in out
    assert "applies them" in out
    # A second run finds them in the inbox's way, not yet applied: the worker is not running.
    assert "backfill run 2 of cz" in ok(cli, "backfill", "--connection", "cz")


def test_since_is_a_day_in_the_deployment_time_zone(cli: CliRunner, fake: FakeCallyzer) -> None:
    ok(cli, "backfill", "--connection", "cz", "--since", "2026-07-01")
    start = datetime(2026, 7, 1, tzinfo=UTC) - timedelta(hours=5, minutes=30)  # Asia/Kolkata
    assert fake.history_requests[0].body["synced_from"] == int(start.timestamp())
    ok(cli, "backfill", "--connection", "cz", "--since", "2026-07-01T10:00:00+00:00")
    start = datetime(2026, 7, 1, 10, tzinfo=UTC)
    assert fake.history_requests[-1].body["synced_from"] == int(start.timestamp())


def test_a_bad_or_future_since_is_refused(cli: CliRunner, fake: FakeCallyzer) -> None:
    bad = cli.invoke(main, ["backfill", "--connection", "cz", "--since", "yesterday"])
    assert bad.exit_code == 2 and "is not a date" in bad.output
    later = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    future = cli.invoke(main, ["backfill", "--connection", "cz", "--since", later])
    assert future.exit_code == 2 and "is in the future" in future.output
    assert fake.requests == []


def test_an_unknown_connection_is_one_line(cli: CliRunner) -> None:
    assert refused(cli, "backfill", "--connection", "nope") == "Error: no connection named 'nope'"


def test_a_provider_without_backfill_is_one_line(cli: CliRunner) -> None:
    ok(cli, "connection", "add", "evolution", "evo", "--secret", "s")
    line = refused(cli, "backfill", "--connection", "evo")
    assert line.startswith("Error: backfill for evolution is not available yet")


def test_a_connection_without_api_credentials_is_one_line(cli: CliRunner) -> None:
    ok(cli, "connection", "add", "callyzer", "hooks")
    line = refused(cli, "backfill", "--connection", "hooks")
    assert "has no api_url or api_key" in line and "--option api_key=KEY" in line


def test_bad_credentials_fail_mark_the_connection_and_wait_for_a_new_key(
    cli: CliRunner, fake: FakeCallyzer
) -> None:
    ok(cli, "connection", "update", "cz", "--option", "api_key=revoked")
    line = refused(cli, "backfill", "--connection", "cz")
    assert "Callyzer rejected the API key (HTTP 401: Invalid access token)" in line
    assert "revoked" not in line
    listed = ok(cli, "connection", "list")
    assert "credentials rejected since" in listed and "revoked" not in listed

    asked = len(fake.requests)
    again = refused(cli, "backfill", "--connection", "cz")
    assert "nothing is polled until it changes" in again
    assert len(fake.requests) == asked

    ok(cli, "connection", "update", "cz", "--option", f"api_key={KEY}")
    assert "credentials rejected" not in ok(cli, "connection", "list")
    assert "backfill run" in ok(cli, "backfill", "--connection", "cz")


def test_a_time_out_is_one_line(
    cli: CliRunner, fake: FakeCallyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_CALLYZER_TIMEOUT_SECONDS", "0.2")
    fake.fail_next("hang", "hang", "hang")
    line = refused(cli, "backfill", "--connection", "cz")
    assert line.startswith("Error: backfill run 1 of cz failed: Callyzer did not answer")
    assert "within 0.2s (time-out) (tried 3 times)" in line


def test_a_progress_bar_follows_the_pages(cli: CliRunner, fake: FakeCallyzer) -> None:
    for i in range(250):
        fake.add_call(flat_call(f"c{i:03d}"), synced(3))
    out = ok(cli, "backfill", "--connection", "cz")
    assert "fetching calls" in out
    assert "fetched 250 calls" in out and "(3 requests)" in out
