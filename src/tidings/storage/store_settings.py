"""Facts the store keeps about how tidings runs, for the commands that run beside it.

`tidings serve` records the address it listens on, so `tidings connection add` in another
terminal prints an intake URL that reaches that server, not a default nobody listens on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from tidings.storage.db import insert_ignoring_duplicates
from tidings.storage.schema import store_settings

__all__ = ["SERVE_URL", "recall", "remember"]

SERVE_URL = "serve_url"


def remember(conn: Connection, key: str, value: str, now: datetime) -> None:
    """Set `key`, whoever else sets it at the same moment: two web nodes starting together, or
    two recounts, each delete-then-insert collided on PostgreSQL's primary key."""
    added = insert_ignoring_duplicates(conn, store_settings)
    conn.execute(added.values(key=key, value=value, updated_at=now))
    conn.execute(
        update(store_settings)
        .where(store_settings.c.key == key)
        .values(value=value, updated_at=now)
    )


def recall(conn: Connection, key: str) -> str | None:
    row = conn.execute(select(store_settings.c.value).where(store_settings.c.key == key)).first()
    return None if row is None else str(row.value)
