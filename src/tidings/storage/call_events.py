"""Call events for subscribers (`call.created`, `call.updated`, `call.matched`), added to the
outbox in the unit of work that makes the change, like message events (decision 0010).

The calls store says what happened to which call; this module reads what subscribers are
told besides (the connection's name, the employee's code, the lead's external id) only when
some enabled subscription wants the event, so calls cost nothing more while none does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tidings.domain.outbound import call_data, webhook_id
from tidings.storage.db import Reader
from tidings.storage.outbox import event, outbox
from tidings.storage.schema import connections, employees, leads
from tidings.storage.writes import Writes

__all__ = ["CallEvent", "announce", "wanted"]


@dataclass(frozen=True)
class CallEvent:
    """`type` happened to the call whose columns (as written) are `call`."""

    type: str
    call: Mapping[str, Any]
    occurred_at: datetime
    # The employee's code and the lead's external id, when the same unit of work may be
    # creating them (then the store cannot tell them yet).
    employee: str | None = None
    lead: str | None = None


def wanted(reader: Reader, connection_ids: Sequence[int]) -> bool:
    """Whether an enabled subscription wants any call event of these connections."""
    box = outbox(reader)
    return bool(box) and any(
        box.wants(kind, cid, None)
        for cid in set(connection_ids)
        for kind in ("call.created", "call.updated", "call.matched")
    )


def announce(reader: Reader, writes: Writes, found: Sequence[CallEvent], now: datetime) -> None:
    """Add the events some subscription wants to the unit of work's outbox."""
    box = outbox(reader)
    chosen = [e for e in found if box.wants(e.type, e.call["connection_id"], None)]
    if not chosen:
        return
    names = _names(reader, connections.c.name, {e.call["connection_id"] for e in chosen})
    codes = _names(reader, employees.c.code, {e.call.get("employee_id") for e in chosen})
    external = _names(reader, leads.c.external_id, {e.call.get("lead_id") for e in chosen})
    rows = []
    for found_event in chosen:
        call = found_event.call
        key = webhook_id(
            found_event.type,
            call["connection_id"],
            call["provider_call_id"],
            call.get("modified_at"),
            call.get("lead_id") if found_event.type == "call.matched" else None,
        )
        data = call_data(
            call,
            names.get(call["connection_id"], ""),
            found_event.employee or codes.get(call.get("employee_id")),
            found_event.lead or external.get(call.get("lead_id")),
        )
        rows.append(
            event(
                key,
                found_event.type,
                {**data, "occurred_at": data["modified_at"] or data["started_at"]},
                found_event.occurred_at,
                now,
                connection_id=call["connection_id"],
            )
        )
    box.add(writes, rows)


def _names(reader: Reader, column: Any, ids: set[Any]) -> dict[Any, str]:
    """The value of `column` for each of these ids of its table (None ids left out)."""
    wanted_ids = sorted(i for i in ids if i is not None)
    if not wanted_ids:
        return {}
    table = column.table
    query = select(table.c.id, column).where(table.c.id.in_(wanted_ids))
    return {row[0]: row[1] for row in reader.conn.execute(query)}
