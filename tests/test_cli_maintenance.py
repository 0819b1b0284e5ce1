"""`tidings doctor` stays cheap on a big store, and `tidings vacuum` turns an old SQLite store
into one that returns the space the retention purge frees."""

from __future__ import annotations

import importlib
import sqlite3
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from tests.test_cli import run
from tidings.cli import main
from tidings.storage import connections
from tidings.storage.db import Database
from tidings.storage.schema import campaign_counters
from tidings.unit_of_work import Registration, register

doctor_module = importlib.import_module("tidings.cli.doctor")  # the package exports the command


def _store(db_url: str) -> Database:
    db = Database(db_url)
    now = datetime.now(UTC)
    with db.write() as conn:
        source = connections.add_connection(conn, "evolution", "main", "s", {}, now)
    register(db, source, [Registration(f"M{i}", campaign="spring") for i in range(3)], now)
    return db


def test_doctor_on_a_big_store_reports_the_last_recount_instead_of_running_one(
    cli: CliRunner,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run(cli, "migrate")
    db = _store(db_url)
    monkeypatch.setattr(doctor_module, "RECOUNT_UP_TO", 2)  # three messages are "big" here
    never = cli.invoke(main, ["doctor"])
    assert never.exit_code == 0, never.output
    assert "[ok] counters: about 3 messages: never recounted (tidings recount)" in never.output
    assert run(cli, "recount").exit_code == 0
    after = cli.invoke(main, ["doctor"])
    assert "[ok] counters: last recount 0 s ago: no drift in 1 campaigns" in after.output
    with db.write() as conn:
        conn.execute(update(campaign_counters).values(sent=9))
    assert cli.invoke(main, ["recount"]).exit_code == 1
    drifted = cli.invoke(main, ["doctor"])
    assert drifted.exit_code == 1
    assert "[FAIL] counters: last recount 0 s ago: 1 counters drifted" in drifted.output
    assert run(cli, "recount", "--fix").exit_code == 1
    repaired = cli.invoke(main, ["doctor"])
    assert repaired.exit_code == 0 and "(repaired)" in repaired.output
    db.dispose()


def test_doctor_reports_disk_use(cli: CliRunner) -> None:
    run(cli, "migrate")
    healthy = cli.invoke(main, ["doctor"])
    assert "[ok] disk: store " in healthy.output
    assert "space the retention purge frees is returned" in healthy.output


@pytest.mark.sqlite_only  # a store from before incremental auto-vacuum is a SQLite file
def test_vacuum_makes_an_old_store_return_freed_space(cli: CliRunner, db_url: str) -> None:
    path = db_url.removeprefix("sqlite:///")
    old = sqlite3.connect(path)
    old.execute("PRAGMA auto_vacuum=NONE")
    old.execute("CREATE TABLE made_by_an_old_version (x)")  # fixes the mode, as tables did
    old.close()
    run(cli, "migrate")
    before = cli.invoke(main, ["doctor"])
    assert "never returned: run tidings vacuum" in before.output
    vacuumed = run(cli, "vacuum")
    assert vacuumed.exit_code == 0 and "vacuumed:" in vacuumed.output
    after = cli.invoke(main, ["doctor"])
    assert "space the retention purge frees is returned" in after.output
    assert sqlite3.connect(path).execute("PRAGMA auto_vacuum").fetchone() == (2,)


def test_vacuum_reports_the_size_before_and_after(cli: CliRunner, db_url: str) -> None:
    run(cli, "migrate")
    _store(db_url).dispose()
    vacuumed = run(cli, "vacuum")
    assert vacuumed.exit_code == 0
    assert "this can take minutes" in vacuumed.output
    assert "vacuumed: " in vacuumed.output and " MiB -> " in vacuumed.output
