"""Every filter of the message list, the retention purge and a recount's repair are served by an
index on both stores, so their cost does not grow with the store (the plans are pinned here:
EXPLAIN QUERY PLAN on SQLite, EXPLAIN after ANALYZE on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event

from tidings.storage import call_lists, connections, inbox, message_lists, sends
from tidings.storage.call_lists import CallFilter
from tidings.storage.db import Database, Reader
from tidings.storage.inbox import NewReceipt, ReceiptStatus
from tidings.storage.message_lists import MessageFilter
from tidings.storage.messages import blank_row
from tidings.storage.recount import actual_counts
from tidings.storage.schema import calls, campaigns, employees, leads, messages
from tidings.storage.schema import sends as sends_table

NOW = datetime(2026, 6, 1, tzinfo=UTC)
COUNT = 6000


@pytest.fixture
def store(db: Database) -> Database:
    """6,000 messages over 2 connections and 30 campaigns, mostly delivered over SMS, and as
    many receipts, most of them past retention; statistics gathered where the store keeps
    them."""
    with db.write() as conn:
        main = connections.add_connection(conn, "infobip", "main", "s", {}, NOW)
        other = connections.add_connection(conn, "infobip", "other", "s", {}, NOW)
        conn.execute(campaigns.insert(), [{"key": f"c{i}", "created_at": NOW} for i in range(30)])
        rows = []
        for i in range(COUNT):
            row = blank_row(main.id if i % 10 else other.id, f"P{i}", NOW - timedelta(minutes=i))
            row.update(
                state="queued" if i % 200 == 0 else "delivered",
                channel="whatsapp" if i % 300 == 0 else "sms",
                recipient=f"+1555{i:07d}",
                campaign_id=1 + i % 30,
            )
            rows.append(row)
        conn.execute(messages.insert(), rows)
        old = [
            NewReceipt(main.id, "infobip", NOW - timedelta(days=60 - i / COUNT), "a/b", {}, b"{}")
            for i in range(COUNT)
        ]
        ids = inbox.insert_receipts(conn, old)
        conn.execute(
            inbox.receipts.update()
            .where(inbox.receipts.c.id.in_(ids[:-10]))
            .values(status=ReceiptStatus.DONE.value)
        )
        conn.exec_driver_sql("ANALYZE")
    return db


def plans(db: Database, run: Callable[[Connection], Any]) -> list[str]:
    """The plan of each SELECT `run(conn)` executed, as one line of text each. On SQLite the
    driver's trace sees every statement, also those read on its own cursor (`sqlite_fast`),
    with their values in place."""
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    def trace(statement: str) -> None:
        capture(None, None, statement, ())

    with db.read() as conn:
        raw = conn.connection.dbapi_connection
        if db.is_sqlite:
            raw.set_trace_callback(trace)  # type: ignore[union-attr]
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            event.listen(db.engine, "before_cursor_execute", capture)
        try:
            run(conn)
        finally:
            if db.is_sqlite:
                raw.set_trace_callback(None)  # type: ignore[union-attr]
            else:
                event.remove(db.engine, "before_cursor_execute", capture)
        prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
        explained = []
        for statement, parameters in captured:
            rows = conn.exec_driver_sql(prefix + statement, parameters).all()
            explained.append(" / ".join(str(row[-1]).strip() for row in rows))
    return explained


def listing(where: MessageFilter) -> Callable[[Connection], Any]:
    return lambda conn: message_lists.list_messages(conn, where, None, 50)


def messages_access(plan: str, sqlite: bool) -> str:
    """The part of the plan that reads the messages table."""
    parts = plan.split(" / ")
    if sqlite:
        return next(p for p in parts if " messages " in f"{p} ")
    return " / ".join(p for p in parts if " on messages" in p or "Index Cond" in p)


@pytest.mark.parametrize(
    ("where", "index", "matches"),
    [
        (MessageFilter(provider_message_id="P77"), "ix_messages_provider_message_id", 1),
        (MessageFilter(status="queued"), "ix_messages_state_id", COUNT // 200),
        (MessageFilter(channel="whatsapp"), "ix_messages_channel_id", COUNT // 300),
        (MessageFilter(recipient="+15550000077"), "ix_messages_recipient", 1),
        (MessageFilter(connection="other"), "ix_messages_connection_id", COUNT // 10),
        (MessageFilter(since=NOW - timedelta(minutes=9, seconds=30)), "ix_messages_created_at", 10),
        (
            MessageFilter(since=NOW - timedelta(days=1000), until=NOW - timedelta(minutes=5989)),
            "ix_messages_created_at",
            10,
        ),
    ],
)
def test_every_list_filter_walks_its_index(
    store: Database, where: MessageFilter, index: str, matches: int
) -> None:
    with store.read() as conn:
        found = message_lists.list_messages(conn, where, None, 50)
    assert len(found) == min(matches, 50)
    assert [r.id for r in found] == sorted((r.id for r in found), reverse=True)
    plan = plans(store, listing(where))[-1]
    access = messages_access(plan, store.is_sqlite)
    assert index in access, plan
    assert "SCAN messages" not in plan and "Seq Scan on messages" not in plan


def test_a_wide_time_range_is_read_newest_first_without_sorting(store: Database) -> None:
    where = MessageFilter(since=NOW - timedelta(days=1000))
    with store.read() as conn:
        found = message_lists.list_messages(conn, where, None, 50)
    assert [r.id for r in found] == list(range(COUNT, COUNT - 50, -1))
    probe, page = plans(store, listing(where))
    assert "ix_messages_created_at" in probe
    if store.is_sqlite:
        assert "TEMP B-TREE" not in page  # the primary key gives the order; stops after 50
    else:
        assert "pk_messages" in page or "ix_messages_created_at" in page


@pytest.mark.sqlite_only  # PostgreSQL reads a campaign by whatever its statistics favour
def test_a_campaign_filter_reads_only_that_campaign(store: Database) -> None:
    plan = plans(store, listing(MessageFilter(campaign="c3")))[-1]
    assert "ix_messages_campaign_state (campaign_id=?)" in plan


def test_the_purge_walks_the_received_at_index_and_stops_after_a_batch(store: Database) -> None:
    cutoff = NOW - timedelta(days=30)

    def find(conn: Connection) -> None:
        found = inbox.purgeable(conn, cutoff, None, 100)
        assert len(found) == 100
        assert [r.received_at for r in found] == sorted(r.received_at for r in found)

    [plan] = plans(store, find)
    assert "ix_receipts_received_at" in plan, plan
    assert "TEMP B-TREE" not in plan and "Seq Scan on receipts" not in plan
    if not store.is_sqlite:
        assert "Sort" not in plan


def test_a_repair_sums_only_the_campaigns_it_names(store: Database) -> None:
    def one(conn: Connection) -> None:
        assert set(actual_counts(conn, {4})) == {4}

    [plan] = plans(store, one)
    assert "ix_messages_campaign_state" in plan, plan
    assert "SCAN messages " not in f"{plan} " and "Seq Scan on messages" not in plan


def test_the_sends_waiting_for_an_answer_are_found_without_reading_the_others(
    db: Database,
) -> None:
    """Every dispatch turn looks for interrupted sends; the store holds one row per message
    tidings ever sent, and almost none wait."""
    with db.write() as conn:
        main = connections.add_connection(conn, "evolution", "main", "s", {}, NOW)
        rows = [
            {"connection_id": main.id, "idempotency_key": f"k{i}", "registration": {},
             "status": "queued" if i % 1000 == 0 else "sent", "created_at": NOW}
            for i in range(COUNT)
        ]  # fmt: skip
        conn.execute(sends_table.insert(), rows)
        conn.exec_driver_sql("ANALYZE")

    def find(conn: Connection) -> None:
        assert len(sends.stale(conn, NOW + timedelta(seconds=1))) == COUNT // 1000

    [plan] = plans(db, find)
    assert "ix_sends_waiting" in plan, plan
    assert "SCAN sends" not in plan and "Seq Scan on sends" not in plan


@pytest.fixture(params=[True, False], ids=["statistics", "no statistics"])
def call_store(db: Database, request: pytest.FixtureRequest) -> Database:
    """6,000 calls by 30 employees, one of whom made only 10, mostly outgoing, most matched to
    one of 100 leads; with statistics gathered, and without (as a SQLite store runs: tidings
    never analyzes it)."""
    with db.write() as conn:
        main = connections.add_connection(conn, "callyzer", "team", "s", {}, NOW)
        conn.execute(
            employees.insert(),
            [
                {"code": f"e{i}", "tags": [], "active": True, "created_at": NOW, "updated_at": NOW}
                for i in range(30)
            ],
        )
        conn.execute(
            leads.insert(),
            [{"external_id": f"L{i}", "created_at": NOW, "updated_at": NOW} for i in range(1, 101)],
        )
        conn.execute(
            calls.insert(),
            [
                {
                    "connection_id": main.id,
                    "provider_call_id": f"c{i}",
                    "employee_id": 30 if i % 600 == 0 else 1 + i % 29,
                    "type": "missed" if i % 300 == 0 else "outgoing",
                    "raw_type": "",
                    "duration_seconds": 60,
                    "started_at": NOW - timedelta(minutes=i),
                    "lead_id": None if i % 200 == 0 else 1 + i % 100,
                    "match_attempts": 0,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(COUNT)
            ],
        )
        if request.param:
            conn.exec_driver_sql("ANALYZE")
    return db


@pytest.mark.sqlite_only  # PostgreSQL picks by its statistics, and sorts what it expects is few
@pytest.mark.parametrize(
    ("where", "index", "matches"),
    [
        (CallFilter(employee="e29"), "ix_calls_employee_id_id", COUNT // 600),
        (CallFilter(type="missed"), "ix_calls_type_id", COUNT // 300),
        (CallFilter(waiting=True), "ix_calls_unmatched", COUNT // 200),
    ],
)
def test_every_call_list_filter_walks_its_index_in_the_lists_order(
    call_store: Database, where: CallFilter, index: str, matches: int
) -> None:
    """The calls list (API and dashboard) is newest first by id: an employee's calls, a
    type's and the unmatched ones come in that order from their index, so a page stops
    after its rows however many calls the store holds."""

    def page(conn: Connection) -> None:
        found = call_lists.list_calls(conn, where, None, 5)
        assert len(found) == min(matches, 5)
        assert [r.id for r in found] == sorted((r.id for r in found), reverse=True)

    [plan] = plans(call_store, page)
    assert index in plan, plan
    whole = [
        step for step in plan.split(" / ") if step.startswith("SCAN calls") and index not in step
    ]
    assert not whole and "Seq Scan on calls" not in plan, plan
    if call_store.is_sqlite:
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert "Sort" not in plan, plan


def test_a_leads_calls_still_walk_the_lead_index(call_store: Database) -> None:
    """The lead index holds only matched calls; a lead's calls (the API's lead page, the
    dashboard's lead page) still find theirs through it."""

    def lead(conn: Connection) -> None:
        assert len(call_lists.list_calls(conn, CallFilter(lead="L1"), None, 5)) == 5
        assert len(call_lists.latest_calls(conn, 1, 5)) == 5

    for plan in plans(call_store, lead)[-2:]:
        assert "SCAN calls" not in plan and "Seq Scan on calls" not in plan, plan
        if call_store.is_sqlite:
            assert "ix_calls_lead_id_started_at" in plan, plan


@pytest.mark.parametrize("analyzed", [True, False], ids=["statistics", "no statistics"])
def test_the_messages_a_batch_touches_are_found_by_their_key_not_by_the_connection(
    db: Database, analyzed: bool
) -> None:
    """Every batch the worker applies looks up the messages its events name by (connection,
    provider id). That lookup walks the unique index, 50 probes for 50 ids; walking the
    connection's own index in id order instead read every message of the connection, so each
    batch cost what the store held (it did, on SQLite, from migration 0009 until this test)."""
    with db.write() as conn:
        main = connections.add_connection(conn, "infobip", "main", "s", {}, NOW)
        conn.execute(messages.insert(), [blank_row(main.id, f"P{i}", NOW) for i in range(COUNT)])
        if analyzed or not db.is_sqlite:  # PostgreSQL's autovacuum gathers them by itself
            conn.exec_driver_sql("ANALYZE")
    wanted = {(main.id, f"P{i}") for i in range(0, COUNT, COUNT // 50)} | {(main.id, "new")}

    def lookup(conn: Connection) -> None:
        found = Reader(conn, locking=False).rows_by_key(
            messages, ("connection_id", "provider_message_id"), wanted
        )
        assert set(found) == wanted - {(main.id, "new")}

    [plan] = plans(db, lookup)
    assert "provider_message_id" in plan, plan  # the index probed on both columns
    assert "ix_messages_connection_id" not in plan, plan
    assert "SCAN messages" not in plan and "Seq Scan on messages" not in plan, plan


@pytest.mark.sqlite_only  # PostgreSQL picks by its statistics
@pytest.mark.parametrize(
    "where",
    [
        CallFilter(lead="L7", type="outgoing"),
        CallFilter(lead="L7", employee="e3"),
        CallFilter(lead="L7", employee="e3", type="outgoing", waiting=False),
    ],
)
def test_with_a_lead_named_the_calls_list_walks_the_lead_index(
    call_store: Database, where: CallFilter
) -> None:
    """A lead's calls are few: naming one with an employee or a type must not walk every call
    of that employee or type in id order (SQLite has no statistics to tell which is fewer)."""

    def page(conn: Connection) -> None:
        found = call_lists.list_calls(conn, where, None, 5)
        assert all(r.lead_external_id == "L7" for r in found)
        assert all(where.type is None or r.type == where.type for r in found)
        assert all(where.employee is None or r.employee_code == where.employee for r in found)

    [plan] = plans(call_store, page)
    assert "ix_calls_lead_id_started_at" in plan, plan
    assert "ix_calls_type_id" not in plan and "ix_calls_employee_id_id" not in plan, plan
