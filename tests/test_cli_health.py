"""`tidings connection list` shows the health of every connection that sends, and the two
health settings refuse values that cannot work."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from tidings.cli import main
from tidings.domain.events import EventKind, Incoming, NormalizedEvent
from tidings.storage import connections
from tidings.storage.db import Database
from tidings.unit_of_work import Registration, apply_events, register


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, db_url: str) -> CliRunner:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", db_url)
    for name in ("TIDINGS_BROKER_URL", "TIDINGS_PUBLIC_URL", "TIDINGS_HOST", "TIDINGS_PORT"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    return runner


def _ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _lines(output: str) -> dict[str, str]:
    return {line.split("\t", 1)[0]: line for line in output.strip().splitlines()}


def test_connection_list_shows_score_errors_and_today(cli: CliRunner, db_url: str) -> None:
    _ok(cli, "connection", "add", "evolution", "evo")
    _ok(cli, "connection", "add", "callyzer", "cz")
    db = Database(db_url)
    now = datetime.now(UTC)
    with db.read() as conn:
        evo = connections.get_connection(conn, "evo")
    ids = [f"m{i:02}" for i in range(20)]  # registered in this order: m19 is the newest
    register(db, evo, [Registration(pmid) for pmid in ids], now)
    kinds = [EventKind.DELIVERED] * 18 + [EventKind.READ, EventKind.FAILED]
    events = [
        NormalizedEvent(pmid, kind, raw_status=kind.value, after_send=True)
        for pmid, kind in zip(ids, kinds, strict=True)
    ]
    apply_events(db, [Incoming(evo, event, None, now) for event in events], now)
    db.dispose()
    listed = _lines(_ok(cli, "connection", "list"))
    assert listed["evo"].endswith(
        "\thealth: healthy, score 0.95 of 20 outcomes, consecutive errors: 1, "
        "today: 19 delivered, 1 read, 1 failed"
    )
    assert "health" not in listed["cz"]  # Callyzer logs calls: no health
    strict = CliRunner(env={"TIDINGS_HEALTH_THRESHOLD": "0.96"})
    assert "\thealth: UNHEALTHY, score 0.95" in _lines(_ok(strict, "connection", "list"))["evo"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIDINGS_HEALTH_THRESHOLD", "1.5"),
        ("TIDINGS_HEALTH_THRESHOLD", "-0.1"),
        ("TIDINGS_HEALTH_THRESHOLD", "high"),
        ("TIDINGS_PAUSE_AFTER_ERRORS", "0"),
        ("TIDINGS_PAUSE_AFTER_ERRORS", "ten"),
    ],
)
def test_health_settings_that_cannot_work_are_refused(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    result = cli.invoke(main, ["connection", "list"])
    assert result.exit_code == 1
    key = name.removeprefix("TIDINGS_").lower()
    assert result.output.startswith(f"Error: configuration: {name} ({key}): ")
    assert len(result.output.strip().splitlines()) == 1
