"""Writes made through the store's unit of work (`Database.apply`, SQLite's fast path) store
exactly what SQLAlchemy's own executemany stores, on either store, and receipts appended
together get back their own ids in order."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import bindparam, exc, select, update
from sqlalchemy.dialects import sqlite as sqlite_dialect

from tidings.domain.errors import StorageUnavailable
from tidings.storage import connections, inbox
from tidings.storage.db import Database, Reader, id_in, insert_returning_ids
from tidings.storage.engine import NotAStore, unavailable_on_failure
from tidings.storage.inbox import NewReceipt
from tidings.storage.schema import UTCDateTime, messages, receipts, sends
from tidings.storage.sqlite_fast import (
    Prepared,
    _insert_rows,
    _rows_at_once,
    prepare,
    run_prepared,
    sparse,
)
from tidings.storage.writes import Writes

SAO_PAULO = timezone(timedelta(hours=-3))
NOW = datetime(2026, 11, 23, 8, 30, 15, 123456, tzinfo=UTC)


def _message(connection_id: int, pmid: str) -> dict[str, Any]:
    """A row touching every kind of column: aware datetimes in another zone, None, JSON with
    non-ASCII text, booleans, integers."""
    return {
        "connection_id": connection_id,
        "provider_message_id": pmid,
        "campaign_id": None,
        "channel": "whatsapp",
        "recipient": "+5511999990000",
        "contact_ref": None,
        "metadata": {"campanha": "promoção", "n": "1"},
        "state": "delivered",
        "sequence": 3,
        "created_at": NOW,
        "updated_at": NOW.astimezone(SAO_PAULO),
        "registered_at": None,
        "queued_at": None,
        "sent_at": NOW - timedelta(seconds=5),
        "delivered_at": NOW,
        "read_at": None,
        "failed_at": None,
        "failed_after_send": False,
        "failure_at": None,
        "failure_code": None,
        "failure_reason": None,
        "failure_permanent": True,
        "played_at": None,
        "opened_at": None,
        "clicked_at": None,
        "unsubscribed_at": None,
        "complained_at": None,
    }


def _connection(db: Database) -> int:
    with db.write() as conn:
        return connections.add_connection(conn, "evolution", "main", "s", {}, NOW).id


def execute_many(db: Database, statement: Any, rows: list[dict[str, Any]]) -> None:
    """`rows` written through the unit of work."""

    def plan(reader: Reader, writes: Writes) -> None:
        writes.execute(statement, rows)

    db.apply(plan)


def insert(db: Database, table: Any, rows: list[dict[str, Any]]) -> None:
    def plan(reader: Reader, writes: Writes) -> None:
        writes.insert(table, rows)

    db.apply(plan)


def mark_done(db: Database, done: list[tuple[int, list[str]]]) -> None:
    def plan(reader: Reader, writes: Writes) -> None:
        inbox.mark_done(writes, done, NOW)

    db.apply(plan)


def _stored(db: Database, pmid: str) -> dict[str, Any]:
    with db.read() as conn:
        row = conn.execute(select(messages).where(messages.c.provider_message_id == pmid)).one()
    values = dict(row._mapping)
    del values["id"], values["provider_message_id"]
    return values


def test_rows_read_back_the_same_as_sqlalchemys_own(db: Database) -> None:
    connection_id = _connection(db)
    with db.write() as conn:
        conn.execute(messages.insert(), [_message(connection_id, "ours-not")])
    execute_many(db, messages.insert(), [_message(connection_id, "ours")])
    assert _stored(db, "ours") == _stored(db, "ours-not")
    assert _stored(db, "ours")["updated_at"] == NOW
    assert _stored(db, "ours")["metadata"] == {"campanha": "promoção", "n": "1"}


@pytest.mark.sqlite_only  # PostgreSQL's typed columns leave no format to get wrong
def test_stored_bytes_are_the_same_on_sqlite(db: Database) -> None:
    connection_id = _connection(db)
    with db.write() as conn:
        conn.execute(messages.insert(), [_message(connection_id, "a")])
    execute_many(db, messages.insert(), [_message(connection_id, "b")])
    with db.read() as conn:
        raw = conn.exec_driver_sql("SELECT * FROM messages ORDER BY provider_message_id").all()
    first, second = (list(row) for row in raw)
    assert first[2] == "a" and second[2] == "b"
    del first[0], second[0], first[1], second[1]  # ids and message ids differ on purpose
    assert first == second


def test_updates_with_constants_and_expressions(db: Database) -> None:
    connection_id = _connection(db)
    with db.write() as conn:
        ids = inbox.insert_receipts(
            conn, [_receipt(connection_id, b"{}"), _receipt(connection_id, b"[]")]
        )
    mark_done(db, [(ids[0], ["ignored: x"]), (ids[1], [])])
    with db.read() as conn:
        first, second = (inbox.get_receipt(conn, i) for i in ids)
    assert first is not None and second is not None
    assert (first.status, first.attempts, first.notes, first.processed_at) == (
        "done",
        1,
        ["ignored: x"],
        NOW,
    )
    assert (second.status, second.attempts, second.notes) == ("done", 1, None)


def test_rows_missing_a_parameter_are_refused(db: Database) -> None:
    statement = (
        update(messages)
        .where(messages.c.id == bindparam("message_id"))
        .values(state=bindparam("new_state"))
    )
    with pytest.raises((ValueError, exc.StatementError), match="new_state"):
        execute_many(db, statement, [{"message_id": 1}, {"message_id": 2}])


def _receipt(connection_id: int, body: bytes) -> NewReceipt:
    return NewReceipt(connection_id, "evolution", NOW, "application/json", {"x": "1"}, body)


def _in_inbox(db: Database, new: list[NewReceipt]) -> list[int]:
    """Receipts put straight into the inbox (on SQLite, `inbox.append` lands them in the
    landing file until the worker moves them)."""
    with db.write() as conn:
        return inbox.insert_receipts(conn, new)


def test_receipts_inserted_together_get_their_own_ids_in_order(db: Database) -> None:
    connection_id = _connection(db)
    bodies = [f'{{"n":{i}}}'.encode() for i in range(300)]
    first = inbox.append(db, [_receipt(connection_id, b) for b in bodies[:100]])
    second = inbox.append(db, [_receipt(connection_id, b) for b in bodies[100:]])
    ids = first + second
    assert len(set(ids)) == 300
    with db.read() as conn:
        for receipt_id, body in zip(ids, bodies, strict=True):
            stored = inbox.get_receipt(conn, receipt_id)
            assert stored is not None and stored.body == body
            assert stored.headers == {"x": "1"} and stored.received_at == NOW


def _send_row(connection_id: int, key: str) -> dict[str, Any]:
    return {
        "connection_id": connection_id,
        "idempotency_key": key,
        "contact_id": None,
        "registration": {"recipient": "+5511999990000", "campanha": "promoção"},
        "status": "queued",
        "created_at": NOW,
    }


def test_rows_inserted_in_a_transaction_get_their_own_ids_in_order(db: Database) -> None:
    connection_id = _connection(db)
    keys = [f"k{i}" for i in range(150)]
    with db.write() as conn:
        first = insert_returning_ids(conn, sends, [_send_row(connection_id, k) for k in keys[:50]])
        second = insert_returning_ids(conn, sends, [_send_row(connection_id, k) for k in keys[50:]])
    with db.read() as conn:
        stored = dict(conn.execute(select(sends.c.id, sends.c.idempotency_key)).all())
    assert [stored[i] for i in first + second] == keys
    with db.read() as conn:
        row = conn.execute(select(sends).where(sends.c.id == first[0])).one()
    assert row.registration == {"recipient": "+5511999990000", "campanha": "promoção"}
    assert row.created_at == NOW and row.status == "queued"


@pytest.mark.parametrize("count", [1, 3, 4, 5, 21, 63, 64, 65, 150])
def test_appended_receipts_keep_their_order_and_bytes_across_statements(
    db: Database, count: int
) -> None:
    """On SQLite one INSERT takes up to 64 rows (then 16, 4, 1): every row of a group commit
    gets the next id, in the order given, with its own body, however the rows were split."""
    connection_id = _connection(db)
    before = inbox.append(db, [_receipt(connection_id, b"first")])
    bodies = [f'{{"n":{i},"t":"promo\u00e7\u00e3o"}}'.encode() for i in range(count)]
    ids = inbox.append(db, [_receipt(connection_id, body) for body in bodies])
    assert ids == list(range(before[0] + 1, before[0] + 1 + count))
    with db.read() as conn:
        stored = [inbox.get_receipt(conn, i) for i in ids]
    assert [(row.body, row.headers) for row in stored if row is not None] == [
        (body, {"x": "1"}) for body in bodies
    ]


@pytest.mark.sqlite_only
def test_a_unit_of_works_insert_of_many_rows_is_stored_in_order_a_few_statements(
    db: Database,
) -> None:
    """The worker's inserts (events, messages) go to SQLite as statements of up to 64 rows,
    like the intake's: every row stored, in the order given, with the values executemany
    stores."""
    connection_id = _connection(db)
    keys = [f"k{i}" for i in range(70)]
    statements: list[str] = []
    with db.write() as conn:
        raw: Any = conn.connection.dbapi_connection
        raw.set_trace_callback(statements.append)
        try:
            rows = [_send_row(connection_id, key) for key in keys]
            run_prepared(conn, prepare(conn.dialect, sends.insert(), rows))
        finally:
            raw.set_trace_callback(None)
    inserts = [statement for statement in statements if statement.startswith("INSERT")]
    assert [statement.count("), (") + 1 for statement in inserts] == [64, 4, 1, 1]
    with db.read() as conn:
        stored = conn.execute(select(sends).order_by(sends.c.id)).all()
    assert [row.idempotency_key for row in stored] == keys
    assert {(row.status, row.created_at) for row in stored} == {("queued", NOW)}
    assert stored[-1].registration == {"recipient": "+5511999990000", "campanha": "promoção"}


def test_a_wide_table_takes_fewer_rows_a_statement() -> None:
    """No statement binds more values than any SQLite allows (999 before 3.32)."""
    columns = [f"c{i}" for i in range(300)]
    raw = sqlite3.connect(":memory:")
    raw.execute(f"CREATE TABLE wide (id INTEGER PRIMARY KEY, {', '.join(columns)})")
    statements: list[str] = []
    raw.set_trace_callback(statements.append)
    sql = f"INSERT INTO wide ({', '.join(columns)}) VALUES ({', '.join('?' * 300)})"
    rows = [tuple(range(n, n + 300)) for n in range(10)]
    _insert_rows(raw, Prepared(sql, rows))
    stored = raw.execute(f"SELECT {columns[0]} FROM wide ORDER BY id").fetchall()
    assert [value for (value,) in stored] == list(range(10))
    inserts = [statement for statement in statements if statement.startswith("INSERT")]
    assert [statement.count("), (") + 1 for statement in inserts] == [1] * 10  # 4 rows of 300 > 999


def test_only_a_plain_insert_is_split_into_rows_at_once() -> None:
    plain = "INSERT INTO t (a, b) VALUES (?, ?)"
    assert _rows_at_once(plain, 3) == "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
    for other in (
        "INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO NOTHING",
        "INSERT INTO t (a) VALUES (?) RETURNING id",
        "INSERT INTO t (a) SELECT a FROM u WHERE b = ?",
        "UPDATE t SET a = ? WHERE id = ?",
    ):
        with pytest.raises(ValueError, match="not an INSERT of one row of values"):
            _rows_at_once(other, 2)


def test_a_used_key_in_an_insert_of_many_stores_none_of_the_transaction(db: Database) -> None:
    connection_id = _connection(db)
    with db.write() as conn:
        insert_returning_ids(conn, sends, [_send_row(connection_id, "used")])
    rows = [_send_row(connection_id, k) for k in ("fresh-1", "used", "fresh-2")]
    with pytest.raises((exc.IntegrityError, sqlite3.IntegrityError)), db.write() as conn:
        insert_returning_ids(conn, sends, rows)
    with db.read() as conn:
        assert conn.execute(select(sends.c.idempotency_key)).scalars().all() == ["used"]
    with db.write() as conn:  # the store is usable after the failure
        assert len(insert_returning_ids(conn, sends, [_send_row(connection_id, "x")])) == 1


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "moment",
    [
        NOW,
        NOW.replace(microsecond=0),
        NOW.astimezone(SAO_PAULO),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_datetimes_are_stored_in_sqlalchemys_sqlite_format(db: Database, moment: datetime) -> None:
    """Our one-step conversion writes the text SQLAlchemy's own SQLite DATETIME would, so
    comparisons in SQL and reading back agree whichever path wrote a row."""
    stock = sqlite_dialect.DATETIME().bind_processor(db.engine.dialect)
    assert stock is not None
    ours = UTCDateTime().dialect_impl(db.engine.dialect).bind_processor(db.engine.dialect)
    assert ours is not None
    assert ours(moment) == stock(moment.astimezone(UTC).replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive"):
        ours(moment.replace(tzinfo=None))


@pytest.mark.sqlite_only
def test_recent_times_kept_as_text_convert_as_the_first_time(db: Database) -> None:
    """Texts of recent times are kept: the same instant in another zone reads the same, and
    more times than are kept (the keeping starts over) still convert right."""
    stock = sqlite_dialect.DATETIME().bind_processor(db.engine.dialect)
    assert stock is not None
    ours = UTCDateTime().dialect_impl(db.engine.dialect).bind_processor(db.engine.dialect)
    assert ours is not None
    moments = [NOW + timedelta(seconds=7 * i, microseconds=i) for i in range(10_000)]
    moments += [NOW + timedelta(microseconds=37 * i) for i in range(30_000)]  # a second's many
    for moment in [*moments, *(m.astimezone(SAO_PAULO) for m in reversed(moments))]:
        assert ours(moment) == stock(moment.astimezone(UTC).replace(tzinfo=None))
    # The hour New York repeats when clocks go back: equal as datetimes, an hour apart.
    first = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    assert ours(first) == "2026-11-01 05:30:00.000000"
    assert ours(first.replace(fold=1)) == "2026-11-01 06:30:00.000000"


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "stored",
    [
        "2026-11-23 08:30:15.123456",  # as tidings and SQLAlchemy write every time
        "0999-01-02 03:04:05.000006",
        "9999-12-31 23:59:59.999999",
        "2026-11-23 08:30:15",  # written by hand or by another tool
        "2026-11-23 08:30:15.5",
        "2026-11-23T08:30:15.123456",
        "2026-11-23",
        "2026-11-23 05:30:15.123456-03:00",  # an offset of its own: SQLAlchemy's way
    ],
)
def test_times_read_back_as_sqlalchemy_reads_them_in_utc(db: Database, stored: str) -> None:
    """Reading a stored time in one step on SQLite gives what SQLAlchemy's own parse and the
    type's UTC conversion give, as an aware UTC datetime."""
    dialect = db.engine.dialect
    stock = sqlite_dialect.DATETIME().result_processor(dialect, None)
    assert stock is not None
    expected = stock(stored)
    expected = expected.replace(tzinfo=UTC) if expected.tzinfo is None else expected.astimezone(UTC)
    ours = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert ours is not None
    read = ours(stored)
    assert read == expected
    assert read.tzinfo is UTC
    assert ours(None) is None


@pytest.mark.sqlite_only  # on PostgreSQL SQLAlchemy's own path runs and fills the defaults
def test_rows_leaving_out_a_column_with_a_python_default_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="attempts"):
        execute_many(db, receipts.insert(), [{"connection_id": 1, "provider": "x"}])


@pytest.mark.sqlite_only
def test_json_none_is_stored_as_sqlalchemy_stores_it(db: Database) -> None:
    """JSON columns keep Python None as the JSON text 'null', whichever path wrote them."""
    connection_id = _connection(db)
    with db.write() as conn:
        ids = inbox.insert_receipts(conn, [_receipt(connection_id, b"{}")] * 2)
        conn.execute(
            update(receipts).where(receipts.c.id == ids[0]).values(notes=None, status="done")
        )
    mark_done(db, [(ids[1], [])])
    with db.read() as conn:
        stored = conn.exec_driver_sql("SELECT notes FROM receipts ORDER BY id").scalars().all()
    assert stored == ["null", "null"]


@pytest.mark.parametrize("gap", [False, True], ids=["consecutive", "with-a-gap"])
def test_receipts_marked_done_together_keep_their_own_notes(db: Database, gap: bool) -> None:
    """Receipts without notes may be marked in one ranged statement: each receipt still ends
    done once, with its own notes, and no receipt outside the batch is touched."""
    connection_id = _connection(db)
    ids = _in_inbox(db, [_receipt(connection_id, b"{}") for _ in range(8)])
    batch = [i for i in ids[1:7] if not (gap and i == ids[3])]
    noted = batch[-1]  # the others: five consecutive ids, or four with a gap
    mark_done(db, [(i, ["cut"] if i == noted else []) for i in batch])
    with db.read() as conn:
        rows = conn.execute(
            select(receipts.c.id, receipts.c.status, receipts.c.attempts, receipts.c.notes)
        ).all()
    by_id = {row.id: row for row in rows}
    for receipt_id in ids:
        row = by_id[receipt_id]
        if receipt_id in batch:
            assert (row.status, row.attempts) == ("done", 1)
            assert row.notes == (["cut"] if receipt_id == noted else None)
        else:
            assert (row.status, row.attempts, row.notes) == ("pending", 0, None)


@pytest.mark.sqlite_only  # the driver's own read is SQLite's
def test_rows_read_by_the_driver_are_what_sqlalchemy_reads(db: Database) -> None:
    connection_id = _connection(db)
    later = NOW + timedelta(microseconds=1)
    new = [
        _receipt(connection_id, b'{"n":1}'),
        NewReceipt(connection_id, "evolution", later, "text/plain", {}, b"\x00\xff"),
        NewReceipt(connection_id, "evolution", NOW, "", {"h\u00e9": "\u00fc \U0001f600"}, b""),
    ]
    ids = _in_inbox(db, new)
    mark_done(db, [(ids[1], ["a note", "\u00e9"])])
    query = select(receipts).order_by(receipts.c.id)
    with db.read() as conn:
        reader = Reader(conn, locking=False)
        fast, slow = reader.plain_rows(query), reader.rows(query)
        pending, _quarantined = inbox.take_pending(reader, Writes(), 10)
    assert [tuple(row) for row in fast] == [tuple(row) for row in slow]
    assert [row.notes for row in fast] == [None, ["a note", "\u00e9"], None]
    assert all(row.received_at.tzinfo is UTC for row in fast)
    by_id = {row.id: row for row in slow}
    assert [row.id for row in pending] == [ids[0], ids[2]]
    for row in pending:
        stored = by_id[row.id]
        read = (row.connection_id, row.provider, row.received_at, row.headers, row.body)
        assert read == (
            stored.connection_id,
            stored.provider,
            stored.received_at,
            stored.headers,
            stored.body,
        )
        assert row.attempts == stored.attempts


@pytest.mark.sqlite_only  # the driver's own read is SQLite's
def test_a_read_by_the_driver_converts_its_parameters_as_sqlalchemy_does(db: Database) -> None:
    connection_id = _connection(db)
    later = NOW + timedelta(microseconds=1)
    first = _receipt(connection_id, b"{}")
    _in_inbox(db, [first, NewReceipt(connection_id, "evolution", later, "", {}, b"{}")])
    since = select(receipts.c.id).where(receipts.c.received_at >= later)
    asking = select(receipts.c.id).where(receipts.c.id == bindparam("wanted"))
    with db.read() as conn:
        reader = Reader(conn, locking=False)
        found = reader.plain_rows(since)
        assert [tuple(row) for row in found] == [tuple(row) for row in reader.rows(since)]
        assert len(found) == 1
        with pytest.raises(ValueError, match="needs the value of 'wanted'"):
            reader.plain_rows(asking)


@pytest.mark.sqlite_only  # the prepared path is SQLite's
def test_a_sparse_insert_stores_what_a_full_one_does(db: Database) -> None:
    connection_id = _connection(db)
    reached_read = {**_message(connection_id, "sparse-2"), "read_at": NOW, "state": "read"}
    rows = [
        {"id": 101, **_message(connection_id, "sparse-1")},
        {"id": 205, **reached_read},  # another set of NULL columns: its own executemany
        {"id": 102, **_message(connection_id, "sparse-3")},
    ]
    groups = sparse(messages, rows)
    assert len(groups) == 2
    assert all("read_at" not in group[0] for group in groups if len(group) == 2)
    insert(db, messages, rows)
    execute_many(db, messages.insert(), [_message(connection_id, "dense")])
    dense = _stored(db, "dense")
    assert _stored(db, "sparse-1") == dense
    assert _stored(db, "sparse-3") == dense
    assert _stored(db, "sparse-2") == {**dense, "read_at": NOW, "state": "read"}
    with db.read() as conn:
        ids = conn.execute(select(messages.c.provider_message_id, messages.c.id)).all()
    assert dict((pmid, i) for pmid, i in ids if pmid.startswith("sparse")) == {
        "sparse-1": 101,
        "sparse-2": 205,
        "sparse-3": 102,
    }


def test_a_sparse_insert_needs_ids_and_keeps_columns_that_have_defaults() -> None:
    row = _message(1, "x")
    with pytest.raises(ValueError, match="id"):
        sparse(messages, [row])
    # `metadata` has a default (an empty object): a None there is written, not left out.
    [[kept]] = sparse(messages, [{"id": 1, **row, "metadata": None}])
    assert "metadata" in kept and "contact_ref" not in kept


def test_a_sparse_insert_keeps_json_columns_whose_none_is_stored_as_null_text() -> None:
    row = {
        "id": 1,
        "connection_id": 1,
        "provider": "evolution",
        "received_at": NOW,
        "content_type": "application/json",
        "headers": {},
        "body": b"{}",
        "status": "pending",
        "attempts": 0,
        "error": None,
        "notes": None,
    }
    [[kept]] = sparse(receipts, [row])
    assert "notes" in kept  # JSON turns None into 'null'; leaving it out would store NULL
    assert "error" not in kept


def test_receipts_appended_are_stored_as_the_plain_path_stores_them(db: Database) -> None:
    connection_id = _connection(db)
    rows = [_receipt(connection_id, b'{"n":1}'), _receipt(connection_id, b'{"n":2}')]
    ahead = inbox.append(db, rows)
    db.apply(lambda reader, writes: inbox.move_landed(reader, writes, 10))  # SQLite: copied in
    with db.write() as conn:
        plain = inbox.insert_receipts(conn, rows)
        conn.execute(
            update(receipts)
            .where(receipts.c.id.in_(plain))
            .values(status="done", attempts=1, processed_at=NOW, error=None)
        )
        conn.execute(update(receipts).where(receipts.c.id == plain[0]).values(notes=["ignored: x"]))
        conn.execute(update(receipts).where(receipts.c.id == plain[1]).values(notes=None))
    mark_done(db, [(ahead[0], ["ignored: x"]), (ahead[1], [])])
    with db.read() as conn:
        stored = {
            r.id: r._mapping
            for r in conn.execute(select(receipts).where(receipts.c.id.in_(ahead + plain)))
        }
    for a, p in zip(ahead, plain, strict=True):
        assert {**stored[a], "id": 0} == {**stored[p], "id": 0}


def test_an_append_that_fails_stores_nothing_and_the_next_one_works(db: Database) -> None:
    """A receipt without a body breaks a NOT NULL constraint half-way through a batch: the
    whole batch is undone, and the connection goes back to the pool fit for the next one."""
    connection_id = _connection(db)
    good = [_receipt(connection_id, b'{"n":1}'), _receipt(connection_id, b'{"n":2}')]
    broken = _receipt(connection_id, b"")._replace(body=None)
    with pytest.raises((exc.IntegrityError, sqlite3.IntegrityError)):
        inbox.append(db, [*good, broken])
    assert _received(db) == 0
    for _ in range(3):  # more appends than one pooled connection would take
        assert len(inbox.append(db, good)) == 2
    assert _received(db) == 6


def _received(db: Database) -> int:
    with db.read() as conn:
        return sum(inbox.count_by_status(conn).values())


@pytest.mark.sqlite_only
def test_an_append_to_a_locked_store_is_unavailable_within_its_timeout(db: Database) -> None:
    """The intake's append waits for SQLite's lock (the landing file's) at most the store's
    timeout, then says the store is unavailable (the intake answers 503), and holds nothing
    after."""
    connection_id = _connection(db)
    db = Database(db.url, timeout=0.3)
    inbox.append(db, [_receipt(connection_id, b"{}")])
    assert db.landing is not None
    blocker = sqlite3.connect(db.landing.url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="cannot commit"):
            inbox.append(db, [_receipt(connection_id, b"{}")])
        assert time.monotonic() - started < 1.5
        blocker.execute("ROLLBACK")
        assert len(inbox.append(db, [_receipt(connection_id, b"{}")])) == 1
        assert _received(db) == 2
    finally:
        blocker.close()
        db.dispose()


@pytest.mark.sqlite_only
def test_an_append_to_a_file_that_is_no_store_says_so(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"these are my notes, not a database" * 200)
    db = Database(f"sqlite:///{garbage}")
    try:
        with pytest.raises(NotAStore, match="is not an SQLite database"):
            inbox.append(db, [_receipt(1, b"{}")])
    finally:
        db.dispose()


def test_driver_errors_without_an_sqlite_code_pass_through_unchanged(db: Database) -> None:
    """The driver makes some errors up itself (a value it cannot bind); they carry no SQLite
    code and leave as they are, not as a confusing AttributeError."""
    with (
        pytest.raises(sqlite3.ProgrammingError, match="cannot bind"),
        unavailable_on_failure(db.url),
    ):
        raise sqlite3.ProgrammingError("cannot bind this value")


@pytest.mark.parametrize(
    "ids",
    [[], [4], [2, 3, 4], [4, 2, 3], [2, 2, 4], [2, 6, 4], [3, 3], [1, 2, 3, 4, 5, 6, 7, 8]],
    ids=["none", "one", "consecutive", "unsorted", "repeated", "gaps", "same-twice", "all"],
)
def test_id_in_selects_exactly_the_rows_in_selects(db: Database, ids: list[int]) -> None:
    """`id_in` (a range where the ids are consecutive) finds the rows `IN` finds, whatever
    order or repeats the ids come in: a range over [2, 2, 4] must not take 3."""
    with db.write() as conn:
        connection_id = connections.add_connection(conn, "evolution", "evo", "s", {}, NOW).id
        conn.execute(
            messages.insert(), [{**_message(connection_id, f"m{i}"), "id": i} for i in range(1, 9)]
        )
    with db.read() as conn:
        found = conn.execute(select(messages.c.id).where(id_in(messages.c.id, ids))).scalars()
        plain = conn.execute(select(messages.c.id).where(messages.c.id.in_(ids))).scalars()
        assert sorted(found) == sorted(plain) == sorted(set(ids))
