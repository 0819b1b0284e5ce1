"""Engine, transactions and the unit of work's way in. With its other half, `engine.py`, and
SQLite's fast path, `sqlite_fast.py`, the one place that knows SQLite from PostgreSQL.

Every storage failure that means "cannot commit right now" (locked file, server down, pool
exhausted, timeout) leaves here as `StorageUnavailable`, so intake can answer 503 and the
provider retries. Nothing builds an engine at import time.

State changes go through `Database.apply(plan)`: the plan reads what it needs through a
`Reader` and describes its writes (`Writes`); this module decides how they reach the store
(docs/architecture.md, "The store"). Appends to the inbox go through `Database.append`.
"""

from __future__ import annotations

import sqlite3
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Row,
    Select,
    Table,
    bindparam,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.dml import Insert

from tidings import json_text
from tidings.storage import sqlite_fast, write_turns
from tidings.storage.engine import (
    WRITING,
    NotAStore,
    make_engine,
    safe_url,
    unavailable_on_failure,
)
from tidings.storage.schema import tracking_version
from tidings.storage.writes import AddTo, Execute, Writes

__all__ = [
    "LANDING_ATTACHED",
    "Database",
    "Reader",
    "id_in",
    "ids_follow_copied_rows",
    "insert_ignoring_duplicates",
    "landing_url",
    "normalize_url",
]

T = TypeVar("T")
Key = tuple[Any, ...]

# Free pages SQLite hands back to the disk per write transaction (4 KiB each): milliseconds.
_VACUUM_PAGES = 2000

# Pages (64 MB) a SQLite store's write-ahead log takes before a commit copies them into the
# file. At SQLite's own 1000 the worker copied 4 MB and synced the file every 1,600 webhooks
# or so of a burst, and the intake's synced commits to the landing file, on the same disk,
# waited behind those writes (2 to 7% fewer webhooks acknowledged a second in bursts of
# 40,000, measured). The worker copies the log when it goes idle (`checkpoint`); a longer
# burst still copies at this size. The landing file keeps SQLite's default: its log is small
# and trimmed. Decision 0018.
STORE_CHECKPOINT_PAGES = 16_384

# Rows per IN (...) list: far below every driver's parameter limit.
_CHUNK = 500


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, the driver tidings ships with."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """An engine plus the transactions and the unit of work's way in (`apply`)."""

    def __init__(
        self,
        url: str,
        timeout: float = 2.0,
        pool_size: int = 5,
        durable_commits: bool = True,
        plan_ahead: bool = True,
        landing: bool = True,
    ) -> None:
        """`durable_commits=False` (SQLite): commits are not synced to disk one by one, so a
        power cut may undo the last few, never half of one. Only for writes that can be done
        again from what is durable, like applying receipts (docs/decisions/0006); never for
        anything received from outside. `plan_ahead=False` (SQLite): every plan made on a
        snapshot is made again under the lock, as when another writer moved the state.

        A SQLite store's new receipts land in a file of their own beside it, `landing`
        (`storage.landing`, decision 0017); `landing=False` is that file's own Database."""
        self.url = normalize_url(url)
        self.timeout = timeout
        self._busy_ms = int(timeout * 1000)
        self.durable_commits = durable_commits
        self.plan_ahead = plan_ahead
        self.engine = make_engine(
            self.url,
            timeout,
            pool_size,
            durable_commits,
            checkpoint_pages=STORE_CHECKPOINT_PAGES if landing else None,
        )
        self.landing: Database | None = None
        self.landing_ready = False  # its table made and its ids seeded (`landing.ready`)
        self.landing_checked = False  # found to hold only this store's receipts (`landing`)
        if landing and self.is_sqlite:
            self.landing = Database(
                landing_url(self.url), timeout, pool_size, durable_commits=True, landing=False
            )
            event.listen(self.engine, "checkout", _attacher(self.landing.url))
        _OWNERS[self.engine] = self

    @staticmethod
    def owning(conn: Connection) -> Database | None:
        """The Database whose engine made `conn`: how a reader handed a connection finds the
        store's landing file."""
        return _OWNERS.get(conn.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self, *, appends_only: bool = False) -> Iterator[Connection]:
        """One write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)
        so it waits for the lock at most `timeout` instead of failing half-way.

        On SQLite every write transaction moves the state version (see `apply`), so no writer
        can forget to; only one that merely appends rows no plan reads as state (the inbox's
        new receipts, the rejection log) says `appends_only`."""
        queue = (
            write_turns.turn(self.url, self.timeout, lambda: safe_url(self.url))
            if self.is_sqlite
            else nullcontext()
        )
        with (
            queue,
            unavailable_on_failure(self.url),
            self.engine.connect().execution_options(**{WRITING: True}) as conn,
            conn.begin(),
        ):
            yield conn
            if not appends_only and self.is_sqlite:
                conn.execute(_BUMP_VERSION)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot; never blocks writers on SQLite WAL)."""
        with unavailable_on_failure(self.url), self.engine.connect() as conn, conn.begin():
            yield conn

    def apply(self, plan: Callable[[Reader, Writes], T]) -> T:
        """Run a unit of work: `plan` reads through the Reader, adds its writes, and returns
        its result; the writes are then made in one transaction.

        On SQLite, whose one write lock the intake needs too, the plan runs on a snapshot and
        its values are converted before the lock is taken; under the lock the writes are made
        only if the state version has not moved since the snapshot (every other write
        transaction moves it), else the plan runs again under the lock. So a plan may run twice
        and must keep its results to what it returns. On PostgreSQL the plan runs inside the
        write transaction, where the Reader locks the rows it loads."""
        if not self.is_sqlite:
            with self.write() as conn:
                writes = Writes()
                result = plan(Reader(conn, locking=True), writes)
                _run(conn, writes)
            return result
        with self.read() as conn:
            version = _read_version(conn)
            writes = Writes()
            result = plan(Reader(conn, locking=False), writes)
            if not writes:
                return result
            ready = _prepare(conn.dialect, writes)
        with self.write() as conn:
            if _read_version(conn) != version or not self.plan_ahead:  # the state moved: again
                writes = Writes()
                result = plan(Reader(conn, locking=False), writes)
                ready = _prepare(conn.dialect, writes)
            for prepared in ready:
                sqlite_fast.run_prepared(conn, prepared)
        return result

    def append(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Insert rows (each with the same keys) in one transaction; their new ids, in order.
        For appends that change no state a plan reads: inbox receipts, rejections."""
        if not rows:
            return []
        if self.is_sqlite:
            # Converted before the write lock is taken: the worker waits for it too.
            prepared = sqlite_fast.prepare(self.engine.dialect, _insert(table), rows)
            return self.append_prepared(table, prepared)
        statement = _insert(table).returning(table.c.id, sort_by_parameter_order=True)
        with self.write(appends_only=True) as conn:
            return [row.id for row in conn.execute(statement, [dict(r) for r in rows])]

    def append_prepared(self, table: Table, prepared: sqlite_fast.Prepared) -> list[int]:
        """`append` of rows already prepared (SQLite only): the intake's group commit, on the
        driver's connection. SQLAlchemy's connection, transaction and events cost more than
        the commit itself, and all of it holds the GIL the intake's event loop needs
        (decision 0015)."""
        with (
            write_turns.turn(self.url, self.timeout, lambda: safe_url(self.url)),
            unavailable_on_failure(self.url),
        ):
            pooled = self.engine.raw_connection()
            try:
                raw: Any = pooled.driver_connection
                write_turns.begin_immediate(raw, self.timeout, self._busy_ms)
                try:
                    ids = sqlite_fast.insert_prepared(raw, table, prepared)
                    raw.execute("COMMIT")
                except BaseException:
                    _roll_back(pooled, raw)
                    raise
                return ids
            finally:
                pooled.close()

    def disk_usage(self) -> tuple[int, int]:
        """Bytes the store takes on disk: (database, write-ahead log), a SQLite store's
        landing file and its log included. PostgreSQL's WAL is the server's, not one
        database's, so it counts as 0 there."""
        if not self.is_sqlite:
            with self.read() as conn:
                size = conn.exec_driver_sql("SELECT pg_database_size(current_database())")
                return int(size.scalar_one()), 0
        with self.read() as conn:
            pages = int(conn.exec_driver_sql("PRAGMA main.page_count").scalar_one())
            page_size = int(conn.exec_driver_sql("PRAGMA main.page_size").scalar_one())
        database = make_url(self.url).database or ""
        landing = f"{database}-inbox" if self.landing is not None else None
        landed = _file_bytes(landing), _file_bytes(f"{landing}-wal" if landing else None)
        return pages * page_size + landed[0], _file_bytes(f"{database}-wal") + landed[1]

    def reclaims_space(self) -> bool:
        """Whether space that deletes free is used again without a full `vacuum`: PostgreSQL's
        autovacuum makes it so; SQLite only in incremental auto-vacuum mode."""
        if not self.is_sqlite:
            return True
        with self.read() as conn:
            return int(conn.exec_driver_sql("PRAGMA main.auto_vacuum").scalar() or 0) == 2

    def reclaim_space(self, table: Table) -> int:
        """After many deletes from `table`: its freed space goes back to use, in short steps
        the intake commits between. SQLite hands free pages back to the disk
        `_VACUUM_PAGES` at a time, then checkpoints the WAL without waiting for writers (the
        next writer truncates it to its limit); PostgreSQL vacuums the table (which never
        blocks inserts). The pages SQLite gave back (0 on PostgreSQL)."""
        if not self.is_sqlite:
            with (
                unavailable_on_failure(self.url),
                self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
            ):
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {table.name}")
            return 0
        returned = 0
        while self.reclaims_space():
            with self.write(appends_only=True) as conn:  # moves no row a plan reads
                raw = conn.connection.dbapi_connection
                assert raw is not None
                before = raw.execute("PRAGMA main.freelist_count").fetchone()[0]
                raw.execute(f"PRAGMA main.incremental_vacuum({_VACUUM_PAGES})").fetchall()
                step = before - raw.execute("PRAGMA main.freelist_count").fetchone()[0]
            returned += step
            if step <= 0:
                break
        with unavailable_on_failure(self.url), self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA main.wal_checkpoint(PASSIVE)").all()
        return returned

    def checkpoint(self) -> int:
        """Copy the pages of a SQLite store's write-ahead log into its file now, waiting for
        no reader or writer (PASSIVE): what a commit does once the log holds
        `STORE_CHECKPOINT_PAGES`, done at a quiet moment instead (decision 0018). The pages
        the log holds, all now copied unless a reader still needs some (0 on PostgreSQL)."""
        if not self.is_sqlite:
            return 0
        with unavailable_on_failure(self.url):
            pooled = self.engine.raw_connection()
            try:
                raw: Any = pooled.driver_connection
                row = raw.execute("PRAGMA main.wal_checkpoint(PASSIVE)").fetchone()
            finally:
                pooled.close()
        return max(0, int(row[1]))  # -1 when the store is not in WAL mode

    def vacuum(self, progress: Callable[[float], None] = lambda _seconds: None) -> None:
        """Rewrite the whole store compactly; on SQLite also switch it to incremental
        auto-vacuum. Holds SQLite's write lock throughout (minutes for a large file: stop
        `tidings serve` first); `progress` hears the seconds elapsed now and then."""
        if not self.is_sqlite:
            with (
                unavailable_on_failure(self.url),
                self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
            ):
                conn.exec_driver_sql("VACUUM (ANALYZE)")
            return
        started = time.monotonic()
        with unavailable_on_failure(self.url), self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.set_progress_handler(lambda: progress(time.monotonic() - started), 10_000_000)
            try:
                raw.execute("PRAGMA main.auto_vacuum=INCREMENTAL")
                raw.execute("VACUUM")
                raw.execute("PRAGMA main.wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                raw.set_progress_handler(None, 0)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.landing is not None:
            self.landing.dispose()


def _file_bytes(name: str | None) -> int:
    """The size of the file `name`; 0 when there is none."""
    path = Path(name) if name else None
    return path.stat().st_size if path is not None and path.is_file() else 0


# Every live Database by its engine (`Database.owning`); an entry goes with its Database.
_OWNERS: weakref.WeakValueDictionary[Engine, Database] = weakref.WeakValueDictionary()


# Set in a pooled connection's info once the landing file is attached to it.
LANDING_ATTACHED = "landing_attached"


def _attacher(landing: str) -> Callable[[Any, Any, Any], None]:
    """Attach the landing file at `landing` (a URL), read-only, as `landing`, to each of the
    store's connections once it exists: the worker's move copies its rows in SQL
    (`storage.landing`), and a read-only file is not locked by BEGIN IMMEDIATE, so the
    worker's transactions never wait for the intake's, nor the intake's for the worker's."""
    path = Path(make_url(landing).database or "").absolute()
    uri = f"file:{quote(str(path))}?mode=ro"

    def attach(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get(LANDING_ATTACHED) or not path.is_file():
            return
        try:
            dbapi_connection.execute("ATTACH DATABASE ? AS landing", (uri,))
            dbapi_connection.execute("SELECT count(*) FROM landing.sqlite_master").fetchone()
        except sqlite3.DatabaseError as error:
            if error.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                raise
            raise NotAStore(
                f"the landing file {path} beside the store is not a readable SQLite database "
                f"({error}): stop tidings and move it away; tidings makes a new one, and the "
                "webhooks it held that were not yet applied stay in the moved file"
            ) from None
        record.info[LANDING_ATTACHED] = True

    return attach


def landing_url(url: str) -> str:
    """The landing file of the SQLite store at `url`: the same path with `-inbox` after it,
    as SQLite's own `-wal` and `-shm` files."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}-inbox").render_as_string(hide_password=False)


def _roll_back(pooled: Any, raw: Any) -> None:
    """Undo a failed append; a connection that cannot roll back is dropped from the pool, and
    the failure that led here is the one that is raised."""
    try:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
    except sqlite3.Error:
        pooled.invalidate()


class Reader:
    """A plan's reads. Rows loaded with `lock` are held until the transaction ends where the
    store has row locks (PostgreSQL); SQLite has one writer at a time instead."""

    def __init__(self, conn: Connection, locking: bool) -> None:
        self.conn = conn
        self._locking = locking
        self._next_ids: dict[str, int] = {}
        # What the stores of one plan share while planning, read once per plan (e.g. the
        # subscriptions the outbox serves, `storage.outbox`).
        self.memo: dict[str, Any] = {}

    def rows(
        self, query: Select[Any], lock: Literal["wait", "skip"] | None = None
    ) -> list[Row[Any]]:
        """The query's rows; `lock="skip"` leaves out rows another transaction holds."""
        if lock is not None and self._locking:
            query = query.with_for_update(skip_locked=lock == "skip")
        return list(self.conn.execute(query).all())

    def plain_rows(
        self, query: Select[Any], lock: Literal["wait", "skip"] | None = None
    ) -> list[Any]:
        """`rows`, for a query built once and read on every batch: on SQLite, where a plan
        locks nothing, named tuples read by the driver (`sqlite_fast.fetch_rows`), the same
        values by the same names (`_mapping` by name only), at a fraction of the cost."""
        if not self._locking and self.conn.dialect.name == "sqlite":
            return sqlite_fast.fetch_rows(self.conn, query)
        return self.rows(query, lock)

    def rows_by_key(
        self,
        table: Table,
        columns: Sequence[str],
        keys: Collection[Key],
        blank: Callable[[Key], Mapping[str, Any]] | None = None,
        lock: bool = False,
    ) -> dict[Key, Row[Any]]:
        """The rows whose unique `columns` have these values, by key.

        With `blank`, where the store locks rows, missing ones are first created from it and
        locked with the others, so concurrent writers of one new row wait for each other; the
        caller reserves ids (`reserve_ids`) for keys still missing and inserts them itself."""
        ordered = sorted(keys)
        if not ordered:
            return {}
        if blank is not None and self._locking:
            statement = insert_ignoring_duplicates(self.conn, table)
            self.conn.execute(statement, [dict(blank(key)) for key in ordered])
        # Grouped by all but the last column, which goes in an IN list: both stores walk the
        # unique index that way. Ordered by the key too (rows are locked in that order): an
        # order by id let SQLite walk another index in id order instead, every row of the
        # connection (ix_messages_connection_id), so each batch cost what the store held.
        groups: dict[Key, list[Any]] = {}
        for key in ordered:
            groups.setdefault(key[:-1], []).append(key[-1])
        found: dict[Key, Row[Any]] = {}
        # SQLite's json_each cuts a text at a NUL character: such keys take the IN list.
        nul = any(isinstance(v, str) and "\x00" in v for key in ordered for v in key)
        if not self._locking and self.conn.dialect.name == "sqlite" and not nul:
            by_key = _by_key(table, tuple(columns))
            for prefix, values in groups.items():
                given = {f"key_{i}": value for i, value in enumerate(prefix)}
                given["values"] = json_text.dumps(values)
                for row in sqlite_fast.fetch_rows(self.conn, by_key, given):
                    found[tuple(getattr(row, name) for name in columns)] = row
            return found
        *fixed, last = (table.c[name] for name in columns)
        for prefix, values in groups.items():
            for start in range(0, len(values), _CHUNK):
                match = [c == v for c, v in zip(fixed, prefix, strict=True)]
                query = (
                    select(table)
                    .where(*match, last.in_(values[start : start + _CHUNK]))
                    .order_by(*fixed, last)
                )
                for row in self.rows(query, "wait" if lock else None):
                    found[tuple(getattr(row, name) for name in columns)] = row
        return found

    def reserve_ids(self, table: Table, count: int) -> list[int]:
        """Ids for `count` new rows of `table`, to insert with `Writes.insert`. On SQLite they
        follow the largest id, which holds because `Database.apply` writes only if no other
        transaction wrote meanwhile; elsewhere they come from the table's sequence."""
        if count <= 0:
            return []
        if not self._locking and self.conn.dialect.name == "sqlite":
            first = self._next_ids.get(table.name)
            if first is None:
                (largest,) = sqlite_fast.fetch_rows(self.conn, _largest_id(table))
                first = int(largest[0] or 0) + 1
            self._next_ids[table.name] = first + count
            return list(range(first, first + count))
        sequence = func.nextval(func.pg_get_serial_sequence(table.name, "id"))
        query = select(sequence).select_from(func.generate_series(1, count))
        return [int(value) for value in self.conn.execute(query).scalars()]


def ids_follow_copied_rows(conn: Connection, table: Table) -> None:
    """After rows were copied in with their ids, new rows get ids past the largest (SQLite
    does so by itself; PostgreSQL's sequence must be moved)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            )
        )


def insert_returning_ids(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> list[int]:
    """Insert rows (each with the same keys, no ids) in the connection's write transaction;
    their new ids, in order. On SQLite the driver's executemany with the values converted
    first (SQLAlchemy's insert with RETURNING cost a campaign's claim more than SQLite's own
    work); elsewhere INSERT … RETURNING. A broken constraint raises the driver's error."""
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        prepared = sqlite_fast.prepare(conn.dialect, _insert(table), rows)
        raw = conn.connection.dbapi_connection
        return sqlite_fast.insert_prepared(raw, table, prepared)
    statement = _insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [int(row.id) for row in conn.execute(statement, [dict(r) for r in rows])]


def id_in(column: ColumnElement[int], ids: Collection[int]) -> ColumnElement[bool]:
    """`column IN ids`, as a range when the ids are consecutive (the rows a batch claims or
    inserts mostly are): the same rows, without SQLAlchemy processing a parameter for each id
    (a tenth of recording a campaign's batch, measured)."""
    if ids:
        low, high = min(ids), max(ids)
        if high - low + 1 == len(ids) == len(set(ids)):
            return column.between(low, high)
    return column.in_(ids)


def insert_ignoring_duplicates(conn: Connection, table: Table) -> Insert:
    """INSERT that is a no-op when a unique key already exists (the dedup primitive)."""
    return _insert_ignoring(conn.dialect.name, table)


@lru_cache(maxsize=16)
def _by_key(table: Table, columns: tuple[str, ...]) -> Select[Any]:
    """The rows of `table` whose `columns` match a key, on SQLite: the values of the last
    column as one JSON array (`json_each`), so the statement is built and compiled once and
    SQLAlchemy processes no parameter per value (the IN list of a batch's messages cost the
    worker a twentieth of applying them). SQLite still walks the unique index, a lookup per
    value; ordered by the key, as on PostgreSQL."""
    *fixed, last = (table.c[name] for name in columns)
    values = func.json_each(bindparam("values")).table_valued("value")
    match = [column == bindparam(f"key_{i}") for i, column in enumerate(fixed)]
    return select(table).where(*match, last.in_(select(values.c.value))).order_by(*fixed, last)


@lru_cache(maxsize=32)
def _insert_ignoring(dialect: str, table: Table) -> Insert:
    """One statement per table, so it is compiled once."""
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return postgresql.insert(table).on_conflict_do_nothing()


@lru_cache(maxsize=32)
def _largest_id(table: Table) -> Select[tuple[Any]]:
    """Built once per table: building a statement costs more than SQLite's answer."""
    return select(func.max(table.c.id).label("largest"))


@lru_cache(maxsize=32)
def _insert(table: Table) -> Insert:
    return table.insert()


@lru_cache(maxsize=32)
def _add_to(dialect: str, table: Table, key: str, columns: tuple[str, ...]) -> Insert:
    """`x = x + d` for each column, creating the row when its key is new."""
    insert = (sqlite if dialect == "sqlite" else postgresql).insert(table)
    added = {name: table.c[name] + insert.excluded[name] for name in columns if name != key}
    statement: Insert = insert.on_conflict_do_update(index_elements=[key], set_=added)
    return statement


def _statements(dialect: Dialect, writes: Writes) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """Each write as (statement, rows), rows with their own ids split by the columns they set
    on SQLite (`sqlite_fast.sparse`)."""
    for item in writes.items:
        # Copied only when not a dict already: copying every message row was a twentieth of
        # recording a campaign's batch.
        rows = [row if isinstance(row, dict) else dict(row) for row in item.rows]
        if isinstance(item, Execute):
            yield item.statement, rows
        elif isinstance(item, AddTo):
            yield _add_to(dialect.name, item.table, item.key, tuple(rows[0])), rows
        elif dialect.name == "sqlite" and "id" in rows[0]:
            for group in sqlite_fast.sparse(item.table, rows):
                yield _insert(item.table), group
        else:
            yield _insert(item.table), rows


def _prepare(dialect: Dialect, writes: Writes) -> list[sqlite_fast.Prepared]:
    return [sqlite_fast.prepare(dialect, stmt, rows) for stmt, rows in _statements(dialect, writes)]


def _run(conn: Connection, writes: Writes) -> None:
    for statement, rows in _statements(conn.dialect, writes):
        conn.execute(statement, rows)


# One row, moved by every write transaction on SQLite except appends (see `Database.write`).
_VERSION = select(tracking_version.c.version).where(tracking_version.c.id == 1)
_BUMP_VERSION = (
    sqlite.insert(tracking_version)
    .values(id=1, version=1)
    .on_conflict_do_update(index_elements=["id"], set_={"version": tracking_version.c.version + 1})
)


def _read_version(conn: Connection) -> int:
    """Read twice a batch on SQLite: through the driver's cursor, a tenth of SQLAlchemy's
    cost. PostgreSQL keeps no version (its row locks serialise writers)."""
    if conn.dialect.name != "sqlite":
        return int(conn.execute(_VERSION).scalar() or 0)
    rows = sqlite_fast.fetch_rows(conn, _VERSION)
    return int(rows[0].version) if rows else 0
