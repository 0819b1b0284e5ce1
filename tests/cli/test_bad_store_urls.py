"""A store URL or log level a user gets wrong ends a command with one line and exit 1, never
a traceback (README "Commands"): a SQLite URL naming no file, one naming a host, a file that
is no database, an unknown log level."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import TIDINGS, free_port
from tidings.cli import main
from tidings.config import Settings
from tidings.domain.errors import TidingsError
from tidings.storage.db import Database
from tidings.storage.migrate import upgrade

COMMANDS = [["migrate"], ["connection", "list"], ["doctor"], ["token", "list"]]
NO_FILE = "names no file; use sqlite:////path/to/tidings.db"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner none of this machine's TIDINGS_* settings leak into."""
    for name in [name for name in os.environ if name.startswith("TIDINGS_")]:
        monkeypatch.delenv(name)
    return CliRunner()


@pytest.fixture
def garbage(tmp_path: Path) -> Path:
    """A file where the store should be that is no SQLite database."""
    path = tmp_path / "garbage.db"
    path.write_text("hello\n")
    return path


def _one_line_error(result: Result) -> str:
    """The one line a failed command printed, after checking it failed that way."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    return lines[0]


def _tidings(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: `serve` would otherwise set up this one."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("TIDINGS_")}
    return subprocess.run(
        [TIDINGS, *args], env=clean | env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://", "sqlite:///:memory:"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_sqlite_url_naming_no_file_is_a_configuration_error(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, url: str, command: list[str]
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", url)
    line = _one_line_error(runner.invoke(main, command))
    assert line == f"Error: configuration: TIDINGS_DATABASE_URL (database_url): {url} {NO_FILE}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_sqlite_url_naming_a_host_says_how_to_write_a_path(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "sqlite://relative.db")
    line = _one_line_error(runner.invoke(main, command))
    assert line.startswith(
        "Error: configuration: TIDINGS_DATABASE_URL (database_url): sqlite://relative.db "
        "names a host, not a file: write sqlite:///relative.db for a path relative to"
    )
    assert "sqlite:////path/to/tidings.db" in line


def test_a_url_error_never_shows_the_password(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "sqlite://ana:hunter2@files/tidings.db")
    line = _one_line_error(runner.invoke(main, ["migrate"]))
    assert "hunter2" not in line and "sqlite://ana:***@files/tidings.db" in line


def test_settings_and_the_engine_refuse_a_store_without_a_file(tmp_path: Path) -> None:
    assert Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}").database_url.endswith("x.db")
    assert Settings(database_url="postgresql://u:p@db/tidings").database_url  # not SQLite's rule
    with pytest.raises(ValueError, match="names no file"):
        Settings(database_url="sqlite:///file:x?mode=memory&uri=true")
    with pytest.raises(TidingsError, match=f"database URL sqlite:/// {NO_FILE}"):
        Database("sqlite:///")  # migrate-data's --from/--to reach the engine without Settings


@pytest.mark.parametrize("flag", ["--from", "--to"])
def test_migrate_data_refuses_a_store_without_a_file(
    runner: CliRunner, tmp_path: Path, flag: str
) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert runner.invoke(main, ["migrate"], env={"TIDINGS_DATABASE_URL": other}).exit_code == 0
    urls = {"--from": other, "--to": other, flag: "sqlite:///"}
    result = runner.invoke(main, ["migrate-data", "--from", urls["--from"], "--to", urls["--to"]])
    assert _one_line_error(result) == f"Error: database URL sqlite:/// {NO_FILE}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != ["doctor"]], ids=" ".join)
def test_a_file_that_is_no_database_is_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, garbage: Path, command: list[str]
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite:///{garbage}")
    line = _one_line_error(runner.invoke(main, command))
    assert line.startswith(f"Error: the store at {garbage} is not an SQLite database")
    assert garbage.read_text() == "hello\n"  # left as it was


def test_doctor_reports_a_file_that_is_no_database_as_a_failed_check(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, garbage: Path
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite:///{garbage}")
    result = runner.invoke(main, ["doctor"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"[FAIL] store: the store at {garbage} is not an SQLite database" in result.output
    assert "[ok] broker" in result.output  # the other checks still ran


@pytest.mark.parametrize("worker", [[], ["--no-worker"]], ids=["serve", "serve --no-worker"])
def test_serve_on_a_file_that_is_no_database_is_one_line(garbage: Path, worker: list[str]) -> None:
    env = {"TIDINGS_DATABASE_URL": f"sqlite:///{garbage}"}
    done = _tidings(env, "serve", "--port", str(free_port()), *worker)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: the store at {garbage} is not an SQLite database: set TIDINGS_DATABASE_URL "
        "to the store's file, or move this file away and run tidings migrate"
    ]


@pytest.mark.parametrize("command", [*COMMANDS, ["serve"]], ids=" ".join)
def test_an_unknown_log_level_is_a_configuration_error(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite:///{tmp_path / 'tidings.db'}")
    monkeypatch.setenv("TIDINGS_LOG_LEVEL", "LOUD")
    assert _one_line_error(runner.invoke(main, command)) == (
        "Error: configuration: TIDINGS_LOG_LEVEL (log_level): 'LOUD' is not a log level: "
        "use DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )


def test_a_log_level_is_read_in_any_case_under_its_standard_name() -> None:
    assert Settings(log_level=" debug ").log_level == "DEBUG"
    assert Settings(log_level="warn").log_level == "WARNING"


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    """A store whose pages after the first were overwritten (a disk fault, a bad copy)."""
    path = tmp_path / "damaged.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(4096)
        file.write(random.Random(7).randbytes(size - 4096))
    return path


DAMAGED = "is damaged (SQLite: database disk image is malformed): stop tidings, then restore"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("command", [c for c in COMMANDS if c != ["doctor"]], ids=" ".join)
def test_a_damaged_store_is_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, damaged: Path, command: list[str]
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite:///{damaged}")
    line = _one_line_error(runner.invoke(main, command))
    assert line.startswith(f"Error: the store at {damaged} {DAMAGED}")


@pytest.mark.sqlite_only
def test_doctor_and_serve_say_a_store_is_damaged(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, damaged: Path
) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite:///{damaged}")
    checked = runner.invoke(main, ["doctor"])
    assert checked.exit_code == 1 and "Traceback" not in checked.output
    assert f"[FAIL] store: the store at {damaged} {DAMAGED}" in checked.output
    served = _tidings({"TIDINGS_DATABASE_URL": f"sqlite:///{damaged}"}, "serve", "--port",
                      str(free_port()))  # fmt: skip
    assert served.returncode == 1 and "Traceback" not in served.stderr
    assert f"the store at {damaged} {DAMAGED}" in served.stderr
