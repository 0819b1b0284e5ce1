"""Commands that work on the store itself: migrate, migrate-data, replay, recount, vacuum."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from tidings.cli.common import now, settings, store
from tidings.domain.errors import Conflict, NotFound, StorageUnavailable
from tidings.serve_lock import ServeLock
from tidings.storage import connections, inbox
from tidings.storage.db import Database
from tidings.storage.inbox import ReceiptStatus
from tidings.storage.migrate import current_revision, head_revision, upgrade
from tidings.storage.readiness import checked_url, open_ready, sqlite_file
from tidings.storage.recount import recount as recount_counters

__all__ = ["migrate", "migrate_data", "recount", "replay", "vacuum"]


@contextmanager
def _alone(url: str, command: str) -> Iterator[None]:
    """The SQLite file to this command alone: refused while `tidings serve` runs on it (whose
    writes it would block, or miss), and `serve` refused until it is done."""
    path = sqlite_file(url)
    lock = ServeLock(path, command) if path is not None and path.is_file() else None
    if lock is not None:
        lock.acquire()
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


@click.command()
def migrate() -> None:
    """Create the schema or upgrade it in place to the newest version."""
    config = settings()
    checked_url(config.database_url)
    db = Database(config.database_url, config.store_timeout_seconds)
    try:
        before = current_revision(db)
        upgrade(db)
    finally:
        db.dispose()
    click.echo(f"schema at {head_revision()} (was {before or 'empty'})")


@click.command("migrate-data")
@click.option(
    "--from", "source_url", required=True, help="The store to copy, e.g. sqlite:///tidings.db"
)
@click.option(
    "--to", "target_url", required=True, help="An empty store, e.g. postgresql://…/tidings"
)
def migrate_data(source_url: str, target_url: str) -> None:
    """Copy every row from one store into another (SQLite to PostgreSQL), then verify counts.

    Stop `tidings serve` first, so nothing is written to the source while it is copied."""
    from tidings.storage.copy import copy_store, count_rows

    config = settings()
    source = open_ready(source_url, config.store_timeout_seconds)
    checked_url(target_url)
    target = Database(target_url, config.store_timeout_seconds)
    try:
        with _alone(source_url, "migrate-data"):
            total = sum(count_rows(source).values())
            with click.progressbar(length=total, label="copying rows", show_pos=True) as bar:
                counts = copy_store(source, target, lambda _table, n: bar.update(n))
    except (Conflict, StorageUnavailable) as error:
        raise click.ClickException(str(error)) from None
    finally:
        source.dispose()
        target.dispose()
    for count in counts:
        mark = "ok" if count.matches else "MISMATCH"
        click.echo(f"[{mark}] {count.table}: {count.source} -> {count.target}")
    if not all(count.matches for count in counts):
        raise click.ClickException("row counts differ between the stores; do not switch over")
    click.echo(f"copied {total} rows; point TIDINGS_DATABASE_URL at the new store")


def _parse_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.command()
@click.argument("receipt_ids", nargs=-1, type=click.IntRange(1, 2**63 - 1))
@click.option(
    "--status",
    type=click.Choice(["failed", "dead", "quarantined"]),
    help="Only receipts in this status.",
)
@click.option("--connection", "connection_name", help="Only receipts of this connection.")
@click.option("--since", help="Only receipts received since this date (YYYY-MM-DD).")
def replay(
    receipt_ids: tuple[int, ...], status: str | None, connection_name: str | None, since: str | None
) -> None:
    """Apply receipts again. Safe: events are deduplicated, the lifecycle only moves forward."""
    if not (receipt_ids or status or connection_name or since):
        raise click.UsageError("name receipts or give --status/--connection/--since")
    since_at = _parse_date(since)
    with store(settings()) as db, db.write() as conn:
        missing = [i for i in receipt_ids if inbox.get_receipt(conn, i) is None]
        if missing:
            raise NotFound(f"no receipt with id {', '.join(map(str, missing))}; nothing replayed")
        connection_id = None
        if connection_name:
            connection_id = connections.get_connection(conn, connection_name).id
        count = inbox.replay(
            conn,
            ids=receipt_ids,
            status=ReceiptStatus(status) if status else None,
            connection_id=connection_id,
            since=since_at,
        )
    noun = "receipt" if count == 1 else "receipts"
    click.echo(f"{count} {noun} queued for replay (a running worker picks them up)")


@click.command()
@click.option("--fix", is_flag=True, help="Repair the counters that drifted.")
def recount(fix: bool) -> None:
    """Recompute campaign counters from messages; exit 1 when any had drifted.

    Reads a snapshot, so webhooks keep being acknowledged; only a repair takes the write lock,
    for the drifted campaigns alone."""
    with store(settings()) as db:
        result = recount_counters(db, fix, now())
    if not result.drift:
        click.echo("no drift: every campaign counter matches its messages")
        return
    for d in result.drift:
        click.echo(f"{d.campaign}\t{d.counter}\tstored {d.stored}\tactual {d.actual}")
    click.echo(result.summary() + ("" if fix else " (run with --fix)"))
    sys.exit(1)


@click.command()
def vacuum() -> None:
    """Rewrite the store compactly, once, so space the retention purge frees goes back to the
    disk from then on (a SQLite store created by an earlier tidings needs it once).

    On SQLite this holds the write lock throughout and needs free disk about the size of the
    store: minutes for gigabytes. Refused while tidings serve runs on the file (webhooks
    meanwhile would get 503)."""
    config = settings()
    with store(config) as db, _alone(config.database_url, "vacuum"):
        before = sum(db.disk_usage())
        click.echo(f"vacuuming {before / 2**20:.1f} MiB; this can take minutes")
        shown = [0]

        def progress(seconds: float) -> None:
            if int(seconds) >= shown[0] + 5:
                shown[0] = int(seconds)
                click.echo(f"  still vacuuming after {shown[0]} s")

        db.vacuum(progress)
        after = sum(db.disk_usage())
    click.echo(f"vacuumed: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
