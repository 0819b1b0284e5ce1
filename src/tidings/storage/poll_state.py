"""What the Callyzer verification poll reads and moves in the calls store: the employees to ask
about (and how far each was fetched), the stored version of each fetched call, and each
employee's last sync once their pages are in the inbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, or_, select, update

from tidings.domain.poll_window import PolledEmployee
from tidings.storage.schema import calls, employees

__all__ = ["advance_last_sync", "employees_to_poll", "stored_versions"]

_CHUNK = 500  # ids per IN (...) list, far below every driver's limit


def employees_to_poll(conn: Connection, connection_id: int) -> list[tuple[int, PolledEmployee]]:
    """The employees of this connection, and those added through the API before any call
    named their connection (they may be anyone's), with their ids."""
    rows = conn.execute(
        select(
            employees.c.id,
            employees.c.code,
            employees.c.number,
            employees.c.active,
            employees.c.last_synced_at,
        )
        .where(or_(employees.c.connection_id == connection_id, employees.c.connection_id.is_(None)))
        .order_by(employees.c.id)
    ).all()
    return [
        (row.id, PolledEmployee(row.code, row.number, bool(row.active), row.last_synced_at))
        for row in rows
    ]


def stored_versions(
    conn: Connection, connection_id: int, call_ids: Sequence[str]
) -> dict[str, datetime | None]:
    """The stored `modified_at` of each of these calls that is stored (walking the unique
    (connection_id, provider_call_id) index)."""
    found: dict[str, datetime | None] = {}
    ordered = sorted(set(call_ids))
    for start in range(0, len(ordered), _CHUNK):
        rows = conn.execute(
            select(calls.c.provider_call_id, calls.c.modified_at).where(
                calls.c.connection_id == connection_id,
                calls.c.provider_call_id.in_(ordered[start : start + _CHUNK]),
            )
        ).all()
        found.update({row.provider_call_id: row.modified_at for row in rows})
    return found


def advance_last_sync(conn: Connection, employee_ids: Sequence[int], at: datetime) -> None:
    """Each employee's calls are fetched up to `at`: their last sync moves there (never back)."""
    ids = sorted(set(employee_ids))
    for start in range(0, len(ids), _CHUNK):
        conn.execute(
            update(employees)
            .where(employees.c.id.in_(ids[start : start + _CHUNK]))
            .where(employees.c.last_synced_at.is_(None) | (employees.c.last_synced_at < at))
            .values(last_synced_at=at)
        )
