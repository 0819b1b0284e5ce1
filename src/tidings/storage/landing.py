"""The landing file: where a SQLite store's new receipts are committed (decision 0017).

SQLite has one write lock per file. The intake's group commit, synced before any webhook is
answered, used to wait for that lock behind the worker's batches and sync the worker's pages
with its own. So new receipts land in a file beside the store (`tidings.db-inbox`) that only
the intake and the Callyzer poll append to. The worker moves them into `receipts`, with their
ids, in the same transaction as their effects, and records the largest id it moved in
`inbox_progress`; a landed receipt above that offset is pending, whatever reads it.

Why an offset is enough: ids are given under the landing file's one write lock and its rows
commit in id order, so a reader that sees a row sees every row before it. Rows at or below
the offset are deleted (`trim`) only once a synced commit of the store holds the offset: the
worker's own commits are not synced one by one (decision 0006), and a power cut that undid
the last of them must find their receipts still landed.

PostgreSQL stores have no landing file: their sequences commit out of order, so an offset
would skip receipts, and their writers do not share one lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Text,
    TypeDecorator,
    bindparam,
    case,
    delete,
    func,
    literal,
    null,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.dml import Insert

from tidings import json_text
from tidings.storage import sqlite_fast
from tidings.storage.db import LANDING_ATTACHED, Database
from tidings.storage.engine import WRITING, NotAStore
from tidings.storage.schema import UTCDateTime, connections, inbox_progress, landed, receipts
from tidings.storage.writes import Writes

__all__ = [
    "MOVE",
    "StoredHeaders",
    "append",
    "append_new",
    "applied_through",
    "check",
    "count_above",
    "find",
    "ready",
    "reserve_ids",
    "rows_above",
    "take",
    "trim",
    "unapplied",
]

# Rows deleted per write of the landing file: the intake's commits wait for each.
TRIM_BATCH = 2000


def ready(db: Database, conn: Connection | None = None) -> Database | None:
    """The store's landing file, its table made and its ids seeded past the largest receipt
    id of the store on first use in this process (receipts keep their ids when moved, so an
    id is never given twice); None where receipts are committed to `receipts` itself. `conn`:
    the store's connection the caller holds, if any (a second one would wait for its lock)."""
    landing = db.landing
    if landing is None or db.landing_ready:
        return landing
    if conn is None:
        with db.read() as reading:
            largest = int(reading.execute(select(func.max(receipts.c.id))).scalar() or 0)
            _refuse_foreign(db, reading, landing, largest)
    else:
        largest = int(conn.execute(select(func.max(receipts.c.id))).scalar() or 0)
        _refuse_foreign(db, conn, landing, largest)
    with landing.write(appends_only=True) as lc:
        landed.create(lc, checkfirst=True)
        lc.execute(_SEED, {"largest": largest})
        lc.execute(_RAISE, {"largest": largest})
    db.landing_ready = True
    return landing


def check(db: Database) -> None:
    """Refuse, as NotAStore, a landing file holding receipts this store cannot take
    (`tidings serve` and `migrate-data` ask before they start, so that no worker stalls on
    them and no copy takes them)."""
    landing = _readable(db)
    if landing is None:
        return
    with db.read() as conn:
        largest = int(conn.execute(select(func.max(receipts.c.id))).scalar() or 0)
        _refuse_foreign(db, conn, landing, largest)


# How many of the oldest receipts not yet moved are looked at: those the worker's next
# batches take. A file of another store holds none of this one's, so they tell, however long
# the backlog behind them (reading all of a backlog would hold up the first commits).
_CHECKED = 1000


def _refuse_foreign(db: Database, conn: Connection, landing: Database, largest: int) -> None:
    """The landing file's receipts not yet moved must be this store's: moving one that names
    a connection the store does not have (or has for another provider), or an id its inbox
    already holds, would fail every batch, and the worker would apply nothing. Such a file is
    another store's (one deleted or replaced while its landing file stayed): say so, and
    change nothing in either file. Once a `Database` found the file sound, not again."""
    if db.landing_checked or not _made(landing):
        return
    offset = applied_through(conn)
    with landing.read() as lc:
        oldest = lc.execute(
            select(landed.c.id, landed.c.connection_id, landed.c.provider)
            .where(landed.c.id > offset)
            .order_by(landed.c.id)
            .limit(_CHECKED)
        ).all()
    strangers = _strangers(conn, oldest)
    if strangers:  # read again, after the landing file: a connection added meanwhile counts
        with db.read() as fresh:
            strangers = _strangers(fresh, oldest)
    suspects = [row.id for row in oldest if row.id <= largest]
    clashing = 0
    for start in range(0, len(suspects), 500):  # under SQLite's oldest limit of variables
        held = receipts.c.id.in_(suspects[start : start + 500])
        clashing += int(
            conn.execute(select(func.count()).select_from(receipts).where(held)).scalar_one()
        )
    if not strangers and not clashing:
        db.landing_checked = True
        return
    why = []
    if strangers:
        why.append(f"{strangers} name connections this store does not have")
    if clashing:
        why.append(f"{clashing} have ids its inbox already holds")
    path = make_url(landing.url).database
    raise NotAStore(
        f"the landing file {path} holds webhooks that are not this store's (of the oldest "
        f"{len(oldest)} not yet applied, {' and '.join(why)}): it belongs to another store. "
        "Put back the store it came with, or stop tidings and move the file away (with its "
        "-wal and -shm files)"
    )


def _strangers(conn: Connection, rows: Sequence[Any]) -> int:
    """How many of these landed receipts name a connection the store does not have, or has
    for another provider."""
    known = {
        row.id: row.provider
        for row in conn.execute(select(connections.c.id, connections.c.provider))
    }
    return sum(1 for row in rows if known.get(row.connection_id) != row.provider)


def _made(landing: Database) -> bool:
    """Whether the landing file exists with its table (reading it creates nothing)."""
    if not Path(make_url(landing.url).database or "").is_file():
        return False
    with landing.read() as lc:
        return lc.execute(_MADE).first() is not None


def _readable(db: Database) -> Database | None:
    """The store's landing file, for a reader, which writes nothing: None when the store has
    none, or none yet (nothing has landed)."""
    landing = db.landing
    if landing is None:
        return None
    if db.landing_ready:
        return landing
    return landing if _made(landing) else None


_MADE = text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'landed'")


_SEED = text(
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'landed', :largest "
    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'landed')"
)
_RAISE = text("UPDATE sqlite_sequence SET seq = :largest WHERE name = 'landed' AND seq < :largest")


def append(db: Database, rows: Sequence[Mapping[str, Any]]) -> list[int] | None:
    """Commit new receipts (rows of `receipts` without ids) to the landing file, synced; their
    ids, in order. None when the store has no landing file."""
    landing = ready(db)
    if landing is None:
        return None
    return landing.append(landed, rows)


# A webhook's receipt as the intake lands it (`append_new`): the values of these columns, in
# this order, the status as text.
NEW_COLUMNS = (
    "connection_id",
    "provider",
    "received_at",
    "content_type",
    "headers",
    "body",
    "status",
    "error",
)
NewLanded = tuple[int, str, datetime, str, Mapping[str, str], bytes, str, str | None]


def append_new(db: Database, new: Sequence[NewLanded]) -> list[int] | None:
    """`append` for webhooks, each given as `NEW_COLUMNS`' values; None when the store has no
    landing file. It runs in the intake's group commit, on a thread whose Python holds up the
    event loop: the general path (a dict per row, picked and converted column by column) made
    the commit thread spend about 1 µs a receipt more (8.0 µs of CPU against 7.1, groups of
    60, measured alone). The two values that need converting are converted by their columns'
    own types, so the stored bytes are the general path's."""
    if not new:
        return []
    landing = ready(db)
    if landing is None:
        return None
    sql, as_text, as_json = _new_insert(landing.engine.dialect)
    params: list[tuple[Any, ...]] = [
        (connection, provider, as_text(at), content_type, as_json(headers), body, status, error)
        for connection, provider, at, content_type, headers, body, status, error in new
    ]
    return landing.append_prepared(landed, sqlite_fast.Prepared(sql, params))


@lru_cache(maxsize=4)
def _new_insert(dialect: Dialect) -> tuple[str, Callable[[Any], Any], Callable[[Any], Any]]:
    """`append_new`'s SQL and the conversions of `received_at` and `headers` on `dialect`."""
    compiled = landed.insert().compile(dialect=dialect, column_keys=list(NEW_COLUMNS))
    if tuple(compiled.positiontup or ()) != NEW_COLUMNS:  # the table's columns were reordered
        raise RuntimeError(f"landed's insert binds {compiled.positiontup}, not {NEW_COLUMNS}")
    converts = []
    for name in ("received_at", "headers"):
        process = landed.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            raise RuntimeError(f"landed.{name} has no conversion on {dialect.name}")
        converts.append(process)
    return compiled.string, converts[0], converts[1]


_GIVEN = text("SELECT seq FROM sqlite_sequence WHERE name = 'landed'")
_GIVE = text("UPDATE sqlite_sequence SET seq = :given WHERE name = 'landed'")


def reserve_ids(db: Database, conn: Connection, count: int) -> list[int] | None:
    """Ids for `count` receipts put into `receipts` directly in `conn`'s transaction, taken
    from the landing file's sequence, so that no landed receipt gets them too; None when the
    store has no landing file."""
    landing = ready(db, conn)
    if landing is None:
        return None
    with landing.write(appends_only=True) as lc:
        largest = lc.execute(select(func.max(landed.c.id))).scalar()
        given = max(int(lc.execute(_GIVEN).scalar_one()), int(largest or 0))
        lc.execute(_GIVE, {"given": given + count})
    return list(range(given + 1, given + count + 1))


_OFFSET = select(inbox_progress.c.applied_through).where(inbox_progress.c.id == 1)


def applied_through(conn: Connection) -> int:
    """The largest landed id moved into `receipts`, as the store's snapshot `conn` sees it."""
    rows = sqlite_fast.fetch_rows(conn, _OFFSET)  # once a batch: the driver's cursor
    return int(rows[0].applied_through) if rows else 0


_ADVANCE = (
    sqlite.insert(inbox_progress)
    .values(id=1, applied_through=bindparam("through"))
    .on_conflict_do_update(index_elements=["id"], set_={"applied_through": bindparam("through")})
)


class StoredHeaders(Mapping[str, str]):
    """A landed receipt's headers, decoded from their stored JSON text when first looked at:
    of the parsers only Twilio's reads headers, and decoding them for every receipt took about
    3% of the worker's time."""

    __slots__ = ("_decoded", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._decoded: Mapping[str, str] | None = None

    def _values(self) -> Mapping[str, str]:
        if self._decoded is None:
            try:
                self._decoded = json_text.loads(self._text) or {}  # JSON's null: none kept
            except (ValueError, RecursionError) as error:  # the file was changed by hand
                raise ValueError(f"the receipt's stored headers are not JSON: {error}") from None
        return self._decoded

    def __getitem__(self, name: str) -> str:
        return self._values()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())

    def __repr__(self) -> str:
        return f"StoredHeaders({self._text!r})"


def _stored_headers(text: str | None) -> StoredHeaders | None:
    return None if text is None else StoredHeaders(text)


class _HeadersRead(TypeDecorator[Mapping[str, str]]):
    """`landed.headers` as the worker reads it: `StoredHeaders` over the stored text."""

    impl = Text
    cache_ok = True

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], StoredHeaders | None]:
        return _stored_headers


# The landing file as the store's own connections see it: attached read-only as `landing`
# (`Database`), so attaching takes none of its locks and the move below is SQLite's work
# alone, the values copied as they are stored.
_ATTACHED = landed.to_metadata(MetaData(), schema="landing")


@lru_cache(maxsize=8)
def _above(limit: int, attached: bool) -> Select[Any]:
    """What the worker reads of up to `limit` landed receipts past an offset to apply them,
    as it reads pending receipts (the headers decoded only when a parser reads them): from
    the landing file's own connection, or from the store's, where it is `attached`."""
    source = _ATTACHED if attached else landed
    return (
        select(
            source.c.id,
            source.c.connection_id,
            source.c.provider,
            source.c.received_at,
            type_coerce(source.c.headers, _HeadersRead()).label("headers"),
            source.c.body,
            source.c.status,
            literal(0).label("attempts"),
        )
        .where(source.c.id > bindparam("offset", type_=source.c.id.type))
        .order_by(source.c.id)
        .limit(limit)
    )


def _move() -> Insert:
    """Landed receipts with ids in [low, high] into `receipts`. Those landed pending get the
    status and the rest given (as applied by this unit of work, or still pending); those
    landed quarantined stay so."""
    source = _ATTACHED.c
    pending = source.status == "pending"
    copied = select(
        source.id,
        source.connection_id,
        source.provider,
        source.received_at,
        source.content_type,
        source.headers,
        source.body,
        case((pending, bindparam("status", type_=String)), else_=source.status),
        case((pending, bindparam("attempts", type_=Integer)), else_=0),
        source.error,
        source.source,
        case((pending, bindparam("processed_at", type_=UTCDateTime)), else_=null()),
        case((pending, bindparam("notes", type_=Text)), else_=null()),
    ).where(source.id.between(bindparam("low"), bindparam("high")))
    names = [
        "id",
        "connection_id",
        "provider",
        "received_at",
        "content_type",
        "headers",
        "body",
        "status",
        "attempts",
        "error",
        "source",
        "processed_at",
        "notes",
    ]
    return receipts.insert().from_select(names, copied)


MOVE = _move()


def take(db: Database, conn: Connection, writes: Writes, limit: int) -> list[Any]:
    """Up to `limit` landed receipts past the offset `conn` (the store, in a unit of work)
    sees, oldest first, added to `writes` as moved into `receipts` as they landed (pending or
    quarantined), with the offset past them. The caller applies the pending ones in the same
    unit of work; `inbox.mark_done` marks them done in the move itself (`MOVE`'s row).

    `MOVE` copies them as the write transaction sees the landing file, and BEGIN IMMEDIATE
    fixed that view when it took the lock. A plan made on a snapshot reads them from the
    landing file's own connection: the write transaction begins after, so it sees every row
    read, and the worker holds no snapshot of the landing file while it plans (one held for
    long keeps the intake's checkpoints of it from finishing). A plan made again under the
    lock reads them through `conn`, as the copy will: a connection of its own would also see
    receipts that landed after BEGIN, put them behind the offset, and copy none of them."""
    landing = ready(db, conn)
    if landing is None or limit <= 0:
        return []
    offset = applied_through(conn)
    if conn.get_execution_options().get(WRITING):
        if not _attached(conn):
            return []
        found = sqlite_fast.fetch_rows(conn, _above(limit, True), {"offset": offset})
    else:
        with landing.read() as lc:
            found = sqlite_fast.fetch_rows(lc, _above(limit, False), {"offset": offset})
    if not found:
        return []
    low, high = found[0].id, found[-1].id
    as_pending = {"status": "pending", "attempts": 0, "processed_at": None, "notes": None}
    # `landed`: the ids the move copies (receipts put into the store directly may have ids
    # between them); not a parameter of the statement, so the driver never sees it.
    moved = frozenset(row.id for row in found)
    writes.execute(MOVE, [{"low": low, "high": high, **as_pending, "landed": moved}])
    writes.execute(_ADVANCE, [{"through": high}])
    return found


def _attached(conn: Connection) -> bool:
    """Whether `conn` has the landing file attached: not one checked out before the file was
    made (the next checkout attaches it, `Database`), which takes nothing until then."""
    return bool(conn.connection.info.get(LANDING_ATTACHED))


def count_above(db: Database, conn: Connection) -> dict[str, int]:
    """Landed receipts not yet moved, by status (pending or quarantined)."""
    landing = _readable(db)
    if landing is None:
        return {}
    offset = applied_through(conn)
    query = (
        select(landed.c.status, func.count()).where(landed.c.id > offset).group_by(landed.c.status)
    )
    with landing.read() as lc:
        return {status: int(n) for status, n in lc.execute(query).all()}


def _as_receipts(with_body: bool) -> Select[Any]:
    """Landed rows with the columns of `receipts` (those a landed receipt has not yet, empty)."""
    columns: list[ColumnElement[Any]] = []
    for column in receipts.c:
        if column.name == "body" and not with_body:
            continue
        if column.name in landed.c:
            columns.append(landed.c[column.name])
        elif column.name == "attempts":
            columns.append(literal(0).label("attempts"))
        else:
            columns.append(null().label(column.name))
    return select(*columns)


def rows_above(
    db: Database,
    conn: Connection,
    where: Callable[[ReadOnlyColumnCollection[str, Any]], list[ColumnElement[bool]]],
    limit: int,
) -> list[Row[Any]]:
    """Landed receipts not yet moved that match `where` (the conditions it makes on the
    columns it is given, the landing table's here), newest first, without bodies, shaped as
    `receipts`' rows."""
    landing = _readable(db)
    if landing is None:
        return []
    offset = applied_through(conn)
    query = (
        _as_receipts(with_body=False)
        .where(landed.c.id > offset, *where(landed.c))
        .order_by(landed.c.id.desc())
        .limit(limit)
    )
    with landing.read() as lc:
        return list(lc.execute(query).all())


def find(db: Database, conn: Connection, receipt_id: int) -> Row[Any] | None:
    """A landed receipt not yet moved, shaped as a row of `receipts`."""
    landing = _readable(db)
    if landing is None or receipt_id <= applied_through(conn):
        return None
    query = _as_receipts(with_body=True).where(landed.c.id == receipt_id)
    with landing.read() as lc:
        return lc.execute(query).first()


def unapplied(db: Database, conn: Connection, batch: int) -> Iterator[list[dict[str, Any]]]:
    """Every landed receipt not yet moved, as rows of `receipts` (ids, bodies and all), oldest
    first, `batch` at a time: what copying the store must take besides its tables."""
    landing = _readable(db)
    if landing is None:
        return
    last = applied_through(conn)
    with landing.read() as lc:
        while True:
            query = (
                _as_receipts(with_body=True)
                .where(landed.c.id > last)
                .order_by(landed.c.id)
                .limit(batch)
            )
            rows = [dict(row._mapping) for row in lc.execute(query)]
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]


def trim(db: Database) -> int:
    """Delete landed receipts the store holds for good: those at or below the offset, read in
    a commit of the store that `db` syncs (it must make durable commits), so the worker's
    unsynced commits before it are synced with it. Deleted in short writes, between which the
    intake commits. How many were deleted."""
    if not db.durable_commits:
        raise ValueError("trimming the landing file needs a store whose commits are synced")
    landing = ready(db)
    if landing is None:
        return 0
    with db.write() as conn:  # moves the state version: a write, so the commit is synced
        offset = applied_through(conn)
    deleted = 0
    while True:
        with landing.read() as lc:
            low = lc.execute(select(func.min(landed.c.id))).scalar()
        if low is None or low > offset:
            return deleted
        high = min(offset, int(low) + TRIM_BATCH - 1)
        with landing.write(appends_only=True) as lc:
            deleted += lc.execute(delete(landed).where(landed.c.id.between(low, high))).rowcount
