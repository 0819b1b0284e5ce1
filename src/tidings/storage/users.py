"""Dashboard users and their failed logins. Only password hashes are stored (made by the
caller); emails are kept lower-cased so one person is one user however they type it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from tidings.domain.errors import Conflict, NotFound
from tidings.storage.schema import login_failures, users, web_sessions

__all__ = [
    "StoredUser",
    "add_user",
    "clear_failures",
    "count_users",
    "failures_since",
    "find_user",
    "list_users",
    "note_failure",
    "purge_failures",
    "remove_user",
    "set_password",
    "touch_login",
]


@dataclass(frozen=True)
class StoredUser:
    id: int
    email: str
    password_hash: str
    created_at: datetime
    last_login_at: datetime | None


def _user(row: Any) -> StoredUser:
    return StoredUser(row.id, row.email, row.password_hash, row.created_at, row.last_login_at)


def find_user(conn: Connection, email: str) -> StoredUser | None:
    row = conn.execute(select(users).where(users.c.email == email.lower())).first()
    return _user(row) if row is not None else None


def _require(conn: Connection, email: str) -> StoredUser:
    found = find_user(conn, email)
    if found is None:
        raise NotFound(f"no user {email.lower()!r} (tidings user list)")
    return found


def add_user(conn: Connection, email: str, password_hash: str, now: datetime) -> StoredUser:
    """A new user; Conflict when the email has one already."""
    if find_user(conn, email) is not None:
        raise Conflict(
            f"a user {email.lower()!r} already exists (tidings user password EMAIL changes it)"
        )
    conn.execute(
        users.insert().values(email=email.lower(), password_hash=password_hash, created_at=now)
    )
    return _require(conn, email)


def set_password(conn: Connection, email: str, password_hash: str) -> StoredUser:
    """Replace a user's password hash and end every session of theirs (a stolen cookie stops
    working with the old password); NotFound when there is no such user."""
    found = _require(conn, email)
    conn.execute(update(users).where(users.c.id == found.id).values(password_hash=password_hash))
    conn.execute(delete(web_sessions).where(web_sessions.c.user_id == found.id))
    return found


def remove_user(conn: Connection, email: str) -> StoredUser:
    """Remove a user and their sessions; NotFound when there is no such user."""
    found = _require(conn, email)
    conn.execute(delete(web_sessions).where(web_sessions.c.user_id == found.id))
    conn.execute(delete(users).where(users.c.id == found.id))
    return found


def list_users(conn: Connection) -> list[StoredUser]:
    return [_user(r) for r in conn.execute(select(users).order_by(users.c.email))]


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def touch_login(conn: Connection, user_id: int, now: datetime) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=now))


def note_failure(conn: Connection, email: str, client: str, now: datetime) -> None:
    conn.execute(
        login_failures.insert().values(email=email.lower()[:320], client=client[:64], at=now)
    )


def failures_since(
    conn: Connection, since: datetime, client: str | None = None, email: str | None = None
) -> int:
    """Failed (or not yet judged) logins since `since`, from `client` and/or for `email`
    (each combination read by an index)."""
    query = select(func.count()).select_from(login_failures).where(login_failures.c.at >= since)
    if client is not None:
        query = query.where(login_failures.c.client == client[:64])
    if email is not None:
        query = query.where(login_failures.c.email == email.lower()[:320])
    return int(conn.execute(query).scalar_one())


def purge_failures(conn: Connection, before: datetime) -> None:
    """Drop failures older than `before` (the window's past: nobody's count any more)."""
    conn.execute(delete(login_failures).where(login_failures.c.at < before))


def clear_failures(conn: Connection, email: str, client: str) -> None:
    """A good login clears its own slate: this email's failures from this client."""
    conn.execute(
        delete(login_failures).where(
            login_failures.c.email == email.lower()[:320], login_failures.c.client == client[:64]
        )
    )
