"""`tidings doctor`: every check an operator would run by hand, one line each."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from tidings.cli.common import problems as setting_problems
from tidings.config import load_settings, unknown_variables
from tidings.domain.errors import TidingsError
from tidings.storage import users
from tidings.storage.db import Database
from tidings.storage.message_lists import message_count_estimate
from tidings.storage.readiness import open_ready, safe_url
from tidings.storage.recount import last_recount
from tidings.storage.recount import recount as recount_counters

__all__ = ["doctor"]

Report = Callable[[bool, str, str], None]


@click.command()
def doctor() -> None:
    """Check configuration, store, schema, broker, counters and disk; exit 1 if any is wrong."""
    problems = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal problems
        problems += 0 if ok else 1
        click.echo(f"[{'ok' if ok else 'FAIL'}] {what}: {detail}")

    for variable in unknown_variables(os.environ):
        if variable.meant:  # a likely typo fails; any other stray name is only warned of
            report(False, "configuration", str(variable))
    try:
        settings = load_settings()
    except ValidationError as error:
        report(False, "configuration", setting_problems(error))
        sys.exit(1)
    except (FileNotFoundError, ValueError) as error:
        report(False, "configuration", str(error))
        sys.exit(1)
    from tidings.scheduler.jobs import scheduled_jobs  # only here: it imports the worker

    try:  # what `serve`, `worker` and `beat` refuse to start with
        scheduled_jobs(settings)
    except ValueError as error:
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
    except TidingsError as error:  # not ready, or no store at all (a file of something else)
        report(False, "store", str(error))
        return
    try:
        report(True, "store", "reachable, schema at the newest version")
        report(*_counters(db))
        report(*_disk(db))
        report(*_users(db))
    except TidingsError as error:
        report(False, "store", str(error))
    finally:
        db.dispose()


# Up to this many messages doctor recounts itself (well under a second); past it, it reports
# the last `tidings recount` instead, so a health check stays cheap at any size.
RECOUNT_UP_TO = 100_000


def _counters(db: Database) -> tuple[bool, str, str]:
    with db.read() as conn:
        size = message_count_estimate(conn)
        last = last_recount(conn)
    if size > RECOUNT_UP_TO:
        if last is None:
            return True, "counters", f"about {size} messages: never recounted (tidings recount)"
        ago = _ago(datetime.now(UTC) - last.at)
        return last.drifted == 0 or last.fixed, "counters", f"last recount {ago}: {last.summary()}"
    result = recount_counters(db, fix=False, now=datetime.now(UTC))
    detail = "no drift" if not result.drifted else f"{result.drifted} drifted (tidings recount)"
    return not result.drifted, "counters", detail


def _ago(elapsed: timedelta) -> str:
    seconds = int(elapsed.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def _disk(db: Database) -> tuple[bool, str, str]:
    """How big the store is, and whether the space the retention purge frees goes back to the
    disk (an old SQLite store keeps it inside the file until `tidings vacuum`)."""
    store, wal = db.disk_usage()
    size = f"store {_mib(store)}" + (f", WAL {_mib(wal)}" if db.is_sqlite else "")
    if db.reclaims_space():
        return True, "disk", f"{size}; space the retention purge frees is returned"
    return True, "disk", f"{size}; freed space is reused but never returned: run tidings vacuum"


def _users(db: Database) -> tuple[bool, str, str]:
    """Not a failure: a deployment may use only the API. Says how to open the dashboard."""
    with db.read() as conn:
        count = users.count_users(conn)
    if not count:
        return True, "dashboard", "no users yet: tidings user create EMAIL"
    return True, "dashboard", f"{count} user{'s' if count > 1 else ''} can log in"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _broker_reachable(url: str) -> tuple[bool, str, str]:
    parts = urlsplit(url)
    default_port = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}.get(parts.scheme, 0)
    host, port = parts.hostname or "localhost", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return True, "broker", f"{parts.scheme}://{host}:{port} reachable"
    except OSError as error:
        return False, "broker", f"{parts.scheme}://{host}:{port} unreachable: {error}"
