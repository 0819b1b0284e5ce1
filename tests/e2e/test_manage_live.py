"""A running `tidings serve` sees what the CLI changes: connections updated or removed within
a second, tokens revoked at once; and the URLs the CLI prints reach it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import TIDINGS, free_port, serving, worker_child
from tests.e2e.payloads import evolution_update
from tidings.serve_lock import ServeLock
from tidings.storage import inbox
from tidings.storage.db import Database


def _tidings(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TIDINGS, *args], env=env, capture_output=True, text=True, timeout=60)


def _eventually(check: Callable[[], bool], within: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"not seen within {within}s"
        time.sleep(0.05)
    return time.monotonic() - started


def _env(db_url: str) -> dict[str, str]:
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url, "TIDINGS_LOG_LEVEL": "WARNING"}
    for name in ("TIDINGS_PUBLIC_URL", "TIDINGS_BROKER_URL", "TIDINGS_PORT", "TIDINGS_HOST"):
        env.pop(name, None)
    return env


def test_a_running_server_sees_cli_changes(tmp_path: Path, db_url: str) -> None:
    env, port = _env(db_url), free_port()
    with serving(env, port, tmp_path / "serve.log"):
        added = _tidings(env, "connection", "add", "evolution", "evo", "--secret", "one")
        url = added.stdout.strip().splitlines()[-1]
        assert url == f"http://127.0.0.1:{port}/hooks/evolution/evo?token=one"  # the served port
        token = _tidings(env, "token", "create", "--name", "live").stdout.strip().splitlines()[-1]
        body = evolution_update("LIVE1", "READ")
        assert httpx.post(url, content=body).status_code == 202

        _tidings(env, "connection", "update", "evo", "--secret", "two")
        new_url = url.replace("token=one", "token=two")
        _eventually(lambda: httpx.post(new_url, content=body).status_code == 202, 1.5)
        assert httpx.post(url, content=body).status_code == 401

        api = f"http://127.0.0.1:{port}/v1/tokens"
        auth = {"authorization": f"Bearer {token}"}
        assert [t["name"] for t in httpx.get(api, headers=auth).json()["items"]] == ["live"]
        assert _tidings(env, "token", "revoke", "live").returncode == 0
        assert httpx.get(api, headers=auth).status_code == 401  # at once, no cache to expire

        assert _tidings(env, "connection", "remove", "evo").returncode == 0
        _eventually(lambda: httpx.post(new_url, content=body).status_code == 404, 1.5)


@pytest.mark.sqlite_only  # the lock is beside the SQLite file
def test_a_second_serve_on_the_same_file_is_refused(tmp_path: Path, db_url: str) -> None:
    env, port = _env(db_url), free_port()
    with serving(env, port, tmp_path / "serve.log") as first:
        second = _tidings(env, "serve", "--port", str(free_port()))
        assert second.returncode == 1
        assert f"another tidings serve (pid {first.pid}) already serves" in second.stderr
        assert "Traceback" not in second.stderr


@pytest.mark.sqlite_only
def test_vacuum_and_migrate_data_are_refused_while_serve_runs(tmp_path: Path, db_url: str) -> None:
    env, port = _env(db_url), free_port()
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    with serving(env, port, tmp_path / "serve.log") as first:
        for command in (["vacuum"], ["migrate-data", "--from", db_url, "--to", target]):
            refused = _tidings(env, *command)
            assert refused.returncode == 1, command
            assert f"another tidings serve (pid {first.pid}) already serves" in refused.stderr
            assert "Traceback" not in refused.stderr
    assert _tidings(env, "vacuum").returncode == 0  # serve stopped: it runs


@pytest.mark.sqlite_only
def test_serve_is_refused_while_a_vacuum_holds_the_file(tmp_path: Path, db_url: str) -> None:
    env = _env(db_url)
    assert _tidings(env, "migrate").returncode == 0
    database = Path(db_url.removeprefix("sqlite:///"))
    held = ServeLock(database, "vacuum")
    held.acquire()
    try:
        refused = _tidings(env, "serve", "--port", str(free_port()))
    finally:
        held.release()
    assert refused.returncode == 1
    assert f"another tidings vacuum (pid {os.getpid()}) already uses" in refused.stderr


def test_serve_says_when_its_worker_process_is_up(tmp_path: Path, db_url: str) -> None:
    """At the default log level: whoever watches the log (or a benchmark) knows receipts are
    being applied, not only taken."""
    env, log = {**_env(db_url), "TIDINGS_LOG_LEVEL": "INFO"}, tmp_path / "serve.log"
    assert _tidings(env, "migrate").returncode == 0
    with serving(env, free_port(), log, "--no-worker"):
        time.sleep(3)  # a worker process would be up by now (it takes about a second)
    assert "worker process ready" not in log.read_text()
    with serving(env, free_port(), log):
        _eventually(lambda: "worker process ready" in log.read_text(), 20)


def test_serve_on_a_port_in_use_says_so_before_it_touches_the_store(
    tmp_path: Path, db_url: str
) -> None:
    """One line, exit 1; the store keeps the URL of the server that really runs (other
    commands print intake URLs from it), and no store is made for a server that never ran."""
    env, port = _env(db_url), free_port()
    with serving(env, port, tmp_path / "serve.log"):
        taken = _tidings(env, "serve", "--no-worker", "--port", str(port))
        assert taken.returncode == 1
        assert taken.stderr.strip() == (
            f"Error: port {port} on 127.0.0.1 is in use (another tidings serve, or another "
            "program): stop it, or choose another port with --port or TIDINGS_PORT"
        )
        added = _tidings(env, "connection", "add", "evolution", "evo", "--secret", "s")
        assert added.stdout.strip().endswith(f"http://127.0.0.1:{port}/hooks/evolution/evo?token=s")
    if db_url.startswith("sqlite"):
        elsewhere = tmp_path / "other.db"
        other = {**env, "TIDINGS_DATABASE_URL": f"sqlite:///{elsewhere}"}
        with serving(env, port, tmp_path / "serve.log"):
            assert _tidings(other, "serve", "--port", str(port)).returncode == 1
        assert not elsewhere.exists()


def test_ctrl_c_stops_serve_quietly(tmp_path: Path, db_url: str) -> None:
    env, log = _env(db_url), tmp_path / "serve.log"
    with serving(env, free_port(), log) as server:
        server.send_signal(signal.SIGINT)
        assert server.wait(20) == 0
    assert "Aborted" not in log.read_text() and "Traceback" not in log.read_text()


def _receipts(db_url: str) -> dict[str, int]:
    db = Database(db_url)
    try:
        with db.read() as conn:
            return inbox.count_by_status(conn)
    finally:
        db.dispose()


def test_sigterm_to_the_whole_process_group_stops_serve_quietly(
    tmp_path: Path, db_url: str
) -> None:
    """systemd's `stop` (and `kill -TERM -PGID`) signals every process of the service at once:
    the worker process leaves stopping to `serve`, so it is neither reported dead nor started
    again, and whatever reaches it first, `serve` still stops it."""
    env, log = {**_env(db_url), "TIDINGS_LOG_LEVEL": "INFO"}, tmp_path / "serve.log"
    port = free_port()
    with log.open("ab") as out:
        server = subprocess.Popen(
            [TIDINGS, "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, as a service manager makes
        )
        try:
            _eventually(lambda: "worker process ready" in log.read_text(), 20)
            worker = worker_child(server.pid)
            assert worker is not None
            os.kill(worker, signal.SIGTERM)  # the group's signal reaching the worker first
            time.sleep(1.5)  # the supervisor looks every 0.5 s
            assert worker_child(server.pid) == worker
            added = _tidings(env, "connection", "add", "evolution", "evo", "--secret", "s")
            assert added.returncode == 0, added.stderr
            url = f"http://127.0.0.1:{port}/hooks/evolution/evo?token=s"
            body = evolution_update("ABC", "DELIVERY_ACK")
            answer = httpx.post(url, content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 202, answer.text
            _eventually(lambda: _receipts(db_url).get("done") == 1, 20)  # the worker applies

            os.killpg(server.pid, signal.SIGTERM)
            assert server.wait(30) in (0, -signal.SIGTERM)
            assert worker_child(server.pid) is None
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(5)
    text = log.read_text()
    assert "starting a new one" not in text and "ERROR" not in text, text
    assert "Traceback" not in text and text.count("worker process ready") == 1, text


def test_a_second_ctrl_c_still_stops_serve_and_its_worker_process(
    tmp_path: Path, db_url: str
) -> None:
    """A second Ctrl-C makes uvicorn leave without its shutdown: `serve` must still exit, and
    take its worker process (which leaves stopping to `serve`) with it."""
    env, log = {**_env(db_url), "TIDINGS_LOG_LEVEL": "INFO"}, tmp_path / "serve.log"
    with log.open("ab") as out:
        server = subprocess.Popen(
            [TIDINGS, "serve", "--port", str(free_port())],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _eventually(lambda: "worker process ready" in log.read_text(), 20)
            worker = worker_child(server.pid)
            assert worker is not None
            server.send_signal(signal.SIGINT)
            time.sleep(0.05)
            server.send_signal(signal.SIGINT)
            server.wait(30)
            _eventually(lambda: not Path(f"/proc/{worker}").exists(), 20)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(5)
    text = log.read_text()
    assert "shutting down without waiting (the app's shutdown was cancelled)" in text
    assert "Traceback" not in text and "ERROR" not in text, text
