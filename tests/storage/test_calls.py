"""Call records through the worker's one apply path, on SQLite and PostgreSQL: one row per
call whatever carried it, the latest `modified_at` kept, employees made and refreshed from
call data, and a call matched on arrival to the lead that has its client's number."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, insert, select

from tests.conftest import fixture_json
from tidings.config import Settings
from tidings.domain.calls import Employee
from tidings.storage import connections, employees, inbox
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt
from tidings.storage.schema import calls, lead_phones, leads
from tidings.worker import process

NOW = datetime(2026, 7, 28, 12, tzinfo=UTC)
OPTIONS = {"timezone": "Asia/Kolkata"}


def queue(db: Database, body: Any, name: str = "cz") -> int:
    with db.write() as conn:
        found = connections.find_connection(conn, "callyzer", name)
        if found is None:
            found = connections.add_connection(conn, "callyzer", name, "s", OPTIONS, NOW)
        raw = json.dumps(body).encode()
        new = NewReceipt(found.id, "callyzer", NOW, "application/json", {}, raw)
        [receipt_id] = inbox.insert_receipts(conn, [new])
    return receipt_id


def work(db: Database, settings: Settings) -> process.BatchResult:
    result = process.process_batch(db, settings, now=lambda: NOW)
    assert (result.failed, result.dead) == (0, 0), result.errors
    return result


def all_calls(db: Database) -> list[Row[Any]]:
    with db.read() as conn:
        return list(conn.execute(select(calls).order_by(calls.c.provider_call_id)))


def add_lead(db: Database, external_id: str, *numbers: str) -> int:
    with db.write() as conn:
        lead_id = conn.execute(
            insert(leads).values(external_id=external_id, created_at=NOW, updated_at=NOW)
        ).inserted_primary_key[0]
        for number in numbers:
            conn.execute(insert(lead_phones).values(lead_id=lead_id, number=number))
    return int(lead_id)


def test_a_webhook_stores_its_calls_with_employees_and_matches_a_known_number(
    db: Database, settings: Settings
) -> None:
    lead_id = add_lead(db, "L-1", "+919123456780")
    receipt_id = queue(db, fixture_json("callyzer", "employees-list-built.json"))
    result = work(db, settings)
    assert (result.done, result.events) == (1, 3)
    rows = all_calls(db)
    assert [(r.provider_call_id, r.type, r.client_number, r.lead_id) for r in rows] == [
        ("6641b2f0c1a2b3d4e5f60718", "outgoing", "+919123456780", lead_id),
        ("6641b2f0c1a2b3d4e5f60719", "missed", "+919123456781", None),
        ("6641b2f0c1a2b3d4e5f6071a", "incoming", "+48512345678", None),
    ]
    first = rows[0]
    assert first.started_at == datetime(2026, 7, 28, 5, 14, 41, tzinfo=UTC)
    assert (first.duration_seconds, first.raw_type, first.receipt_id) == (
        64,
        "Outgoing",
        receipt_id,
    )
    assert all((r.match_attempts, r.last_match_attempt_at) == (1, NOW) for r in rows)
    with db.read() as conn:
        staff = {e.code: e for e in employees.list_employees(conn, None, 10)}
    assert staff["EMP-001"].number == "+919876543210" and staff["EMP-001"].active
    assert staff["EMP-001"].tags == ("north", "inside-sales")
    assert staff["EMP-002"].name == "Piotr Nowak"
    assert first.employee_id == staff["EMP-001"].id
    with db.read() as conn:
        receipt = inbox.get_receipt(conn, receipt_id)
    assert receipt is not None and receipt.status == "done" and not receipt.notes


def test_the_same_call_twice_is_one_record(db: Database, settings: Settings) -> None:
    body = fixture_json("callyzer", "flat-call-built.json")
    queue(db, body)
    queue(db, [body])  # the same call again, in another envelope
    result = work(db, settings)
    assert (result.done, result.events, result.duplicates) == (2, 1, 1)
    queue(db, {"result": [body]})
    assert work(db, settings).duplicates == 1
    assert len(all_calls(db)) == 1


def test_the_latest_modified_at_wins_and_an_older_one_is_ignored(
    db: Database, settings: Settings
) -> None:
    body = fixture_json("callyzer", "flat-call-built.json")
    later = {**body, "duration": 99, "modified_at": "2026-07-30 12:30:00 IST"}
    queue(db, later)
    work(db, settings)
    older_receipt = queue(db, {**body, "duration": 1})
    assert work(db, settings).duplicates == 1
    [row] = all_calls(db)
    assert row.duration_seconds == 99
    with db.read() as conn:
        receipt = inbox.get_receipt(conn, older_receipt)
    assert receipt is not None and receipt.status == "done"
    [note] = receipt.notes
    assert "ignored" in note and "older than the version kept" in note
    newest = {**body, "duration": 120, "crm_status": "Won", "modified_at": "2026-07-30 13:00 IST"}
    queue(db, newest)
    work(db, settings)
    [row] = all_calls(db)
    assert (row.duration_seconds, row.crm_status) == (120, "Won")


def test_calls_of_two_connections_with_one_id_are_two_records(
    db: Database, settings: Settings
) -> None:
    body = fixture_json("callyzer", "flat-call-built.json")
    queue(db, body, "india")
    queue(db, body, "poland")
    work(db, settings)
    assert len(all_calls(db)) == 2


def test_call_data_refreshes_an_employee_but_never_their_active_flag(
    db: Database, settings: Settings
) -> None:
    body = fixture_json("callyzer", "flat-call-built.json")
    queue(db, body)
    work(db, settings)
    with db.read() as conn:
        before = employees.get_employee(conn, "EMP-001")
    assert before is not None
    db.apply(lambda r, w: employees.save_employee(r, w, _renamed(before.code), False, NOW))
    queue(db, {**body, "id": "other", "emp_name": "Asha V."})
    work(db, settings)
    with db.read() as conn:
        after = employees.get_employee(conn, "EMP-001")
    assert after is not None and (after.name, after.active) == ("Asha V.", False)


def _renamed(code: str) -> Employee:
    return Employee(code=code, name="Asha", number="+919876543210", tags=("north",))


def test_the_last_sync_only_moves_forward(db: Database, settings: Settings) -> None:
    queue(db, fixture_json("callyzer", "flat-call-built.json"))
    work(db, settings)
    with db.read() as conn:
        [staff] = employees.active_employees(conn)
    later, earlier = datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    db.apply(lambda r, w: employees.advance_last_sync(w, [staff.id], later))
    db.apply(lambda r, w: employees.advance_last_sync(w, [staff.id], earlier))
    with db.read() as conn:
        [staff] = employees.active_employees(conn)
    assert staff.last_synced_at == later
