"""One bad item of a report is noted on its receipt and the report's other items still apply,
the same on SQLite and PostgreSQL (which refuses an over-long value outright); every kind of
record goes through the one registry."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from tidings.config import Settings
from tidings.domain.calls import CallRecord, CallType
from tidings.domain.errors import Invalid
from tidings.domain.events import BadItem, Ignored, NormalizedEvent, SessionUpdate
from tidings.providers.registry import get_provider
from tidings.storage import campaigns, connections, inbox, message_lists
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt
from tidings.storage.recount import find_drift
from tidings.storage.schema import events
from tidings.storage.schema import messages as messages_table
from tidings.unit_of_work import KINDS, Registration, kind_of, register
from tidings.worker import process

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
LONG = "c" * 300  # longer than a contact reference, a campaign key or a message id holds


def _result(message_id: str, callback: dict[str, str], code: str = "NO_ERROR") -> dict[str, Any]:
    return {
        "messageId": message_id,
        "to": "385981178115",
        "doneAt": "2026-12-02T08:59:00.000+0000",
        "callbackData": json.dumps(callback),
        "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
        "error": {"groupName": "OK", "name": code, "permanent": False},
    }


def _apply(db: Database, settings: Settings, results: list[dict[str, Any]]) -> int:
    with db.write() as conn:
        connection = connections.add_connection(
            conn,
            "infobip",
            "ib",
            "s",
            {"campaign_key": "campaign", "contact_ref_key": "contact"},
            NOW,
        )
        body = json.dumps({"results": results}).encode()
        new = NewReceipt(connection.id, "infobip", NOW, "application/json", {}, body)
        [receipt_id] = inbox.insert_receipts(conn, [new])
    result = process.process_batch(db, settings, now=lambda: NOW)
    assert (result.done, result.failed, result.dead) == (1, 0, 0), result.errors
    return receipt_id


def test_an_over_long_value_is_noted_and_the_other_items_apply(
    db: Database, settings: Settings
) -> None:
    receipt_id = _apply(
        db,
        settings,
        [
            _result("m-1", {"campaign": "spring", "contact": LONG}),
            _result("m" * 250, {"campaign": "spring", "contact": "7"}),
            _result("m-3", {"campaign": LONG, "contact": "8"}),
            _result("m-4", {"campaign": "spring", "contact": "9"}),
        ],
    )
    with db.read() as conn:
        receipt = inbox.get_receipt(conn, receipt_id)
        stored = {
            row.provider_message_id: row for row in conn.execute(select(messages_table)).all()
        }
        spring = campaigns.get_campaign(conn, "spring")
        assert find_drift(conn) == []
    assert receipt is not None and receipt.status == "done"
    assert sorted(stored) == ["m-1", "m-3", "m-4"]  # the over-long message id alone is refused
    assert all(row.state == "delivered" for row in stored.values())
    assert stored["m-1"].contact_ref is None and stored["m-4"].contact_ref == "9"
    assert stored["m-3"].campaign_id is None  # its campaign key could not be stored
    assert spring is not None and spring.counts["total"] == 2 and spring.counts["delivered"] == 2
    notes = "\n".join(receipt.notes)
    assert "contact_ref longer than 200 characters left out" in notes
    assert "provider_message_id longer than 200 characters" in notes
    assert "campaign longer than 200 characters left out" in notes


def test_an_over_long_failure_code_is_cut_and_noted(db: Database, settings: Settings) -> None:
    failed = _result("m-1", {}, code="E" * 150)
    failed["status"] = {"groupName": "UNDELIVERABLE", "name": "UNDELIVERABLE_NOT_DELIVERED"}
    failed["error"]["groupName"] = "HANDSET_ERRORS"
    receipt_id = _apply(db, settings, [failed, _result("m-2", {})])
    with db.read() as conn:
        receipt = inbox.get_receipt(conn, receipt_id)
        row = message_lists.find_message(conn, 1, "m-1")
        other = message_lists.find_message(conn, 1, "m-2")
        kinds = sorted(e.kind for e in conn.execute(select(events)))
    assert receipt is not None and any("failure_code" in note for note in receipt.notes)
    assert row is not None and row.state == "failed" and row.failure_code == "E" * 100
    assert other is not None and other.state == "delivered"
    assert kinds == ["delivered", "failed"]


def test_every_parsed_item_is_a_kind_of_record_or_a_note() -> None:
    assert [kind.item for kind in KINDS] == [NormalizedEvent, SessionUpdate, CallRecord]
    assert kind_of(CallRecord("c1", CallType.MISSED, "Missed")) is KINDS[2]
    assert kind_of(SessionUpdate("open")) is KINDS[1]
    assert kind_of(Ignored("inbound")) is None and Ignored("inbound").note == "ignored: inbound"
    assert kind_of(BadItem(2, "no id")) is None
    assert BadItem(2, "no id").note == "item 2 not applied: no id"


def test_a_registration_the_store_cannot_hold_is_refused_whole(db: Database) -> None:
    """The API refuses these with 422 before they get here; the unit of work refuses them too,
    naming the field, rather than letting PostgreSQL fail the transaction."""
    with db.write() as conn:
        connection = connections.add_connection(conn, "evolution", "evo", "s", {}, NOW)
    with pytest.raises(Invalid, match="contact_ref is longer than 200 characters"):
        register(db, connection, [Registration("m-1"), Registration("m-2", contact_ref=LONG)], NOW)
    with pytest.raises(Invalid, match="provider_message_id"):
        register(db, connection, [Registration("m" * 201)], NOW)
    with db.read() as conn:
        assert conn.execute(select(messages_table)).all() == []


def _queue_evolution(db: Database, body: bytes) -> int:
    with db.write() as conn:
        connection = connections.add_connection(conn, "evolution", "evo", "s", {}, NOW)
        new = NewReceipt(connection.id, "evolution", NOW, "application/json", {}, body)
        [receipt_id] = inbox.insert_receipts(conn, [new])
    return receipt_id


def test_a_body_of_no_known_shape_is_dead_lettered_at_once(
    db: Database, settings: Settings
) -> None:
    receipt_id = _queue_evolution(db, b'{"no_event": true}')
    result = process.process_batch(db, settings, now=lambda: NOW)
    assert (result.done, result.failed, result.dead) == (0, 0, 1)
    with db.read() as conn:
        receipt = inbox.get_receipt(conn, receipt_id)
    assert receipt is not None and (receipt.status, receipt.attempts) == ("dead", 1)
    assert receipt.error.startswith('evolution: body has no "event" name')


def test_an_adapter_that_breaks_is_retried_with_backoff(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in an adapter may be fixed by an upgrade: the receipt waits for a retry."""
    receipt_id = _queue_evolution(db, b'{"event": "messages.update"}')
    broken = replace(get_provider("evolution"), parse=lambda body, headers: {}["missing"])
    monkeypatch.setattr(process, "get_provider", lambda name: broken)
    result = process.process_batch(db, settings, now=lambda: NOW)
    assert (result.done, result.failed, result.dead) == (0, 1, 0)
    with db.read() as conn:
        receipt = inbox.get_receipt(conn, receipt_id)
    assert receipt is not None and receipt.status == "failed" and receipt.next_attempt_at > NOW
    assert receipt.error == "KeyError: 'missing'"
