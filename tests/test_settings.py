"""Settings a user gets wrong are refused when tidings starts, with the setting's name and
what it takes, never taken silently for something else."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import TIDINGS
from tidings.cli import main
from tidings.config import Settings, unknown_variables


def test_an_unknown_time_zone_is_refused_not_read_as_utc() -> None:
    assert Settings(timezone=" America/Sao_Paulo ").timezone == "America/Sao_Paulo"
    assert Settings(timezone="").timezone == "UTC"
    with pytest.raises(ValueError, match="'America/Sao Paulo' is not an IANA time zone"):
        Settings(timezone="America/Sao Paulo")


def test_a_stale_window_shorter_than_a_send_is_refused() -> None:
    assert Settings(send_timeout_seconds=10, send_stale_seconds=121).send_stale_seconds == 121
    with pytest.raises(ValueError, match="TIDINGS_SEND_STALE_SECONDS must exceed 120"):
        Settings(send_timeout_seconds=10, send_stale_seconds=120)


def test_the_command_line_says_which_setting_is_wrong_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDINGS_TIMEZONE", "Mars/Olympus")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: configuration: TIDINGS_TIMEZONE (timezone): 'Mars/Olympus' is not an IANA "
        "time zone (e.g. UTC, America/Sao_Paulo, Asia/Kolkata)"
    )


def test_a_public_url_providers_cannot_reach_is_refused() -> None:
    """It is printed into every intake URL given to a provider."""
    assert Settings(public_url=" https://hooks.example.com/ ").public_url == (
        "https://hooks.example.com/"
    )
    assert Settings(public_url="").public_url is None
    for wrong in ("notaurl", "hooks.example.com", "ftp://hooks.example.com", "https://"):
        with pytest.raises(ValueError, match="is not a URL providers can reach"):
            Settings(public_url=wrong)


def test_a_public_url_keeps_its_scheme_in_lower_case() -> None:
    """The dashboard marks cookies Secure when the public URL starts with "https:"."""
    assert Settings(public_url="HTTPS://Hooks.example.com").public_url == (
        "https://Hooks.example.com"
    )


def test_trusted_proxies_are_addresses_networks_or_a_star() -> None:
    """A name uvicorn cannot match would trust no proxy, silently: every login would seem to
    come from the proxy and share its limit."""
    for value in ("127.0.0.1", "10.0.0.5, 10.1.0.0/16", "::1,fd00::/8", "*"):
        assert Settings(trusted_proxies=value).trusted_proxies == value
    with pytest.raises(ValueError, match=r"'proxy\.internal' is no address"):
        Settings(trusted_proxies="10.0.0.5,proxy.internal")


def test_a_misspelled_variable_is_named_not_ignored_in_silence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    said = unknown_variables(
        {"TIDINGS_DATABSE_URL": "x", "TIDINGS_CONFIG": "f", "TIDINGS_PORT": "1", "HOME": "/"}
    )
    assert [str(v) for v in said] == [
        "TIDINGS_DATABSE_URL is no tidings setting (did you mean TIDINGS_DATABASE_URL?); "
        "it is ignored"
    ]
    [stray] = unknown_variables({"TIDINGS_FOO": "1"})
    assert (str(stray), stray.meant) == ("TIDINGS_FOO is no tidings setting; it is ignored", None)
    ours = ("TIDINGS_WORKER_CONCURRENCY", "TIDINGS_CHROMIUM", "TIDINGS_WEBHOOK_SECRET")
    assert unknown_variables(dict.fromkeys(ours, "1")) == []  # the Procfile's, the tests', ...
    monkeypatch.setenv("TIDINGS_DATABSE_URL", f"sqlite:///{tmp_path / 'meant.db'}")
    checked = CliRunner().invoke(main, ["doctor"])
    assert checked.exit_code == 1
    assert "[FAIL] configuration: TIDINGS_DATABSE_URL is no tidings setting" in checked.output
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["TIDINGS_DATABSE_URL"] = "sqlite:///meant.db"
    listed = subprocess.run([TIDINGS, "token", "list"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert listed.stderr.count("warning: TIDINGS_DATABSE_URL is no tidings setting") == 1
