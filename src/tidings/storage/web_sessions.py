"""Dashboard browser sessions. The cookie holds a random token; the store keeps its SHA-256,
so a copy of the database opens no session. Each session has its own CSRF token."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select

from tidings.storage.schema import users, web_sessions

__all__ = ["NewSession", "SessionView", "end_session", "find_session", "purge_expired", "start"]


@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie: shown once, never stored
    csrf_token: str


@dataclass(frozen=True)
class SessionView:
    user_id: int
    email: str
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(conn: Connection, user_id: int, now: datetime, expires_at: datetime) -> NewSession:
    new = NewSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    conn.execute(
        web_sessions.insert().values(
            token_sha256=_digest(new.token),
            user_id=user_id,
            csrf_token=new.csrf_token,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return new


def find_session(conn: Connection, token: str, now: datetime) -> SessionView | None:
    """The live session whose cookie is `token`, or None (unknown or expired)."""
    query = (
        select(
            web_sessions.c.user_id,
            users.c.email,
            web_sessions.c.csrf_token,
            web_sessions.c.expires_at,
        )
        .join(users, users.c.id == web_sessions.c.user_id)
        .where(web_sessions.c.token_sha256 == _digest(token), web_sessions.c.expires_at > now)
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    return SessionView(row.user_id, row.email, row.csrf_token, row.expires_at)


def end_session(conn: Connection, token: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.token_sha256 == _digest(token)))


def purge_expired(conn: Connection, now: datetime) -> int:
    return int(conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now)).rowcount)
