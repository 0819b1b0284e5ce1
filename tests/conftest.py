"""Shared fixtures: a real store per test and a real running app on a free loopback port."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from tidings.app import create_app
from tidings.config import Settings
from tidings.storage import connections, inbox, tokens
from tidings.storage.db import Database
from tidings.storage.migrate import upgrade
from tidings.storage.recount import recount

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


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty store for one test: a SQLite file, or a PostgreSQL database (--db)."""
    if not on_postgresql(request.config):
        yield f"sqlite:///{tmp_path / 'tidings.db'}"
        return
    name = f"tidings_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


sqlite_only = pytest.mark.sqlite_only


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of SQLite's own behaviour (file locks) say so, and are not run on PostgreSQL."""
    if not on_postgresql(config):
        return
    skip = pytest.mark.skip(reason="exercises SQLite file locking; not a PostgreSQL behaviour")
    for item in items:
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)


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
            assert recount(conn, fix=False) == []


def serve_in_thread(
    settings: Settings, run_worker: bool = True
) -> Iterator[tuple[str, uvicorn.Server]]:
    app = create_app(settings, run_worker=run_worker)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
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
