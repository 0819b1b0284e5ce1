"""Connections: one per provider account that sends webhooks, with its secret and options."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Update, bindparam, select, update

from tidings.domain.errors import Conflict, NotFound
from tidings.domain.events import Incoming, SessionUpdate
from tidings.domain.outbound import session_data, session_event_type, webhook_id
from tidings.domain.sessions import session_fields
from tidings.storage.db import Reader
from tidings.storage.outbox import event as outbox_event
from tidings.storage.outbox import outbox
from tidings.storage.schema import connections
from tidings.storage.writes import Writes

__all__ = [
    "StoredConnection",
    "active_connections",
    "add_connection",
    "apply_sessions",
    "credentials_fingerprint",
    "find_connection",
    "get_connection",
    "list_connections",
    "mark_credentials_rejected",
    "new_secret",
    "remove_connection",
    "touch_last_event",
    "update_connection",
]

# Only a connection in use takes webhooks and owns its name; removed ones stay for their history.
_ACTIVE = connections.c.removed_at.is_(None)


@dataclass(frozen=True)
class StoredConnection:
    id: int
    name: str
    provider: str
    secret: str
    options: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    last_event_at: datetime | None = None
    session_state: str | None = None
    session_qrcode: str | None = None
    session_updated_at: datetime | None = None
    removed_at: datetime | None = None
    credentials_rejected_at: datetime | None = None
    credentials_rejected_key: str | None = None
    credentials_rejected_error: str | None = None

    @property
    def credentials_rejected(self) -> bool:
        """The provider refused this connection's API credentials as they are now: polling
        waits until api_key (or api_url) changes."""
        return self.credentials_rejected_key is not None and (
            self.credentials_rejected_key == credentials_fingerprint(self.options)
        )


def credentials_fingerprint(options: Mapping[str, str]) -> str:
    """Which API credentials these are, without keeping them (a hash of api_url and api_key)."""
    text = f"{options.get('api_url', '').rstrip('/')}\n{options.get('api_key', '')}"
    return hashlib.sha256(text.encode()).hexdigest()


def new_secret() -> str:
    """A random secret for a connection whose provider signs nothing (URL-safe)."""
    return secrets.token_urlsafe(24)


def _from_row(row: Row[Any]) -> StoredConnection:
    return StoredConnection(
        id=row.id,
        name=row.name,
        provider=row.provider,
        secret=row.secret,
        options=dict(row.options or {}),
        created_at=row.created_at,
        last_event_at=row.last_event_at,
        session_state=row.session_state,
        session_qrcode=row.session_qrcode,
        session_updated_at=row.session_updated_at,
        removed_at=row.removed_at,
        credentials_rejected_at=row.credentials_rejected_at,
        credentials_rejected_key=row.credentials_rejected_key,
        credentials_rejected_error=row.credentials_rejected_error,
    )


def add_connection(
    conn: Connection,
    provider: str,
    name: str,
    secret: str,
    options: Mapping[str, str],
    now: datetime,
) -> StoredConnection:
    if conn.execute(select(connections.c.id).where(connections.c.name == name, _ACTIVE)).first():
        raise Conflict(f"a connection named {name!r} already exists")
    result = conn.execute(
        connections.insert().values(
            name=name, provider=provider, secret=secret, options=dict(options), created_at=now
        )
    )
    (new_id,) = result.inserted_primary_key or (None,)
    assert new_id is not None
    return StoredConnection(new_id, name, provider, secret, dict(options), now)


def find_connection(conn: Connection, provider: str, name: str) -> StoredConnection | None:
    row = conn.execute(
        select(connections).where(
            connections.c.name == name, connections.c.provider == provider, _ACTIVE
        )
    ).first()
    return _from_row(row) if row else None


def get_connection(conn: Connection, name: str) -> StoredConnection:
    """The connection in use called `name`; NotFound when there is none (or it was removed)."""
    row = conn.execute(select(connections).where(connections.c.name == name, _ACTIVE)).first()
    if row is None:
        raise NotFound(f"no connection named {name!r}")
    return _from_row(row)


_EVERY = select(connections)


def by_id(reader: Reader) -> dict[int, StoredConnection]:
    """Every connection, removed ones included, by id: what a worker's batch reads once, on
    SQLite through the driver's cursor (`Reader.plain_rows`), a statement built once."""
    return {row.id: _from_row(row) for row in reader.plain_rows(_EVERY)}


def list_connections(conn: Connection) -> list[StoredConnection]:
    """Every connection, removed ones included: receipts and messages still name them."""
    rows = conn.execute(select(connections).order_by(connections.c.name)).all()
    return [_from_row(row) for row in rows]


def active_connections(conn: Connection) -> list[StoredConnection]:
    """The connections in use, by name: what listings show."""
    rows = conn.execute(select(connections).where(_ACTIVE).order_by(connections.c.name)).all()
    return [_from_row(row) for row in rows]


def update_connection(
    conn: Connection, current: StoredConnection, secret: str, options: Mapping[str, str]
) -> StoredConnection:
    """Store `secret` and `options` (all of them) for the connection `current`. New API
    credentials lift a refusal of the old ones."""
    values: dict[str, Any] = {"secret": secret, "options": dict(options)}
    if current.credentials_rejected_key not in (None, credentials_fingerprint(options)):
        values.update(
            credentials_rejected_at=None,
            credentials_rejected_key=None,
            credentials_rejected_error=None,
        )
    conn.execute(update(connections).where(connections.c.id == current.id).values(values))
    return replace(current, **values)


def remove_connection(conn: Connection, name: str, now: datetime) -> StoredConnection:
    """Stop taking webhooks for `name`; its receipts and messages stay, and the name is free."""
    current = get_connection(conn, name)
    conn.execute(update(connections).where(connections.c.id == current.id).values(removed_at=now))
    return replace(current, removed_at=now)


def mark_credentials_rejected(
    conn: Connection, current: StoredConnection, error: str, now: datetime
) -> StoredConnection:
    """Remember that the provider refused `current`'s API credentials (as they are now)."""
    key = credentials_fingerprint(current.options)
    conn.execute(
        update(connections)
        .where(connections.c.id == current.id)
        .values(
            credentials_rejected_at=now,
            credentials_rejected_key=key,
            credentials_rejected_error=error[:2000],
        )
    )
    return replace(
        current,
        credentials_rejected_at=now,
        credentials_rejected_key=key,
        credentials_rejected_error=error[:2000],
    )


_TOUCH_LAST_EVENT = (
    update(connections)
    .where(connections.c.id == bindparam("connection_id"))
    .where(connections.c.last_event_at.is_(None) | (connections.c.last_event_at < bindparam("at")))
    .values(last_event_at=bindparam("at"))
)


def touch_last_event(writes: Writes, last: Mapping[int, datetime]) -> None:
    """Move each connection's last event time forward (never back)."""
    rows = [{"connection_id": cid, "at": at} for cid, at in sorted(last.items())]
    writes.execute(_TOUCH_LAST_EVENT, rows)


def apply_sessions(
    reader: Reader, writes: Writes, items: Sequence[Incoming[SessionUpdate]], now: datetime
) -> None:
    """The session kind's store: each update, in order, where it is not older than what is
    stored (`domain.sessions`)."""
    box = outbox(reader)
    latest: dict[int, datetime | None] = {}
    announced: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        at: datetime = item.event.occurred_at or item.received_at
        fields = session_fields(item.event, at)
        row = {"connection_id": item.connection.id, **{f"new_{k}": v for k, v in fields.items()}}
        writes.execute(_update_session(tuple(fields)), [row])
        # Announced only where it is applied: not older than what the connection holds.
        cid = item.connection.id
        stored = latest.get(cid, getattr(item.connection, "session_updated_at", None))
        if stored is not None and at < stored:
            continue
        latest[cid] = at
        event_type = session_event_type(item.event.state)
        if box and event_type and box.wants(event_type, cid, None):
            data = session_data(item.connection, item.event, at)
            key = webhook_id("session", cid, item.receipt_id, index, item.event.state, at)
            announced.append(outbox_event(key, event_type, data, at, now, connection_id=cid))
    box.add(writes, announced)


@lru_cache(maxsize=4)
def _update_session(columns: tuple[str, ...]) -> Update:
    at: Any = bindparam("new_session_updated_at")
    return (
        update(connections)
        .where(connections.c.id == bindparam("connection_id"))
        .where(
            connections.c.session_updated_at.is_(None) | (connections.c.session_updated_at <= at)
        )
        .values({name: bindparam(f"new_{name}") for name in columns})
    )
