"""Calls: the call kind's store, and the matching of waiting calls to leads.

`apply_records` loads the calls a batch of records names (locked where the store has row
locks), the leads of their client numbers, asks the pure rules (`domain.call_changes`) what
changes, and adds the writes to the unit of work: employees first (a call refers to its
employee), then the calls (docs/architecture.md, "Kinds of record").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Update, bindparam, func, select, update

from tidings.domain.call_changes import CallChange, CallItem, StoredVersion, match, plan_calls
from tidings.domain.calls import CallRecord
from tidings.domain.events import Incoming
from tidings.storage import call_events
from tidings.storage import employees as employee_store
from tidings.storage.db import Reader
from tidings.storage.limits import limits
from tidings.storage.schema import calls, lead_phones
from tidings.storage.writes import Writes

__all__ = [
    "Applied",
    "Retried",
    "apply_records",
    "attach_waiting",
    "leads_by_number",
    "retry_waiting",
]

# A row made from `_blank` (PostgreSQL creates it to lock it) carries no call yet.
_PLACEHOLDER = ""

_LIMITS = limits(calls)

# Chunk of an IN (...) list: far below every driver's parameter limit.
_CHUNK = 500


@dataclass
class Applied:
    """What applying call records did."""

    applied: int = 0
    duplicates: int = 0
    notes: dict[int, list[str]] = field(default_factory=dict)  # by receipt id


def _blank(key: tuple[Any, ...], now: datetime) -> dict[str, Any]:
    connection_id, call_id = key
    return {
        "connection_id": connection_id,
        "provider_call_id": call_id,
        "type": _PLACEHOLDER,
        "raw_type": "",
        "duration_seconds": 0,
        "match_attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def apply_records(
    reader: Reader, writes: Writes, items: Sequence[Incoming[CallRecord]], now: datetime
) -> Applied:
    """Upsert each call by its Callyzer id (the latest `modified_at` wins), match the waiting
    ones to leads, and refresh their employees."""
    found = [
        CallItem((item.connection.id, item.event.call_id), item.event, item.receipt_id)
        for item in items
    ]
    rows = reader.rows_by_key(
        calls,
        ("connection_id", "provider_call_id"),
        {item.key for item in found},
        blank=lambda key: _blank(key, now),
        lock=True,
    )
    stored = {
        key: StoredVersion(row.modified_at, row.lead_id, row.match_attempts)
        for key, row in rows.items()
        if row.type != _PLACEHOLDER
    }
    numbers = {i.record.client_number for i in found if i.record.client_number}
    plan = plan_calls(found, stored, leads_by_number(reader.conn, numbers), now)
    employee_ids = employee_store.ids_for(
        reader,
        writes,
        [
            (change.item.record.employee, change.item.key[0])
            for change in plan.changes
            if change.item.record.employee is not None
        ],
        now,
    )
    new = [c for c in plan.changes if c.item.key not in rows]
    ids = dict(zip((c.item.key for c in new), reader.reserve_ids(calls, len(new)), strict=True))
    inserts: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    announcing = call_events.wanted(reader, [c.item.key[0] for c in plan.changes])
    announced: list[call_events.CallEvent] = []
    for change in plan.changes:
        values = _values(change, employee_ids, now)
        row = rows.get(change.item.key)
        if row is None:
            connection_id, call_id = change.item.key
            written = {
                "id": ids[change.item.key],
                "connection_id": connection_id,
                "provider_call_id": call_id,
                "employee_id": None,
                "lead_id": None,
                "match_attempts": 0,
                "last_match_attempt_at": None,
                "created_at": now,
                **values,
            }
            inserts.append(written)
        else:
            columns = tuple(sorted(values))
            params = {f"new_{name}": value for name, value in values.items()}
            updates.setdefault(columns, []).append({"call_id": row.id, **params})
            written = {**row._mapping, **values}
        if announcing:
            announced.extend(_events(change, change.item.key in stored, written, now))
    writes.insert(calls, inserts)
    for columns, changed in updates.items():
        writes.execute(_update(columns), changed)
    if announced:
        call_events.announce(reader, writes, announced, now)
    return Applied(len(plan.changes), plan.same + plan.older, plan.notes)


def _events(
    change: CallChange, known: bool, written: Mapping[str, Any], now: datetime
) -> list[call_events.CallEvent]:
    """What subscribers hear of a change: the call created or updated, and matched when this
    change gave it its lead."""
    record = change.item.record
    at, code = record.modified_at or now, record.employee.code if record.employee else None
    kind = "call.updated" if known else "call.created"
    found = [call_events.CallEvent(kind, written, at, code)]
    if change.match is not None and change.match.lead_id is not None:
        found.append(call_events.CallEvent("call.matched", written, at, code))
    return found


def _values(change: CallChange, employee_ids: Mapping[str, int], now: datetime) -> dict[str, Any]:
    """The columns a change writes (an employee or a match only when it has one)."""
    record = change.item.record
    values: dict[str, Any] = {
        "client_name": record.client_name,
        "client_number": record.client_number,
        "type": record.type.value,
        "raw_type": record.raw_type,
        "duration_seconds": record.duration_seconds,
        "started_at": record.started_at,
        "note": record.note,
        "recording_url": record.recording_url,
        "crm_status": record.crm_status,
        "synced_at": record.synced_at,
        "modified_at": record.modified_at,
        "receipt_id": change.item.receipt_id,
        "updated_at": now,
    }
    for name, limit in _LIMITS.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            values[name] = value[:limit]
    if record.employee is not None:
        values["employee_id"] = employee_ids[record.employee.code]
    if change.match is not None:
        values["lead_id"] = change.match.lead_id
        values["match_attempts"] = change.match.attempts
        values["last_match_attempt_at"] = change.match.at
    return values


# Columns a call never changes once written: who it is and when it was first known.
_FIXED = frozenset({"id", "connection_id", "provider_call_id", "created_at"})


@lru_cache(maxsize=32)
def _update(columns: tuple[str, ...]) -> Update:
    if _FIXED & set(columns):
        raise ValueError(f"a call's {sorted(_FIXED & set(columns))} never change")
    return (
        update(calls)
        .where(calls.c.id == bindparam("call_id"))
        .values({name: bindparam(f"new_{name}") for name in columns})
    )


def leads_by_number(conn: Connection, numbers: Collection[str]) -> dict[str, list[int]]:
    """The leads that have each of these E.164 numbers (a number may belong to several)."""
    found: dict[str, list[int]] = {}
    ordered = sorted(set(numbers))
    for start in range(0, len(ordered), _CHUNK):
        query = (
            select(lead_phones.c.number, lead_phones.c.lead_id)
            .where(lead_phones.c.number.in_(ordered[start : start + _CHUNK]))
            .order_by(lead_phones.c.lead_id)
        )
        for row in conn.execute(query):
            found.setdefault(row.number, []).append(row.lead_id)
    return found


# A waiting call with this number goes to this lead: one more matching attempt.
_ATTACH = (
    update(calls)
    .where(calls.c.lead_id.is_(None), calls.c.client_number == bindparam("number"))
    .values(
        lead_id=bindparam("lead"),
        match_attempts=calls.c.match_attempts + 1,
        last_match_attempt_at=bindparam("at"),
    )
)


def attach_waiting(
    reader: Reader,
    writes: Writes,
    lead_id: int,
    numbers: Collection[str],
    now: datetime,
    external_id: str | None = None,
) -> int:
    """Give the calls waiting for any of these numbers to the lead (a new or changed lead
    matches its calls at once, whatever their attempts); how many there are."""
    if not numbers:
        return 0
    ordered = sorted(set(numbers))
    waiting = 0
    for start in range(0, len(ordered), _CHUNK):
        query = select(func.count()).where(
            calls.c.lead_id.is_(None), calls.c.client_number.in_(ordered[start : start + _CHUNK])
        )
        waiting += int(reader.conn.execute(query).scalar_one())
    if waiting:
        writes.execute(_ATTACH, [{"number": n, "lead": lead_id, "at": now} for n in ordered])
        _announce_matched(reader, writes, lead_id, external_id, ordered, now)
    return waiting


def _announce_matched(
    reader: Reader,
    writes: Writes,
    lead_id: int,
    external_id: str | None,
    numbers: Sequence[str],
    now: datetime,
) -> None:
    """`call.matched` for the waiting calls of these numbers that a lead just took."""
    waiting = (
        select(calls)
        .where(calls.c.lead_id.is_(None), calls.c.client_number.in_(numbers))
        .order_by(calls.c.id)
    )
    found = list(reader.conn.execute(waiting))
    if not found or not call_events.wanted(reader, [row.connection_id for row in found]):
        return
    matched = [
        call_events.CallEvent(
            "call.matched",
            {
                **row._mapping,
                "lead_id": lead_id,
                "match_attempts": row.match_attempts + 1,
                "last_match_attempt_at": now,
            },
            now,
            lead=external_id,
        )
        for row in found
    ]
    call_events.announce(reader, writes, matched, now)


@dataclass(frozen=True)
class Retried:
    attempted: int
    matched: int
    last_id: int | None  # where the next page starts; None when there is none


# One attempt of the retry job, made only if nothing else changed the call meanwhile.
_RETRY = (
    update(calls)
    .where(
        calls.c.id == bindparam("call_id"),
        calls.c.lead_id.is_(None),
        calls.c.match_attempts == bindparam("attempts"),
    )
    .values(
        lead_id=bindparam("lead"),
        match_attempts=calls.c.match_attempts + 1,
        last_match_attempt_at=bindparam("at"),
    )
)


def retry_waiting(
    reader: Reader,
    writes: Writes,
    max_attempts: int,
    after_id: int | None,
    now: datetime,
    page: int = 500,
) -> Retried:
    """One more matching attempt for a page of the waiting calls that have had fewer than
    `max_attempts` (the calls after `after_id`, in id order)."""
    query = (
        select(calls)
        .where(calls.c.lead_id.is_(None), calls.c.match_attempts < max_attempts)
        .order_by(calls.c.id)
        .limit(page)
    )
    if after_id is not None:
        query = query.where(calls.c.id > after_id)
    found = list(reader.conn.execute(query))
    numbers = {row.client_number for row in found if row.client_number}
    owners = leads_by_number(reader.conn, numbers)
    rows = []
    taken: list[call_events.CallEvent] = []
    for row in found:
        attempt = match(row.client_number, owners, row.match_attempts, now)
        if attempt.lead_id is not None:
            written = {
                **row._mapping,
                "lead_id": attempt.lead_id,
                "match_attempts": attempt.attempts,
            }
            taken.append(call_events.CallEvent("call.matched", written, now))
        rows.append(
            {"call_id": row.id, "attempts": row.match_attempts, "lead": attempt.lead_id, "at": now}
        )
    writes.execute(_RETRY, rows)
    if taken and call_events.wanted(reader, [e.call["connection_id"] for e in taken]):
        call_events.announce(reader, writes, taken, now)
    matched = len(taken)
    last = found[-1].id if len(found) == page else None
    return Retried(len(found), matched, last)
