"""`tidings serve` stops promptly while dashboards hold live streams open: a stream never ends
by itself, and without care the server's graceful shutdown would wait for it forever."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TIDINGS, free_port, serving
from tests.dashboard.conftest import EMAIL, PASSWORD, log_in


@pytest.mark.slow
def test_serve_stops_within_seconds_with_live_streams_open(tmp_path: Path, db_url: str) -> None:
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url, "TIDINGS_LOG_LEVEL": "WARNING"}
    subprocess.run([TIDINGS, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([TIDINGS, "user", "create", EMAIL, "--password", PASSWORD], env=env,
                   check=True, capture_output=True)  # fmt: skip
    port = free_port()
    opened = threading.Event()
    ended: list[str] = []

    def watch(client: httpx.Client) -> None:
        try:
            with client.stream("GET", "/live", timeout=60) as stream:
                for line in stream.iter_lines():
                    if line.startswith("retry:"):
                        opened.set()
        except httpx.HTTPError as error:
            ended.append(type(error).__name__)
        else:
            ended.append("closed")

    with serving(env, port, tmp_path / "serve.log") as server:
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(2)]
        for client in clients:
            assert log_in(client).status_code == 303
        threads = [threading.Thread(target=watch, args=(c,), daemon=True) for c in clients]
        for thread in threads:
            thread.start()
        assert opened.wait(10), "no live stream opened"
        time.sleep(0.5)
        asked = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(15)
        stopped_in = time.monotonic() - asked
        for thread in threads:
            thread.join(5)
        for client in clients:
            client.close()
    assert server.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it caught
    assert stopped_in < 8, f"serve took {stopped_in:.1f} s to stop"
    assert len(ended) == 2  # both streams were ended by the server, not left hanging
