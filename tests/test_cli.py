"""The `tidings` command, run in-process with click's runner against a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from tidings.cli import main
from tidings.config import Settings
from tidings.domain.events import EventKind, Incoming, NormalizedEvent
from tidings.storage import connections, inbox
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt, ReceiptStatus
from tidings.storage.schema import campaign_counters, receipts
from tidings.unit_of_work import Registration, apply_events, register


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, list(args), catch_exceptions=False)


def test_help_lists_the_commands(cli: CliRunner) -> None:
    result = run(cli, "--help")
    for command in ("serve", "migrate", "connection", "token", "replay", "recount", "doctor"):
        assert command in result.output


def test_connection_add_prints_intake_url_last(migrated: CliRunner) -> None:
    cli = migrated
    result = run(
        cli,
        "connection",
        "add",
        "evolution",
        "main",
        "--secret",
        "abc123",
        "--option",
        "auth_header=X-Secret",
    )
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last == "http://127.0.0.1:8000/hooks/evolution/main?token=abc123"
    listed = run(cli, "connection", "list")
    assert "main\tevolution\thttp://127.0.0.1:8000/hooks/evolution/main" in listed.output
    assert "abc123" not in listed.output
    duplicate = cli.invoke(main, ["connection", "add", "callbell", "main"])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output


def test_connection_add_generates_a_secret_and_rejects_bad_options(migrated: CliRunner) -> None:
    cli = migrated
    result = run(cli, "connection", "add", "callbell", "cb")
    secret_line = next(line for line in result.output.splitlines() if line.startswith("generated"))
    secret = secret_line.split(": ", 1)[1]
    assert len(secret) >= 24
    assert result.output.strip().endswith(f"?token={secret}")
    bad = cli.invoke(main, ["connection", "add", "callbell", "cb2", "--option", "novalue"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
    unknown = cli.invoke(main, ["connection", "add", "nosuch", "x"])
    assert unknown.exit_code == 2


def test_token_create_prints_the_token_alone_last(migrated: CliRunner, db_url: str) -> None:
    cli = migrated
    result = run(cli, "token", "create", "--name", "ci")
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("tdg_") and " " not in token
    from tidings.storage.tokens import check_token

    db = Database(db_url)
    with db.read() as conn:
        assert check_token(conn, token)
        assert not check_token(conn, token + "x")
    db.dispose()


def _store_with_campaign(db_url: str) -> Database:
    db = Database(db_url)
    now = datetime.now(UTC)
    with db.write() as conn:
        c = connections.add_connection(conn, "evolution", "main", "s", {}, now)
    register(db, c, [Registration("M1", campaign="spring")], now)
    event = NormalizedEvent("M1", EventKind.DELIVERED, raw_status="DELIVERY_ACK")
    apply_events(db, [Incoming(c, event, None, now)], now)
    return db


def test_recount_exit_codes_and_fix(cli: CliRunner, db_url: str) -> None:
    run(cli, "migrate")
    db = _store_with_campaign(db_url)
    clean = run(cli, "recount")
    assert clean.exit_code == 0 and "no drift" in clean.output
    with db.write() as conn:
        conn.execute(update(campaign_counters).values(delivered=5))
    drifted = cli.invoke(main, ["recount"])
    assert drifted.exit_code == 1
    assert "spring\tdelivered\tstored 5\tactual 1" in drifted.output
    fixed = cli.invoke(main, ["recount", "--fix"])
    assert fixed.exit_code == 1 and "repaired" in fixed.output
    assert run(cli, "recount").exit_code == 0
    db.dispose()


def test_replay_by_status_and_connection(cli: CliRunner, db_url: str) -> None:
    run(cli, "migrate")
    db = _store_with_campaign(db_url)
    now = datetime.now(UTC)
    with db.write() as conn:
        ids = inbox.insert_receipts(
            conn,
            [
                NewReceipt(1, "evolution", now, "application/json", {}, b"{}", ReceiptStatus.DEAD),
                NewReceipt(
                    1, "evolution", now, "application/json", {}, b"{", ReceiptStatus.QUARANTINED
                ),
            ],
        )
    assert cli.invoke(main, ["replay"]).exit_code == 2
    result = run(cli, "replay", "--status", "dead", "--connection", "main")
    assert result.output.startswith("1 receipt queued")
    with db.read() as conn:
        statuses = dict(
            conn.execute(
                receipts.select().with_only_columns(receipts.c.id, receipts.c.status)
            ).all()
        )
    assert statuses == {ids[0]: "pending", ids[1]: "quarantined"}
    unknown = cli.invoke(main, ["replay", "--connection", "nope"])
    assert unknown.exit_code == 1 and "nope" in unknown.output
    bad_date = cli.invoke(main, ["replay", "--since", "yesterday"])
    assert bad_date.exit_code == 2
    db.dispose()


def test_doctor_reports_each_check(
    cli: CliRunner, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = cli.invoke(main, ["doctor"])
    assert fresh.exit_code == 1 and "run tidings migrate" in fresh.output
    run(cli, "migrate")
    healthy = cli.invoke(main, ["doctor"])
    assert healthy.exit_code == 0, healthy.output
    assert "[ok] counters: no drift" in healthy.output
    assert "[ok] dashboard: no users yet: tidings user create EMAIL" in healthy.output
    run(cli, "user", "create", "ana@example.com", "--password", "long enough")
    assert "[ok] dashboard: 1 user can log in" in cli.invoke(main, ["doctor"]).output
    monkeypatch.setenv("TIDINGS_JOB_INTERVALS", "retry_due_receipt=5")  # the s missing
    typo = cli.invoke(main, ["doctor"])
    assert typo.exit_code == 1, "serve would refuse to start with it"
    assert "[FAIL] configuration: TIDINGS_JOB_INTERVALS names unknown jobs" in typo.output
    assert "retry_due_receipts" in typo.output
    monkeypatch.delenv("TIDINGS_JOB_INTERVALS")
    monkeypatch.setenv("TIDINGS_BROKER_URL", "redis://127.0.0.1:1/0")
    no_broker = cli.invoke(main, ["doctor"])
    assert no_broker.exit_code == 1 and "[FAIL] broker" in no_broker.output


def test_bad_configuration_is_a_clear_error(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIDINGS_RECEIPT_RETRY_SCHEDULE", "soon")
    result = cli.invoke(main, ["migrate"])
    assert result.exit_code == 1 and "receipt_retry_schedule" in result.output
    monkeypatch.delenv("TIDINGS_RECEIPT_RETRY_SCHEDULE")
    monkeypatch.setenv("TIDINGS_CONFIG", str(tmp_path / "missing.toml"))
    missing = cli.invoke(main, ["migrate"])
    assert missing.exit_code == 1 and "missing.toml" in missing.output


def test_toml_config_file_is_read(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "from-toml.db"}"\n')
    monkeypatch.delenv("TIDINGS_DATABASE_URL")
    monkeypatch.setenv("TIDINGS_CONFIG", str(config))
    assert Settings().database_url.endswith("from-toml.db")
    run(cli, "migrate")
    assert (tmp_path / "from-toml.db").exists()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('log_levle = "DEBUG"\n', ["'log_levle' (did you mean 'log_level'?)", "lower case"]),
        ('TIDINGS_LOG_LEVEL = "DEBUG"\n', ["did you mean 'log_level'?"]),
        ("log_level = DEBUG\n", ["is not valid TOML", "line 1"]),
    ],
)
def test_a_config_file_with_a_misspelled_key_or_bad_toml_names_the_file(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, words: list[str]
) -> None:
    """Not silently ignored (the default would be used without a word), and never a
    traceback: one line naming the file and the key."""
    config = tmp_path / "tidings.toml"
    config.write_text(text)
    monkeypatch.setenv("TIDINGS_CONFIG", str(config))
    result = cli.invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert str(config) in result.output and len(result.output.strip().splitlines()) == 1
    for word in words:
        assert word in result.output


def test_a_config_file_that_cannot_be_read_is_one_line(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A file this user may not read (the suite runs as root, who reads any file: so the
    refusal is made by the filesystem call itself)."""
    config = tmp_path / "tidings.toml"
    config.write_text('log_level = "INFO"\n')
    monkeypatch.setenv("TIDINGS_CONFIG", str(config))

    def refused(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refused)
    result = cli.invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert f"{config} cannot be read: Permission denied" in result.output
