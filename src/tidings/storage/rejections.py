"""The rejection log: requests refused at intake (bad credentials, too large), never receipts."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from tidings.storage.schema import rejections

__all__ = [
    "SENSITIVE_HEADERS",
    "NewRejection",
    "list_rejections",
    "log_rejections",
    "masked_headers",
]

SENSITIVE_HEADERS = ("authorization", "cookie", "apikey", "x-api-key")


def masked_headers(headers: Mapping[str, str], extra_secret: str = "") -> dict[str, str]:
    """Headers safe to keep: credentials replaced, everything else as received."""
    hidden = {*SENSITIVE_HEADERS, extra_secret.lower()} - {""}
    return {k: ("***" if k.lower() in hidden else v) for k, v in headers.items()}


@dataclass(frozen=True)
class NewRejection:
    """A refused request, as the rejection log keeps it (headers already masked)."""

    received_at: datetime
    provider: str
    connection: str
    status_code: int
    reason: str
    remote_addr: str | None
    headers: Mapping[str, str]
    body: bytes


def log_rejections(conn: Connection, new: Sequence[NewRejection]) -> list[int]:
    """Insert rejections in one statement; ids come back in the order given."""
    if not new:
        return []
    rows = [
        {
            "received_at": r.received_at,
            "provider": r.provider,
            "connection": r.connection,
            "status_code": r.status_code,
            "reason": r.reason[:2000],
            "remote_addr": r.remote_addr,
            "headers": dict(r.headers),
            "body_sha256": hashlib.sha256(r.body).hexdigest(),
            "body_size": len(r.body),
        }
        for r in new
    ]
    statement = insert(rejections).returning(rejections.c.id, sort_by_parameter_order=True)
    return [row.id for row in conn.execute(statement, rows)]


def list_rejections(
    conn: Connection,
    after_id: int | None,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Row[Any]]:
    """Newest first; received in [since, until) when given."""
    query = select(rejections).order_by(rejections.c.id.desc()).limit(limit)
    if after_id is not None:
        query = query.where(rejections.c.id < after_id)
    if since is not None:
        query = query.where(rejections.c.received_at >= since)
    if until is not None:
        query = query.where(rejections.c.received_at < until)
    return list(conn.execute(query).all())
