"""Deliveries: one per outbound event and subscription, with every attempt made for it.

The sender's work in four steps, each a short transaction: fan new outbox events out into
deliveries (`fan_out`), take the deliveries that are due (`claim`, which leases them until
`next_attempt_at` so no other sender takes them meanwhile, and a sender that died leaves them
to be taken again once the lease ends), send them (`outbound.sender`), and record what came of
each attempt (`record`).

On SQLite these transactions touch only rows no plan of the apply path reads (deliveries,
attempts, the fan-out mark, a subscription's failing streak), so they do not move the state
version (`Database.write(appends_only=True)`): a busy sender never makes the worker plan a
batch twice. Disabling a subscription changes what the outbox wants, so that write does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Update, and_, bindparam, delete, func, select, update

from tidings.domain.outbound import EventFilter, RetryPolicy
from tidings.storage.db import Database, insert_ignoring_duplicates
from tidings.storage.schema import deliveries, delivery_attempts, outbound_events, subscriptions
from tidings.storage.subscriptions import StoredSubscription, from_row

__all__ = [
    "Attempt",
    "Claim",
    "DeliveryFilter",
    "DeliveryStatus",
    "Recorded",
    "attempts_of",
    "claim",
    "count_by_status",
    "count_with",
    "fan_out",
    "get_delivery",
    "list_deliveries",
    "purge_finished",
    "record",
    "release_leases",
    "replay",
    "replay_range",
]


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # never tried
    SENDING = "sending"  # taken by a sender, until next_attempt_at
    FAILED = "failed"  # tried, will be tried again at next_attempt_at
    DELIVERED = "delivered"
    DEAD = "dead"  # every retry failed; replay sends it again


_DUE = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.FAILED)
_ANY_WAITING = (
    select(outbound_events.c.id).where(outbound_events.c.fanned_out_at.is_(None)).limit(1)
)
_RESPONSE_LIMIT = 1024


def _locking(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def fan_out(db: Database, now: datetime, limit: int) -> int:
    """Turn up to `limit` new outbox events into deliveries, one per enabled subscription
    that wants each; the number of events handled."""
    with db.read() as conn:  # most calls find nothing: no write lock for them
        if conn.execute(_ANY_WAITING).first() is None:
            return 0
    with db.write(appends_only=True) as conn:
        query = (
            select(
                outbound_events.c.id,
                outbound_events.c.type,
                outbound_events.c.connection_id,
                outbound_events.c.campaign,
            )
            .where(outbound_events.c.fanned_out_at.is_(None))
            .order_by(outbound_events.c.id)
            .limit(limit)
        )
        if _locking(conn):
            query = query.with_for_update(skip_locked=True)
        events = conn.execute(query).all()
        if not events:
            return 0
        subs = [
            (row.id, EventFilter(tuple(row.event_types or ()), row.connection_id, row.campaign))
            for row in conn.execute(
                select(
                    subscriptions.c.id,
                    subscriptions.c.event_types,
                    subscriptions.c.connection_id,
                    subscriptions.c.campaign,
                ).where(subscriptions.c.enabled.is_(True))
            )
        ]
        rows = [
            _new_delivery(event.id, sub_id, now)
            for event in events
            for sub_id, wanted in subs
            if wanted.matches(event.type, event.connection_id, event.campaign)
        ]
        if rows:
            conn.execute(insert_ignoring_duplicates(conn, deliveries), rows)
        ids = [event.id for event in events]
        conn.execute(
            update(outbound_events).where(outbound_events.c.id.in_(ids)).values(fanned_out_at=now)
        )
        return len(events)


def _new_delivery(event_id: int, subscription_id: int, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "subscription_id": subscription_id,
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "last_attempt_at": None,
        "last_status_code": None,
        "last_error": None,
        "delivered_at": None,
        "created_at": now,
    }


@dataclass(frozen=True)
class Claim:
    """A delivery taken for one attempt, with all the sender needs to make it."""

    delivery_id: int
    attempts: int  # made before this one
    webhook_id: str
    event_type: str
    created_at: datetime
    data: Mapping[str, Any]
    subscription: StoredSubscription


def claim(
    db: Database,
    now: datetime,
    limit: int,
    lease_seconds: float,
    exclude: Sequence[int] = (),
) -> list[Claim]:
    """Take up to `limit` due deliveries of enabled subscriptions (but those of `exclude`),
    oldest due first, and lease them: no other sender takes them before `now + lease_seconds`."""
    due = [
        deliveries.c.status.in_([s.value for s in _DUE]),
        deliveries.c.next_attempt_at <= now,
        subscriptions.c.enabled.is_(True),
    ]
    if exclude:
        due.append(deliveries.c.subscription_id.not_in(sorted(exclude)))
    with db.read() as conn:  # most calls find nothing: no write lock for them
        probe = (
            select(deliveries.c.id)
            .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
            .where(*due)
            .limit(1)
        )
        if conn.execute(probe).first() is None:
            return []
    with db.write(appends_only=True) as conn:
        query = (
            select(
                deliveries.c.id,
                deliveries.c.attempts,
                deliveries.c.subscription_id,
                outbound_events.c.webhook_id,
                outbound_events.c.type,
                outbound_events.c.created_at,
                outbound_events.c.data,
            )
            .join(outbound_events, outbound_events.c.id == deliveries.c.event_id)
            .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
            .where(*due)
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(limit)
        )
        if _locking(conn):
            query = query.with_for_update(of=deliveries, skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        sub_ids = sorted({row.subscription_id for row in rows})
        subs = {
            row.id: from_row(row)
            for row in conn.execute(select(subscriptions).where(subscriptions.c.id.in_(sub_ids)))
        }
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_([row.id for row in rows]))
            .values(
                status=DeliveryStatus.SENDING.value,
                next_attempt_at=now + timedelta(seconds=lease_seconds),
            )
        )
    return [
        Claim(
            row.id,
            row.attempts,
            row.webhook_id,
            row.type,
            row.created_at,
            row.data,
            subs[row.subscription_id],
        )
        for row in rows
    ]


def release_leases(db: Database, now: datetime) -> int:
    """Make every leased delivery due now: for a sender that starts alone (embedded), what
    it finds leased was taken by its predecessor, which died before recording the attempt."""
    with db.write(appends_only=True) as conn:
        result = conn.execute(
            update(deliveries)
            .where(deliveries.c.status == DeliveryStatus.SENDING.value)
            .values(next_attempt_at=now)
        )
        return int(result.rowcount)


@dataclass(frozen=True)
class Attempt:
    """What came of one attempt: an HTTP status (2xx delivered) or an error without one."""

    claim: Claim
    attempted_at: datetime
    latency_ms: int
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class Recorded:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    disabled: list[tuple[StoredSubscription, str]] = field(default_factory=list)


def record(
    db: Database,
    attempts: Sequence[Attempt],
    now: datetime,
    policy: RetryPolicy,
    disable_after: timedelta,
    draw: Any,
) -> Recorded:
    """Record each attempt and what follows from it: delivered; failed and due again after
    the policy's next delay; or dead. An endpoint that answered 410 Gone, or whose attempts
    all failed for `disable_after`, is disabled. `draw()` gives the jitter's random numbers."""
    outcome = Recorded()
    attempt_rows: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    succeeded: set[int] = set()
    failing: dict[int, StoredSubscription] = {}
    gone: set[int] = set()
    for attempt in attempts:
        c = attempt.claim
        body = attempt.response_body
        attempt_rows.append(
            {
                "delivery_id": c.delivery_id,
                "attempted_at": attempt.attempted_at,
                "status_code": attempt.status_code,
                "latency_ms": attempt.latency_ms,
                "error": attempt.error,
                "response_body": body[:_RESPONSE_LIMIT] if body is not None else None,
            }
        )
        tries = c.attempts + 1
        change: dict[str, Any] = {
            "delivery_id": c.delivery_id,
            "attempts": tries,
            "last_attempt_at": attempt.attempted_at,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
        }
        if attempt.delivered:
            outcome.delivered += 1
            succeeded.add(c.subscription.id)
            change.update(
                status=DeliveryStatus.DELIVERED.value, next_attempt_at=None, delivered_at=now
            )
        else:
            failing[c.subscription.id] = c.subscription
            if attempt.status_code == 410:
                gone.add(c.subscription.id)
            delay = policy.next_delay(tries, draw())
            if delay is None:
                outcome.dead += 1
                change.update(status=DeliveryStatus.DEAD.value, next_attempt_at=None)
            else:
                outcome.failed += 1
                change.update(
                    status=DeliveryStatus.FAILED.value,
                    next_attempt_at=now + timedelta(seconds=delay),
                )
            change["delivered_at"] = None
        changes.append(change)
    for sub_id, sub in failing.items():
        if sub_id in gone:
            outcome.disabled.append((sub, "the endpoint answered 410 Gone"))
        elif sub_id not in succeeded:
            since = sub.failing_since or now
            if now - since >= disable_after:
                days = disable_after.total_seconds() / 86400
                reason = f"every attempt failed for {days:g} days (since {since.isoformat()})"
                outcome.disabled.append((sub, reason))
    with db.write(appends_only=not outcome.disabled) as conn:
        # A subscription removed while its delivery was in flight took the delivery with it:
        # that attempt has nothing left to record, and must not fail the others'.
        existing = _existing(conn, [row["delivery_id"] for row in attempt_rows])
        if len(existing) < len(attempt_rows):
            attempt_rows = [row for row in attempt_rows if row["delivery_id"] in existing]
            changes = [change for change in changes if change["delivery_id"] in existing]
        if attempt_rows:
            conn.execute(delivery_attempts.insert(), attempt_rows)
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for change in changes:
            by_columns.setdefault(tuple(sorted(change)), []).append(change)
        for columns, rows in by_columns.items():
            conn.execute(_update_delivery(columns), rows)
        if succeeded:
            conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id.in_(sorted(succeeded)))
                .where(subscriptions.c.failing_since.is_not(None))
                .values(failing_since=None)
            )
        still_failing = sorted(set(failing) - succeeded)
        if still_failing:
            conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id.in_(still_failing))
                .where(subscriptions.c.failing_since.is_(None))
                .values(failing_since=now)
            )
        # The claims' view of a subscription may be stale: another batch's recording may have
        # disabled it, a success cleared its failing time, a person enabled it again. So the
        # store decides, and only what its update changed is reported: one announcement.
        disabled = outcome.disabled
        outcome.disabled = []
        for sub, reason in disabled:
            still = [subscriptions.c.id == sub.id, subscriptions.c.enabled.is_(True)]
            if sub.id not in gone:
                still.append(subscriptions.c.failing_since <= now - disable_after)
            result = conn.execute(
                update(subscriptions)
                .where(*still)
                .values(enabled=False, disabled_reason=reason, updated_at=now)
            )
            if result.rowcount:
                outcome.disabled.append((sub, reason))
    return outcome


def _existing(conn: Connection, ids: list[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(
            conn.execute(select(deliveries.c.id).where(deliveries.c.id.in_(chunk))).scalars()
        )
    return found


@lru_cache(maxsize=8)
def _update_delivery(columns: tuple[str, ...]) -> Update:
    """What an attempt changes of a delivery, if it is still the sender's (a replay while it
    was being sent wins)."""
    names = [name for name in columns if name != "delivery_id"]
    return (
        update(deliveries)
        .where(deliveries.c.id == bindparam("delivery_id"))
        .where(deliveries.c.status == DeliveryStatus.SENDING.value)
        .values({name: bindparam(name) for name in names})
    )


def replay(db: Database, ids: Sequence[int], now: datetime) -> int:
    """Send these deliveries again now (same webhook ids), with a fresh retry schedule; how
    many exist."""
    if not ids:
        return 0
    with db.write(appends_only=True) as conn:
        result = conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(sorted(set(ids))))
            .values(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now)
        )
        return int(result.rowcount)


def replay_range(
    db: Database,
    subscription_id: int,
    since: datetime,
    until: datetime,
    now: datetime,
    status: DeliveryStatus | None = None,
) -> int:
    """Send again every event recorded in [since, until) that the subscription wants, with
    the same webhook ids: its deliveries start over, and an event it has none for (recorded
    before it subscribed, say) gets one. With `status`, only its deliveries in that status."""
    with db.write(appends_only=True) as conn:
        sub = from_row(
            conn.execute(select(subscriptions).where(subscriptions.c.id == subscription_id)).one()
        )
        in_range = and_(outbound_events.c.created_at >= since, outbound_events.c.created_at < until)
        existing = (
            select(deliveries.c.id)
            .join(outbound_events, outbound_events.c.id == deliveries.c.event_id)
            .where(deliveries.c.subscription_id == subscription_id, in_range)
        )
        if status is not None:
            existing = existing.where(deliveries.c.status == status.value)
        ids = list(conn.execute(existing).scalars())
        for start in range(0, len(ids), 500):
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids[start : start + 500]))
                .values(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now)
            )
        if status is not None:
            return len(ids)
        has = select(deliveries.c.id).where(
            deliveries.c.event_id == outbound_events.c.id,
            deliveries.c.subscription_id == subscription_id,
        )
        missing = conn.execute(
            select(
                outbound_events.c.id,
                outbound_events.c.type,
                outbound_events.c.connection_id,
                outbound_events.c.campaign,
            ).where(in_range, ~has.exists())
        ).all()
        rows = [
            _new_delivery(e.id, subscription_id, now)
            for e in missing
            if sub.filter.matches(e.type, e.connection_id, e.campaign)
        ]
        if rows:
            conn.execute(insert_ignoring_duplicates(conn, deliveries), rows)
        return len(ids) + len(rows)


@dataclass(frozen=True)
class DeliveryFilter:
    subscription: int | None = None
    status: DeliveryStatus | None = None
    event_type: str | None = None
    since: datetime | None = None


_LISTED = select(
    deliveries,
    outbound_events.c.webhook_id,
    outbound_events.c.type,
).join(outbound_events, outbound_events.c.id == deliveries.c.event_id)


def list_deliveries(
    conn: Connection, where: DeliveryFilter, before_id: int | None, limit: int
) -> list[Row[Any]]:
    """Deliveries, newest first."""
    query = _LISTED
    if where.subscription is not None:
        query = query.where(deliveries.c.subscription_id == where.subscription)
    if where.status is not None:
        query = query.where(deliveries.c.status == where.status.value)
    if where.event_type is not None:
        query = query.where(outbound_events.c.type == where.event_type)
    if where.since is not None:
        query = query.where(deliveries.c.created_at >= where.since)
    if before_id is not None:
        query = query.where(deliveries.c.id < before_id)
    return list(conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit)).all())


def get_delivery(conn: Connection, delivery_id: int) -> Row[Any] | None:
    return conn.execute(_LISTED.where(deliveries.c.id == delivery_id)).first()


def attempts_of(conn: Connection, ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    """Each delivery's attempts, oldest first."""
    found: dict[int, list[Row[Any]]] = {}
    if not ids:
        return found
    rows = conn.execute(
        select(delivery_attempts)
        .where(delivery_attempts.c.delivery_id.in_(list(ids)))
        .order_by(delivery_attempts.c.id)
    )
    for row in rows:
        found.setdefault(row.delivery_id, []).append(row)
    return found


def count_by_status(conn: Connection) -> dict[str, int]:
    counts = dict.fromkeys((s.value for s in DeliveryStatus), 0)
    query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
    for status, count in conn.execute(query):
        counts[status] = int(count)
    return counts


def count_with(conn: Connection, statuses: Iterable[DeliveryStatus]) -> dict[str, int]:
    """How many deliveries have each of `statuses`, each counted on the (status,
    next_attempt_at) index: it costs what they hold (leave `delivered` out)."""
    return {
        s.value: int(
            conn.execute(
                select(func.count()).select_from(deliveries).where(deliveries.c.status == s.value)
            ).scalar_one()
        )
        for s in statuses
    }


def purge_finished(db: Database, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` events recorded before `cutoff` whose deliveries are all finished
    (delivered or dead), with those deliveries and their attempts; how many events. The newest
    delivery of all stays, with its event, until a newer one exists: SQLite numbers a new row
    after the largest id left, and a delivery's id, once shown (API, `tidings deliveries
    replay`), must not come to name another delivery."""
    unfinished = select(deliveries.c.id).where(
        deliveries.c.event_id == outbound_events.c.id,
        deliveries.c.status.in_([s.value for s in _DUE]),
    )
    query = (
        select(outbound_events.c.id)
        .where(
            outbound_events.c.created_at < cutoff,
            outbound_events.c.fanned_out_at.is_not(None),
            ~unfinished.exists(),
        )
        .order_by(outbound_events.c.created_at)
        .limit(limit)
    )
    with db.read() as conn:
        ids = list(conn.execute(query).scalars())
    if not ids:
        return 0
    with db.write(appends_only=True) as conn:  # rows no plan reads (see the module's docstring)
        not_newest = deliveries.c.id < select(func.max(deliveries.c.id)).scalar_subquery()
        found = select(deliveries.c.id).where(deliveries.c.event_id.in_(ids), not_newest)
        conn.execute(delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(found)))
        conn.execute(
            delete(deliveries).where(
                deliveries.c.event_id.in_(ids),
                deliveries.c.status.not_in([s.value for s in _DUE]),
                not_newest,
            )
        )
        left = select(deliveries.c.event_id).where(deliveries.c.event_id.in_(ids))
        result = conn.execute(
            delete(outbound_events).where(
                outbound_events.c.id.in_(ids), outbound_events.c.id.not_in(left)
            )
        )
        return int(result.rowcount)
