"""Engine and transactions. The one place that knows SQLite from PostgreSQL.

Every storage failure that means "cannot commit right now" (locked file, server down, pool
exhausted, timeout) leaves here as `StorageUnavailable`, so intake can answer 503 and the
provider retries. Nothing builds an engine at import time.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.dml import Insert

from tidings.domain.errors import StorageUnavailable

__all__ = ["Database", "insert_ignoring_duplicates", "normalize_url"]


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, the driver tidings ships with."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """An engine plus the transaction helpers the storage modules use."""

    def __init__(self, url: str, timeout: float = 2.0, pool_size: int = 5) -> None:
        self.url = normalize_url(url)
        self.timeout = timeout
        self.engine = _make_engine(self.url, timeout, pool_size)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)
        so it waits for the lock at most `timeout` instead of failing half-way."""
        with (
            _unavailable_on_failure(self.url),
            self.engine.connect().execution_options(tidings_write=True) as conn,
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot; never blocks writers on SQLite WAL)."""
        with _unavailable_on_failure(self.url), self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def insert_ignoring_duplicates(conn: Connection, table: Table) -> Insert:
    """INSERT that is a no-op when a unique key already exists (the dedup primitive)."""
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return postgresql.insert(table).on_conflict_do_nothing()


@contextmanager
def _unavailable_on_failure(url: str) -> Iterator[None]:
    try:
        yield
    except exc.OperationalError as error:
        raise StorageUnavailable(f"store {_safe(url)} cannot commit: {error.orig}") from error
    except sqlite3.OperationalError as error:  # raised by our own BEGIN IMMEDIATE loop
        raise StorageUnavailable(f"store {_safe(url)} cannot commit: {error}") from error
    except exc.TimeoutError as error:
        raise StorageUnavailable(f"store {_safe(url)} is busy: {error}") from error
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise StorageUnavailable(f"store {_safe(url)} dropped the connection") from error
        raise


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _make_engine(url: str, timeout: float, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": timeout, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=10,
            pool_timeout=timeout,
        )
        _configure_sqlite(engine, timeout)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=10,
        pool_timeout=timeout,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(1, math.ceil(timeout)),
            # A write waiting on a row lock gives up instead of hanging the request.
            "options": f"-c lock_timeout={int(timeout * 1000)}",
        },
    )


def _configure_sqlite(engine: Engine, timeout: float) -> None:
    """WAL for concurrent readers, FULL sync so a 2xx survives power loss, explicit BEGINs.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; we turn it off and
    emit BEGIN ourselves (the recipe in SQLAlchemy's SQLite dialect documentation).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    busy_ms = int(timeout * 1000)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("tidings_write"):
            _begin_immediate(conn.connection.dbapi_connection, timeout, busy_ms)
        else:
            conn.exec_driver_sql("BEGIN")


# How often a writer waiting for SQLite's write lock looks again. SQLite's own busy handler
# backs off to 25-100 ms sleeps, so a writer would sleep on long after the lock was free; the
# intake and the worker take turns on the lock many times a second, so we poll instead.
_LOCK_POLL_SECONDS = 0.0005


def _begin_immediate(raw: Any, timeout: float, busy_ms: int) -> None:
    """Take SQLite's write lock, polling every half millisecond for up to `timeout`."""
    deadline = time.monotonic() + timeout
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(_LOCK_POLL_SECONDS)
    finally:
        raw.execute(f"PRAGMA busy_timeout={busy_ms}")
