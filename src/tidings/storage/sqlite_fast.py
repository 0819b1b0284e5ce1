"""SQLite's fast path: inserts and updates with every value converted before the write lock is
taken.

SQLite has one write lock for the whole file, and the intake and the worker take turns on it
many times a second. SQLAlchemy's per-row parameter processing costs more than SQLite's own
work, so here SQLAlchemy still writes the SQL and each column's type converts each value (the
stored bytes are exactly what SQLAlchemy would store), and the driver runs it: a plain insert
of several rows as statements of several rows, anything else with executemany.
Only `storage.db` uses this module (docs/architecture.md, "The store").
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Select, Table
from sqlalchemy.sql.dml import UpdateBase

__all__ = [
    "Prepared",
    "fetch_column",
    "fetch_rows",
    "insert_prepared",
    "prepare",
    "run_prepared",
    "sparse",
]


@dataclass(frozen=True)
class Prepared:
    """One executemany: its SQL and its rows' parameters, already converted."""

    sql: str
    params: list[tuple[Any, ...]]


def prepare(dialect: Dialect, statement: UpdateBase, rows: Sequence[Mapping[str, Any]]) -> Prepared:
    """The SQL and converted parameters of `statement` run once per row (same keys in each)."""
    if not rows:
        return Prepared("", [])
    plan = _plan(statement, dialect, tuple(rows[0]))
    pick, converts, constants = plan.pick, plan.converts, plan.constants
    if not converts and not constants:
        return Prepared(plan.sql, [pick(row) for row in rows])
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(pick(row))
        for position, process, nones in converts:
            value = values[position]
            if value is not None or nones:
                values[position] = process(value)
        for position, constant in constants:
            values.insert(position, constant)
        params.append(tuple(values))
    return Prepared(plan.sql, params)


def run_prepared(conn: Connection, prepared: Prepared) -> None:
    """Run a prepared executemany in the connection's transaction: a plain insert of several
    rows as statements of several rows each (`_insert_rows`), anything else row by row."""
    if not prepared.params:
        return
    raw = conn.connection.dbapi_connection
    if len(prepared.params) > 1 and _of_one_row(prepared.sql):
        _insert_rows(raw, prepared)
        return
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(prepared.sql, prepared.params)
    finally:
        cursor.close()


def insert_prepared(raw: Any, table: Table, prepared: Prepared) -> list[int]:
    """Run a prepared insert of rows without ids on the driver's connection `raw`, in its
    open write transaction; their new ids, in order."""
    if not prepared.params:
        return []
    # SQLite gives a new row the largest rowid plus one (unless the largest is the maximum
    # rowid, when it picks at random; with AUTOINCREMENT, past the largest ever given too), and
    # no one else inserts while this transaction holds the write lock: so the rows get
    # before+1 .. before+n, which last_insert_rowid() confirms.
    before = raw.execute(f"SELECT max(rowid) FROM {table.name}").fetchone()[0] or 0  # noqa: S608
    if table.dialect_options["sqlite"]["autoincrement"]:
        given = raw.execute(_LARGEST_GIVEN, (table.name,)).fetchone()
        before = max(before, given[0] if given else 0)
    _insert_rows(raw, prepared)
    last = raw.execute("SELECT last_insert_rowid()").fetchone()[0]
    if last != before + len(prepared.params):
        raise RuntimeError(f"ids of rows just inserted into {table.name} are not consecutive")
    return list(range(before + 1, last + 1))


_LARGEST_GIVEN = "SELECT seq FROM sqlite_sequence WHERE name = ?"

# Rows one INSERT statement takes at most, and the smaller statements the rest go in; and
# the values one statement may bind on any SQLite (999 before 3.32).
_ROWS_AT_ONCE = (64, 16, 4, 1)
_VARIABLES = 999


def _insert_rows(raw: Any, prepared: Prepared) -> None:
    """Run a prepared `INSERT … VALUES (…)` for every row, in order, several rows to a
    statement. The driver's executemany steps once per row and lets go of the GIL around each
    step, so the intake's event loop and its commit thread traded the GIL 64 times a commit;
    a statement of many rows is one step, and SQLite builds its rows for less (about 0.7 µs
    less CPU a receipt on the commit thread). Statements take 64, 16, 4 or 1 rows, so the
    driver's statement cache keeps four of them, whatever the batch."""
    params = prepared.params
    most = max(1, _VARIABLES // len(params[0]))  # a wide table: fewer rows a statement
    done = 0
    for size in (size for size in _ROWS_AT_ONCE if size <= most):
        while len(params) - done >= size:
            sql = _rows_at_once(prepared.sql, size)
            raw.execute(sql, [value for row in params[done : done + size] for value in row])
            done += size


@lru_cache(maxsize=64)
def _of_one_row(sql: str) -> bool:
    """Whether `sql` is an INSERT of one row of placeholders and nothing after them (no ON
    CONFLICT, no RETURNING, no SELECT): one that `_rows_at_once` can make insert several."""
    head, values_keyword, values = sql.rpartition(" VALUES ")
    one_row = values.startswith("(") and values.endswith(")") and set(values) <= set("(?, )")
    return head.startswith("INSERT ") and bool(values_keyword) and one_row


@lru_cache(maxsize=64)
def _rows_at_once(sql: str, rows: int) -> str:
    """`sql`, an INSERT of one row of placeholders (`_of_one_row`), made to insert `rows`
    rows."""
    if not _of_one_row(sql):
        raise ValueError(f"not an INSERT of one row of values: {sql}")
    head, values_keyword, values = sql.rpartition(" VALUES ")
    return head + values_keyword + ", ".join([values] * rows)


def sparse(table: Table, rows: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows that carry their own ids, grouped by the columns that are not None, each group one
    insert. Each column named in an insert costs about the same, NULL or not, and a message row
    is mostly NULLs (one per lifecycle time not reached yet): leaving them out halved the time
    to insert messages under the write lock. A column is left out only when the database would
    store NULL for it anyway (no default, ours or the server's)."""
    omissible = _omissible(table)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("id") is None:
            raise ValueError("a sparse insert needs each row's id (row order is not kept)")
        kept = {k: v for k, v in row.items() if v is not None or k not in omissible}
        groups.setdefault(tuple(kept), []).append(kept)
    return list(groups.values())


@lru_cache(maxsize=32)
def _omissible(table: Table) -> frozenset[str]:
    return frozenset(
        c.key
        for c in table.columns
        if c.default is None
        and c.server_default is None
        and not c.type.should_evaluate_none  # JSON stores None as 'null', not as NULL
    )


def fetch_column(conn: Connection, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
    """The first column of every row, read through the driver's own cursor (for reads under
    the write lock, where SQLAlchemy's result rows cost more than SQLite's work). `params` go
    to the driver as they are: ints and text, no type conversion."""
    sql, names = _positional(statement, conn.dialect)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, tuple(params[name] for name in names))
        return [row[0] for row in cursor.fetchall()]
    finally:
        cursor.close()


def fetch_rows(
    conn: Connection, statement: Select[Any], given: Mapping[str, Any] | None = None
) -> list[Any]:
    """The rows of a statement built once (it is compiled once, its parameters with it), read
    through the driver's own cursor, as named tuples of the values SQLAlchemy would give, by
    the columns' keys (each column's type converts its value; `_mapping` by name only):
    SQLAlchemy's result rows cost the worker more than SQLite's reading of them. `given`: the
    values of its `bindparam`s without one, passed to the driver as they are (ints and text)."""
    reading = _reading(statement, conn.dialect)
    params = reading.params
    if reading.given:
        values = list(params)
        for position, name in reading.given:
            if given is None or name not in given:
                raise ValueError(f"{statement} needs the value of {name!r} on each read")
            values[position] = given[name]
        params = tuple(values)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(reading.sql, params)
        raw = cursor.fetchall()
    finally:
        cursor.close()
    make, converts = reading.make, reading.converts
    if not converts:
        return [make(row) for row in raw]
    rows = []
    for row in raw:
        values = list(row)
        for position, process in converts:
            values[position] = process(values[position])
        rows.append(make(values))
    return rows


@dataclass(frozen=True)
class _Reading:
    """A statement's SQL and parameters, and how to make its rows: `converts` are the
    positions whose column type converts what the driver gives (position, conversion)."""

    sql: str
    params: tuple[Any, ...]
    make: Callable[[Any], Any]
    converts: tuple[tuple[int, Callable[[Any], Any]], ...]
    given: tuple[tuple[int, str], ...]  # (position, name) of the values given on each read


@lru_cache(maxsize=32)
def _reading(statement: Select[Any], dialect: Dialect) -> _Reading:
    compiled = statement.compile(dialect=dialect)
    params: list[Any] = []
    given: list[tuple[int, str]] = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        if bind.callable is not None:
            raise ValueError(f"{statement} needs the value of {name!r} on each read")
        if bind.required:
            given.append((len(params), name))
            params.append(None)
            continue
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        value = bind.value
        params.append(value if process is None or value is None else process(value))
    columns = list(statement.selected_columns)
    names = [str(column.key) for column in columns]
    converts = []
    for position, column in enumerate(columns):
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            converts.append((position, process))
    row_type = _row_type(tuple(names))
    return _Reading(compiled.string, tuple(params), row_type._make, tuple(converts), tuple(given))


def _row_type(names: tuple[str, ...]) -> Any:
    """A named tuple of these names that also answers `_mapping` (a new dict by name; no
    column objects as keys, unlike SQLAlchemy's)."""

    class Row(namedtuple("Row", names)):  # type: ignore[misc]  # names known only here
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(self._fields, self, strict=True))

    return Row


@lru_cache(maxsize=32)
def _positional(statement: Select[Any], dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    compiled = statement.compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ())


@dataclass(frozen=True)
class _Plan:
    """SQL with positional parameters, and how to make a row's parameters: `pick` takes the
    row's values in order (a tuple), `converts` converts some of them with their column's type
    (position, conversion, whether it converts None too), and `constants` (already converted)
    go in at their positions, in order. Taking every value in one step and converting only
    those that need it costs a third of converting value by value."""

    sql: str
    pick: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    converts: tuple[tuple[int, Callable[[Any], Any], bool], ...]
    constants: tuple[tuple[int, Any], ...]


@lru_cache(maxsize=128)
def _plan(statement: UpdateBase, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
    """Compiled once per statement and row shape."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    defaulted = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
    if defaulted:  # SQLAlchemy would fill these from Python-side defaults; rows must say
        raise ValueError(f"rows lack the columns {defaulted} of {statement}")
    names: list[str] = []
    converts: list[tuple[int, Callable[[Any], Any], bool]] = []
    constants: list[tuple[int, Any]] = []
    for position, name in enumerate(compiled.positiontup or ()):
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in keys:
            # None is passed through as NULL, except to a type that stores it its own way
            # (JSON writes 'null'), as SQLAlchemy does.
            if process is not None:
                converts.append((len(names), process, bind.type.should_evaluate_none))
            names.append(name)
        elif bind.required or bind.callable is not None:
            raise ValueError(f"rows lack the parameter {name!r} of {statement}")
        else:
            value = bind.value
            converted = value if process is None or value is None else process(value)
            constants.append((position, converted))
    return _Plan(compiled.string, _picker(tuple(names)), tuple(converts), tuple(constants))


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values under these names, as a tuple (itemgetter gives a lone value bare)."""
    if not names:
        return lambda _row: ()
    get = itemgetter(*names)
    if len(names) == 1:
        return lambda row: (get(row),)
    return get
