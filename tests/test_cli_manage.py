"""Managing connections and tokens from the `tidings` command, and what every command says
when its store is missing, unmigrated, unreachable or not a store at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tidings.cli import main
from tidings.storage.db import Database
from tidings.storage.migrate import head_revision, upgrade
from tidings.storage.schema import connections as connections_table


def ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def refused(runner: CliRunner, *args: str) -> str:
    """The command failed with exit 1 and one line on stderr, no traceback."""
    result = runner.invoke(main, list(args))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def _last(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_update_changes_secret_and_options_and_keeps_the_rest(migrated: CliRunner) -> None:
    cli = migrated
    ok(cli, "connection", "add", "evolution", "evo", "--secret", "one", "--option", "instance=a")
    out = ok(
        cli, "connection", "update", "evo", "--secret", "two",
        "--option", "campaign_key=campaign", "--unset-option", "instance",
    )  # fmt: skip
    assert "options: campaign_key" in out
    assert _last(out) == "http://127.0.0.1:8000/hooks/evolution/evo?token=two"
    assert "two" not in ok(cli, "connection", "list")
    assert "give --secret" in cli.invoke(main, ["connection", "update", "evo"]).output


def test_remove_keeps_the_row_and_frees_the_name(migrated: CliRunner, db_url: str) -> None:
    cli = migrated
    ok(cli, "connection", "add", "callbell", "cb", "--secret", "s")
    assert "answers 404" in ok(cli, "connection", "remove", "cb")
    assert "no connections yet" in ok(cli, "connection", "list")
    assert "no connection named 'cb'" in refused(cli, "connection", "remove", "cb")
    assert "no connection named 'cb'" in refused(cli, "connection", "update", "cb", "--secret", "x")
    ok(cli, "connection", "add", "evolution", "cb", "--secret", "t")  # the name is free again
    db = Database(db_url)
    with db.read() as conn:
        rows = conn.execute(select(connections_table.c.provider, connections_table.c.removed_at))
        kept = sorted((r.provider, r.removed_at is None) for r in rows)
    db.dispose()
    assert kept == [("callbell", False), ("evolution", True)]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["meta", "m", "--option", "verify_token=v"], "meta connection needs --secret"),
        (["meta", "m", "--secret", "app-secret"], "verify_token"),
        (["twilio", "t"], "twilio connection needs --secret"),
        (["twilio", "t", "--secret", ""], "twilio connection needs --secret"),
        (["callbell", "c", "--option", "instance=x"], "it knows: api_key, api_url, auth_header"),
        (["evolution", "a/b"], "cannot be a connection name"),
        (["evolution", ".."], "cannot be a connection name"),
        (["evolution", "x" * 101], "cannot be a connection name"),
        (["evolution", "e", "--option", "api_url="], "option api_url has no value"),
        (["evolution", "e", "--secret", " "], "the secret is empty"),
        (["evolution", "e", "--option", "auth_header=bad header"], "not an HTTP header name"),
    ],
)
def test_add_refuses_a_connection_that_cannot_work(
    migrated: CliRunner, db_url: str, args: list[str], says: str
) -> None:
    assert says in refused(migrated, "connection", "add", *args)
    db = Database(db_url)
    with db.read() as conn:  # nothing stored, no secret invented
        assert conn.execute(select(connections_table.c.id)).first() is None
    db.dispose()


def test_update_applies_the_same_checks(migrated: CliRunner) -> None:
    cli = migrated
    ok(cli, "connection", "add", "meta", "m", "--secret", "app", "--option", "verify_token=v")
    assert "verify_token" in refused(
        cli, "connection", "update", "m", "--unset-option", "verify_token"
    )
    assert "needs --secret" in refused(cli, "connection", "update", "m", "--secret", "")
    assert "does not know the option region2" in refused(
        cli, "connection", "update", "m", "--option", "region2=x"
    )
    out = ok(cli, "connection", "update", "m", "--option", "phone_number_id=123")
    assert _last(out) == "http://127.0.0.1:8000/hooks/meta/m"  # Meta signs: no token in URL
    assert "has no option phone_number_ld to drop (its options: phone_number_id, verify_token)" in (
        refused(cli, "connection", "update", "m", "--unset-option", "phone_number_ld")
    )
    ok(cli, "connection", "add", "evolution", "e")
    assert "the secret is empty" in refused(cli, "connection", "update", "e", "--secret", "")


def test_tokens_are_listed_by_name_and_revoked(migrated: CliRunner) -> None:
    cli = migrated
    first = _last(ok(cli, "token", "create"))
    second = _last(ok(cli, "token", "create"))
    ok(cli, "token", "create", "--name", "ci")
    assert "already exists" in refused(cli, "token", "create", "--name", "ci")
    assert "name cannot be empty" in refused(cli, "token", "create", "--name", " ")
    listed = ok(cli, "token", "list")
    assert [line.split("\t")[0] for line in listed.splitlines()] == ["ci", "default", "default-2"]
    assert "created 20" in listed and first not in listed and second not in listed
    assert "revoked" in ok(cli, "token", "revoke", "default-2")
    assert "no token named 'default-2'" in refused(cli, "token", "revoke", "default-2")
    assert "default-2" not in ok(cli, "token", "list")


def test_replay_of_an_unknown_receipt_says_so(migrated: CliRunner) -> None:
    assert "no receipt with id 41, 42" in refused(migrated, "replay", "41", "42")


STORE_COMMANDS = [
    ["connection", "add", "evolution", "evo", "--secret", "s"],
    ["connection", "list"],
    ["connection", "update", "evo", "--secret", "s"],
    ["connection", "remove", "evo"],
    ["token", "create", "--name", "n"],
    ["token", "list"],
    ["token", "revoke", "n"],
    ["replay", "1"],
    ["recount"],
    ["serve", "--no-worker"],
]


@pytest.mark.sqlite_only  # a SQLite file is what would be created as a side effect
@pytest.mark.parametrize("args", STORE_COMMANDS, ids=" ".join)
def test_no_store_is_one_line_and_creates_no_file(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    path = tmp_path / "typo.db"
    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite:///{path}")
    line = refused(cli, *args)
    assert f"no store at sqlite:///{path}: run tidings migrate" in line
    assert "TIDINGS_DATABASE_URL" in line
    assert not path.exists()


@pytest.mark.parametrize("args", STORE_COMMANDS[:2] + STORE_COMMANDS[5:], ids=" ".join)
def test_an_unmigrated_store_says_run_migrate(cli: CliRunner, db_url: str, args: list[str]) -> None:
    db = Database(db_url)
    upgrade(db, "0003")
    db.dispose()
    assert f"is at schema 0003, not {head_revision()}: run tidings migrate" in refused(cli, *args)


@pytest.mark.parametrize("args", [["token", "list"], ["recount"], ["migrate"], ["serve"]])
def test_unreachable_and_unsupported_stores_are_one_line(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "postgresql://tidings:hunter2@127.0.0.1:1/t")
    line = refused(cli, *args)
    assert "127.0.0.1:1" in line and "hunter2" not in line
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "mysql://tidings:hunter2@db/t")
    line = refused(cli, *args)
    assert "unsupported database URL mysql://tidings:***@db/t" in line


def test_printed_urls_follow_public_url_then_config(
    migrated: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = migrated
    monkeypatch.setenv("TIDINGS_PORT", "8123")
    out = ok(cli, "connection", "add", "callbell", "cb", "--secret", "s")
    assert _last(out) == "http://127.0.0.1:8123/hooks/callbell/cb?token=s"
    monkeypatch.setenv("TIDINGS_PUBLIC_URL", "https://hooks.example.com/")
    assert "https://hooks.example.com/hooks/callbell/cb\t" in ok(cli, "connection", "list")
