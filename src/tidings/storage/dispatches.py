"""Campaigns that tidings sends: their dispatch (what, through which connection, how fast,
where it stands) and their contacts.

A contact is claimed for sending in the same transaction that records its send (`claim`),
so a crash at any point leaves it either waiting (never attempted: sent later) or with a
recorded send whose outcome the answer or the recovery of stale sends settles; it is never
attempted twice (decision 0012). The rate limiter's clock (`next_slot_at`) moves in that
transaction too, so every runner and a restart keep one pace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, func, insert, or_, select, text, update

from tidings.domain.errors import Conflict, NotFound
from tidings.domain.message_changes import Registration
from tidings.domain.sending import Action, Contact, DispatchState, act
from tidings.storage.db import Database, id_in
from tidings.storage.limits import storable
from tidings.storage.schema import (
    UTCDateTime,
    campaign_contacts,
    campaign_dispatches,
    campaigns,
    connections,
)
from tidings.storage.sends import insert_queued_many

__all__ = [
    "Claim",
    "DispatchView",
    "add_contacts",
    "apply_action",
    "claim",
    "create",
    "due",
    "finish_if_done",
    "for_campaigns",
    "get",
    "has_work",
    "list_contacts",
    "not_sent",
    "one_turn_at_a_time",
    "pause",
    "running",
    "start_scheduled",
    "state_of",
]

# How far behind its clock a campaign may be and still send the slots it missed (at twice its
# rate: `domain.sending.next_step_at`), so a stall of the process or the store does not cost
# the campaign its pace; beyond it (tidings was stopped, say) the clock restarts from now.
# Starting and resuming restart it too. Kept short: a minute around a stall sends at most
# this much more than the rate.
CATCH_UP = timedelta(seconds=10)

_OPEN = (DispatchState.SCHEDULED.value, DispatchState.RUNNING.value)


@dataclass(frozen=True)
class DispatchView:
    campaign_id: int
    key: str
    name: str | None
    connection: str
    connection_id: int
    text: str | None
    template: Mapping[str, Any] | None
    rate_per_minute: int | None
    start_at: datetime | None
    state: DispatchState
    paused_reason: str | None
    next_slot_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    contacts: Mapping[str, int]  # by status: pending, sending, sent, failed, unknown
    # Why contacts wait to be tried again (the provider unreachable, rate limited): the last
    # such error, on a running campaign's own view (`get`), not on lists.
    waiting_reason: str | None = None


def _query() -> Any:
    return (
        select(campaign_dispatches, campaigns.c.key, connections.c.name.label("connection"))
        .join(campaigns, campaigns.c.id == campaign_dispatches.c.campaign_id)
        .join(connections, connections.c.id == campaign_dispatches.c.connection_id)
    )


def _counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    query = (
        select(campaign_contacts.c.status, func.count())
        .where(campaign_contacts.c.campaign_id == campaign_id)
        .group_by(campaign_contacts.c.status)
    )
    counts = _zero()
    counts.update({status: int(n) for status, n in conn.execute(query)})
    return counts


def for_campaigns(conn: Connection, campaign_ids: Sequence[int]) -> dict[int, DispatchView]:
    """The dispatches of those of these campaigns that tidings sends (a page of a list): two
    queries whatever the page's size."""
    if not campaign_ids:
        return {}
    rows = conn.execute(_query().where(campaign_dispatches.c.campaign_id.in_(campaign_ids)))
    found = list(rows)
    if not found:
        return {}
    counts: dict[int, dict[str, int]] = {row.campaign_id: _zero() for row in found}
    query = (
        select(campaign_contacts.c.campaign_id, campaign_contacts.c.status, func.count())
        .where(campaign_contacts.c.campaign_id.in_(list(counts)))
        .group_by(campaign_contacts.c.campaign_id, campaign_contacts.c.status)
    )
    for campaign_id, status, n in conn.execute(query):
        counts[campaign_id][status] = int(n)
    return {row.campaign_id: _view(conn, row, counts[row.campaign_id]) for row in found}


def _zero() -> dict[str, int]:
    return dict.fromkeys(("pending", "sending", "sent", "failed", "unknown"), 0)


def _view(conn: Connection, row: Row[Any], counts: dict[str, int] | None = None) -> DispatchView:
    return DispatchView(
        campaign_id=row.campaign_id,
        key=row.key,
        name=row.name,
        connection=row.connection,
        connection_id=row.connection_id,
        text=row.text,
        template=row.template,
        rate_per_minute=row.rate_per_minute,
        start_at=row.start_at,
        state=DispatchState(row.state),
        paused_reason=row.paused_reason,
        next_slot_at=row.next_slot_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        contacts=counts if counts is not None else _counts(conn, row.campaign_id),
    )


def get(conn: Connection, key: str) -> DispatchView | None:
    """The dispatch of campaign `key`; None when tidings does not send that campaign."""
    row = conn.execute(_query().where(campaigns.c.key == key)).first()
    if row is None:
        return None
    view = _view(conn, row)
    if view.state is DispatchState.RUNNING and view.contacts.get("pending"):
        view = replace(view, waiting_reason=_waiting_reason(conn, view.campaign_id))
    return view


# Pending contacts looked at for a waiting reason: deferred ones are claimed first (lowest
# ids), so the first few hundred hold it, and a million pending cost no more than these.
_WAITING_LOOK = 500


def _waiting_reason(conn: Connection, campaign_id: int) -> str | None:
    """The error of the contact most recently put back to wait (its send was deferred)."""
    first = (
        select(campaign_contacts.c.error, campaign_contacts.c.updated_at)
        .where(
            campaign_contacts.c.campaign_id == campaign_id,
            campaign_contacts.c.status == "pending",
        )
        .order_by(campaign_contacts.c.id)
        .limit(_WAITING_LOOK)
        .subquery()
    )
    found = conn.execute(
        select(first.c.error)
        .where(first.c.error.is_not(None))
        .order_by(first.c.updated_at.desc())
        .limit(1)
    ).scalar()
    return str(found) if found else None


def _lock(conn: Connection, campaign_id: int) -> None:
    """On PostgreSQL, hold the campaign's dispatch row until the transaction ends, so that two
    changes of its state (an action, contacts added, done) never interleave."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(campaign_dispatches.c.campaign_id)
            .where(campaign_dispatches.c.campaign_id == campaign_id)
            .with_for_update()
        )


def _require(conn: Connection, key: str) -> DispatchView:
    found = get(conn, key)
    if found is None:
        raise not_sent(conn, key)
    return found


def not_sent(conn: Connection, key: str) -> NotFound:
    """The error for a campaign tidings does not send: none by that key, or one that only
    tracks messages sent elsewhere (registered, or named in webhooks)."""
    if _taken(conn, key):
        return NotFound(
            f"campaign {key!r} only tracks messages sent elsewhere; tidings sends campaigns "
            "made with `campaign create` (POST /v1/campaigns), under a key of their own"
        )
    return NotFound(f"tidings does not send a campaign {key!r} (create it first)")


def _taken(conn: Connection, key: str) -> bool:
    return conn.execute(select(campaigns.c.id).where(campaigns.c.key == key)).first() is not None


def create(
    conn: Connection,
    *,
    key: str,
    name: str | None,
    connection_id: int,
    text: str | None,
    template: Mapping[str, Any] | None,
    rate_per_minute: int | None,
    start_at: datetime | None,
    now: datetime,
) -> DispatchView:
    """A new campaign to send, in `draft`. Conflict when the key is taken: by a campaign
    tidings sends, or by one whose messages were registered (its counters would mix)."""
    if _taken(conn, key):
        if get(conn, key) is None:
            raise Conflict(
                f"campaign {key!r} already tracks messages sent elsewhere (its counters would "
                "mix); a campaign tidings sends needs a key of its own"
            )
        raise Conflict(f"a campaign {key!r} already exists; choose another key")
    campaign_id = conn.execute(
        insert(campaigns).values(key=key, created_at=now).returning(campaigns.c.id)
    ).scalar_one()
    conn.execute(
        insert(campaign_dispatches).values(
            campaign_id=campaign_id,
            name=name,
            connection_id=connection_id,
            text=text,
            template=dict(template) if template is not None else None,
            rate_per_minute=rate_per_minute,
            start_at=start_at,
            state=DispatchState.DRAFT.value,
            created_at=now,
            updated_at=now,
        )
    )
    return _require(conn, key)


def add_contacts(
    conn: Connection, key: str, contacts: Sequence[Contact], now: datetime
) -> list[str | None]:
    """Add contacts to a campaign not yet finished: per contact, None when added, or why not
    (a contact_ref already in the campaign, or twice in this list)."""
    view = _require(conn, key)
    _lock(conn, view.campaign_id)
    view = _require(conn, key)
    if view.state in (DispatchState.DONE, DispatchState.CANCELLED):
        raise Conflict(f"campaign {key!r} is {view.state.value}: no contacts can be added")
    refs = sorted({c.contact_ref for c in contacts})
    taken: set[str] = set()
    for start in range(0, len(refs), 500):
        query = select(campaign_contacts.c.contact_ref).where(
            campaign_contacts.c.campaign_id == view.campaign_id,
            campaign_contacts.c.contact_ref.in_(refs[start : start + 500]),
        )
        taken.update(conn.execute(query).scalars())
    results: list[str | None] = []
    rows: list[dict[str, Any]] = []
    for contact in contacts:
        if contact.contact_ref in taken:
            results.append(f"contact_ref {contact.contact_ref!r} is already in this campaign")
            continue
        taken.add(contact.contact_ref)
        results.append(None)
        rows.append(
            {
                "campaign_id": view.campaign_id,
                "contact_ref": contact.contact_ref,
                "recipient": contact.recipient,
                "name": contact.name,
                "variables": dict(contact.variables),
                "status": "pending",
                "attempts": 0,
                "updated_at": now,
            }
        )
    for start in range(0, len(rows), 1000):
        conn.execute(insert(campaign_contacts), rows[start : start + 1000])
    return results


def apply_action(conn: Connection, key: str, action: Action, now: datetime) -> DispatchView:
    """Start, pause, resume or cancel; Invalid when the campaign's state does not allow it.
    Resuming clears the pause's reason; the clock restarts from now."""
    _lock(conn, _require(conn, key).campaign_id)
    view = _require(conn, key)
    state = act(view.state, action, now, view.start_at)
    values: dict[str, Any] = {"state": state.value, "updated_at": now}
    if action in (Action.RESUME, Action.START):
        values["paused_reason"] = None
        values["next_slot_at"] = None
    if state is DispatchState.CANCELLED:
        values["finished_at"] = now
    conn.execute(
        update(campaign_dispatches)
        .where(campaign_dispatches.c.campaign_id == view.campaign_id)
        .values(values)
    )
    return _require(conn, key)


def pause(conn: Connection, campaign_id: int, reason: str, now: datetime) -> None:
    """Paused by tidings (consecutive errors, a connection that cannot send), with why (a
    provider's text in it made storable)."""
    conn.execute(
        update(campaign_dispatches)
        .where(
            campaign_dispatches.c.campaign_id == campaign_id,
            campaign_dispatches.c.state.in_(_OPEN),
        )
        .values(state=DispatchState.PAUSED.value, paused_reason=storable(reason), updated_at=now)
    )


# Built once: an idle tidings runs this alone ten times a second (each dispatch turn), and
# building a select costs more than SQLite's answer.
_DUE = select(campaign_dispatches.c.campaign_id, campaign_dispatches.c.state).where(
    or_(
        campaign_dispatches.c.state == DispatchState.RUNNING.value,
        and_(
            campaign_dispatches.c.state == DispatchState.SCHEDULED.value,
            campaign_dispatches.c.start_at <= bindparam("now", type_=UTCDateTime()),
        ),
    )
)


def due(conn: Connection, now: datetime) -> tuple[list[int], bool]:
    """(scheduled campaigns whose start time has come, whether any campaign is running), in
    one small read: most turns find neither and must not take the write lock for nothing."""
    rows = conn.execute(_DUE, {"now": now}).all()
    starting = [row.campaign_id for row in rows if row.state == DispatchState.SCHEDULED.value]
    return starting, len(starting) < len(rows)


def start_scheduled(conn: Connection, campaign_ids: Sequence[int], now: datetime) -> None:
    conn.execute(
        update(campaign_dispatches)
        .where(
            campaign_dispatches.c.campaign_id.in_(campaign_ids),
            campaign_dispatches.c.state == DispatchState.SCHEDULED.value,
        )
        .values(state=DispatchState.RUNNING.value, updated_at=now)
    )


def running(conn: Connection) -> list[DispatchView]:
    """Campaigns to dispatch now (their contacts are not counted: a turn needs no counts)."""
    query = _query().where(campaign_dispatches.c.state == DispatchState.RUNNING.value)
    return [_view(conn, row, {}) for row in conn.execute(query.order_by(campaigns.c.id))]


def state_of(conn: Connection, campaign_id: int) -> DispatchState | None:
    query = select(campaign_dispatches.c.state).where(
        campaign_dispatches.c.campaign_id == campaign_id
    )
    found = conn.execute(query).scalar()
    return DispatchState(found) if found is not None else None


@dataclass(frozen=True)
class Claim:
    """A contact to send now, with its recorded send and the time its slot starts."""

    contact_id: int
    contact_ref: str
    recipient: str
    name: str | None
    variables: Mapping[str, str]
    send_id: int
    idempotency_key: str
    slot: datetime


# Any number that no other lock of tidings uses: "tdgs" in ASCII.
_TURN_LOCK = 0x74646773


@contextmanager
def one_turn_at_a_time(db: Database) -> Iterator[bool]:
    """Whether this process may run a dispatch turn now: on PostgreSQL a session advisory
    lock that one turn holds across the cluster (Celery beat sends a turn several times a
    second; the others return at once); SQLite is served by one process, always True."""
    if db.is_sqlite:
        yield True
        return
    with db.engine.connect() as conn:
        taken = bool(
            conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _TURN_LOCK}).scalar()
        )
        conn.commit()
        try:
            yield taken
        finally:
            if taken:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _TURN_LOCK})
                conn.commit()


def claim(
    conn: Connection,
    campaign_id: int,
    interval: timedelta,
    now: datetime,
    registration: Registration,
    limit: int = 1,
) -> tuple[list[Claim], datetime | None]:
    """Claim the next waiting contacts of a running campaign whose slots have come (at most
    `limit`), record their sends and move the campaign's clock past them: (the claims, when
    the next slot starts). Without a claim, the second value says when the next slot starts,
    or None when no contact waits (or the campaign is not running). `registration` is what
    every message of the campaign is registered with (campaign, channel); each contact adds
    its own recipient and reference."""
    query = select(campaign_dispatches).where(campaign_dispatches.c.campaign_id == campaign_id)
    if conn.dialect.name == "postgresql":  # one claim at a time moves the campaign's clock
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None or row.state != DispatchState.RUNNING.value:
        return [], None
    slot = row.next_slot_at
    if slot is None or slot < now - CATCH_UP:
        slot = now
    if slot > now:
        return [], slot
    due = limit if not interval else min(limit, int((now - slot) / interval) + 1)
    waiting = (
        select(campaign_contacts)
        .where(
            campaign_contacts.c.campaign_id == campaign_id,
            campaign_contacts.c.status == "pending",
        )
        .order_by(campaign_contacts.c.id)
        .limit(due)
    )
    if conn.dialect.name == "postgresql":  # another worker's claim skips these rows
        waiting = waiting.with_for_update(skip_locked=True)
    contacts = conn.execute(waiting).all()
    if not contacts:
        return [], None
    conn.execute(
        update(campaign_contacts)
        .where(id_in(campaign_contacts.c.id, [c.id for c in contacts]))  # in id order
        .values(
            status="sending",
            attempts=campaign_contacts.c.attempts + 1,
            claimed_at=now,
            updated_at=now,
        )
    )
    keys = [f"campaign:{campaign_id}:contact:{c.id}:{c.attempts + 1}" for c in contacts]
    regs = [
        Registration(
            provider_message_id="",
            campaign=registration.campaign,
            recipient=contact.recipient,
            contact_ref=contact.contact_ref,
            metadata=registration.metadata,
            channel=registration.channel,
        )
        for contact in contacts
    ]
    send_ids = insert_queued_many(
        conn, row.connection_id, list(zip(keys, regs, [c.id for c in contacts], strict=True)), now
    )
    claimed = [
        Claim(
            contact_id=contact.id,
            contact_ref=contact.contact_ref,
            recipient=contact.recipient,
            name=contact.name,
            variables=contact.variables or {},
            send_id=send_id,
            idempotency_key=key,
            slot=slot + interval * index,
        )
        for index, (contact, send_id, key) in enumerate(zip(contacts, send_ids, keys, strict=True))
    ]
    following = slot + interval * max(1, len(claimed))
    conn.execute(
        update(campaign_dispatches)
        .where(campaign_dispatches.c.campaign_id == campaign_id)
        .values(next_slot_at=following)
    )
    return claimed, following


def delay(conn: Connection, campaign_id: int, until: datetime) -> None:
    """Nothing is sent for this campaign before `until` (a rate limit's Retry-After)."""
    conn.execute(
        update(campaign_dispatches)
        .where(campaign_dispatches.c.campaign_id == campaign_id)
        .values(next_slot_at=until)
    )


def has_work(conn: Connection, campaign_id: int) -> bool:
    """Whether some contact of this campaign waits or is being sent."""
    busy = conn.execute(
        select(campaign_contacts.c.id)
        .where(
            campaign_contacts.c.campaign_id == campaign_id,
            campaign_contacts.c.status.in_(("pending", "sending")),
        )
        .limit(1)
    ).first()
    return busy is not None


def finish_if_done(conn: Connection, campaign_id: int, now: datetime) -> bool:
    """A running campaign with no contact waiting or being sent is done."""
    _lock(conn, campaign_id)
    if has_work(conn, campaign_id):
        return False
    done = conn.execute(
        update(campaign_dispatches)
        .where(
            campaign_dispatches.c.campaign_id == campaign_id,
            campaign_dispatches.c.state == DispatchState.RUNNING.value,
        )
        .values(state=DispatchState.DONE.value, finished_at=now, updated_at=now)
    )
    return bool(done.rowcount)


def list_contacts(
    conn: Connection, key: str, status: str | None, after_id: int | None, limit: int
) -> list[Row[Any]]:
    view = _require(conn, key)
    query = (
        select(campaign_contacts)
        .where(campaign_contacts.c.campaign_id == view.campaign_id)
        .order_by(campaign_contacts.c.id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(campaign_contacts.c.status == status)
    if after_id is not None:
        query = query.where(campaign_contacts.c.id > after_id)
    return list(conn.execute(query))
