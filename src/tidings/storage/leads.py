"""Leads and their phone numbers, upserted on the business's external id.

Saving a lead makes its phones exactly the ones given and, in the same transaction, attaches
the calls waiting for any of its numbers (`storage.calls.attach_waiting`): adding or importing
a lead matches its calls at once, without waiting for the retry job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, select, update

from tidings.domain.leads import Lead
from tidings.storage import calls as call_store
from tidings.storage.db import Reader
from tidings.storage.schema import lead_phones, leads
from tidings.storage.writes import Writes

__all__ = ["SavedLead", "StoredLead", "get_lead", "save_leads"]


@dataclass(frozen=True)
class SavedLead:
    id: int
    created: bool
    matched_calls: int


@dataclass(frozen=True)
class StoredLead:
    id: int
    external_id: str
    name: str | None
    owner: str | None
    phones: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


_UPDATE_LEAD = (
    update(leads)
    .where(leads.c.id == bindparam("lead_id"))
    .values(name=bindparam("new_name"), owner=bindparam("new_owner"), updated_at=bindparam("at"))
)
_DROP_PHONE = delete(lead_phones).where(lead_phones.c.id == bindparam("phone_id"))


def _blank(key: tuple[Any, ...], now: datetime) -> dict[str, Any]:
    return {"external_id": key[0], "created_at": now, "updated_at": now}


def save_leads(
    reader: Reader, writes: Writes, given: Sequence[Lead], now: datetime
) -> list[SavedLead]:
    """Create or update each lead (the last of one external id wins), replace its phones,
    and attach the calls waiting for its numbers; one result per lead given."""
    latest = {item.external_id: item for item in given}
    rows = reader.rows_by_key(
        leads,
        ("external_id",),
        {(key,) for key in latest},
        blank=lambda key: _blank(key, now),
        lock=True,
    )
    missing = sorted(key for key in latest if (key,) not in rows)
    new_ids = dict(zip(missing, reader.reserve_ids(leads, len(missing)), strict=True))
    ids = {key: row.id for (key,), row in rows.items()} | new_ids
    # A row PostgreSQL just made from the blank, to lock it, is a new lead too.
    created = set(new_ids) | {
        key for (key,), row in rows.items() if row.created_at == now and row.updated_at == now
    }
    writes.insert(
        leads,
        [
            {
                "id": new_ids[key],
                "external_id": key,
                "name": latest[key].name,
                "owner": latest[key].owner,
                "created_at": now,
                "updated_at": now,
            }
            for key in missing
        ],
    )
    changed = [
        {"lead_id": row.id, "new_name": latest[key].name, "new_owner": latest[key].owner, "at": now}
        for (key,), row in rows.items()
        if key in created or (row.name, row.owner) != (latest[key].name, latest[key].owner)
    ]
    writes.execute(_UPDATE_LEAD, changed)
    _replace_phones(reader, writes, {ids[key]: latest[key].phones for key in latest})
    # Oldest lead first: when two leads of this batch share a number, its calls go to the
    # older one, as they would on arrival (domain.call_changes).
    matched: dict[int, int] = {}
    claimed: set[str] = set()
    keys_by_id = {lead_id: key for key, lead_id in ids.items()}
    for lead_id, key in sorted(keys_by_id.items()):
        numbers = [n for n in latest[key].phones if n not in claimed]
        claimed.update(numbers)
        matched[lead_id] = call_store.attach_waiting(reader, writes, lead_id, numbers, now, key)
    return [
        SavedLead(
            ids[item.external_id], item.external_id in created, matched[ids[item.external_id]]
        )
        for item in given
    ]


def _replace_phones(reader: Reader, writes: Writes, wanted: dict[int, tuple[str, ...]]) -> None:
    stored: dict[int, dict[str, int]] = {lead_id: {} for lead_id in wanted}
    ordered = sorted(wanted)
    for start in range(0, len(ordered), 500):
        query = select(lead_phones).where(lead_phones.c.lead_id.in_(ordered[start : start + 500]))
        for row in reader.rows(query):
            stored[row.lead_id][row.number] = row.id
    dropped = [
        {"phone_id": phone_id}
        for lead_id, numbers in stored.items()
        for number, phone_id in numbers.items()
        if number not in wanted[lead_id]
    ]
    writes.execute(_DROP_PHONE, dropped)
    added = [
        (lead_id, number)
        for lead_id, numbers in sorted(wanted.items())
        for number in numbers
        if number not in stored[lead_id]
    ]
    phone_ids = reader.reserve_ids(lead_phones, len(added))
    writes.insert(
        lead_phones,
        [
            {"id": phone_id, "lead_id": lead_id, "number": number}
            for phone_id, (lead_id, number) in zip(phone_ids, added, strict=True)
        ],
    )


def _stored(conn: Connection, row: Row[Any]) -> StoredLead:
    query = select(lead_phones.c.number).where(lead_phones.c.lead_id == row.id)
    phones = tuple(conn.execute(query.order_by(lead_phones.c.id)).scalars())
    return StoredLead(
        row.id, row.external_id, row.name, row.owner, phones, row.created_at, row.updated_at
    )


def get_lead(conn: Connection, external_id: str) -> StoredLead | None:
    row = conn.execute(select(leads).where(leads.c.external_id == external_id)).first()
    return _stored(conn, row) if row else None


def get_lead_by_id(conn: Connection, lead_id: int) -> StoredLead | None:
    """By the store's own id: for links that must not carry an external id (it may be a
    phone number)."""
    row = conn.execute(select(leads).where(leads.c.id == lead_id)).first()
    return _stored(conn, row) if row else None
