"""Employees (the advisers whose phones Callyzer tracks): created from call data or through the
API, with whether they are active and how far the verification poll has fetched their calls.

An employee is known by their code (Callyzer's `emp_code`). Call data fills in and refreshes
name, number, country code and tags; only the API changes `active`; only the poll moves
`last_synced_at`, and never backwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Update, bindparam, select, update

from tidings.domain.calls import Employee
from tidings.storage.db import Reader
from tidings.storage.schema import employees
from tidings.storage.writes import Writes

__all__ = [
    "StoredEmployee",
    "active_employees",
    "advance_last_sync",
    "codes_by_id",
    "get_employee",
    "ids_for",
    "list_employees",
    "save_employee",
]


@dataclass(frozen=True)
class StoredEmployee:
    id: int
    code: str
    name: str | None
    number: str | None
    country_code: str | None
    tags: tuple[str, ...]
    active: bool
    last_synced_at: datetime | None
    connection_id: int | None
    created_at: datetime
    updated_at: datetime


def _from_row(row: Row[Any]) -> StoredEmployee:
    return StoredEmployee(
        id=row.id,
        code=row.code,
        name=row.name,
        number=row.number,
        country_code=row.country_code,
        tags=tuple(row.tags or ()),
        active=bool(row.active),
        last_synced_at=row.last_synced_at,
        connection_id=row.connection_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _blank(code: str, now: datetime) -> dict[str, Any]:
    return {"code": code, "tags": [], "active": True, "created_at": now, "updated_at": now}


def ids_for(
    reader: Reader,
    writes: Writes,
    found: Sequence[tuple[Employee, int | None]],
    now: datetime,
) -> dict[str, int]:
    """The id of each employee named in call data (with the connection it came through),
    creating the new ones and refreshing what the data says differently; by code. When one
    batch names an employee twice, the later data wins."""
    latest: dict[str, tuple[Employee, int | None]] = {}
    for employee, connection_id in found:
        latest[employee.code] = (employee, connection_id)
    if not latest:
        return {}
    rows = reader.rows_by_key(
        employees,
        ("code",),
        {(code,) for code in latest},
        blank=lambda k: _blank(k[0], now),
        lock=True,
    )
    missing = sorted(code for code in latest if (code,) not in rows)
    new_ids = dict(zip(missing, reader.reserve_ids(employees, len(missing)), strict=True))
    inserts: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for code, (employee, connection_id) in sorted(latest.items()):
        values = _values(employee)
        row = rows.get((code,))
        if row is None:
            inserts.append(
                {
                    "id": new_ids[code],
                    "code": code,
                    **values,
                    "active": True,
                    "last_synced_at": None,
                    "connection_id": connection_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            continue
        changed = {n: v for n, v in values.items() if v is not None and not _same(row, n, v)}
        if row.connection_id is None and connection_id is not None:
            changed["connection_id"] = connection_id
        if changed:
            changed["updated_at"] = now
            columns = tuple(sorted(changed))
            params = {f"new_{n}": v for n, v in changed.items()}
            updates.setdefault(columns, []).append({"employee_id": row.id, **params})
    writes.insert(employees, inserts)
    for columns, rows_changed in updates.items():
        writes.execute(_update(columns), rows_changed)
    ids = {code: row.id for (code,), row in rows.items()}
    ids.update(new_ids)
    return ids


def _values(employee: Employee) -> dict[str, Any]:
    """What call data says of an employee (None: it says nothing, keep what is stored)."""
    return {
        "name": employee.name,
        "number": employee.number,
        "country_code": employee.country_code,
        "tags": list(employee.tags) if employee.tags else None,
    }


def _same(row: Row[Any], name: str, value: Any) -> bool:
    stored = getattr(row, name)
    if isinstance(value, list):
        return json.dumps(stored) == json.dumps(value)
    return bool(stored == value)


@lru_cache(maxsize=32)
def _update(columns: tuple[str, ...]) -> Update:
    return (
        update(employees)
        .where(employees.c.id == bindparam("employee_id"))
        .values({name: bindparam(f"new_{name}") for name in columns})
    )


def save_employee(
    reader: Reader,
    writes: Writes,
    employee: Employee,
    active: bool,
    now: datetime,
) -> tuple[int, bool]:
    """Create or change an employee as the API gives it (all fields, `active` included):
    (id, created?)."""
    rows = reader.rows_by_key(
        employees, ("code",), {(employee.code,)}, blank=lambda k: _blank(k[0], now), lock=True
    )
    values = {**_values(employee), "tags": list(employee.tags), "active": active}
    row = rows.get((employee.code,))
    if row is None:
        [new_id] = reader.reserve_ids(employees, 1)
        writes.insert(
            employees,
            [
                {
                    "id": new_id,
                    "code": employee.code,
                    **values,
                    "last_synced_at": None,
                    "connection_id": None,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        return new_id, True
    # A row just made from the blank (PostgreSQL) has never been updated: it is new too.
    created = row.created_at == now and row.updated_at == now
    changed = {n: v for n, v in values.items() if not _same(row, n, v)}
    if changed:
        changed["updated_at"] = now
        params = {f"new_{n}": v for n, v in changed.items()}
        writes.execute(_update(tuple(sorted(changed))), [{"employee_id": row.id, **params}])
    return row.id, created


_ADVANCE = (
    update(employees)
    .where(employees.c.id == bindparam("employee_id"))
    .where(
        employees.c.last_synced_at.is_(None) | (employees.c.last_synced_at < bindparam("synced"))
    )
    .values(last_synced_at=bindparam("synced"))
)


def advance_last_sync(writes: Writes, employee_ids: Iterable[int], at: datetime) -> None:
    """Record that the poll has every call of these employees up to `at` (never moves a last
    sync backwards). Part of a unit of work: `db.apply(lambda reader, writes:
    advance_last_sync(writes, ids, at))`."""
    writes.execute(_ADVANCE, [{"employee_id": i, "synced": at} for i in sorted(set(employee_ids))])


def active_employees(conn: Connection, connection_id: int | None = None) -> list[StoredEmployee]:
    """The active employees, by code; with `connection_id`, those of that connection and
    those not yet tied to any (created through the API before their first call)."""
    query = select(employees).where(employees.c.active.is_(True)).order_by(employees.c.code)
    if connection_id is not None:
        query = query.where(
            (employees.c.connection_id == connection_id) | employees.c.connection_id.is_(None)
        )
    return [_from_row(row) for row in conn.execute(query)]


def get_employee(conn: Connection, code: str) -> StoredEmployee | None:
    row = conn.execute(select(employees).where(employees.c.code == code)).first()
    return _from_row(row) if row else None


def list_employees(
    conn: Connection, after_id: int | None, limit: int, active: bool | None = None
) -> list[StoredEmployee]:
    """A page of employees in the order they became known (by id)."""
    query = select(employees).order_by(employees.c.id).limit(limit)
    if after_id is not None:
        query = query.where(employees.c.id > after_id)
    if active is not None:
        query = query.where(employees.c.active.is_(active))
    return [_from_row(row) for row in conn.execute(query)]


def codes_by_id(conn: Connection, ids: Iterable[int]) -> Mapping[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = select(employees.c.id, employees.c.code).where(employees.c.id.in_(wanted))
    return {row.id: row.code for row in conn.execute(query)}
