"""The engine `storage.db` talks through: how each store is connected and configured.

Half of `storage.db`, kept apart for size: SQLite in WAL mode with explicit BEGINs and a
polling wait for its one write lock, incremental auto-vacuum and a bounded WAL; PostgreSQL with
pool pre-ping and a lock timeout. Only `storage.db` imports it, and `config`, which refuses
a SQLite URL naming no file (`sqlite_url_problem`) up front.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from tidings import json_text
from tidings.domain.errors import StorageUnavailable, TidingsError
from tidings.storage import write_turns

__all__ = [
    "WRITING",
    "NotAStore",
    "make_engine",
    "safe_url",
    "sqlite_url_problem",
    "unavailable_on_failure",
]


# The execution option of a connection that writes: on SQLite its transaction begins with
# BEGIN IMMEDIATE, taking the write lock up front (`Database.write`).
WRITING = "tidings_write"


class NotAStore(TidingsError):
    """The URL or the file it names cannot hold a tidings store. No retry helps, so unlike
    StorageUnavailable it ends a command with its one-line message."""


def sqlite_url_problem(url: str) -> str | None:
    """Why a SQLite URL cannot be a tidings store (None when it can, or is not SQLite).

    Several processes share the store, so it must be a file: an in-memory database would be
    one per connection, and SQLAlchemy's pool for it refuses the pool settings besides.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        return None  # not a URL at all: readiness.checked_url says so
    if parsed.get_backend_name() != "sqlite":
        return None
    shown = url if parsed.password is None else safe_url(url)
    if parsed.host:
        return (
            f"{shown} names a host, not a file: write sqlite:///{parsed.host}"
            f"{'/' + parsed.database if parsed.database else ''} for a path relative to the "
            "working directory, or sqlite:////path/to/tidings.db for an absolute one"
        )
    if parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory":
        return f"{shown} names no file; use sqlite:////path/to/tidings.db"
    return None


def make_engine(
    url: str,
    timeout: float,
    pool_size: int,
    durable_commits: bool,
    checkpoint_pages: int | None = None,
) -> Engine:
    """The store's engine. On SQLite, `checkpoint_pages`: how many pages the write-ahead log
    takes before a commit copies them into the file (SQLite's own 1000 when None)."""
    if url.startswith("sqlite"):
        problem = sqlite_url_problem(url)
        if problem is not None:
            raise NotAStore(f"database URL {problem}")
        engine = create_engine(
            url,
            # `uri`: so the landing file attaches read-only (`file:…?mode=ro`) whatever
            # SQLite's build; a plain path is still read as a path.
            connect_args={"timeout": timeout, "check_same_thread": False, "uri": True},
            json_serializer=json_text.dumps,
            json_deserializer=json_text.loads,
            pool_size=pool_size,
            max_overflow=10,
            pool_timeout=timeout,
        )
        _configure_sqlite(engine, timeout, durable_commits, checkpoint_pages)
        return engine
    return create_engine(
        url,
        json_serializer=json_text.dumps,
        json_deserializer=json_text.loads,
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


# Bytes the WAL file keeps after a checkpoint (SQLite truncates it back to this).
_WAL_LIMIT = 64 * 1024 * 1024


def _configure_sqlite(
    engine: Engine, timeout: float, durable_commits: bool, checkpoint_pages: int | None
) -> None:
    """WAL for concurrent readers, FULL sync so a 2xx survives power loss, explicit BEGINs.

    Without durable commits, NORMAL sync: in WAL mode a commit is then written but not synced,
    and stays consistent; the next FULL commit (the intake's next group commit) or checkpoint
    syncs it with everything before it.

    Incremental auto-vacuum, set before the first table of a new store is created (an existing
    store keeps its mode until `tidings vacuum`), so pages the retention purge frees can be
    handed back to the disk a few at a time (`Database.reclaim_space`); and a WAL truncated
    back to `_WAL_LIMIT` after each checkpoint, so one burst of writes does not keep its size.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; we turn it off and
    emit BEGIN ourselves (the recipe in SQLAlchemy's SQLite dialect documentation).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
            # A new file only: an existing one changes mode only in `tidings vacuum`, and the
            # pragma waits for the write lock, so a connection opened while a writer held it
            # waited out the whole time-out and failed.
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable_commits else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        if checkpoint_pages is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
        cursor.close()

    busy_ms = int(timeout * 1000)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITING):
            write_turns.begin_immediate(conn.connection.dbapi_connection, timeout, busy_ms)
        else:
            conn.exec_driver_sql("BEGIN")


@contextmanager
def unavailable_on_failure(url: str) -> Iterator[None]:
    """Every failure that means "cannot commit right now" leaves as StorageUnavailable, so the
    intake can answer 503 and the provider retries; a file that is no SQLite database, which
    no retry mends, as NotAStore."""
    try:
        yield
    except exc.OperationalError as error:
        raise StorageUnavailable(f"store {safe_url(url)} cannot commit: {error.orig}") from error
    except sqlite3.OperationalError as error:  # raised by our own BEGIN IMMEDIATE loop
        raise StorageUnavailable(f"store {safe_url(url)} cannot commit: {error}") from error
    except exc.TimeoutError as error:
        raise StorageUnavailable(f"store {safe_url(url)} is busy: {error}") from error
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise StorageUnavailable(f"store {safe_url(url)} dropped the connection") from error
        unusable = _unusable_file(url, error.orig)
        if unusable is not None:
            raise unusable from error
        raise
    except sqlite3.Error as error:  # the driver's own, on the intake's raw append
        unusable = _unusable_file(url, error)
        if unusable is not None:
            raise unusable from error
        raise


def _unusable_file(url: str, error: BaseException | None) -> NotAStore | None:
    """What to tell a person when the file is no SQLite database, or a damaged one; None for
    any other failure. Errors the driver makes up itself (a value it cannot bind) carry no
    SQLite code."""
    extended = getattr(error, "sqlite_errorcode", None)
    code = extended & 0xFF if isinstance(extended, int) else None  # e.g. CORRUPT_INDEX: CORRUPT
    where = make_url(url).database
    if code == sqlite3.SQLITE_NOTADB:
        return NotAStore(
            f"the store at {where} is not an SQLite database: set TIDINGS_DATABASE_URL to the "
            "store's file, or move this file away and run tidings migrate"
        )
    if code == sqlite3.SQLITE_CORRUPT:
        return NotAStore(
            f"the store at {where} is damaged (SQLite: {error}): stop tidings, then restore "
            "the file from a copy or salvage it with the sqlite3 shell's .recover"
        )
    return None


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
