"""`tidings doctor`: every check an operator would run by hand, one line each."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

import click

from tidings.config import load_settings
from tidings.domain.errors import TidingsError
from tidings.storage.readiness import StoreNotReady, open_ready, safe_url
from tidings.storage.recount import recount as recount_counters

__all__ = ["doctor"]

Report = Callable[[bool, str, str], None]


@click.command()
def doctor() -> None:
    """Check configuration, store, schema, broker and counters; exit 1 if anything is wrong."""
    problems = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal problems
        problems += 0 if ok else 1
        click.echo(f"[{'ok' if ok else 'FAIL'}] {what}: {detail}")

    try:
        settings = load_settings()
    except (FileNotFoundError, ValueError) as error:
        report(False, "configuration", str(error))
        sys.exit(1)
    mode = "embedded" if settings.embedded else "scale-out"
    report(True, "configuration", f"{mode} mode, store {safe_url(settings.database_url)}")
    _check_store(settings.database_url, settings.store_timeout_seconds, report)
    if settings.broker_url:
        report(*_broker_reachable(settings.broker_url))
    else:
        report(True, "broker", "none configured (embedded mode)")
    sys.exit(1 if problems else 0)


def _check_store(url: str, timeout: float, report: Report) -> None:
    try:
        db = open_ready(url, timeout)
    except StoreNotReady as error:
        report(False, "store", str(error))
        return
    try:
        report(True, "store", "reachable, schema at the newest version")
        with db.read() as conn:
            drift = recount_counters(conn, fix=False)
        detail = "no drift" if not drift else f"{len(drift)} drifted (tidings recount)"
        report(not drift, "counters", detail)
    except TidingsError as error:
        report(False, "counters", str(error))
    finally:
        db.dispose()


def _broker_reachable(url: str) -> tuple[bool, str, str]:
    parts = urlsplit(url)
    default_port = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}.get(parts.scheme, 0)
    host, port = parts.hostname or "localhost", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return True, "broker", f"{parts.scheme}://{host}:{port} reachable"
    except OSError as error:
        return False, "broker", f"{parts.scheme}://{host}:{port} unreachable: {error}"
