"""Adding, changing and removing connections: the checks both the CLI and the API apply.

Every change is checked as a whole (secret and all options as they would be stored), so a
connection in the store is always one that can work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from tidings.providers.options import InvalidConnection, check_connection, check_name
from tidings.providers.registry import get_provider
from tidings.storage import connections
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database

__all__ = ["Added", "add", "change", "remove"]


@dataclass(frozen=True)
class Added:
    connection: StoredConnection
    secret_generated: bool


def add(
    db: Database,
    provider: str,
    name: str,
    secret: str | None,
    options: Mapping[str, str],
    now: datetime,
) -> Added:
    """A new connection. A secret is generated only for providers that sign nothing (the
    secret goes in the URL); one whose provider signs with its own secret must be given it."""
    check_name(name)
    token_in_url = get_provider(provider).token_in_url
    if token_in_url and secret is not None and not secret.strip():  # an unset $VARIABLE?
        raise InvalidConnection(
            "the secret is empty: give one, or leave --secret out to have one generated"
        )
    generated = not secret and token_in_url
    if generated:
        secret = connections.new_secret()
    check_connection(provider, secret, options)
    assert secret is not None
    with db.write() as conn:
        added = connections.add_connection(conn, provider, name, secret, options, now)
    return Added(added, generated)


def change(
    db: Database,
    name: str,
    secret: str | None,
    options: Mapping[str, str],
    unset: Iterable[str] = (),
) -> StoredConnection:
    """Set `secret` (when given) and `options`, drop the `unset` keys, keep everything else."""
    with db.write() as conn:
        current = connections.get_connection(conn, name)
        if secret is not None and not secret.strip():  # meta and twilio say it their way
            check_connection(current.provider, secret, current.options)
            raise InvalidConnection(
                "the secret is empty: anyone could post webhooks to this connection; give one"
            )
        dropped = set(unset)
        missing = sorted(dropped - set(current.options))
        if missing:
            held = ", ".join(sorted(current.options)) or "none"
            raise InvalidConnection(
                f"connection {name!r} has no option {', '.join(missing)} to drop "
                f"(its options: {held})"
            )
        merged = {k: v for k, v in current.options.items() if k not in dropped}
        merged.update(options)
        new_secret = current.secret if secret is None else secret
        check_connection(current.provider, new_secret, merged)
        return connections.update_connection(conn, current, new_secret, merged)


def remove(db: Database, name: str, now: datetime) -> StoredConnection:
    """Stop taking webhooks for `name` (its intake answers 404); its history stays."""
    with db.write() as conn:
        return connections.remove_connection(conn, name, now)
