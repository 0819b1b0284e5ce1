"""The rejection log: requests refused at intake (bad credentials, too large), never receipts."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from tidings.storage.schema import rejections

__all__ = ["SENSITIVE_HEADERS", "list_rejections", "log_rejection", "masked_headers"]

SENSITIVE_HEADERS = ("authorization", "cookie", "apikey", "x-api-key")


def masked_headers(headers: Mapping[str, str], extra_secret: str = "") -> dict[str, str]:
    """Headers safe to keep: credentials replaced, everything else as received."""
    hidden = {*SENSITIVE_HEADERS, extra_secret.lower()} - {""}
    return {k: ("***" if k.lower() in hidden else v) for k, v in headers.items()}


def log_rejection(
    conn: Connection,
    *,
    now: datetime,
    provider: str,
    connection: str,
    status_code: int,
    reason: str,
    remote_addr: str | None,
    headers: Mapping[str, str],
    body: bytes,
) -> None:
    conn.execute(
        rejections.insert().values(
            received_at=now,
            provider=provider,
            connection=connection,
            status_code=status_code,
            reason=reason,
            remote_addr=remote_addr,
            headers=dict(headers),
            body_sha256=hashlib.sha256(body).hexdigest(),
            body_size=len(body),
        )
    )


def list_rejections(conn: Connection, after_id: int | None, limit: int) -> list[Row[Any]]:
    query = select(rejections).order_by(rejections.c.id.desc()).limit(limit)
    if after_id is not None:
        query = query.where(rejections.c.id < after_id)
    return list(conn.execute(query).all())
