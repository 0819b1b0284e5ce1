"""`tidings serve`, `worker` and `beat`: the long-running processes."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import sys

import click
from sqlalchemy.engine import make_url

from tidings import __version__
from tidings.cli.common import listen_url, now, settings, store
from tidings.config import Settings
from tidings.serve_lock import ServeLock
from tidings.storage import landing, store_settings, users
from tidings.storage.db import Database
from tidings.storage.migrate import upgrade
from tidings.storage.readiness import open_ready, safe_url, sqlite_file

__all__ = ["beat", "serve", "worker"]


@click.command()
@click.option("--host", help="Address to listen on  [default: TIDINGS_HOST or 127.0.0.1]")
@click.option("--port", type=click.IntRange(1, 65535), help="[default: TIDINGS_PORT or 8000]")
@click.option("--no-worker", is_flag=True, help="Intake and API only; workers run elsewhere.")
def serve(host: str | None, port: int | None, no_worker: bool) -> None:
    """Run tidings: intake, API, and (unless --no-worker) the worker and scheduler.

    With the worker it creates or upgrades the store; without, the store must be migrated.
    """
    import uvicorn

    from tidings.metrics_across_processes import count_across_processes  # before prometheus

    count_across_processes()
    from tidings.app import create_app
    from tidings.intake.protocol import CoalescingHttpToolsProtocol

    config = settings()
    host = config.host if host is None else host
    port = config.port if port is None else port
    run_worker = not no_worker
    if run_worker and not config.embedded:
        raise click.ClickException(
            "TIDINGS_BROKER_URL is set (scale-out): start web nodes with --no-worker"
        )
    if not config.embedded:
        _broker_url(config)
    _check_job_intervals(config)
    # Bound first: a port in use is said before the store is created or told this URL.
    listening = _listen(host, port)
    with listening:  # closed however serve ends
        if run_worker:
            lock = _lock_sqlite_file(config.database_url)
            db = Database(config.database_url, config.store_timeout_seconds)
        else:  # intake only: the store must exist and be migrated already
            db = open_ready(config.database_url, config.store_timeout_seconds)
            lock = _lock_sqlite_file(config.database_url)
        try:
            if run_worker:
                upgrade(db)
            landing.check(db)  # another store's landing file: said now, not by a stuck worker
            url = listen_url(host, port)
            with db.write() as conn:  # so other commands print intake URLs that reach this server
                store_settings.remember(conn, store_settings.SERVE_URL, url, now())
            click.echo(f"tidings {__version__} on {url} (store: {safe_url(config.database_url)})")
            with db.read() as conn:
                nobody = users.count_users(conn) == 0
            hint = " (no users yet: tidings user create EMAIL)" if nobody else ""
            click.echo(f"dashboard: {url}/{hint}")
            app = create_app(
                config, run_worker=run_worker, worker_process=config.worker_process, db=db
            )
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=host,
                    port=port,
                    http=CoalescingHttpToolsProtocol,
                    proxy_headers=True,
                    forwarded_allow_ips=config.trusted_proxies,
                    log_config=None,
                    # uvicorn formats each access line before logging filters it: only when kept.
                    access_log=logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO),
                )
            )
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stopped, as uvicorn.run
                server.run(sockets=[listening])
            if not server.started:  # the app did not start; uvicorn logged why
                sys.exit(_STARTUP_FAILED)
        finally:
            if lock:
                lock.release()


# What `uvicorn.run` exits with when the app does not start.
_STARTUP_FAILED = 3


def _listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound as uvicorn binds it; a one-line error when the
    address is taken or cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family=family)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:  # as asyncio binds it: IPv4 clients keep their addresses
        listening.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        listening.bind((host, port))
        listening.listen(2048)  # held from now on: a second serve cannot take it meanwhile
    except OSError as error:
        listening.close()
        if error.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is in use (another tidings serve, or another program): "
                "stop it, or choose another port with --port or TIDINGS_PORT"
            ) from None
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None
    listening.set_inheritable(True)
    return listening


def _lock_sqlite_file(url: str) -> ServeLock | None:
    path = sqlite_file(url)  # also refuses a URL that is no store tidings runs on
    if path is None:
        return None
    if not path.parent.is_dir():
        raise click.ClickException(
            f"no directory {path.parent} for the store {safe_url(url)}: create it or set "
            "TIDINGS_DATABASE_URL"
        )
    lock = ServeLock(path)
    lock.acquire()
    return lock


def _broker_url(config: Settings) -> str:
    from tidings.worker.celery.config import BrokerNotConfigured, broker_url

    try:
        return broker_url(config)
    except BrokerNotConfigured as error:
        raise click.ClickException(str(error)) from None


def _check_job_intervals(config: Settings) -> None:
    from tidings.scheduler.jobs import scheduled_jobs

    try:
        scheduled_jobs(config)
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None


def _warn_unless_postgresql(config: Settings, what: str) -> None:
    if make_url(config.database_url).get_backend_name() != "postgresql":
        click.echo(
            f"warning: {what} with store {safe_url(config.database_url)}; scale-out expects "
            "PostgreSQL (a SQLite file works only while every process runs on one machine)",
            err=True,
        )


@click.command()
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Processes applying in parallel in this worker (Celery's default: one per CPU).",
)
@click.option(
    "--queues",
    default=",".join(("tidings.inbox", "tidings.jobs", "tidings.outbound")),
    show_default=True,
    help="Comma-separated queues to consume: tidings.inbox (webhooks to apply, the sweep), "
    "tidings.jobs (scheduled jobs) and tidings.outbound (outbound webhooks to send).",
)
@click.option("--hostname", help="Celery node name (default: tidings-PID@HOST).")
def worker(concurrency: int | None, queues: str, hostname: str | None) -> None:
    """Run a Celery worker (scale-out): applies webhooks and runs the jobs beat sends.

    Needs TIDINGS_BROKER_URL (redis://… or amqp://…) and a migrated store
    (tidings migrate). Run as many as you like, on as many machines.
    """
    from tidings.worker.celery.names import QUEUES
    from tidings.worker.celery.run import run_worker

    config = settings()
    _broker_url(config)
    _check_job_intervals(config)
    wanted = tuple(q.strip() for q in queues.split(",") if q.strip())
    unknown = [q for q in wanted if q not in QUEUES]
    if not wanted or unknown:
        raise click.BadParameter(
            f"choose from {', '.join(QUEUES)} (got {queues!r})", param_hint="--queues"
        )
    _warn_unless_postgresql(config, "tidings worker")
    with store(config):
        pass  # reachable and migrated, or a one-line reason
    sys.exit(run_worker(config, concurrency=concurrency, queues=wanted, hostname=hostname))


@click.command()
def beat() -> None:
    """Run Celery beat (scale-out): sends the scheduled jobs and the sweep to the workers.

    Run exactly one. Needs TIDINGS_BROKER_URL. The schedule is tidings' one list of jobs
    (the same the embedded scheduler runs), intervals overridable with TIDINGS_JOB_INTERVALS,
    plus a sweep every TIDINGS_SWEEP_INTERVAL_SECONDS; each runs once at start.
    """
    from tidings.worker.celery.run import run_beat

    config = settings()
    _broker_url(config)
    _check_job_intervals(config)
    sys.exit(run_beat(config))
