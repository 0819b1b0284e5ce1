"""API tokens: only a SHA-256 of each is stored, so a leaked database leaks no token.

A token is known by its name (listed, revoked by it), so two tokens never share one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from tidings.domain.errors import Conflict, NotFound
from tidings.storage.schema import api_tokens

__all__ = [
    "TokenInfo",
    "check_token",
    "create_token",
    "list_tokens",
    "revoke_token",
    "touch",
    "unused_name",
]

_PREFIX = "tdg_"


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the token itself."""

    name: str
    created_at: datetime
    last_used_at: datetime | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _exists(conn: Connection, name: str) -> bool:
    found = conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == name)).first()
    return found is not None


def unused_name(conn: Connection, base: str) -> str:
    """`base`, or `base-2`, `base-3`… whichever no token has yet (for tokens created unnamed)."""
    name, n = base, 1
    while _exists(conn, name):
        n += 1
        name = f"{base}-{n}"
    return name


def create_token(conn: Connection, name: str, now: datetime) -> str:
    """A new token, shown once; only its digest is kept. Conflict when the name is taken."""
    if _exists(conn, name):
        raise Conflict(f"a token named {name!r} already exists (tidings token list)")
    token = _PREFIX + secrets.token_urlsafe(32)
    conn.execute(api_tokens.insert().values(name=name, token_sha256=_digest(token), created_at=now))
    return token


def list_tokens(conn: Connection) -> list[TokenInfo]:
    rows = conn.execute(
        select(api_tokens.c.name, api_tokens.c.created_at, api_tokens.c.last_used_at).order_by(
            api_tokens.c.name
        )
    ).all()
    return [TokenInfo(r.name, r.created_at, r.last_used_at) for r in rows]


def revoke_token(conn: Connection, name: str) -> None:
    """Forget the token called `name`: from now on it is refused. NotFound when there is none."""
    if conn.execute(delete(api_tokens).where(api_tokens.c.name == name)).rowcount == 0:
        raise NotFound(f"no token named {name!r} (tidings token list)")


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
