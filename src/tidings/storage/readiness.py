"""Whether the store a command names is there and migrated, said in one line before any use.

Opening a SQLite URL creates the file, so a mistyped TIDINGS_DATABASE_URL would give a
command an empty store of its own (and the server would never see what it wrote). Commands
that only use a store check it here first; only `tidings migrate` and `tidings serve` create one.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from tidings.domain.errors import StorageUnavailable, TidingsError
from tidings.storage.db import Database
from tidings.storage.migrate import current_revision, head_revision

__all__ = ["StoreNotReady", "checked_url", "open_ready", "safe_url", "sqlite_file"]

_BACKENDS = ("sqlite", "postgresql")


class StoreNotReady(TidingsError):
    """The store cannot be used as it is; the message names it and says what to do."""


def checked_url(url: str) -> URL:
    """The parsed URL; StoreNotReady when it is not a store tidings runs on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is None or parsed.get_backend_name() not in _BACKENDS:
        shown = parsed.render_as_string(hide_password=True) if parsed else repr(url)
        raise StoreNotReady(
            f"unsupported database URL {shown}: use sqlite:///PATH or "
            "postgresql://USER@HOST/DB in TIDINGS_DATABASE_URL"
        )
    return parsed


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for PostgreSQL and in-memory SQLite)."""
    parsed = checked_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def open_ready(url: str, timeout: float) -> Database:
    """The store at `url`, reachable and at the newest schema; StoreNotReady otherwise."""
    shown = safe_url(url)
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise StoreNotReady(
            f"no store at {shown}: run tidings migrate to create it, or set "
            "TIDINGS_DATABASE_URL to the store tidings serve uses"
        )
    db = Database(url, timeout)
    try:
        current = current_revision(db)
    except StorageUnavailable as error:
        db.dispose()
        cause = error.__cause__
        detail = " ".join(str(getattr(cause, "orig", None) or cause or error).split())
        raise StoreNotReady(f"cannot reach the store at {shown}: {detail}") from None
    if current != head_revision():
        db.dispose()
        raise StoreNotReady(
            f"the store at {shown} is at schema {current or 'nothing'}, not {head_revision()}: "
            "run tidings migrate"
        )
    return db
