"""API tokens: only a SHA-256 of each is stored, so a leaked database leaks no token."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import Connection, select, update

from tidings.storage.schema import api_tokens

__all__ = ["check_token", "create_token"]

_PREFIX = "tdg_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: Connection, name: str, now: datetime) -> str:
    """A new token, shown once; only its digest is kept."""
    token = _PREFIX + secrets.token_urlsafe(32)
    conn.execute(api_tokens.insert().values(name=name, token_sha256=_digest(token), created_at=now))
    return token


def check_token(conn: Connection, token: str) -> bool:
    """True when `token` is one we issued (digests compared by the index, not by us)."""
    digest = _digest(token)
    row = conn.execute(select(api_tokens.c.id).where(api_tokens.c.token_sha256 == digest)).first()
    return row is not None


def touch(conn: Connection, token: str, now: datetime) -> None:
    conn.execute(
        update(api_tokens)
        .where(api_tokens.c.token_sha256 == _digest(token))
        .values(last_used_at=now)
    )
