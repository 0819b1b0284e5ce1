"""`tidings migrate-data`: an embedded SQLite store copied into PostgreSQL, verified by counts,
and the copy keeps working (ids, sequences, counters)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tidings.cli import main
from tidings.domain.events import EventKind, Incoming, NormalizedEvent
from tidings.storage import connections, inbox, tokens
from tidings.storage.db import Database
from tidings.storage.inbox import NewReceipt
from tidings.storage.migrate import upgrade
from tidings.storage.recount import find_drift
from tidings.storage.schema import messages
from tidings.unit_of_work import Registration, apply_events, register


def _embedded_store(path: Path) -> str:
    url = f"sqlite:///{path}"
    db = Database(url)
    upgrade(db)
    now = datetime.now(UTC)
    with db.write() as conn:
        c = connections.add_connection(
            conn, "callbell", "cb", "s", {"campaign_key": "campaign"}, now
        )
        tokens.create_token(conn, "t", now)
        ids = inbox.insert_receipts(
            conn, [NewReceipt(c.id, "callbell", now, "application/json", {}, b"{}")] * 3
        )
    campaign = {"campaign": "c1"}
    incoming = [
        Incoming(c, NormalizedEvent(f"m{i}", EventKind.DELIVERED, metadata=campaign), ids[0], now)
        for i in range(2500)  # more than one copy batch
    ]
    apply_events(db, incoming, now)
    register(db, c, [Registration("r1", campaign="c2")], now)
    db.dispose()
    return url


@pytest.mark.once  # brings its own stores
def test_migrate_data_copies_and_verifies(tmp_path: Path, empty_postgres: str) -> None:
    source = _embedded_store(tmp_path / "embedded.db")
    runner = CliRunner()
    result = runner.invoke(main, ["migrate-data", "--from", source, "--to", empty_postgres])
    assert result.exit_code == 0, result.output
    assert "[ok] messages: 2501 -> 2501" in result.output
    assert "[ok] events: 2501 -> 2501" in result.output
    assert "[ok] receipts: 3 -> 3" in result.output
    target = Database(empty_postgres)
    with target.read() as conn:
        assert find_drift(conn) == []
        max_id = max(conn.execute(select(messages.c.id)).scalars())
    now = datetime.now(UTC)
    with target.read() as conn:
        c = connections.get_connection(conn, "cb")
    # the sequences moved past the copied ids
    [(new_id, _)] = register(target, c, [Registration("after-copy", campaign="c2")], now)
    assert new_id > max_id
    target.dispose()
    again = runner.invoke(main, ["migrate-data", "--from", source, "--to", empty_postgres])
    assert again.exit_code == 1 and "already holds data" in again.output
