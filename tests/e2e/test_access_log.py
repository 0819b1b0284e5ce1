"""`tidings serve` writes no line per request unless asked: the receipts table and /metrics
already record every webhook, and at the default level the line cost a quarter of the rate."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import TIDINGS, free_port, serving
from tests.e2e.payloads import evolution_update


def _env(db_url: str, **extra: str) -> dict[str, str]:
    """The user's environment with only the store set (the default level, INFO), plus extra."""
    unset = ("TIDINGS_LOG_LEVEL", "TIDINGS_ACCESS_LOG", "TIDINGS_BROKER_URL", "TIDINGS_PORT")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {**env, "TIDINGS_DATABASE_URL": db_url, **extra}


def _post_one(env: dict[str, str], port: int, log: Path) -> str:
    for command in (
        ["migrate"],
        ["connection", "add", "evolution", "evo", "--secret", "hush-hush"],
    ):
        subprocess.run([TIDINGS, *command], env=env, check=True, capture_output=True)
    with serving(env, port, log):
        url = f"http://127.0.0.1:{port}/hooks/evolution/evo?token=hush-hush"
        assert httpx.post(url, content=evolution_update("ACC1", "READ")).status_code == 202
    return log.read_text()


@pytest.mark.once
def test_by_default_serve_writes_no_line_per_request(tmp_path: Path, db_url: str) -> None:
    written = _post_one(_env(db_url), free_port(), tmp_path / "serve.log")
    assert "INFO uvicorn.error Application startup complete" in written  # INFO is written
    assert "uvicorn.access" not in written
    assert "/hooks/evolution/evo" not in written


@pytest.mark.once
def test_tidings_access_log_turns_the_line_on_and_it_is_masked(tmp_path: Path, db_url: str) -> None:
    env = _env(db_url, TIDINGS_ACCESS_LOG="true")
    written = _post_one(env, free_port(), tmp_path / "serve.log")
    access = [line for line in written.splitlines() if " uvicorn.access " in line]
    hooks = [line for line in access if "/hooks/" in line]
    assert len(hooks) == 1, written
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in access)  # serving() polled it
    assert '"POST /hooks/evolution/evo?token=*** HTTP/1.1" 202' in hooks[0]
    assert "hush-hush" not in written
