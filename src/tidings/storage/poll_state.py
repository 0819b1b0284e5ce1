"""What the Callyzer verification poll reads of the calls store beyond what `employees` and
`calls` offer: whether a connection knows any employee yet, and the stored version of each
fetched call (to judge it inserted, updated or skipped before it is enqueued)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, or_, select

from tidings.storage.schema import calls, employees

__all__ = ["knows_employees", "stored_versions"]

_CHUNK = 500  # ids per IN (...) list, far below every driver's limit


def knows_employees(conn: Connection, connection_id: int) -> bool:
    """Whether any employee, active or not, is this connection's or tied to none."""
    found = conn.execute(
        select(employees.c.id)
        .where(or_(employees.c.connection_id == connection_id, employees.c.connection_id.is_(None)))
        .limit(1)
    ).first()
    return found is not None


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
