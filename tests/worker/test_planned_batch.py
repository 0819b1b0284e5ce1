"""On SQLite `Database.apply` plans a batch from a snapshot before it takes the write lock. If
anything changed the state in between (here: a registration through the API's code path), the
plan must be dropped and the batch planned again under the lock, or the stale plan would undo
that change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from tests.e2e.payloads import evolution_update
from tidings.config import Settings
from tidings.storage import campaigns, connections, inbox
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database, _read_version
from tidings.storage.inbox import NewReceipt
from tidings.storage.recount import find_drift
from tidings.storage.schema import events
from tidings.storage.schema import messages as messages_table
from tidings.unit_of_work import Registration, register
from tidings.worker import process

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _connection(db: Database) -> StoredConnection:
    with db.write() as conn:
        return connections.add_connection(conn, "evolution", "main", "s", {}, NOW)


def _queue(db: Database, connection: StoredConnection, message_id: str, status: str) -> None:
    body = evolution_update(message_id, status).encode()
    receipt = NewReceipt(connection.id, "evolution", NOW, "application/json", {}, body)
    with db.write() as conn:
        inbox.insert_receipts(conn, [receipt])


def _register_meanwhile(
    monkeypatch: pytest.MonkeyPatch, db: Database, connection: StoredConnection, pmid: str
) -> list[bool]:
    """Register `pmid` in campaign "spring" right after the worker first planned its batch
    (from its snapshot); returns how many receipts each plan of the batch saw."""
    planned: list[int] = []
    original: Callable[..., Any] = process._apply_receipts

    def plan_then_register(*args: Any) -> Any:
        result = original(*args)
        planned.append(result.claimed)
        if len(planned) == 1:
            register(db, connection, [Registration(pmid, campaign="spring")], NOW)
        return result

    monkeypatch.setattr(process, "_apply_receipts", plan_then_register)
    return planned


@pytest.mark.sqlite_only  # PostgreSQL locks the rows instead of planning ahead
def test_a_registration_between_plan_and_write_is_kept(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = _connection(db)
    _queue(db, connection, "wamid-1", "SERVER_ACK")
    assert process.process_batch(db, settings).done == 1
    _queue(db, connection, "wamid-1", "DELIVERY_ACK")
    planned = _register_meanwhile(monkeypatch, db, connection, "wamid-1")

    result = process.process_batch(db, settings)

    assert planned == [1, 1]  # planned from the snapshot, then again under the lock
    assert result.done == 1 and result.events == 1
    with db.read() as conn:
        row = conn.execute(select(messages_table)).one()
        spring = campaigns.get_campaign(conn, "spring")
        assert find_drift(conn) == []
    assert spring is not None and row.campaign_id == spring.id
    assert row.state == "delivered"
    assert spring.counts["delivered"] == 1


@pytest.mark.sqlite_only
def test_a_second_registration_naming_the_campaign_is_kept(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second registration records no new event (its `sent` is a duplicate), yet it puts
    the message in a campaign: that too must make the worker plan again."""
    connection = _connection(db)
    register(db, connection, [Registration("wamid-5")], NOW)
    _queue(db, connection, "wamid-5", "DELIVERY_ACK")
    _register_meanwhile(monkeypatch, db, connection, "wamid-5")

    assert process.process_batch(db, settings).done == 1
    with db.read() as conn:
        row = conn.execute(select(messages_table)).one()
        spring = campaigns.get_campaign(conn, "spring")
        assert find_drift(conn) == []
    assert spring is not None and row.campaign_id == spring.id
    assert row.state == "delivered" and spring.counts["delivered"] == 1


@pytest.mark.sqlite_only
def test_a_message_created_between_plan_and_write_is_not_created_twice(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = _connection(db)
    _queue(db, connection, "wamid-2", "READ")
    _register_meanwhile(monkeypatch, db, connection, "wamid-2")

    result = process.process_batch(db, settings)

    assert result.done == 1 and result.failed == 0
    with db.read() as conn:
        row = conn.execute(select(messages_table)).one()
        kinds = sorted(e.kind for e in conn.execute(select(events)))
        assert find_drift(conn) == []
    assert row.state == "read" and kinds == ["read", "sent"]


def _version(db: Database) -> int:
    with db.read() as conn:
        return _read_version(conn)


def test_every_write_but_an_inbox_append_moves_the_version(
    db: Database, settings: Settings
) -> None:
    connection = _connection(db)
    before = _version(db)
    _queue(db, connection, "wamid-3", "SERVER_ACK")
    after_a_plain_write = _version(db)
    body = evolution_update("wamid-3", "READ").encode()
    inbox.append(db, [NewReceipt(connection.id, "evolution", NOW, "application/json", {}, body)])
    after_append = _version(db)
    process.process_batch(db, settings)
    after_events = _version(db)
    register(db, connection, [Registration("wamid-4")], NOW)
    after_registration = _version(db)
    if db.is_sqlite:
        assert before < after_a_plain_write == after_append < after_events < after_registration
    else:  # PostgreSQL serialises on row locks; a shared counter would serialise every worker
        assert before == after_registration == 0
