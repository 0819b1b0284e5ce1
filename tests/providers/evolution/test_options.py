"""An Evolution connection's api_version is checked when it is stored: only v1 and v2 exist, and
a send on another would fail only later."""

from __future__ import annotations

import pytest

from tidings.providers.options import InvalidConnection, check_connection


@pytest.mark.parametrize("version", ["v1", "v2", "V2"])
def test_a_version_evolution_has_is_taken(version: str) -> None:
    check_connection(
        "evolution", "s", {"api_url": "https://evo.example.com", "api_version": version}
    )


@pytest.mark.parametrize("version", ["v3", "2", "latest"])
def test_another_version_is_refused(version: str) -> None:
    with pytest.raises(InvalidConnection, match="is not one Evolution has: use v1 or v2"):
        check_connection("evolution", "s", {"api_version": version})
