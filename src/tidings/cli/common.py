"""What every `tidings` command shares: settings, the store it talks to, and how expected
failures become one line on stderr (exit 1) instead of a traceback."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from tidings.config import Settings, load_settings
from tidings.domain.errors import TidingsError
from tidings.storage import store_settings
from tidings.storage.db import Database
from tidings.storage.readiness import open_ready

__all__ = ["TidingsGroup", "intake_base", "listen_url", "now", "settings", "store"]


class TidingsGroup(click.Group):
    """A command group that turns any error tidings raises on purpose (store down, unknown
    connection, bad option, …) into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TidingsError as error:
            raise click.ClickException(" ".join(str(error).split())) from None


def settings() -> Settings:
    try:
        return load_settings()
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(f"configuration: {error}") from None


def now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def store(config: Settings) -> Iterator[Database]:
    """The existing, migrated store for one command; closed when the command ends."""
    db = open_ready(config.database_url, config.store_timeout_seconds)
    try:
        yield db
    finally:
        db.dispose()


def listen_url(host: str, port: int) -> str:
    """The URL that reaches a server bound to `host`:`port` from this machine."""
    if not host or _unspecified(host):  # every interface: loopback is one of them
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a host name
        return False


def intake_base(config: Settings, db: Database) -> str:
    """Where intake URLs start: TIDINGS_PUBLIC_URL, else where `tidings serve` last said it
    listens, else the configured host and port."""
    if config.public_url:
        return config.public_url
    with db.read() as conn:
        remembered = store_settings.recall(conn, store_settings.SERVE_URL)
    return remembered or listen_url(config.host, config.port)
