"""Dashboard users and their failed logins. Only password hashes are stored (made by the
caller); emails are kept lower-cased so one person is one user however they type it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, select, update

from tidings.domain.errors import Conflict, NotFound
from tidings.storage.schema import login_failures, users

__all__ = [
    "StoredUser",
    "add_user",
    "count_users",
    "failures_since",
    "find_user",
    "forget_failures",
    "list_users",
    "note_failure",
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


def _user(row: object) -> StoredUser:
    return StoredUser(
        row.id,  # type: ignore[attr-defined]
        row.email,  # type: ignore[attr-defined]
        row.password_hash,  # type: ignore[attr-defined]
        row.created_at,  # type: ignore[attr-defined]
        row.last_login_at,  # type: ignore[attr-defined]
    )


def find_user(conn: Connection, email: str) -> StoredUser | None:
    row = conn.execute(select(users).where(users.c.email == email.lower())).first()
    return _user(row) if row is not None else None


def add_user(conn: Connection, email: str, password_hash: str, now: datetime) -> StoredUser:
    """A new user; Conflict when the email has one already."""
    if find_user(conn, email) is not None:
        raise Conflict(
            f"a user {email.lower()!r} already exists (tidings user password EMAIL changes it)"
        )
    conn.execute(
        users.insert().values(email=email.lower(), password_hash=password_hash, created_at=now)
    )
    found = find_user(conn, email)
    assert found is not None
    return found


def set_password(conn: Connection, email: str, password_hash: str) -> StoredUser:
    """Replace a user's password hash; NotFound when there is no such user."""
    done = conn.execute(
        update(users).where(users.c.email == email.lower()).values(password_hash=password_hash)
    )
    if done.rowcount == 0:
        raise NotFound(f"no user {email.lower()!r} (tidings user list)")
    found = find_user(conn, email)
    assert found is not None
    return found


def list_users(conn: Connection) -> list[StoredUser]:
    return [_user(r) for r in conn.execute(select(users).order_by(users.c.email))]


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def touch_login(conn: Connection, user_id: int, now: datetime) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=now))


def note_failure(conn: Connection, email: str, now: datetime) -> None:
    conn.execute(login_failures.insert().values(email=email.lower()[:320], at=now))


def failures_since(conn: Connection, email: str, since: datetime) -> int:
    """Failed logins for `email` since `since` (by the (email, at) index)."""
    query = (
        select(func.count())
        .select_from(login_failures)
        .where(login_failures.c.email == email.lower()[:320], login_failures.c.at >= since)
    )
    return int(conn.execute(query).scalar_one())


def forget_failures(conn: Connection, email: str | None, before: datetime | None = None) -> None:
    """Drop the failures of `email` (after a good login), or all older than `before`."""
    query = delete(login_failures)
    if email is not None:
        query = query.where(login_failures.c.email == email.lower()[:320])
    if before is not None:
        query = query.where(login_failures.c.at < before)
    conn.execute(query)
