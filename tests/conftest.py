"""Shared fixtures: a real store per test and a real running app on a free loopback port."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from click.testing import CliRunner

from tidings.app import create_app
from tidings.config import Settings
from tidings.intake.protocol import CoalescingHttpToolsProtocol
from tidings.storage import connections, inbox, tokens
from tidings.storage.db import Database
from tidings.storage.migrate import upgrade
from tidings.storage.recount import find_drift

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def fixture_json(provider: str, name: str) -> Any:
    return json.loads(fixture_bytes(provider, name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="Store every test runs on: a SQLite file, or a fresh PostgreSQL database.",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"tidings store under test: {config.getoption('--db')}"


def on_postgresql(config: pytest.Config) -> bool:
    return bool(config.getoption("--db") == "postgresql")


def fresh_postgres(prefix: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database, dropped (connections and all) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty store for one test: a SQLite file, or a PostgreSQL database (--db)."""
    if not on_postgresql(request.config):
        yield f"sqlite:///{tmp_path / 'tidings.db'}"
        return
    yield from fresh_postgres("tidings_test")


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database, whatever store the run is on (a copy's target)."""
    yield from fresh_postgres("tidings_copy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --db postgresql, leave out what the SQLite pass already ran: tests of SQLite's own
    behaviour (file locks), tests that bring their own store (`once`), and tests that touch no
    store at all (no `db_url` among their fixtures: parsers, pure rules). They are deselected,
    not skipped, and the header of the run says how many and why."""
    if not on_postgresql(config):
        return
    kept, left_out = [], []
    for item in items:
        marked = item.get_closest_marker("sqlite_only") or item.get_closest_marker("once")
        storeless = "db_url" not in getattr(item, "fixturenames", ())
        (left_out if marked or storeless else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
        config.stash[_LEFT_OUT] = len(left_out)


_LEFT_OUT = pytest.StashKey[int]()


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    left_out = config.stash.get(_LEFT_OUT, 0)
    if left_out:
        return (
            f"{left_out} tests of SQLite itself, with their own store or with none ran in the "
            "sqlite pass"
        )
    return None


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`tidings` CLI runs configure logging for the process; undo it after each test."""
    names = ("tidings", "uvicorn", "uvicorn.access", "uvicorn.error")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    yield
    for name, (handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        store_timeout_seconds=1.0,
        receipt_retry_schedule="0.2,0.2",
        worker_idle_seconds=0.2,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, db_url: str) -> CliRunner:
    """The `tidings` command on the test's store, none of this machine's TIDINGS_* settings
    leaking in."""
    monkeypatch.setenv("TIDINGS_DATABASE_URL", db_url)
    for name in ("TIDINGS_BROKER_URL", "TIDINGS_PUBLIC_URL", "TIDINGS_HOST", "TIDINGS_PORT",
                 "TIDINGS_DEFAULT_REGION"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture
def migrated(cli: CliRunner) -> CliRunner:
    """The runner, on a store `tidings migrate` created (other commands create none)."""
    from tidings.cli import main

    assert cli.invoke(main, ["migrate"]).exit_code == 0
    return cli


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url, settings.store_timeout_seconds)
    upgrade(database)
    yield database
    database.dispose()


@dataclass
class RunningApp:
    """A tidings app served by uvicorn on loopback, with an API token and helpers."""

    base_url: str
    db: Database
    token: str
    client: httpx.Client

    def add_connection(
        self, provider: str, name: str, secret: str = "s3cret", **options: str
    ) -> None:
        with self.db.write() as conn:
            connections.add_connection(conn, provider, name, secret, options, datetime.now(UTC))

    def hook(
        self,
        provider: str,
        name: str,
        body: bytes | str,
        token: str | None = "s3cret",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        params = {"token": token} if token is not None else {}
        content = body.encode() if isinstance(body, str) else body
        return self.client.post(
            f"/hooks/{provider}/{name}",
            params=params,
            content=content,
            headers={"content-type": "application/json", **(headers or {})},
        )

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def wait_idle(self, timeout: float = 20.0) -> dict[str, int]:
        """Wait until no receipt is pending (the worker has applied everything it can)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.db.read() as conn:
                counts = inbox.count_by_status(conn)
            if counts["pending"] == 0:
                return counts
            if time.monotonic() > deadline:
                raise AssertionError(f"worker did not finish in {timeout}s: {counts}")
            time.sleep(0.05)

    def assert_no_drift(self) -> None:
        with self.db.read() as conn:
            assert find_drift(conn) == []


def serve_in_thread(
    settings: Settings, run_worker: bool = True
) -> Iterator[tuple[str, uvicorn.Server]]:
    app = create_app(settings, run_worker=run_worker)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=CoalescingHttpToolsProtocol,  # as `tidings serve` runs it
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def running_app(settings: Settings, db: Database) -> Iterator[RunningApp]:
    with db.write() as conn:
        token = tokens.create_token(conn, "tests", datetime.now(UTC))
    for base_url, _server in serve_in_thread(settings):
        with httpx.Client(base_url=base_url, timeout=10) as client:
            yield RunningApp(base_url, db, token, client)


WaitFor = Callable[[Callable[[], bool], float], None]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


TIDINGS = str(Path(sys.executable).with_name("tidings"))


@contextmanager
def serving(
    env: dict[str, str], port: int, log: Path, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`tidings serve` in a subprocess; the caller may SIGKILL it, otherwise it is stopped."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [TIDINGS, "serve", "--port", str(port), *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:

            def up() -> bool:
                try:
                    return (
                        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code
                        == 200
                    )
                except httpx.HTTPError:
                    return False

            wait_for(up, 20)
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()  # a test must never leave a server behind
                process.wait(5)
                raise


def worker_child(parent: int) -> int | None:
    """The embedded worker process of `tidings serve` (not multiprocessing's resource tracker)."""
    found = subprocess.run(
        ["pgrep", "-P", str(parent)], capture_output=True, text=True
    ).stdout.split()
    for pid in found:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:  # it exited between pgrep and now
            continue
        if b"resource_tracker" not in cmdline:
            return int(pid)
    return None


class Poster:
    """Posts webhook bodies from many threads, one keep-alive client per thread, and keeps the
    ledger: which bodies were acknowledged (with their receipt) and which must be sent again."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {"content-type": "application/json"}
        self.acknowledged: list[tuple[int, bytes]] = []
        self.refused: list[bytes] = []
        self.statuses: list[int] = []
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def post(self, body: bytes) -> None:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(timeout=10)
            with self._lock:
                self._clients.append(client)
        try:
            response = client.post(self.url, content=body, headers=self.headers)
        except httpx.HTTPError:
            with self._lock:
                self.refused.append(body)
                self.statuses.append(0)
            return
        with self._lock:
            self.statuses.append(response.status_code)
            if response.status_code == 202:
                self.acknowledged.append((response.json()["receipt"], body))
            else:
                self.refused.append(body)

    def resend_refused(self, attempts: int = 20) -> None:
        """Send the refused bodies again, as a provider retries after a 503."""
        for _ in range(attempts):
            pending, self.refused = self.refused, []
            for body in pending:
                self.post(body)
            if not self.refused:
                return
            time.sleep(0.5)
        raise AssertionError(f"{len(self.refused)} bodies still refused")

    def close(self) -> None:
        for client in self._clients:
            client.close()


def assert_applied_exactly_once(
    db: Database, acknowledged: list[tuple[int, bytes]], expected_events: int
) -> None:
    """The ledger every fault test ends with, counted from the store: each acknowledged body is
    stored byte for byte and done, and each provider event was applied exactly once."""
    from sqlalchemy import func, select

    from tidings.storage.schema import events, receipts

    with db.read() as conn:
        stored = {r.id: bytes(r.body) for r in conn.execute(select(receipts.c.id, receipts.c.body))}
        statuses = inbox.count_by_status(conn)
        event_count = conn.execute(select(func.count()).select_from(events)).scalar_one()
        distinct = select(events.c.message_id, events.c.kind).distinct().subquery()
        distinct_count = conn.execute(select(func.count()).select_from(distinct)).scalar_one()
        drift = find_drift(conn)
    for receipt_id, body in acknowledged:
        assert stored.get(receipt_id) == body, f"acknowledged receipt {receipt_id} is missing"
    assert statuses["done"] == len(stored), statuses
    assert event_count == distinct_count == expected_events
    assert drift == []
