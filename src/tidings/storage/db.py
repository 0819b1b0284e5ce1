"""Engine and transactions. The one place that knows SQLite from PostgreSQL.

Every storage failure that means "cannot commit right now" (locked file, server down, pool
exhausted, timeout) leaves here as `StorageUnavailable`, so intake can answer 503 and the
provider retries. Nothing builds an engine at import time.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Select, Table, create_engine, event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.dml import Insert, UpdateBase

from tidings.domain.errors import StorageUnavailable

__all__ = [
    "Database",
    "Prepared",
    "execute_many",
    "fetch_column",
    "insert_ignoring_duplicates",
    "insert_prepared",
    "insert_returning_ids",
    "normalize_url",
    "prepare_insert",
    "prepare_many",
    "prepare_sparse_insert",
    "run_prepared",
]


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, the driver tidings ships with."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """An engine plus the transaction helpers the storage modules use."""

    def __init__(
        self, url: str, timeout: float = 2.0, pool_size: int = 5, durable_commits: bool = True
    ) -> None:
        """`durable_commits=False` (SQLite): commits are not synced to disk one by one, so a
        power cut may undo the last few, never half of one. Only for writes that can be done
        again from what is durable, like applying receipts (docs/decisions/0006); never for
        anything received from outside."""
        self.url = normalize_url(url)
        self.timeout = timeout
        self.durable_commits = durable_commits
        self.engine = _make_engine(self.url, timeout, pool_size, durable_commits)

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
    return _insert_ignoring(conn.dialect.name, table)


@lru_cache(maxsize=32)
def _insert_ignoring(dialect: str, table: Table) -> Insert:
    """One statement per table, so `execute_many` compiles it once."""
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return postgresql.insert(table).on_conflict_do_nothing()


def execute_many(
    conn: Connection, statement: UpdateBase, rows: Sequence[Mapping[str, Any]]
) -> None:
    """One INSERT/UPDATE for many rows (executemany); every row has the same keys.

    Why not `conn.execute(statement, rows)`: on SQLite, SQLAlchemy's per-row parameter
    processing costs more than SQLite's own work and sits on the hot path of intake and worker.
    Here SQLAlchemy still writes the SQL and converts each value with the column's type (so
    stored values are exactly what it would store); only its per-row machinery is skipped.
    PostgreSQL takes the ordinary path.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(statement, [dict(row) for row in rows])
        return
    run_prepared(conn, prepare_many(conn.dialect, statement, rows))


@dataclass(frozen=True)
class Prepared:
    """A SQLite executemany with its parameters already converted: prepared before a write
    transaction, it costs only SQLite's own work while the write lock is held."""

    sql: str
    params: list[tuple[Any, ...]]


def prepare_many(
    dialect: Dialect, statement: UpdateBase, rows: Sequence[Mapping[str, Any]]
) -> Prepared:
    """SQLite only: the SQL and converted parameters `execute_many` would run."""
    if not rows:
        return Prepared("", [])
    plan = _plan(statement, dialect, tuple(rows[0]))
    params = [
        tuple(
            constant
            if name is None
            else (
                row[name]
                if process is None or (row[name] is None and not nones)
                else process(row[name])
            )
            for name, constant, process, nones in plan.slots
        )
        for row in rows
    ]
    return Prepared(plan.sql, params)


def run_prepared(conn: Connection, prepared: Prepared) -> None:
    """Run a prepared executemany in the connection's transaction (SQLite)."""
    if not prepared.params:
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(prepared.sql, prepared.params)
    finally:
        cursor.close()


def insert_returning_ids(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> list[int]:
    """Insert rows (each with the same keys) in one executemany; their ids, in order."""
    if not rows:
        return []
    statement = _insert(table)
    if conn.dialect.name != "sqlite":
        result = conn.execute(
            statement.returning(table.c.id, sort_by_parameter_order=True), [dict(r) for r in rows]
        )
        return [row.id for row in result]
    return insert_prepared(conn, table, prepare_many(conn.dialect, statement, rows))


def prepare_insert(dialect: Dialect, table: Table, rows: Sequence[Mapping[str, Any]]) -> Prepared:
    """SQLite only: the rows of an insert converted ahead, before the write lock is taken."""
    return prepare_many(dialect, _insert(table), rows)


def prepare_sparse_insert(
    dialect: Dialect, table: Table, rows: Sequence[Mapping[str, Any]]
) -> list[Prepared]:
    """SQLite only: an insert of rows that carry their own ids, one executemany per set of
    columns that are not None. Each column named in an insert costs about the same, NULL or
    not, and a message row is mostly NULLs (one per lifecycle time not reached yet): leaving
    them out halved the time to insert messages under the write lock. A column is left out
    only when the database would store NULL for it anyway (no default, ours or the server's)."""
    omissible = frozenset(
        c.key
        for c in table.columns
        if c.default is None
        and c.server_default is None
        and not c.type.should_evaluate_none  # JSON stores None as 'null', not as NULL
    )
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("id") is None:
            raise ValueError("a sparse insert needs each row's id (row order is not kept)")
        kept = {k: v for k, v in row.items() if v is not None or k not in omissible}
        groups.setdefault(tuple(kept), []).append(kept)
    statement = _insert(table)
    return [prepare_many(dialect, statement, group) for group in groups.values()]


def insert_prepared(conn: Connection, table: Table, prepared: Prepared) -> list[int]:
    """SQLite only: run `prepare_insert`'s rows; their ids, in order."""
    if not prepared.params:
        return []
    # SQLite gives a new row the largest rowid plus one (unless the largest is the maximum
    # rowid, when it picks at random), and no one else inserts while this transaction holds
    # the write lock: so the rows get before+1 .. before+n, which last_insert_rowid() confirms.
    before = conn.exec_driver_sql(f"SELECT max(rowid) FROM {table.name}").scalar() or 0  # noqa: S608
    run_prepared(conn, prepared)
    last = conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one()
    if last != before + len(prepared.params):
        raise RuntimeError(f"ids of rows just inserted into {table.name} are not consecutive")
    return list(range(before + 1, last + 1))


def fetch_column(conn: Connection, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
    """SQLite only: the first column of every row, read through the driver's own cursor.

    For reads under the write lock, where SQLAlchemy's result rows cost more than SQLite's
    work. `params` go to the driver as they are (ints and text: no type conversion)."""
    sql, names = _positional(statement, conn.dialect)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, tuple(params[name] for name in names))
        return [row[0] for row in cursor.fetchall()]
    finally:
        cursor.close()


@lru_cache(maxsize=32)
def _positional(statement: Select[Any], dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    compiled = statement.compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ())


@lru_cache(maxsize=32)
def _insert(table: Table) -> Insert:
    """One statement per table, so `execute_many` compiles it once."""
    return table.insert()


@dataclass(frozen=True)
class _Plan:
    """SQL with positional parameters; each slot is a row key with its type's conversion (and
    whether it converts None too), or a constant of the statement (already converted)."""

    sql: str
    slots: tuple[tuple[str | None, Any, Callable[[Any], Any] | None, bool], ...]


@lru_cache(maxsize=64)
def _plan(statement: UpdateBase, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
    """Compiled once per statement and row shape."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    defaulted = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
    if defaulted:  # SQLAlchemy would fill these from Python-side defaults; rows must say
        raise ValueError(f"rows lack the columns {defaulted} of {statement}")
    slots: list[tuple[str | None, Any, Callable[[Any], Any] | None, bool]] = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in keys:
            # None is passed through as NULL, except to a type that stores it its own way
            # (JSON writes 'null'), as SQLAlchemy does.
            slots.append((name, None, process, bind.type.should_evaluate_none))
        elif bind.required or bind.callable is not None:
            raise ValueError(f"rows lack the parameter {name!r} of {statement}")
        else:
            value = bind.value
            converted = value if process is None or value is None else process(value)
            slots.append((None, converted, None, False))
    return _Plan(compiled.string, tuple(slots))


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


def _make_engine(url: str, timeout: float, pool_size: int, durable_commits: bool) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": timeout, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=10,
            pool_timeout=timeout,
        )
        _configure_sqlite(engine, timeout, durable_commits)
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


def _configure_sqlite(engine: Engine, timeout: float, durable_commits: bool) -> None:
    """WAL for concurrent readers, FULL sync so a 2xx survives power loss, explicit BEGINs.

    Without durable commits, NORMAL sync: in WAL mode a commit is then written but not synced,
    and stays consistent; the next FULL commit (the intake's next group commit) or checkpoint
    syncs it with everything before it.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; we turn it off and
    emit BEGIN ourselves (the recipe in SQLAlchemy's SQLite dialect documentation).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable_commits else 'NORMAL'}")
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
