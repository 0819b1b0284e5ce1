"""The `tidings` command. It translates arguments into calls and prints results; no logic here."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

import click
from sqlalchemy.engine import make_url

from tidings import __version__
from tidings.config import Settings, load_settings
from tidings.domain.errors import Conflict, NotFound, StorageUnavailable
from tidings.logging import configure_logging
from tidings.providers.registry import PROVIDERS, get_provider
from tidings.storage import connections, inbox, tokens
from tidings.storage.db import Database
from tidings.storage.inbox import ReceiptStatus
from tidings.storage.migrate import current_revision, head_revision, upgrade
from tidings.storage.recount import recount as recount_counters

__all__ = ["main"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _settings() -> Settings:
    try:
        return load_settings()
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(f"configuration: {error}") from None


@contextmanager
def _db(settings: Settings) -> Iterator[Database]:
    """The store for one command; its connections are closed when the command ends."""
    db = Database(settings.database_url, settings.store_timeout_seconds)
    try:
        yield db
    finally:
        db.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
@click.version_option(__version__, prog_name="tidings")
def main() -> None:
    """tidings: what became of every message you sent.

    Configuration comes from TIDINGS_* environment variables (or the TOML file named by
    TIDINGS_CONFIG); TIDINGS_DATABASE_URL defaults to sqlite:///tidings.db.
    """
    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Intake and API only; workers run elsewhere.")
def serve(host: str, port: int, no_worker: bool) -> None:
    """Run tidings: intake, API, and (unless --no-worker) the worker and scheduler."""
    import uvicorn

    from tidings.app import create_app
    from tidings.intake.protocol import CoalescingHttpToolsProtocol

    settings = _settings()
    run_worker = not no_worker
    if run_worker and not settings.embedded:
        raise click.ClickException(
            "TIDINGS_BROKER_URL is set (scale-out): start web nodes with --no-worker"
        )
    if not settings.embedded:
        _broker_url(settings)
    _check_job_intervals(settings)
    db = Database(settings.database_url, settings.store_timeout_seconds)
    if run_worker:
        try:
            upgrade(db)
        except StorageUnavailable as error:
            raise click.ClickException(f"cannot open the store: {error}") from None
    click.echo(f"tidings {__version__} on http://{host}:{port} (store: {_safe_url(settings)})")
    app = create_app(settings, run_worker=run_worker, worker_process=settings.worker_process, db=db)
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=CoalescingHttpToolsProtocol,
        log_config=None,
        # uvicorn formats each access line before logging filters it: only when it is kept.
        access_log=logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO),
    )


def _broker_url(settings: Settings) -> str:
    from tidings.worker.celery_app import BrokerNotConfigured, broker_url

    try:
        return broker_url(settings)
    except BrokerNotConfigured as error:
        raise click.ClickException(str(error)) from None


def _check_job_intervals(settings: Settings) -> None:
    from tidings.scheduler.jobs import scheduled_jobs

    try:
        scheduled_jobs(settings)
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None


def _warn_unless_postgresql(settings: Settings, what: str) -> None:
    if make_url(settings.database_url).get_backend_name() != "postgresql":
        click.echo(
            f"warning: {what} with store {_safe_url(settings)}; scale-out expects PostgreSQL "
            "(a SQLite file works only while every process runs on one machine)",
            err=True,
        )


@main.command()
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Processes applying in parallel in this worker (Celery's default: one per CPU).",
)
@click.option(
    "--queues",
    default=",".join(("tidings.inbox", "tidings.jobs")),
    show_default=True,
    help="Comma-separated queues to consume: tidings.inbox (webhooks to apply, the sweep) "
    "and tidings.jobs (scheduled jobs).",
)
@click.option("--hostname", help="Celery node name (default: tidings-PID@HOST).")
def worker(concurrency: int | None, queues: str, hostname: str | None) -> None:
    """Run a Celery worker (scale-out): applies webhooks and runs the jobs beat sends.

    Needs TIDINGS_BROKER_URL (redis://… or amqp://…) and a migrated store
    (tidings migrate). Run as many as you like, on as many machines.
    """
    from tidings.worker.celery_app import QUEUES, run_worker

    settings = _settings()
    _broker_url(settings)
    _check_job_intervals(settings)
    wanted = tuple(q.strip() for q in queues.split(",") if q.strip())
    unknown = [q for q in wanted if q not in QUEUES]
    if not wanted or unknown:
        raise click.BadParameter(
            f"choose from {', '.join(QUEUES)} (got {queues!r})", param_hint="--queues"
        )
    _warn_unless_postgresql(settings, "tidings worker")
    with _db(settings) as db:
        try:
            current = current_revision(db)
        except StorageUnavailable as error:
            raise click.ClickException(f"cannot open the store: {error}") from None
    if current != head_revision():
        raise click.ClickException(
            f"the store's schema is at {current or 'nothing'}, not {head_revision()}: "
            "run tidings migrate first"
        )
    sys.exit(run_worker(settings, concurrency=concurrency, queues=wanted, hostname=hostname))


@main.command()
def beat() -> None:
    """Run Celery beat (scale-out): sends the scheduled jobs and the sweep to the workers.

    Run exactly one. Needs TIDINGS_BROKER_URL. The schedule is tidings' one list of jobs
    (the same the embedded scheduler runs), intervals overridable with TIDINGS_JOB_INTERVALS,
    plus a sweep every TIDINGS_SWEEP_INTERVAL_SECONDS; each runs once at start.
    """
    from tidings.worker.celery_app import run_beat

    settings = _settings()
    _broker_url(settings)
    _check_job_intervals(settings)
    sys.exit(run_beat(settings))


@main.command()
def migrate() -> None:
    """Create the schema or upgrade it in place to the newest version."""
    settings = _settings()
    try:
        with _db(settings) as db:
            before = current_revision(db)
            upgrade(db)
    except StorageUnavailable as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"schema at {head_revision()} (was {before or 'empty'})")


@main.command("migrate-data")
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

    settings = _settings()
    source = Database(source_url, settings.store_timeout_seconds)
    target = Database(target_url, settings.store_timeout_seconds)
    try:
        if current_revision(source) != head_revision():
            raise click.ClickException(
                "the source store is not at the newest schema: run tidings migrate on it"
            )
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


@main.group()
def connection() -> None:
    """Connections: one per provider account that sends webhooks."""


@connection.command("add")
@click.argument("provider", type=click.Choice(sorted(PROVIDERS)))
@click.argument("name")
@click.option("--secret", help="Shared secret (generated when omitted).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
def connection_add(provider: str, name: str, secret: str | None, options: tuple[str, ...]) -> None:
    """Add a connection; prints its intake URL on the last line."""
    from tidings.api.routes import intake_url

    parsed: dict[str, str] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        parsed[key.strip()] = value
    settings = _settings()
    try:
        with _db(settings) as db:
            upgrade(db)
            with db.write() as conn:
                added = connections.add_connection(
                    conn, provider, name, secret or connections.new_secret(), parsed, _now()
                )
    except Conflict as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"added {provider} connection {name!r} ({get_provider(provider).auth_scheme})")
    if not secret:
        click.echo(f"generated secret: {added.secret}")
    click.echo(intake_url(settings.public_url or DEFAULT_BASE_URL, added, with_secret=True))


@connection.command("list")
def connection_list() -> None:
    """List connections with their intake URL and auth scheme."""
    from tidings.api.routes import intake_url

    settings = _settings()
    with _db(settings) as db, db.read() as conn:
        found = connections.list_connections(conn)
    if not found:
        click.echo("no connections yet: tidings connection add PROVIDER NAME")
        return
    base = settings.public_url or DEFAULT_BASE_URL
    for c in found:
        url = intake_url(base, c, with_secret=False)
        last = c.last_event_at.isoformat() if c.last_event_at else "never"
        scheme = get_provider(c.provider).auth_scheme
        click.echo(f"{c.name}\t{c.provider}\t{url}\t{scheme}\tlast event: {last}")


@main.group()
def token() -> None:
    """API tokens for the /v1 JSON API."""


@token.command("create")
@click.option("--name", default="default", show_default=True)
def token_create(name: str) -> None:
    """Create an API token; prints it alone on the last line (it is not shown again)."""
    with _db(_settings()) as db:
        upgrade(db)
        with db.write() as conn:
            new = tokens.create_token(conn, name, _now())
    click.echo(f"token {name!r} created; use it as 'Authorization: Bearer <token>':")
    click.echo(new)


@main.command()
@click.argument("receipt_ids", nargs=-1, type=int)
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
    with _db(_settings()) as db, db.write() as conn:
        connection_id = None
        if connection_name:
            try:
                connection_id = connections.get_connection(conn, connection_name).id
            except NotFound as error:
                raise click.ClickException(str(error)) from None
        count = inbox.replay(
            conn,
            ids=receipt_ids,
            status=ReceiptStatus(status) if status else None,
            connection_id=connection_id,
            since=_parse_date(since),
        )
    click.echo(f"{count} receipts queued for replay (a running worker picks them up)")


@main.command()
@click.option("--fix", is_flag=True, help="Repair the counters that drifted.")
def recount(fix: bool) -> None:
    """Recompute campaign counters from messages; exit 1 when any had drifted."""
    with _db(_settings()) as db, db.write() as conn:
        drift = recount_counters(conn, fix)
    if not drift:
        click.echo("no drift: every campaign counter matches its messages")
        return
    for d in drift:
        click.echo(f"{d.campaign}\t{d.counter}\tstored {d.stored}\tactual {d.actual}")
    click.echo(f"{len(drift)} counters drifted" + (" (repaired)" if fix else " (run with --fix)"))
    sys.exit(1)


def _safe_url(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)


@main.command()
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
    report(True, "configuration", f"{mode} mode, store {_safe_url(settings)}")
    with _db(settings) as db:
        _check_store(db, report)
    if settings.broker_url:
        report(*_broker_reachable(settings.broker_url))
    else:
        report(True, "broker", "none configured (embedded mode)")
    sys.exit(1 if problems else 0)


def _check_store(db: Database, report: Callable[[bool, str, str], None]) -> None:
    try:
        current = current_revision(db)
    except StorageUnavailable as error:
        report(False, "store", str(error))
        return
    report(True, "store", "reachable")
    head = head_revision()
    hint = "" if current == head else " (run tidings migrate)"
    report(current == head, "schema", f"at {current or 'nothing'}, newest {head}{hint}")
    if current == head:
        with db.read() as conn:
            drift = recount_counters(conn, fix=False)
        detail = "no drift" if not drift else f"{len(drift)} drifted (tidings recount)"
        report(not drift, "counters", detail)


def _broker_reachable(url: str) -> tuple[bool, str, str]:
    parts = urlsplit(url)
    default_port = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}.get(parts.scheme, 0)
    host, port = parts.hostname or "localhost", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return True, "broker", f"{parts.scheme}://{host}:{port} reachable"
    except OSError as error:
        return False, "broker", f"{parts.scheme}://{host}:{port} unreachable: {error}"
