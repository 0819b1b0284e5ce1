"""Fault injection: the store, the disk and the worker fail under load, and afterwards every
acknowledged webhook is in the store and applied exactly once (counted from the store)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import (
    TIDINGS,
    Poster,
    RunningApp,
    assert_applied_exactly_once,
    free_port,
    serve_in_thread,
    serving,
    wait_for,
    worker_child,
)
from tests.e2e.payloads import callbell_status
from tidings.config import Settings
from tidings.storage import connections, inbox
from tidings.storage.db import Database
from tidings.storage.migrate import upgrade

STATUSES = ("sent", "delivered", "read")


def bodies(messages: int, seed: int = 1) -> list[bytes]:
    """Every message's three statuses plus a duplicate of each, shuffled (out of order)."""
    out = [
        callbell_status(f"m{i}", s, campaign="faults").encode()
        for i in range(messages)
        for s in STATUSES
    ]
    out += out[: len(out) // 3]
    random.Random(seed).shuffle(out)
    return out


def distinct_events(sent: list[bytes]) -> int:
    return len(set(sent))


@pytest.mark.slow
def test_worker_process_killed_repeatedly(tmp_path: Path, db_url: str) -> None:
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": db_url,
        "TIDINGS_LOG_LEVEL": "ERROR",
        "TIDINGS_WORKER_BATCH_SIZE": "100",
    }
    subprocess.run([TIDINGS, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [
            TIDINGS,
            "connection",
            "add",
            "callbell",
            "cb",
            "--secret",
            "s",
            "--option",
            "campaign_key=campaign",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    load = bodies(400)
    poster = Poster(f"http://127.0.0.1:{port}/hooks/callbell/cb?token=s")
    db = Database(db_url)
    killed: list[int] = []
    with serving(env, port, tmp_path / "serve.log") as server, ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(poster.post, b) for b in load]
        for _ in range(3):
            time.sleep(0.7)
            worker = worker_child(server.pid)
            assert worker is not None and worker not in killed, "no fresh worker to kill"
            os.kill(worker, signal.SIGKILL)
            killed.append(worker)
            wait_for(lambda w=worker: worker_child(server.pid) not in (None, w), 10)
        for f in futures:
            f.result()
        poster.resend_refused()
        wait_for(lambda: _pending(db) == 0, 60)
        survivor = worker_child(server.pid)
    poster.close()
    # Each kill ended a worker, and serve started a new one each time, which applied the rest.
    assert len(set(killed)) == 3 and survivor is not None and survivor not in killed
    assert len(poster.acknowledged) == len(load)
    assert_applied_exactly_once(db, poster.acknowledged, distinct_events(load))
    db.dispose()


def _pending(db: Database) -> int:
    with db.read() as conn:
        return inbox.count_by_status(conn)["pending"]


def _load_while(app_url: str, load: list[bytes], fault: threading.Event, during: object) -> Poster:
    poster = Poster(app_url)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(poster.post, b) for b in load]
        during()  # type: ignore[operator]
        for f in futures:
            f.result()
    return poster


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_store_locked_mid_load_answers_503_then_recovers(
    running_app: RunningApp, db_url: str
) -> None:
    running_app.add_connection("callbell", "cb", secret="s", campaign_key="campaign")
    load = bodies(300)
    url = f"{running_app.base_url}/hooks/callbell/cb?token=s"

    def lock_the_file() -> None:
        time.sleep(0.3)
        # The file the intake commits to: the store's landing file (storage.landing).
        landing = db_url.removeprefix("sqlite:///") + "-inbox"
        blocker = sqlite3.connect(landing, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        time.sleep(2.5)  # past the store timeout: intake must answer 503, not hang
        blocker.execute("ROLLBACK")
        blocker.close()

    poster = _load_while(url, load, threading.Event(), lock_the_file)
    assert 503 in poster.statuses, "the lock should have refused some webhooks"
    assert set(poster.statuses) <= {202, 503}
    poster.resend_refused()
    running_app.wait_idle(60)
    poster.close()
    assert len(poster.acknowledged) == len(load)
    assert_applied_exactly_once(running_app.db, poster.acknowledged, distinct_events(load))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs: a file system we can fill without touching the machine's disks."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    # CI and these machines run as root; elsewhere this fails, never silently skips.
    assert result.returncode == 0, f"cannot mount a tmpfs (run as root): {result.stderr.strip()}"
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.slow
@pytest.mark.once  # brings its own SQLite file on a small file system
def test_disk_full_answers_503_without_corruption_and_recovers(small_disk: Path) -> None:
    db_file = small_disk / "tidings.db"
    settings = Settings(
        database_url=f"sqlite:///{db_file}",
        store_timeout_seconds=1.0,
        receipt_retry_schedule="0.2,0.2",
        worker_idle_seconds=0.2,
    )
    db = Database(settings.database_url, 1.0)
    upgrade(db)
    from datetime import UTC, datetime

    with db.write() as conn:
        connections.add_connection(
            conn, "callbell", "cb", "s", {"campaign_key": "campaign"}, datetime.now(UTC)
        )
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, free - 300 * 1024))
    padding = "x" * 6000
    sent: list[bytes] = []
    for base_url, _server in serve_in_thread(settings):
        poster = Poster(f"{base_url}/hooks/callbell/cb?token=s")
        for i in range(200):
            body = callbell_status(f"d{i}", "delivered", campaign="disk", note=padding).encode()
            sent.append(body)
            poster.post(body)
            if poster.statuses[-1] == 503:
                break
        assert poster.statuses[-1] == 503, "a full disk must answer 503"
        assert set(poster.statuses) <= {202, 503}
        check = sqlite3.connect(db_file)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
        filler.unlink()  # space returns
        poster.resend_refused()
        wait_for(lambda: _pending(db) == 0, 30)
        poster.close()
        assert_applied_exactly_once(db, poster.acknowledged, len(sent))
    db.dispose()


def _pg_bin(name: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    return str(versions[-1] / name) if versions else name


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL cluster of this test's own on a free port (never the machine's own).

    Its directory is outside pytest's tmp_path, which only root may enter."""
    data = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
    shutil.chown(data, "postgres")
    data.chmod(0o700)
    run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, _pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [
        *run_as,
        _pg_bin("pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(data / "log"),
        "-w",
        "start",
    ]
    subprocess.run(start, check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", data
    finally:
        subprocess.run(
            [*run_as, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.once  # brings its own PostgreSQL
def test_postgres_restarted_mid_load(own_postgres: tuple[str, Path]) -> None:
    url, data = own_postgres
    settings = Settings(
        database_url=url,
        store_timeout_seconds=1.0,
        receipt_retry_schedule="0.2,0.2",
        worker_idle_seconds=0.2,
    )
    db = Database(url, 1.0)
    upgrade(db)
    from datetime import UTC, datetime

    with db.write() as conn:
        connections.add_connection(
            conn, "callbell", "cb", "s", {"campaign_key": "campaign"}, datetime.now(UTC)
        )
    run_as = ["runuser", "-u", "postgres", "--"]
    load = bodies(200)

    def restart() -> None:
        time.sleep(0.5)
        subprocess.run(
            [*run_as, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=True,
            capture_output=True,
        )
        time.sleep(1.5)
        port = url.split(":")[2].split("/")[0]
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [
                *run_as,
                _pg_bin("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(data / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    for base_url, _server in serve_in_thread(settings):
        poster = _load_while(
            f"{base_url}/hooks/callbell/cb?token=s", load, threading.Event(), restart
        )
        assert 503 in poster.statuses, "the restart should have refused some webhooks"
        assert set(poster.statuses) <= {202, 503}
        poster.resend_refused()
        wait_for(lambda: _pending(db) == 0, 60)
        poster.close()
        assert len(poster.acknowledged) == len(load)
        assert_applied_exactly_once(db, poster.acknowledged, distinct_events(load))
    db.dispose()
