"""Dashboard users: creating them, changing passwords, and checking a login.

Passwords are hashed with Argon2 (argon2-cffi's defaults); a login for an unknown email still
pays for one verification, so timing does not tell which emails exist. Failed logins are
counted in the store per email and client address: past the limits within `FAILURE_WINDOW`,
further attempts are refused until the window has passed, whichever web node they reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tidings.domain.errors import Invalid, TidingsError
from tidings.storage import users, web_sessions
from tidings.storage.db import Database
from tidings.storage.users import StoredUser
from tidings.storage.web_sessions import NewSession

__all__ = [
    "FAILURE_WINDOW",
    "MAX_FAILURES",
    "SESSION_LIFETIME",
    "TooManyAttempts",
    "create",
    "log_in",
    "remove",
    "set_password",
]

MAX_FAILURES = 5  # for one email from one client
MAX_CLIENT_FAILURES = 50  # from one client over every email (guessing many accounts)
FAILURE_WINDOW = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(days=7)
MIN_PASSWORD = 8

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost one Argon2 verification.
_UNKNOWN = _hasher.hash("no such user: this hash only burns the same time")


class TooManyAttempts(TidingsError):
    """Too many failed logins for one email lately; says when to try again."""


@dataclass(frozen=True)
class LoggedIn:
    user: StoredUser
    session: NewSession


def _checked(email: str, password: str) -> tuple[str, str]:
    email = email.strip()
    if "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
        raise Invalid(f"{email!r} is not an email address")
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"the password needs at least {MIN_PASSWORD} characters")
    return email, password


def create(db: Database, email: str, password: str, now: datetime) -> StoredUser:
    email, password = _checked(email, password)
    with db.write() as conn:
        return users.add_user(conn, email, _hasher.hash(password), now)


def set_password(db: Database, email: str, password: str) -> StoredUser:
    """A new password; every open session of the user's ends."""
    email, password = _checked(email, password)
    with db.write() as conn:
        return users.set_password(conn, email, _hasher.hash(password))


def _matches(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def log_in(
    db: Database, email: str, password: str, client: str, now: datetime
) -> LoggedIn | None:
    """A new session when the password is right, None when not; TooManyAttempts once this
    email has failed `MAX_FAILURES` times from this client, or the client `MAX_CLIENT_FAILURES`
    times over any emails, within `FAILURE_WINDOW` (the password is then not even checked).

    Each attempt is written down before its password is checked, so guesses sent side by side
    count each other; a right password clears that email's failures from that client. Keyed by
    client, one person's mistyping elsewhere never locks another out. Slow (Argon2): call it
    off the event loop."""
    email = email.strip().lower()
    since = now - FAILURE_WINDOW
    with db.write() as conn:  # committed before counting, so side-by-side attempts see it
        users.note_failure(conn, email, client, now)
    with db.read() as conn:
        mine = users.failures_since(conn, since, client, email)
        everyone = users.failures_since(conn, since, client)
        found = users.find_user(conn, email)
    if mine > MAX_FAILURES or everyone > MAX_CLIENT_FAILURES:
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        raise TooManyAttempts(f"too many failed logins from here; try again in {minutes} minutes")
    good = _matches(found.password_hash if found else _UNKNOWN, password) and found is not None
    with db.write() as conn:
        users.forget_failures(conn, since)  # the window's past: nobody's count any more
        if found is None or not good:
            return None
        users.forget_failures(conn, now, email=email, client=client)
        users.touch_login(conn, found.id, now)
        web_sessions.purge_expired(conn, now)
        session = web_sessions.start(conn, found.id, now, now + SESSION_LIFETIME)
    return LoggedIn(found, session)


def remove(db: Database, email: str) -> StoredUser:
    """A user gone, with every session of theirs."""
    with db.write() as conn:
        return users.remove_user(conn, email)
