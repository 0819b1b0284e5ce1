"""Copy a whole store into another (SQLite → PostgreSQL when an installation scales out).

Tables are copied in dependency order, in batches, keeping every id so references stay valid,
with the receipts a SQLite store has not yet moved from its landing file;
PostgreSQL's id sequences are then moved past the copied ids, and the row counts of both stores
are compared. The target must be empty: copying into a live store would mix two histories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, Table, func, insert, select

from tidings.domain.errors import Conflict
from tidings.storage import landing
from tidings.storage.db import Database, ids_follow_copied_rows
from tidings.storage.migrate import upgrade
from tidings.storage.schema import metadata, receipts

__all__ = ["TableCount", "copy_store", "count_rows"]

BATCH = 2000


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int
    target: int

    @property
    def matches(self) -> bool:
        return self.source == self.target


def _tables() -> list[Table]:
    return list(metadata.sorted_tables)  # parents before children


def count_rows(db: Database) -> dict[str, int]:
    """Rows by table, with the receipts a SQLite store has not yet moved from its landing
    file among the receipts."""
    with db.read() as conn:
        counted = _counted(conn)
        counted[receipts.name] += sum(landing.count_above(db, conn).values())
        return counted


def _counted(conn: Connection) -> dict[str, int]:
    return {
        t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in _tables()
    }


def _batches(conn: Connection, table: Table) -> Iterator[list[dict[str, object]]]:
    key = next(iter(table.primary_key.columns))
    last: object = None
    while True:
        query = select(table).order_by(key).limit(BATCH)
        if last is not None:
            query = query.where(key > last)
        rows = [dict(row._mapping) for row in conn.execute(query)]
        if not rows:
            return
        yield rows
        last = rows[-1][key.name]


def copy_store(
    source: Database, target: Database, progress: Callable[[str, int], None] = lambda t, n: None
) -> list[TableCount]:
    """Copy every row of `source` into the empty `target`; returns both sides' counts."""
    landing.check(source)  # another store's landing file: refused, not copied
    upgrade(target)
    if any(count_rows(target).values()):
        raise Conflict("the target store already holds data; copy into an empty database")
    # One read snapshot for the counts and the copy: on SQLite it never blocks the intake, and
    # what a running server commits meanwhile is in neither (stop it before switching over).
    with source.read() as reading, target.write() as writing:
        source_counts = _counted(reading)
        for table in _tables():
            for rows in _batches(reading, table):
                writing.execute(insert(table), rows)
                progress(table.name, len(rows))
        # Receipts a SQLite store's intake committed that its worker has not yet moved into
        # `receipts` (`storage.landing`): the copy has them in `receipts`, as they landed.
        for rows in landing.unapplied(source, reading, BATCH):
            writing.execute(insert(receipts), rows)
            source_counts[receipts.name] += len(rows)
            progress(receipts.name, len(rows))
        for table in _tables():
            key = next(iter(table.primary_key.columns))
            if key.autoincrement is True and table.name != "campaign_counters":
                ids_follow_copied_rows(writing, table)
    target_counts = count_rows(target)
    return [TableCount(name, source_counts[name], target_counts[name]) for name in source_counts]
