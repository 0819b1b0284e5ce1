"""Dashboard users: creating them, changing passwords, and checking a login.

Passwords are hashed with Argon2 (argon2-cffi's defaults); a login for an unknown email still
pays for one verification, so timing does not tell which emails exist. Failed logins are
counted in the store per email and client address: past the limits within `FAILURE_WINDOW`,
further attempts are refused until the window has passed, whichever web node they reach.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection

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
MAX_EMAIL_FAILURES = 100  # for one email from anywhere (guessing from many addresses)
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


def _refuse_when_over(conn: Connection, email: str, client: str, since: datetime) -> None:
    mine = users.failures_since(conn, since, client=client, email=email)
    address = users.failures_since(conn, since, client=client)
    anywhere = users.failures_since(conn, since, email=email)
    if mine > MAX_FAILURES or address > MAX_CLIENT_FAILURES or anywhere > MAX_EMAIL_FAILURES:
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        raise TooManyAttempts(f"too many failed logins; try again in {minutes} minutes")


def client_key(address: str) -> str:
    """Whom an attempt is counted against: the address, or its /64 for IPv6 (one machine
    usually holds a whole /64). An IPv4 address a proxy passes on as IPv6 (`::ffff:1.2.3.4`)
    is that IPv4 address: as a /64 it would be every IPv4 client at once."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def log_in(db: Database, email: str, password: str, client: str, now: datetime) -> LoggedIn | None:
    """A new session when the password is right, None when not; TooManyAttempts past the
    limits within `FAILURE_WINDOW`: `MAX_FAILURES` for this email from this client,
    `MAX_CLIENT_FAILURES` from this client over any emails, `MAX_EMAIL_FAILURES` for this email
    from anywhere (the password is then not even checked, and nothing is written).

    Each attempt is committed before it is counted, so guesses sent side by side count each
    other; a right password clears that email's failures from that client. Slow (Argon2):
    call it off the event loop."""
    email = email.strip().lower()
    client = client_key(client)
    since = now - FAILURE_WINDOW
    with db.read() as conn:
        _refuse_when_over(conn, email, client, since)  # a blocked attempt writes nothing
    with db.write() as conn:
        users.purge_failures(conn, since)
        users.note_failure(conn, email, client, now)
    with db.read() as conn:
        _refuse_when_over(conn, email, client, since)
        found = users.find_user(conn, email)
    good = _matches(found.password_hash if found else _UNKNOWN, password) and found is not None
    if found is None or not good:
        return None
    with db.write() as conn:
        now_found = users.find_user(conn, email)
        if now_found is None or now_found.password_hash != found.password_hash:
            return None  # removed, or given a new password, while this one was checked
        users.clear_failures(conn, email, client)
        users.touch_login(conn, found.id, now)
        web_sessions.purge_expired(conn, now)
        session = web_sessions.start(conn, found.id, now, now + SESSION_LIFETIME)
    return LoggedIn(found, session)


def remove(db: Database, email: str) -> StoredUser:
    """A user gone, with every session of theirs."""
    with db.write() as conn:
        return users.remove_user(conn, email)
